"""The training-trajectory golden works for every architecture, not only the recorded EqR one.

Trajectories for TRM (Q-learning continue target) and HRM (puzzle embedding with its sign-SGD)
are recorded here by a plain loop over the components, written in the reference's file format,
and must be reproduced by the trainer through `scripts/check_golden.py`'s path.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from analysis.golden import METRIC_TOL, check_file
from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig
from models.blocks import PuzzleEmbedding
from models.ema import EMA
from models.registry import build_model
from tests.conftest import FIXTURES
from training.optim import AdamATan2, SignSGDSparse, cosine_schedule_with_warmup_lr

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


def record(arch: dict, settings: dict) -> dict:
    """Train with the components directly, in the order the reference's train_batch uses them."""
    data = PuzzleDataset(PuzzleDatasetConfig(data_paths=[DATA], global_batch_size=settings["global_batch_size"],
                                             seed=settings["seed"]), split="train")
    meta = data.metadata
    fields = {"seq_len": meta.seq_len, "vocab_size": meta.vocab_size,
              "num_puzzle_identifiers": meta.num_puzzle_identifiers, "batch_size": settings["global_batch_size"]}
    torch.manual_seed(7)
    head = build_model(arch, fields)
    initial = {k: v.clone() for k, v in head.state_dict().items()}
    optimizers = [(AdamATan2(head.parameters(), lr=settings["lr"], betas=(settings["beta1"], settings["beta2"]),
                             weight_decay=settings["weight_decay"]), settings["lr"])]
    for emb in (m for m in head.modules() if isinstance(m, PuzzleEmbedding)):
        optimizers.append((SignSGDSparse(emb, lr=settings["puzzle_emb_lr"],
                                         weight_decay=settings["puzzle_emb_weight_decay"]),
                           settings["puzzle_emb_lr"]))
    ema = EMA(head, settings["ema_rate"])
    steps: dict[str, list] = {"loss": [], "lm_loss": [], "q_halt_loss": [], "lr": [], "halted": []}
    carry = None
    for step in range(1, settings["max_steps"] + 1):
        batch = data.next_train_batch()
        carry = head.initial_carry(batch) if carry is None else carry
        carry, loss, metrics, _, _ = head(carry=carry, batch=batch)
        (loss / settings["global_batch_size"]).backward()
        for optimizer, base in optimizers:
            lr = cosine_schedule_with_warmup_lr(step, base, settings["lr_warmup_steps"], settings["max_steps"],
                                                settings["lr_min_ratio"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        ema.update(head)
        steps["loss"].append(loss.item())
        steps["lm_loss"].append(metrics["lm_loss"].item())
        steps["q_halt_loss"].append(metrics["q_halt_loss"].item())
        steps["lr"].append(optimizers[0][0].param_groups[0]["lr"])
        steps["halted"].append(int(carry.halted.sum()))
    return {**settings, "arch": arch, "initial_state_dict": initial, "steps": steps,
            "final_state_dict": {k: v.clone() for k, v in head.state_dict().items()},
            "final_ema_shadow": {k: v.clone() for k, v in ema.shadow.items()}}


@pytest.mark.parametrize("kind", sorted(ARCHS))
def test_trainer_replays_a_trajectory_of_any_architecture(tmp_path, kind):
    settings = {**SETTINGS, "puzzle_emb_lr": 1e-2, "puzzle_emb_weight_decay": 0.1} if kind == "hrm" else SETTINGS
    recorded = record(ARCHS[kind], settings)
    assert recorded["steps"]["halted"] == [0, 0, 16, 0, 0, 16]  # every row restarts at steps 3 and 6
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
    recorded = record(ARCHS["trm"], SETTINGS)
    recorded["lr"] = 2e-3
    torch.save(recorded, tmp_path / "trm.pt")
    shutil.copytree(DATA, tmp_path / "trm_data")
    failures = check_file(Path(tmp_path / "trm.pt")).failures
    assert "steps[0].lr" in failures and "final_state_dict.model.inner.lm_head.weight" in failures
