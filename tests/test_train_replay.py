"""The training-trajectory golden works for every architecture, not only the recorded EqR one.

Trajectories for TRM (Q-learning continue target) and HRM (puzzle embedding with its sign-SGD)
are recorded here by the trainer's own `train_step`, written in the reference's file format,
and must be reproduced by a fresh trainer through `scripts/check_golden.py`'s path (the initial
weights and the settings read from the file).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from analysis.golden import METRIC_TOL, check_file
from analysis.train_replay import cpu_trainer, record_steps, replay_config
from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig
from models.registry import build_model
from tests.conftest import FIXTURES

DATA = FIXTURES / "train_golden" / "eqr_sudoku_data"
SETTINGS = {"global_batch_size": 16, "max_steps": 6, "lr": 1e-3, "lr_warmup_steps": 2, "lr_min_ratio": 0.5,
            "beta1": 0.9, "beta2": 0.95, "weight_decay": 1.0, "ema_rate": 0.9, "seed": 0}
BASE = {"H_cycles": 2, "L_cycles": 2, "L_layers": 1, "hidden_size": 32, "num_heads": 2, "expansion": 2,
        "forward_dtype": "float32", "halt_max_steps": 3, "halt_exploration_prob": 0.0,
        "loss": {"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"}}
ARCHS = {
    "trm": {**BASE, "name": "trm@TRMModel", "pos_encodings": "learned", "no_ACT_continue": False},
    "hrm": {**BASE, "name": "hrm@HRMModel", "H_layers": 1, "pos_encodings": "rope", "puzzle_emb_ndim": 32},
}


def record(arch: dict, settings: dict, run_dir: Path) -> dict:
    """Train with `Trainer.train_step` from freshly initialised weights; the trajectory file's contents."""
    meta = PuzzleDataset(PuzzleDatasetConfig(data_paths=[DATA], global_batch_size=settings["global_batch_size"]),
                         split="train").metadata
    fields = {"seq_len": meta.seq_len, "vocab_size": meta.vocab_size,
              "num_puzzle_identifiers": meta.num_puzzle_identifiers, "batch_size": settings["global_batch_size"]}
    torch.manual_seed(7)
    initial = build_model(arch, fields).state_dict()
    run_dir.mkdir()
    torch.save(initial, run_dir / "initial_state_dict")
    config = replay_config({**settings, "arch": arch}, DATA, run_dir / "run", run_dir / "initial_state_dict", ema=True)
    run = record_steps(cpu_trainer(config), settings["max_steps"])
    return {**settings, "arch": arch, "initial_state_dict": initial, "steps": run.steps,
            "final_state_dict": run.final_state_dict, "final_ema_shadow": run.final_ema_shadow}


# Linear warm-up over 2 steps to 1e-3, then a half cosine to 0.5e-3 at step 6 (cos(pi / 4) = sqrt(1 / 2)).
LRS = [1e-3 * f for f in (0.5, 1.0, 0.75 + 0.25 * math.sqrt(0.5), 0.75, 0.75 - 0.25 * math.sqrt(0.5), 0.5)]


@pytest.mark.parametrize("kind", sorted(ARCHS))
def test_trainer_replays_a_trajectory_of_any_architecture(tmp_path, kind):
    settings = {**SETTINGS, "puzzle_emb_lr": 1e-2, "puzzle_emb_weight_decay": 0.1} if kind == "hrm" else SETTINGS
    recorded = record(ARCHS[kind], settings, tmp_path / "run")
    assert recorded["steps"]["halted"] == [0, 0, 16, 0, 0, 16]  # every row restarts at steps 3 and 6
    assert recorded["steps"]["lr"] == pytest.approx(LRS, rel=1e-12)
    path = tmp_path / f"{kind}.pt"
    torch.save(recorded, path)
    shutil.copytree(DATA, tmp_path / f"{kind}_data")
    report = check_file(path)
    assert report.passed, report.failures
    names = {c.name for c in report.comparisons}
    assert {f"steps[5].{k}" for k in recorded["steps"]} <= names
    assert all(c.tol in (0.0, METRIC_TOL) for c in report.comparisons)
    if kind == "hrm":
        assert "final_state_dict.model.inner.puzzle_emb.weights" in names
        moved = recorded["final_state_dict"]["model.inner.puzzle_emb.weights"]
        assert moved.abs().sum() > 0, "the sign-SGD step never ran"
    if kind == "trm":
        # The summed loss holds the q_continue term: it is more than lm + 0.5 q_halt.
        s = recorded["steps"]
        assert all(t > lm + 0.5 * q + 1e-6 for t, lm, q in zip(s["loss"], s["lm_loss"], s["q_halt_loss"],
                                                                 strict=True))


def test_replay_uses_the_recorded_settings(tmp_path):
    """A trajectory recorded at another learning rate does not replay: the settings are read, not assumed."""
    recorded = record(ARCHS["trm"], SETTINGS, tmp_path / "run")
    recorded["lr"] = 2e-3
    torch.save(recorded, tmp_path / "trm.pt")
    shutil.copytree(DATA, tmp_path / "trm_data")
    failures = check_file(Path(tmp_path / "trm.pt")).failures
    assert "steps[0].lr" in failures and "final_state_dict.model.inner.lm_head.weight" in failures
