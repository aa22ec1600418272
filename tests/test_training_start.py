"""Where a run starts (load_checkpoint, load_weights_only, resume) and how long it runs (epochs, max_steps)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from config.schema import load_pretrain_config
from tests.conftest import tiny_arch
from tests.test_training import CPU, make_config
from training.plan import steps_for
from training.start import start_point
from training.trainer import Trainer
from utils.safe_load import CheckpointError, safe_torch_load

OPTS = ("arch.halt_exploration_prob=0.5", "arch.noise_scale=0.05", "arch.halt_max_steps=2")


@pytest.fixture(scope="module")
def trained(maze_dir, tmp_path_factory) -> Path:
    """A 5-step EqR run (noise, RI and exploration on) with checkpoints at steps 3 and 5."""
    run = tmp_path_factory.mktemp("trained")
    Trainer(make_config("train/eqr_maze_unique", maze_dir, run, *OPTS, "max_steps=5",
                        "checkpoint_interval_steps=3"), CPU).run()
    return run


def started(maze_dir: Path, run: Path, *overrides: str) -> Trainer:
    return Trainer(make_config("train/eqr_maze_unique", maze_dir, run, *OPTS, "max_steps=5",
                               "checkpoint_interval_steps=null", *overrides), CPU)


def assert_weights(trainer: Trainer, model: dict[str, torch.Tensor]) -> None:
    state = trainer.head.state_dict()
    assert set(state) == set(model)
    for key, value in model.items():
        assert torch.equal(state[key], value), key


def test_load_checkpoint_continues_the_whole_trainer_state(maze_dir, trained, tmp_path):
    ckpt = safe_torch_load(trained / "step_3.pth")
    trainer = started(maze_dir, tmp_path, f"load_checkpoint={trained / 'step_3.pth'}")
    assert trainer.step == 3
    assert_weights(trainer, ckpt["model"])
    for key, value in ckpt["ema"]["shadow"].items():
        assert torch.equal(trainer.ema.shadow[key], value), key
    moments, saved = trainer.optimizers[0].state_dict()["state"], ckpt["optimizers"][0]["state"]
    assert moments and set(moments) == set(saved)
    for index, state in saved.items():
        assert torch.equal(moments[index]["exp_avg"], state["exp_avg"])
        assert torch.equal(moments[index]["exp_avg_sq"], state["exp_avg_sq"]) and moments[index]["step"] == 3
    assert torch.equal(trainer.carry.latents["z_H"], ckpt["carry"]["z_H"])
    trainer.run()  # and it goes on exactly as the run it came from
    end, again = safe_torch_load(trained / "step_5.pth"), trainer.head.state_dict()
    for key, value in end["model"].items():
        assert torch.equal(again[key], value), key


def test_load_weights_only_starts_at_step_0_with_fresh_optimizers(maze_dir, trained, tmp_path):
    ckpt = safe_torch_load(trained / "step_3.pth")
    trainer = started(maze_dir, tmp_path, f"load_checkpoint={trained / 'step_3.pth'}", "load_weights_only=true")
    assert trainer.step == 0 and trainer.carry is None
    assert trainer.optimizers[0].state_dict()["state"] == {}
    assert_weights(trainer, ckpt["model"])
    for key, value in trainer.ema.shadow.items():  # the EMA starts from the loaded weights
        assert torch.equal(value, ckpt["model"][key]), key


@pytest.mark.parametrize("layout", ["release", "bare"])
def test_a_weights_only_file_loads_its_weights(maze_dir, trained, tmp_path, layout):
    """The EqR release layout (model, ema, config, no optimizers) and the HRM/TRM one (a bare state dict with
    compile prefixes): weights at step 0 unless load_weights_only=false asks for a state the file lacks."""
    ckpt = safe_torch_load(trained / "step_3.pth")
    path = tmp_path / ("eqr.pth" if layout == "release" else "checkpoint")
    payload = {k: ckpt[k] for k in ("model", "ema", "config")} if layout == "release" else \
        {f"_orig_mod.{k}": v for k, v in ckpt["model"].items()}
    torch.save(payload, path)
    trainer = started(maze_dir, tmp_path / "run", f"load_checkpoint={path}")
    assert trainer.step == 0 and trainer.optimizers[0].state_dict()["state"] == {}
    assert_weights(trainer, ckpt["model"])
    with pytest.raises(CheckpointError, match=f"{path}: holds weights only"):
        started(maze_dir, tmp_path / "strict", f"load_checkpoint={path}", "load_weights_only=false")


def test_resume_comes_before_load_checkpoint(maze_dir, trained, tmp_path):
    fresh = make_config("train/eqr_maze_unique", maze_dir, tmp_path, f"load_checkpoint={trained / 'step_3.pth'}",
                        "resume=true")
    point = start_point(fresh)  # nothing to resume yet: load_checkpoint's whole state, a new W&B run
    assert point.source == str(trained / "step_3.pth") and point.trainer_state and not point.continues_run
    (tmp_path / "step_5.pth").write_bytes((trained / "step_5.pth").read_bytes())
    point = start_point(fresh)  # relaunched: its own latest checkpoint
    assert point.source == str(tmp_path / "step_5.pth") and point.continues_run and point.trainer_state["step"] == 5
    assert start_point(make_config("train/eqr_maze_unique", maze_dir, tmp_path)).source is None


def test_max_steps_caps_the_epoch_count():
    """steps = min(epochs x floor(groups x examples per puzzle / batch), max_steps): 96 groups / 16 = 6 per epoch."""
    def steps(**values) -> int:
        config = load_pretrain_config({"arch": tiny_arch(), "dataset": {"name": "d", "data_path": "d"},
                                       "global_batch_size": 16, "lr": 1e-4, **values})
        return steps_for(config, total_groups=96, mean_puzzle_examples=1.0)

    assert steps(epochs=2) == 12
    assert steps(epochs=2, max_steps=5) == 5
    assert steps(epochs=2, max_steps=100) == 12  # max_steps never adds steps
    assert steps(epochs=3, max_steps=12) == 12
