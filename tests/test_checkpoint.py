"""Checkpoint loading: released layout, key schemes, EMA, safety and error reports."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch
import yaml

from models.act import Carry
from models.ema import EMA
from models.loading import load_checkpoint
from models.registry import build_model
from tests.conftest import FIXTURES, tiny_arch
from utils.checkpoint import CheckpointError, canonical_key, read_checkpoint, safe_torch_load
from utils.safe_load import ReferenceLatentCarry, ReferenceModelCarry

RELEASE = FIXTURES / "release_format_sudoku.pth"
REF_TRAINER = FIXTURES / "ref_trainer_sudoku.pth"
HRM_RELEASE = FIXTURES / "hrm_release_layout"


def test_release_checkpoint_loads_with_ema_by_default():
    loaded = load_checkpoint(RELEASE)
    assert loaded.used_ema and loaded.step == 50000
    assert type(loaded.act_model).__name__ == "EqRModel"
    assert loaded.act_model.config.seq_len == 81 and loaded.act_model.config.vocab_size == 11
    raw = loaded.contents.raw
    shadow = {canonical_key(k): v for k, v in raw["ema"]["shadow"].items()}
    torch.testing.assert_close(loaded.act_model.state_dict()["inner.lm_head.weight"], shadow["inner.lm_head.weight"])
    plain = load_checkpoint(RELEASE, use_ema=False)
    assert not plain.used_ema
    assert not torch.equal(plain.act_model.inner.lm_head.weight, loaded.act_model.inner.lm_head.weight)


@pytest.mark.parametrize("prefix", ["", "model.", "_orig_mod.model.", "model._orig_mod."])
def test_every_key_scheme_loads(tmp_path, prefix):
    head = build_model(tiny_arch())
    state = {prefix + k: v for k, v in head.model.state_dict().items()}
    path = tmp_path / "ckpt.pth"
    torch.save({"model": state, "config": {"arch": tiny_arch()}, "step": 3}, path)
    loaded = load_checkpoint(path, use_ema=False)
    for k, v in head.model.state_dict().items():
        assert torch.equal(loaded.act_model.state_dict()[k], v)


def test_mismatches_are_reported_by_name(tmp_path):
    head = build_model(tiny_arch())
    state = dict(head.state_dict())
    del state["model.inner.lm_head.weight"]
    state["model.inner.extra.weight"] = torch.zeros(1)
    state["model.inner.q_head.bias"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save({"model": state, "config": {"arch": tiny_arch()}}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "missing: inner.lm_head.weight" in msg
    assert "unexpected: inner.extra.weight" in msg
    assert "inner.q_head.bias (checkpoint (3,) vs model (2,))" in msg
    loaded = load_checkpoint(path, strict=False)  # non-strict loads what fits
    assert torch.equal(loaded.act_model.inner.embed_tokens.embedding_weight,
                       head.model.inner.embed_tokens.embedding_weight)


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_malicious_pickle_global_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "config": {"arch": {}}, "payload": _Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        safe_torch_load(path)
    with pytest.raises(CheckpointError, match="evil.pth: refused"):
        load_checkpoint(path)
    assert "this must never run" not in capsys.readouterr().out


def test_numpy_and_python_rng_state_is_admitted(tmp_path):
    import random

    path = tmp_path / "rng.pth"
    torch.save({"numpy": np.random.get_state(), "python": random.getstate(), "rng": torch.get_rng_state()}, path)
    state = safe_torch_load(path)
    assert state["numpy"][0] == "MT19937" and state["numpy"][1].dtype == np.uint32


def test_other_numpy_objects_are_refused(tmp_path):
    path = tmp_path / "obj.pth"
    torch.save({"x": np.array(["a"], dtype=object)}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        safe_torch_load(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the plain-pickle case below
def test_missing_and_non_checkpoint_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pth: not a PyTorch checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "tensor.pth"
    torch.save(torch.zeros(2), other)
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_checkpoint(other)
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump({"a": 1}, f)
    with pytest.raises(CheckpointError, match="plain.pkl"):
        load_checkpoint(tmp_path / "plain.pkl")


def test_seq_len_needed_for_attention_models(tmp_path):
    arch = {k: v for k, v in tiny_arch().items() if k not in ("seq_len", "vocab_size")}
    head = build_model(tiny_arch())
    path = tmp_path / "attn.pth"
    torch.save({"model": head.state_dict(), "config": {"arch": arch}}, path)
    with pytest.raises(CheckpointError, match=r"arch\.seq_len.*dataset"):
        load_checkpoint(path)
    loaded = load_checkpoint(path, data_fields={"seq_len": 16})
    assert loaded.act_model.config.vocab_size == 7  # recovered from the embedding table


def test_ema_update_formula_and_swap():
    head = build_model(tiny_arch())
    ema = EMA(head, mu=0.9)
    start = {k: v.clone() for k, v in ema.shadow.items()}
    with torch.no_grad():
        for p in head.parameters():
            p.add_(1.0)
    ema.update(head)
    for name, p in head.named_parameters():
        torch.testing.assert_close(ema.shadow[name], 0.9 * start[name] + 0.1 * p.detach())
    live = head.model.inner.lm_head.weight.detach().clone()
    with ema.swapped_in(head):
        torch.testing.assert_close(head.model.inner.lm_head.weight, ema.shadow["model.inner.lm_head.weight"])
    assert torch.equal(head.model.inner.lm_head.weight, live)
    assert all(k.startswith("model.inner.") for k in ema.state_dict()["shadow"])


# ---------------------------------------------------------------- the reference trainer's own files


def test_reference_trainer_checkpoint_loads_safely():
    raw = safe_torch_load(REF_TRAINER)
    carry = raw["carry"]
    assert isinstance(carry, ReferenceModelCarry) and isinstance(carry.inner_carry, ReferenceLatentCarry)
    assert carry.global_step == 6 and carry.halt_counter is None
    ours = Carry.from_dict(carry.carry_state())
    assert ours.latents["z_H"].shape == (8, 81, 32) and ours.steps.tolist() == [6] * 8 and not ours.halted.any()
    assert set(ours.current_data) == {"inputs", "labels", "puzzle_identifiers"}
    # RNG and sampler state (numpy Philox with uint64 arrays) and the wandb dict load as data.
    assert raw["numpy"][0] == "MT19937" and raw["numpy"][1].dtype == np.uint32
    philox = raw["train_dataset"]["train_state"]["rng_state"]
    assert philox["bit_generator"] == "Philox" and philox["state"]["key"].dtype == np.uint64
    assert all(isinstance(v, (str, type(None))) for v in raw["wandb"].values())
    loaded = load_checkpoint(REF_TRAINER, data_fields={"seq_len": 81})
    assert loaded.used_ema and loaded.step == 6 and loaded.act_model.config.hidden_size == 32


def _save_under_name(tmp_path, module, name: str, obj_factory, filename="forged.pth"):
    """Pickle an object whose class claims to be `module.name` (as the reference's would)."""
    cls = obj_factory.__class__ if not isinstance(obj_factory, type) else obj_factory
    cls.__module__, cls.__qualname__, cls.__name__ = module.__name__, name, name
    setattr(module, name, cls)
    try:
        path = tmp_path / filename
        torch.save({"model": {}, "config": {"arch": {}}, "carry": obj_factory() if isinstance(obj_factory, type)
                    else obj_factory}, path)
    finally:
        delattr(module, name)
    return path


def test_trm_carry_with_halt_counter_loads(tmp_path):
    import models.trm

    class ModelCarry:
        def __init__(self):
            self.inner_carry, self.steps = None, torch.zeros(2, dtype=torch.int32)
            self.halted, self.current_data = torch.ones(2, dtype=torch.bool), {"inputs": torch.zeros(2, 3)}
            self.global_step, self.halt_counter = None, torch.tensor([1, 2])

    path = _save_under_name(tmp_path, models.trm, "ModelCarry", ModelCarry)
    carry = safe_torch_load(path)["carry"]
    assert isinstance(carry, ReferenceModelCarry) and carry.halt_counter.tolist() == [1, 2]


class _SystemCall:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_forged_globals_are_refused_and_never_run(tmp_path):
    import models.eqr

    marker = tmp_path / "ran"

    class Evil:  # a look-alike in the reference's module, whose unpickling would run code
        def __init__(self):
            self.marker = str(marker)

        def __setstate__(self, state):
            open(state["marker"], "w").close()

    class ModelCarry:  # the right name with a field the reference never pickles
        def __init__(self):
            self.inner_carry = self.steps = self.halted = self.current_data = None
            self.payload = "extra"

    cases = {
        "lookalike": _save_under_name(tmp_path, models.eqr, "Evil", Evil, "lookalike.pth"),
        "extra_field": _save_under_name(tmp_path, models.eqr, "ModelCarry", ModelCarry, "extra.pth"),
    }
    torch.save({"model": {}, "config": {}, "carry": _SystemCall(marker)}, tmp_path / "system.pth")
    ours = Carry({"z_H": torch.zeros(1), "z_L": torch.zeros(1)}, torch.zeros(1), torch.zeros(1), {})
    torch.save({"model": {}, "config": {}, "carry": ours}, tmp_path / "ours.pth")
    cases.update(system=tmp_path / "system.pth", ours=tmp_path / "ours.pth")
    for name, path in cases.items():
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"{path}: refused to load"), (name, message)
    assert "models.eqr.Evil" in str(pytest.raises(CheckpointError, safe_torch_load, cases["lookalike"]).value)
    assert "payload" in str(pytest.raises(CheckpointError, safe_torch_load, cases["extra_field"]).value)
    assert not marker.exists(), "a forged checkpoint ran code"


# ---------------------------------------------------------------- HRM / TRM release layout


def test_hrm_release_layout_loads_from_its_yaml():
    contents = read_checkpoint(HRM_RELEASE / "checkpoint")
    assert contents.arch["name"] == "hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1"
    assert contents.data_paths == ["data/sudoku-extreme-1k-aug-1000"] and contents.ema_state is None
    assert all(k.startswith("inner.") for k in contents.model_state)
    loaded = load_checkpoint(HRM_RELEASE / "checkpoint", data_fields={"seq_len": 81})
    assert not loaded.used_ema and type(loaded.act_model).__name__ == "HRMModel"
    assert loaded.act_model.config.puzzle_positions == 1 and loaded.act_model.config.H_layers == 2


def test_bare_state_dict_needs_a_readable_yaml(tmp_path):
    shutil.copy(HRM_RELEASE / "checkpoint", tmp_path / "step_400")
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'all_config.yaml'}: missing; step_400 is a bare"):
        load_checkpoint(tmp_path / "step_400")
    assert read_checkpoint(tmp_path / "step_400", need_config=False).step == 400  # weights alone need no yaml
    for text in ("arch: [unclosed", "just a string", "arch: {hidden_size: 4}"):
        (tmp_path / "all_config.yaml").write_text(text)
        with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'all_config.yaml'}: unreadable") as err:
            load_checkpoint(tmp_path / "step_400")
        assert "\n" not in str(err.value)


def test_empty_and_truncated_files_are_named(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth: empty file"):
        load_checkpoint(tmp_path / "empty.pth")
    data = RELEASE.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth: not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match="a folder without checkpoints"):
        load_checkpoint(tmp_path)


def test_trm_release_layout_loads_under_its_upstream_name(tmp_path):
    """TRM's trainer is HRM's: the same bare state dict and all_config.yaml, its own arch name."""
    arch = tiny_arch("recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1", H_layers=0, puzzle_emb_ndim=64,
                     puzzle_emb_len=2, num_puzzle_identifiers=5, mlp_t=True, pos_encodings="none")
    head = build_model(arch)
    torch.save({f"_orig_mod.{k}": v for k, v in head.state_dict().items()}, tmp_path / "step_1000")
    release_arch = {k: v for k, v in arch.items() if k not in ("seq_len", "vocab_size", "num_puzzle_identifiers")}
    (tmp_path / "all_config.yaml").write_text(yaml.safe_dump({"arch": release_arch, "data_path": "data/x"}))
    loaded = load_checkpoint(tmp_path / "step_1000")
    assert loaded.step == 1000 and not loaded.used_ema and type(loaded.act_model).__name__ == "TRMModel"
    assert loaded.act_model.config.seq_len == 16 and loaded.act_model.config.num_puzzle_identifiers == 5
    for key, value in head.model.state_dict().items():
        assert torch.equal(loaded.act_model.state_dict()[key], value), key
