"""The kernel paths (docs/kernels.md): `kernels=fast` computes what `kernels=reference` computes."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import evaluate
from models.layers import SwiGLU
from models.registry import build_model
from tests.conftest import latent_shape, tiny_arch
from tests.test_eval_cli import CKPT, sudoku  # noqa: F401  (the module's dataset fixture)
from tests.test_training import CPU, make_config
from training.trainer import Trainer


@pytest.mark.parametrize("dim", [9, 16, 81, 97])
@pytest.mark.parametrize("multiple", [16, 64])
def test_padded_swiglu_equals_swiglu(dim, multiple):
    torch.manual_seed(dim)
    mlp = SwiGLU(dim, 4.0)
    x = torch.randn(5, 7, dim)
    padded = mlp.padded(x, multiple)
    assert padded.shape == x.shape
    # Zero weights meet the padding: the same sums, up to the order a GEMM adds them in.
    torch.testing.assert_close(padded, mlp(x), rtol=1e-5, atol=1e-6)


def _segment(arch: dict, kernels: str, grad: bool, device: str = "cpu", seed: int = 0):
    """Logits, q values and (with `grad`) parameter gradients of one segment from a fixed state."""
    torch.manual_seed(seed)
    model = build_model(arch).model.to(device)
    changes = model.use_kernels(kernels)
    cfg = model.config
    generator = torch.Generator().manual_seed(1)
    batch = {"inputs": torch.randint(0, cfg.vocab_size, (3, cfg.seq_len), generator=generator, dtype=torch.int32),
             "puzzle_identifiers": torch.zeros(3, dtype=torch.int32)}
    batch = {k: v.to(device) for k, v in batch.items()}
    shape = latent_shape(model, 3)
    z_H = torch.randn(shape, generator=generator).to(device, cfg.dtype)
    z_L = torch.randn(shape, generator=generator).to(device, cfg.dtype)
    with torch.set_grad_enabled(grad):
        _, logits, q_halt, _ = model.inner({"z_H": z_H, "z_L": z_L}, batch)
        grads = {}
        if grad:
            (logits.float().square().mean() + q_halt.float().sum()).backward()
            grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return changes, logits.detach().float().cpu(), q_halt.detach().float().cpu(), grads, model


MLP_T = tiny_arch(mlp_t=True, seq_len=9, vocab_size=5)
ATTENTION = tiny_arch()


def test_fast_path_equals_reference_path_mlp_t():
    changes, logits, q, grads, fast = _segment(MLP_T, "fast", grad=True)
    _, ref_logits, ref_q, ref_grads, reference = _segment(MLP_T, "reference", grad=True)
    positions = fast.config.total_positions
    assert changes == [f"mlp_t token axis {positions} -> {positions + -positions % 16} (zero weights)"]
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(q, ref_q, rtol=1e-5, atol=1e-6)
    assert grads.keys() == ref_grads.keys() and grads
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    # Same parameters, names and shapes: checkpoints move between the paths.
    assert {k: v.shape for k, v in fast.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}


def test_fast_path_leaves_attention_models_as_they_are():
    changes, logits, q, _, _ = _segment(ATTENTION, "fast", grad=False)
    _, ref_logits, ref_q, _, _ = _segment(ATTENTION, "reference", grad=False)
    assert changes == []
    assert torch.equal(logits, ref_logits) and torch.equal(q, ref_q)


def test_unknown_kernel_path_is_named():
    with pytest.raises(ValueError, match="kernels: unknown 'turbo'; known: reference, fast"):
        build_model(ATTENTION).model.use_kernels("turbo")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("arch", [MLP_T, ATTENTION], ids=["mlp_t", "attention"])
def test_fast_path_on_cuda_within_1e2_of_the_reference_path(arch):
    arch = {**arch, "forward_dtype": "bfloat16"}
    _, logits, _, _, _ = _segment(arch, "fast", grad=False, device="cuda")
    _, ref_logits, _, _, _ = _segment(arch, "reference", grad=False, device="cuda")
    assert (logits - ref_logits).norm() <= 1e-2 * ref_logits.norm()


def test_evaluate_with_the_fast_path(sudoku, tmp_path, capsys, caplog):  # noqa: F811
    caplog.set_level(logging.INFO)
    records = {}
    for kernels in ("reference", "fast"):
        out = tmp_path / kernels
        code = evaluate.main([f"checkpoint={CKPT}", f"dataset_data_path={sudoku}", f"output_dir={out}",
                              "halt_max_steps=2", f"kernels={kernels}", "plots=false", "reference_files=false"])
        assert code == 0, capsys.readouterr().err
        tag = "_fast" if kernels == "fast" else ""  # the kernel path is part of the result's name
        stem = f"eval_eqr_fixtures_release_format_sudoku_sudoku_D2_B1{tag}"
        records[kernels] = json.loads((out / f"{stem}.json").read_text())
    assert records["fast"]["config"]["kernels"] == "fast"
    assert "kernels: fast (mlp_t token axis" in caplog.text
    assert records["fast"]["metrics"] == pytest.approx(records["reference"]["metrics"], rel=1e-4, abs=1e-6)


def test_training_with_the_fast_path(maze_dir, tmp_path, caplog):  # noqa: F811
    caplog.set_level(logging.INFO)
    states = []
    for kernels in ("reference", "fast"):
        config = make_config("train/eqr_quickstart", maze_dir, tmp_path / kernels, "max_steps=2",
                             "checkpoint_interval_steps=null", f"kernels={kernels}")
        trainer = Trainer(config, CPU)
        trainer.run()
        states.append(trainer.head.state_dict())
    assert "kernels: fast (mlp_t token axis" in caplog.text
    for key in states[0]:
        torch.testing.assert_close(states[1][key], states[0][key], rtol=1e-4, atol=1e-6, msg=key)
