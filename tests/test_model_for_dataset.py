"""One model for a dataset: the trainer and evaluate.py build the same network from the same checkpoint and
dataset (models/loading.py), and one compile policy, DISABLE_COMPILE included, holds for both (models/runtime.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig, read_metadata
from evaluation import load_options
from evaluation.sweep import prepare
from models.act import ACTModel
from models.loading import DATA_FIELDS, data_fields, model_for_dataset
from models.runtime import compile_enabled, prepare_runtime
from tests.test_training import CPU, make_config
from training.trainer import Trainer
from utils.checkpoint import read_checkpoint

DEPTH = 3  # the training run's halt_max_steps and the evaluation's depth
OPTS = ("arch.noise_scale=0.05", f"arch.halt_max_steps={DEPTH}", "arch.mlp_t=true", "arch.pos_encodings=none")


@pytest.fixture(scope="module")
def checkpoint(maze_dir, tmp_path_factory) -> Path:
    """A 2-step EqR run's checkpoint: weights and EMA shadow differ from a fresh init and from each other."""
    run = tmp_path_factory.mktemp("run")
    Trainer(make_config("train/eqr_maze_unique", maze_dir, run, *OPTS, "max_steps=2",
                        "checkpoint_interval_steps=2"), CPU).run()
    return run / "step_2.pth"


def trained_from(checkpoint: Path, maze_dir: Path, run: Path, *overrides: str) -> Trainer:
    return Trainer(make_config("train/eqr_maze_unique", maze_dir, run, *OPTS, "max_steps=4",
                               f"load_checkpoint={checkpoint}", "load_weights_only=true", *overrides), CPU)


def evaluated_from(checkpoint: Path, *overrides: str) -> ACTModel:
    """The model `evaluate.py checkpoint=... use_ema=false` runs (the trainer starts from the weights, not the EMA)."""
    cfg = load_options([f"checkpoint={checkpoint}", "use_ema=false", f"depths=[{DEPTH}]", "device=cpu", *overrides])
    return next(prepare(cfg, str(checkpoint), CPU)).model


def outputs(model: ACTModel, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Two segments from the all-halted carry, noise and initial state drawn from one seed."""
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        carry = model.initial_carry(batch)
        for _ in range(2):
            carry, out = model(carry, batch)
    return {**out, "z_H": carry.latents["z_H"]}


def test_trainer_and_evaluate_build_bit_identical_models(checkpoint, maze_dir, tmp_path):
    trained = trained_from(checkpoint, maze_dir, tmp_path).head.model
    evaluated = evaluated_from(checkpoint)
    assert type(trained) is type(evaluated)
    ignored = {"batch_size"}  # the trainer's batch per rank; an evaluation batch is its own
    assert trained.config.model_dump(exclude=ignored) == evaluated.config.model_dump(exclude=ignored)
    mine, theirs = trained.state_dict(), evaluated.state_dict()
    assert set(mine) == set(theirs)
    for key, value in mine.items():
        assert torch.equal(value, theirs[key]), key
    saved = read_checkpoint(checkpoint).model_state
    assert torch.equal(mine["inner.embed_tokens.embedding_weight"], saved["inner.embed_tokens.embedding_weight"])
    data = PuzzleDataset(PuzzleDatasetConfig(data_paths=[maze_dir], global_batch_size=8, test_set_mode=True), "test")
    batch, _ = next(iter(data.test_batches()))
    mine_out, theirs_out = outputs(trained, batch), outputs(evaluated, batch)
    for key, value in mine_out.items():
        assert torch.equal(value, theirs_out[key]), key


def test_one_function_from_checkpoint_or_config(checkpoint, maze_dir):
    contents = read_checkpoint(checkpoint)
    fields = data_fields(read_metadata([maze_dir], "test"))
    assert set(fields) == set(DATA_FIELDS) - {"batch_size"}
    from_checkpoint = model_for_dataset(contents, fields, {"halt_max_steps": DEPTH})
    assert from_checkpoint.used_ema and from_checkpoint.step == 2
    from_config = model_for_dataset(from_checkpoint.act_model.config, weights=contents, use_ema=False)
    assert not from_config.used_ema and from_config.contents is contents
    key = "inner.embed_tokens.embedding_weight"
    assert torch.equal(from_config.act_model.state_dict()[key], contents.model_state[key])
    assert torch.equal(from_checkpoint.act_model.state_dict()[key], contents.ema_state[key])
    assert not torch.equal(contents.ema_state[key], contents.model_state[key])
    fresh = model_for_dataset(contents.arch, fields)
    assert fresh.contents is None and fresh.step is None and not fresh.used_ema


@pytest.mark.parametrize(("requested", "device", "disabled", "expected"), [
    (None, "cpu", None, False), (None, "cuda", None, True), (True, "cpu", None, True), (False, "cuda", None, False),
    (None, "cuda", "1", False), (True, "cpu", "1", False), (True, "cuda", "0", True), (True, "cpu", "", True),
])
def test_one_compile_policy(monkeypatch, requested, device, disabled, expected):
    if disabled is None:
        monkeypatch.delenv("DISABLE_COMPILE", raising=False)
    else:
        monkeypatch.setenv("DISABLE_COMPILE", disabled)
    assert compile_enabled(requested, torch.device(device)) is expected


def test_disable_compile_is_honoured_by_training_and_evaluation(checkpoint, maze_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DISABLE_COMPILE", "1")
    trainer = trained_from(checkpoint, maze_dir, tmp_path, "compile=true")
    assert trainer.forward is trainer.head
    cfg = load_options([f"checkpoint={checkpoint}", "compile=true", f"depths=[{DEPTH}]", "device=cpu"])
    assert next(prepare(cfg, str(checkpoint), CPU)).segment is None


def test_runtime_selects_the_kernels_on_the_device(checkpoint):
    model = model_for_dataset(read_checkpoint(checkpoint)).act_model
    runtime = prepare_runtime(model, torch.device("cpu"), "fast", compile=None, announce=False)
    assert runtime.model is model and not runtime.compile
    assert {b.token_multiple for b in model.inner.L_level.layers} == {16}
