"""AdamATan2 against an element-by-element evaluation of its rule, the LR schedule, and sign-SGD."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from models.blocks import PuzzleEmbedding
from training.optim import AdamATan2, SignSGDSparse, cosine_schedule_with_warmup_lr, make_adam_atan2


def reference_adam_atan2(
    p: np.ndarray, grads: list[np.ndarray], lrs: list[float], betas: tuple[float, float], wd: float
) -> np.ndarray:
    """The update rule, one float64 element at a time."""
    beta1, beta2 = betas
    p = p.astype(np.float64).ravel().copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, (g, lr) in enumerate(zip(grads, lrs, strict=True), start=1):
        g = g.astype(np.float64).ravel()
        bc1 = 1.0 - beta1**t
        bc2 = 1.0 - beta2**t
        for i in range(p.size):
            p[i] *= 1.0 - lr * wd
            m[i] = m[i] + (g[i] - m[i]) * (1.0 - beta1)
            v[i] = v[i] + (g[i] * g[i] - v[i]) * (1.0 - beta2)
            p[i] -= (lr / bc1) * math.atan2(m[i], math.sqrt(v[i]) / math.sqrt(bc2))
    return p


@pytest.mark.parametrize("tensor_lr", [False, True])
def test_adam_atan2_matches_elementwise_rule(tensor_lr: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (5,)]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in shapes]
    initial = [p.detach().numpy().copy() for p in params]
    betas, wd = (0.9, 0.95), 0.1
    lrs = [1e-2, 3e-2, 2e-2, 5e-3, 1e-2, 4e-2]
    grads: list[list[np.ndarray]] = [[] for _ in shapes]
    lr0 = torch.tensor(lrs[0]) if tensor_lr else lrs[0]
    opt = AdamATan2(params, lr=lr0, betas=betas, weight_decay=wd)
    for lr in lrs:
        opt.param_groups[0]["lr"] = torch.tensor(lr) if tensor_lr else lr
        for k, p in enumerate(params):
            g = torch.randn(p.shape, generator=gen)
            if k == 0:
                g[0, 0] = 0.0  # never receives a gradient: m = v = 0, atan2(0, 0) = 0
            p.grad = g
            grads[k].append(g.numpy().copy())
        opt.step()
    for k, p in enumerate(params):
        expected = reference_adam_atan2(initial[k], grads[k], lrs, betas, wd)
        np.testing.assert_allclose(p.detach().numpy().ravel(), expected, rtol=0, atol=1e-6)
    decay_only = initial[0][0, 0] * np.prod([1.0 - lr * wd for lr in lrs])
    assert params[0].detach()[0, 0].item() == pytest.approx(decay_only, abs=1e-6)


def first_step_move(lr: float, beta1: float) -> float:
    """Step 1: m = (1 - beta1) g and sqrt(v) / sqrt(bc2) = |g|, so |dp| = lr / (1 - beta1) * atan(1 - beta1)."""
    return lr / (1.0 - beta1) * math.atan(1.0 - beta1)


def test_adam_atan2_first_step_size() -> None:
    # Only the numerator of atan2 lacks bias correction (the kernel's rule): the first move is
    # lr * atan(0.1) / 0.1 = 0.9967 lr for every nonzero gradient, whatever its size.
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    p.grad = torch.tensor([3.0, -0.25, 0.0])
    AdamATan2([p], lr=0.1, betas=(0.9, 0.95), weight_decay=0.0).step()
    move = first_step_move(0.1, 0.9)
    assert move == pytest.approx(0.09966865, abs=1e-8)
    expected = [1.0 - move, -2.0 + move, 0.5]
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=0, atol=1e-7)


def test_adam_atan2_skips_params_without_grad_and_validates() -> None:
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    a.grad = torch.ones(2)
    opt = AdamATan2([a, b], lr=0.1, weight_decay=1.0)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2)) and b not in opt.state
    assert a.detach()[0].item() == pytest.approx(0.9 - first_step_move(0.1, 0.9), abs=1e-7)
    with pytest.raises(ValueError, match="betas"):
        AdamATan2([a], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="lr"):
        AdamATan2([a], lr=-1.0)


def test_adam_atan2_state_dict_layout_and_resume() -> None:
    gen = torch.Generator().manual_seed(1)
    grads = [torch.randn(4, 3, generator=gen) for _ in range(6)]
    start = torch.randn(4, 3, generator=gen)

    def run(p: torch.nn.Parameter, opt: torch.optim.Optimizer, steps: list[torch.Tensor]) -> None:
        for g in steps:
            p.grad = g.clone()
            opt.step()

    straight = torch.nn.Parameter(start.clone())
    run(straight, AdamATan2([straight], lr=1e-2, weight_decay=0.5), grads)

    first = torch.nn.Parameter(start.clone())
    opt = AdamATan2([first], lr=1e-2, weight_decay=0.5)
    run(first, opt, grads[:3])
    sd = opt.state_dict()
    state = sd["state"][0]
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"}
    assert isinstance(state["step"], torch.Tensor) and state["step"].dtype == torch.float32 and state["step"].dim() == 0
    assert state["step"].item() == 3.0
    assert state["exp_avg"].shape == (4, 3) and state["exp_avg_sq"].dtype == torch.float32
    assert sd["param_groups"][0]["betas"] == (0.9, 0.95) and sd["param_groups"][0]["weight_decay"] == 0.5

    resumed = torch.nn.Parameter(first.detach().clone())
    opt2 = AdamATan2([resumed], lr=1.0, weight_decay=0.0)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 1e-2 and opt2.param_groups[0]["weight_decay"] == 0.5
    run(resumed, opt2, grads[3:])
    assert opt2.state[resumed]["step"].item() == 6.0
    assert torch.equal(resumed.detach(), straight.detach())


def test_make_adam_atan2_falls_back_on_cpu_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    model = torch.nn.Linear(3, 2)
    with caplog.at_level(logging.INFO, logger="training.optim"):
        opt = make_adam_atan2(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=1.0)
    assert type(opt) is AdamATan2
    assert len(opt.param_groups[0]["params"]) == 2
    assert opt.param_groups[0]["lr"] == 1e-4 and opt.param_groups[0]["weight_decay"] == 1.0
    backend_lines = [r for r in caplog.records if r.levelno == logging.INFO and "backend" in r.getMessage()]
    assert len(backend_lines) == 1 and "pure PyTorch" in backend_lines[0].getMessage()

    groups = [{"params": [model.weight], "weight_decay": 0.1}, {"params": [model.bias]}]
    opt = make_adam_atan2(groups, lr=1e-3, betas=(0.9, 0.95), weight_decay=1.0)
    assert type(opt) is AdamATan2
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 1.0]


def test_cosine_schedule_points() -> None:
    base, warmup, total, ratio = 1e-3, 10, 110, 0.1

    def lr(s: int, min_ratio: float = ratio) -> float:
        return cosine_schedule_with_warmup_lr(s, base, warmup, total, min_ratio)

    assert lr(1) == pytest.approx(1e-4, rel=1e-12)
    assert lr(warmup - 1) == pytest.approx(9e-4, rel=1e-12)
    assert lr(warmup) == pytest.approx(1e-3, rel=1e-12)
    assert lr(60) == pytest.approx(base * (0.1 + 0.9 * 0.5), rel=1e-12)
    assert lr(35) == pytest.approx(base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4))), rel=1e-12)
    assert lr(total) == pytest.approx(base * ratio, rel=1e-12)
    assert [lr(s, 1.0) for s in (warmup, 35, 60, total, 2 * total)] == [base] * 5
    assert lr(5, 1.0) == pytest.approx(5e-4, rel=1e-12)
    # total == warmup: no division by zero, the rate is base at the end of warm-up.
    assert cosine_schedule_with_warmup_lr(10, base, 10, 10, 0.0) == pytest.approx(base, rel=1e-12)
    assert cosine_schedule_with_warmup_lr(1, base, 0, 100, 0.0) == pytest.approx(
        base * 0.5 * (1 + math.cos(math.pi / 100))
    )


def embedding_after_backward(
    ids: list[int], coeffs: torch.Tensor, cast_to: torch.dtype = torch.float32
) -> tuple[PuzzleEmbedding, torch.Tensor]:
    """A trained-mode embedding after forward and backward of `sum(rows * coeffs)`: row i's gradient is coeffs[i]."""
    torch.manual_seed(0)
    emb = PuzzleEmbedding(num_embeddings=8, dim=4, init_std=1.0, cast_to=cast_to).train()
    before = emb.weights.clone()
    out = emb(torch.tensor(ids, dtype=torch.int32))
    (out.float() * coeffs).sum().backward()
    return emb, before


@pytest.mark.parametrize("cast_to", [torch.float32, torch.bfloat16])
def test_sign_sgd_updates_used_rows_with_summed_sign(cast_to: torch.dtype) -> None:
    ids = [1, 3, 3, 5]
    coeffs = torch.tensor(
        [
            [0.5, -2.0, 0.0, 1.0],
            [1.0, 1.0, -1.0, 0.0],  # row 3, first copy
            [-3.0, 0.5, -1.0, 0.0],  # row 3, second copy: summed gradient [-2, 1.5, -2, 0]
            [-0.25, 4.0, 2.0, -1.0],
        ]
    )
    emb, before = embedding_after_backward(ids, coeffs, cast_to)
    lr, wd = 0.01, 0.1
    opt = SignSGDSparse(emb, lr=lr, weight_decay=wd)
    opt.step()
    sign = {1: [1.0, -1.0, 0.0, 1.0], 3: [-1.0, 1.0, -1.0, 0.0], 5: [-1.0, 1.0, 1.0, -1.0]}
    decay = 1.0 - lr * wd
    for row in range(8):
        if row in sign:
            expected = before[row] * decay - lr * torch.tensor(sign[row])
            torch.testing.assert_close(emb.weights[row], expected, rtol=0, atol=1e-7)
        else:
            assert torch.equal(emb.weights[row], before[row])

    # Cleared gradient: a second step changes nothing.
    after_first = emb.weights.clone()
    opt.zero_grad()
    assert emb.local_weights.grad is None
    opt.step()
    assert torch.equal(emb.weights, after_first)


def test_sign_sgd_without_backward_and_lr_setting() -> None:
    torch.manual_seed(0)
    emb = PuzzleEmbedding(num_embeddings=4, dim=2, init_std=1.0, cast_to=torch.float32).train()
    before = emb.weights.clone()
    opt = SignSGDSparse(emb, lr=0.1, weight_decay=0.0)
    opt.step()  # no forward yet
    with torch.no_grad():
        emb(torch.tensor([0, 1]))  # no gathered leaf without grad
    opt.step()
    assert emb.local_weights is None and torch.equal(emb.weights, before)

    opt.lr = 0.5
    assert opt.param_groups[0]["lr"] == 0.5
    opt.param_groups[0]["lr"] = 0.25
    assert opt.lr == 0.25
    emb(torch.tensor([2])).sum().backward()
    opt.step()
    torch.testing.assert_close(emb.weights[2], before[2] - 0.25, rtol=0, atol=1e-7)

    fresh = SignSGDSparse(emb, lr=1.0, weight_decay=1.0)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.state_dict() == {"lr": 0.25, "weight_decay": 0.0}


def _distributed_rank(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        rank_ids = [[0, 2], [2, 3]][rank]
        rank_coeffs = [torch.tensor([[1.0, -1.0], [1.0, 2.0]]), torch.tensor([[-3.0, 1.0], [0.0, -1.0]])][rank]
        torch.manual_seed(0)  # same initial table on both ranks
        emb = PuzzleEmbedding(num_embeddings=5, dim=2, init_std=1.0, cast_to=torch.float32).train()
        before = emb.weights.clone()
        (emb(torch.tensor(rank_ids)) * rank_coeffs).sum().backward()
        SignSGDSparse(emb, lr=0.1, weight_decay=0.5).step()
        torch.save({"before": before, "after": emb.weights.clone()}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_sign_sgd_sums_gradients_across_ranks(tmp_path: Path) -> None:
    mp.spawn(_distributed_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    before = results[0]["before"]
    assert torch.equal(results[0]["after"], results[1]["after"])
    # Row 2 is used on both ranks: gradient [1 - 3, 2 + 1] = [-2, 3].
    sign = {0: [1.0, -1.0], 2: [-1.0, 1.0], 3: [0.0, -1.0]}
    for row in range(5):
        after = results[0]["after"][row]
        if row in sign:
            torch.testing.assert_close(after, before[row] * 0.95 - 0.1 * torch.tensor(sign[row]), rtol=0, atol=1e-7)
        else:
            assert torch.equal(after, before[row])
