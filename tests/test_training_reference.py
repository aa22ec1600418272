"""Training from the reference's own files: resuming its trainer's checkpoint, loading an HRM release."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from config.schema import load_pretrain_config
from tests.conftest import FIXTURES
from training import Trainer
from utils.distributed import DistInfo
from utils.safe_load import CheckpointError, safe_torch_load

REF_TRAINER = FIXTURES / "ref_trainer_sudoku.pth"
HRM_RELEASE = FIXTURES / "hrm_release_layout"
CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


# ---------------------------------------------------------------- the reference's checkpoint layouts

GOLDEN_DATA = FIXTURES / "train_golden" / "eqr_sudoku_data"


def reference_config(arch: dict, run_dir: Path, **values):
    """16 puzzles: 8 epochs are at least 8 steps, so max_steps (<= 8 here) sets the count."""
    base = {"arch": arch, "dataset": {"name": "sudoku16", "data_path": str(GOLDEN_DATA)}, "global_batch_size": 8,
            "epochs": 8, "lr": 1e-4, "lr_warmup_steps": 2, "wandb_mode": "disabled", "device": "cpu",
            "checkpoint_path": str(run_dir), "eval_interval_steps": None, "log_interval_steps": 1}
    return load_pretrain_config({**base, **values})


def test_resume_from_a_reference_trainer_checkpoint(tmp_path, caplog):
    """Weights, EMA, optimizer moments, step, carry and RNG come back; the run goes on from step 6."""
    raw = safe_torch_load(REF_TRAINER)
    shutil.copy(REF_TRAINER, tmp_path / "step_6_2ff37af1.pth")
    config = reference_config(raw["config"]["arch"], tmp_path / "run", max_steps=8, checkpoint_interval_steps=8,
                              ema_rate=0.5, resume=str(tmp_path / "step_6_2ff37af1.pth"))
    trainer = Trainer(config, CPU)
    assert trainer.step == 6
    assert torch.equal(torch.get_rng_state(), raw["rng"]["torch"])
    for key, value in raw["model"].items():
        assert torch.equal(trainer.head.state_dict()[key], value), key
    for key, value in raw["ema"]["shadow"].items():
        assert torch.equal(trainer.ema.shadow[key], value), key
    moments = trainer.optimizers[0].state_dict()["state"]
    for index, state in raw["optimizers"][0]["state"].items():
        assert torch.equal(moments[index]["exp_avg_sq"], state["exp_avg_sq"]) and moments[index]["step"] == 6
    assert torch.equal(trainer.carry.latents["z_L"], raw["carry"].inner_carry.z_L)
    assert trainer.carry.steps.tolist() == [6] * 8
    assert "reference loader's state" in caplog.text
    last = trainer.run()
    assert trainer.step == 8 and (tmp_path / "run" / "step_8.pth").is_file() and last["train/lm_loss"] > 0


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    raw = safe_torch_load(REF_TRAINER)
    wide = reference_config(raw["config"]["arch"], tmp_path / "a", max_steps=8, global_batch_size=16,
                            resume=str(REF_TRAINER))
    with pytest.raises(CheckpointError, match=r"carry z_H has shape \(8, 81, 32\), this run needs \(16, 81, 32\)"):
        Trainer(wide, CPU)
    bare = reference_config(raw["config"]["arch"], tmp_path / "b", max_steps=8,
                            resume=str(HRM_RELEASE / "checkpoint"))
    with pytest.raises(CheckpointError, match="not a training checkpoint with optimizer state"):
        Trainer(bare, CPU)


def test_load_checkpoint_accepts_the_hrm_release_layout(tmp_path):
    arch = yaml.safe_load((HRM_RELEASE / "all_config.yaml").read_text())["arch"]
    config = reference_config(arch, tmp_path, max_steps=1, checkpoint_interval_steps=None,
                              load_checkpoint=str(HRM_RELEASE / "checkpoint"))
    trainer = Trainer(config, CPU)
    state = safe_torch_load(HRM_RELEASE / "checkpoint")
    for key, value in state.items():
        assert torch.equal(trainer.head.state_dict()[key.removeprefix("_orig_mod.")], value), key
    assert torch.isfinite(trainer.train_step()["loss"])
