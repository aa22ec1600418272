"""A trajectory's random draws are its own: the same alone, in any batch, in any slot, on either of 2 ranks.

An EqR network that records, per trajectory (puzzle inputs, copy), the state its first segment starts
from and every noise draw of every segment is evaluated under several batchings; the records must be
bit-identical (a trajectory stopped early by an elastic rule has a prefix of them).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset
from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig
from evaluation.engine import run_evaluation
from evaluation.plan import Breadth, EvalPlan, Runtime
from evaluation.randomness import hash32, normal, trajectory_keys, trunc_normal
from evaluation.stopping import StopRule
from models.config import ArchConfig
from models.eqr import EqRInner, EqRModel
from tests.conftest import free_port, gloo_rank, tiny_arch

ARCH = tiny_arch(seq_len=36, vocab_size=6, noise_scale=0.1, L_init_std=0.5)
Draws = dict[tuple[tuple[int, ...], int], list[dict[str, torch.Tensor]]]


class RecordingInner(EqRInner):
    """EqR's network; `log[(inputs, copy)]` holds, per segment run, the noise of each update (and at
    the first segment the state the trajectory started from)."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__(cfg)
        self.log: Draws = {}

    def forward(self, latents, batch):
        draws: list[torch.Tensor] = []
        source = self.noise_source

        def recording(like: torch.Tensor) -> torch.Tensor:
            noise = source(like)
            draws.append(noise.clone())
            return noise

        with self.drawing_noise_from(recording):
            out = super().forward(latents, batch)
        for row, (inputs, copy) in enumerate(zip(batch["inputs"].tolist(), batch["copy"].tolist(), strict=True)):
            segments = self.log.setdefault((tuple(inputs), copy), [])
            entry = {"noise": torch.stack([d[row] for d in draws])}
            if not segments:
                entry["z_H"], entry["z_L"] = latents["z_H"][row].clone(), latents["z_L"][row].clone()
            segments.append(entry)
        return out


class RecordingEqR(EqRModel):
    def build_inner(self, cfg: ArchConfig) -> RecordingInner:
        return RecordingInner(cfg)


def _draws(data: Path, weights: Path, batch: int, rank: int = 0, world: int = 1, max_rows: int | None = None,
           elastic: StopRule | None = None) -> Draws:
    model = RecordingEqR(ARCH)
    model.load_state_dict(torch.load(weights, weights_only=True))
    dataset = PuzzleDataset(PuzzleDatasetConfig(data_paths=[data], global_batch_size=batch, rank=rank,
                                                world_size=world, test_set_mode=True), split="test")
    run_evaluation(model.eval(), dataset.test_batches(), EvalPlan([4], breadth=Breadth(restarts=3), stopping=elastic,
                                                                  runtime=Runtime(seed=7, progress=False,
                                                                                  max_rows=max_rows)))
    return model.inner.log


def _worker(rank: int, port: int, data: Path, weights: Path, out: Path) -> None:
    with gloo_rank(rank, port):
        torch.save(_draws(data, weights, 4, rank, 2), out / f"draws{rank}.pt")


def _assert_same(reference: Draws, other: Draws, setting: str, prefix: bool = False) -> None:
    assert set(other) == set(reference), setting
    for key, segments in reference.items():
        theirs = other[key]
        assert len(theirs) == len(segments) or (prefix and 1 <= len(theirs) <= len(segments)), (setting, key)
        assert torch.equal(theirs[0]["z_H"], segments[0]["z_H"]), (setting, key, "z_H")
        assert torch.equal(theirs[0]["z_L"], segments[0]["z_L"]), (setting, key, "z_L")
        for step, (mine, ref) in enumerate(zip(theirs, segments, strict=False)):
            assert torch.equal(mine["noise"], ref["noise"]), (setting, key, step)


def test_draws_do_not_depend_on_batch_slot_or_rank(tmp_path):
    data = build_maze_dataset(MazeBuildConfig(output_dir=tmp_path / "maze", grid_size=6, train_samples=2,
                                              test_samples=7, min_path_length=2, max_path_length=6))
    torch.manual_seed(0)
    weights = tmp_path / "weights.pt"
    torch.save(RecordingEqR(ARCH).state_dict(), weights)

    full = _draws(data, weights, batch=7)  # every trajectory of the split in one batch
    assert len(full) == 7 * 3 and all(len(s) == 4 for s in full.values())
    assert all(s[0]["noise"].shape[0] == ARCH["H_cycles"] * (ARCH["L_cycles"] + 1) for s in full.values())
    starts = torch.stack([s[0]["z_L"] for s in full.values()])
    assert starts.std().item() == pytest.approx(ARCH["L_init_std"], rel=0.05)  # B > 1: EqR draws with L_init_std
    assert len({s[0]["z_H"].sum().item() for s in full.values()}) == 21  # restarts differ

    _assert_same(full, _draws(data, weights, batch=1), "a batch of one puzzle")
    _assert_same(full, _draws(data, weights, batch=7, max_rows=1), "alone: one slot")
    _assert_same(full, _draws(data, weights, batch=3, max_rows=5), "5 slots over batches of 3 puzzles")
    never = StopRule(rules=("residual",), tol=0.0, min_steps=1)
    _assert_same(full, _draws(data, weights, batch=7, max_rows=4, elastic=never), "slots shifted by elastic")
    early = StopRule(rules=("residual",), tol=float("inf"), min_steps=1, combine="any")
    stopped = _draws(data, weights, batch=7, max_rows=4, elastic=early)
    assert all(len(s) == 1 for s in stopped.values())  # every trajectory left after one segment
    _assert_same(full, stopped, "elastic exits refill slots", prefix=True)

    mp.spawn(_worker, args=(free_port(), data, weights, tmp_path), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"draws{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0] and ranks[1] and not set(ranks[0]) & set(ranks[1])
    _assert_same(full, {**ranks[0], **ranks[1]}, "2 gloo ranks")


def test_counter_draws_are_row_independent_and_distributed():
    """The generator itself: each row's draws do not depend on the other rows, and the marginals are right."""
    keys = trajectory_keys(3, torch.arange(40), torch.arange(40) % 4)
    stream = torch.arange(40) * 256 + 5
    gauss = normal(keys, stream, (81, 16))
    for rows in (slice(0, 1), slice(7, 8), slice(3, 20)):
        assert torch.equal(normal(keys[rows], stream[rows], (81, 16)), gauss[rows])
    assert abs(gauss.mean().item()) < 0.01 and abs(gauss.std().item() - 1) < 0.01
    clipped = trunc_normal(keys, stream, (81, 16), std=0.5)
    assert clipped.abs().max().item() <= 2 * 0.5 / 0.8796 + 1e-4 and abs(clipped.std().item() - 0.5) < 0.01
    assert not torch.equal(normal(keys, stream + 1, (81, 16)), gauss)  # another call, other numbers
    other_seed = trajectory_keys(4, torch.arange(40), torch.arange(40) % 4)
    assert not torch.equal(normal(other_seed, stream, (81, 16)), gauss)


def _lowbias32(x: int) -> int:
    """The hash in exact integer arithmetic."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_int32_hash_equals_exact_arithmetic():
    values = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xDEADBEEF, *torch.randint(0, 2**32, (200,)).tolist()]
    signed = torch.tensor([v - 2**32 if v >= 2**31 else v for v in values], dtype=torch.int32)
    ours = [v & 0xFFFFFFFF for v in hash32(signed).tolist()]
    assert ours == [_lowbias32(v) for v in values]
