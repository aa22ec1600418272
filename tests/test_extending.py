"""docs/extending.md, exercised: a new puzzle type and a new architecture, each one registry entry.

The toy task ("reverse": write the input backwards) and the toy architecture (a TRM whose update
is gated by a learned scalar) are registered here and nowhere else; the task builds, a model of
the toy architecture trains two steps on it, evaluates, and the dataset shows and visualizes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis import Draw, visualize
from dataset.build_task import build_task_dataset
from dataset.show import describe
from dataset.symmetries import TransformSet
from dataset.task_evaluator import TaskResult
from dataset.tasks import TASKS, Symmetry, Task, get_task, register_task
from evaluation import load_options, run_sweep
from models.blocks import ReasoningStack
from models.config import ArchConfig, TRMConfig
from models.registry import ARCHITECTURES, register_architecture
from models.trm import TRMInner, TRMModel
from training import Trainer, compose_pretrain_config
from utils.distributed import DistInfo
from utils.validation import ConfigError

# ---- the worked example of docs/extending.md: a puzzle type ---------------------------------

LETTERS = " abcd"  # token 0 is padding, 1..4 the symbols


def reverse_examples(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    inputs = rng.integers(1, 5, size=(count, 6), dtype=np.uint8)
    return inputs, inputs[:, ::-1].copy()


REVERSE = Task(
    name="reverse", vocab_size=5, generate=reverse_examples,
    text_lines=lambda tokens: ["".join(LETTERS[t] for t in tokens)],
    follows_rules=lambda inputs, preds: (np.sort(preds, axis=1) == np.sort(inputs, axis=1)).all(axis=1),
)


def letter_renamings(count: int, seq_len: int, vocab_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Identity plus `count - 1` renamings of the letters (pad kept, positions kept): a reversal stays one."""
    rng = np.random.default_rng(seed)
    tokens = np.tile(np.arange(vocab_size), (count, 1))
    for k in range(1, count):
        tokens[k, 1:] = 1 + rng.permutation(vocab_size - 1)
    return np.tile(np.arange(seq_len), (count, 1)), tokens


class FirstLetterKept:
    """Share of predictions that end with the input's first letter (a reversal's own check)."""

    fields = ("inputs", "preds")

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.kept: list[np.ndarray] = []

    def begin(self) -> None:
        self.kept = []

    def update(self, rows) -> None:
        self.kept.append(rows["preds"][:, -1] == rows["inputs"][:, 0])

    def result(self) -> TaskResult:
        kept = np.concatenate(self.kept)
        return TaskResult({"first_letter_kept": float(kept.mean())}, {"kept.json": kept.tolist()})


REVERSE_WITH_SYMMETRY = dataclasses.replace(REVERSE, symmetry=Symmetry("letters", letter_renamings),
                                            evaluator=FirstLetterKept)


# ---- the worked example of docs/extending.md: an architecture -------------------------------

class GatedTRMInner(TRMInner):
    """`h + tanh(gate) * (Blocks(h + u) - h)`, one learned scalar gate."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__(cfg)
        self.gate = torch.nn.Parameter(torch.tensor(2.0))

    def update(self, h: torch.Tensor, u: torch.Tensor, cos_sin) -> torch.Tensor:
        return h + torch.tanh(self.gate) * (self.L_level(h, u, cos_sin) - h)


class GatedTRMModel(TRMModel):
    config_cls = TRMConfig

    def build_inner(self, cfg: ArchConfig) -> GatedTRMInner:
        return GatedTRMInner(cfg)


@pytest.fixture
def registered():
    register_task(REVERSE)
    register_architecture("toy@GatedTRMModel", GatedTRMModel)
    yield
    TASKS.pop("reverse")
    ARCHITECTURES.pop("toy@GatedTRMModel")


def gated_trainer(data: Path, run_dir: Path, steps: int) -> Trainer:
    """A tiny gated-TRM run on a reverse dataset, checkpointed at its last step."""
    config = compose_pretrain_config("cfg_pretrain", [
        "arch=trm", "arch.name=toy@GatedTRMModel", "arch.hidden_size=16", "arch.num_heads=2", "arch.H_cycles=1",
        "arch.L_cycles=1", "arch.L_layers=1", "arch.forward_dtype=float32", "arch.halt_max_steps=2",
        f"dataset.data_path={data}", "dataset.name=reverse", "global_batch_size=16", f"max_steps={steps}",
        "lr_warmup_steps=0", f"checkpoint_interval_steps={steps}", "eval_interval_steps=null", "wandb_mode=disabled",
        f"checkpoint_path={run_dir}"])
    return Trainer(config, DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu")))


def test_a_new_task_and_architecture_run_end_to_end(registered, tmp_path):
    data = build_task_dataset("reverse", tmp_path / "reverse", train_samples=64, test_samples=10)
    shown = describe(data, "test", 0).splitlines()
    given = shown[shown.index("input:") + 1]
    assert set(given) <= set(LETTERS) and shown[shown.index("label:") + 1] == given[::-1]

    trainer = gated_trainer(data, tmp_path / "run", steps=2)
    gate = trainer.head.model.inner.gate.detach().clone()
    trainer.run()
    assert not torch.equal(trainer.head.model.inner.gate, gate)  # the new parameter trains
    assert any(isinstance(m, ReasoningStack) for m in trainer.head.modules())
    checkpoint = tmp_path / "run" / "step_2.pth"

    result = run_sweep(load_options([f"checkpoint={checkpoint}", "depths=[1,2]", "different_init=2",
                                     "global_batch_size=4", "plots=false", "progress=false",
                                     f"output_dir={tmp_path / 'eval'}"]))
    assert [r["config"]["halt_max_steps"] for r in result.records] == [1, 2]
    assert all(r["metrics"]["num_puzzles"] == 10 and r["config"]["arch"] == "toy@GatedTRMModel"
               for r in result.records)
    with pytest.raises(ConfigError, match="the reverse task declares no symmetries"):
        run_sweep(load_options([f"checkpoint={checkpoint}", "tta=2", f"output_dir={tmp_path / 'tta'}"]))

    traj, files = visualize(checkpoint, data, draw=Draw(segments=2), out=tmp_path / "vis")
    assert traj.preds.shape == (2, 6) and sorted(p.name for p in (tmp_path / "vis").glob("frame_*.png")) == [
        "frame_001.png", "frame_002.png"]
    assert files["gif"].stat().st_size > 0


def test_a_task_evaluator_adds_its_metrics_to_every_record(tmp_path):
    """The evaluation feeds the task's evaluator every finished row at each depth, merges its metrics into
    that depth's record and writes its files beside it; the outputs are written only when asked for."""
    register_task(REVERSE_WITH_SYMMETRY)
    register_architecture("toy@GatedTRMModel", GatedTRMModel)
    try:
        data = build_task_dataset("reverse", tmp_path / "reverse", train_samples=32, test_samples=6)
        gated_trainer(data, tmp_path / "run", steps=1).run()
        common = [f"checkpoint={tmp_path / 'run' / 'step_1.pth'}", "depths=[1,2]", "plots=false", "progress=false"]
        saved = run_sweep(load_options([*common, "save_outputs=[preds,inputs]", f"output_dir={tmp_path / 'a'}"]))
        plain = run_sweep(load_options([*common, f"output_dir={tmp_path / 'b'}"]))
        for with_outputs, without in zip(saved.records, plain.records, strict=True):
            depth = with_outputs["config"]["halt_max_steps"]
            outputs = torch.load(next((tmp_path / "a").glob(f"eval_*_D{depth}_B1_outputs.pt")), weights_only=True)
            assert set(outputs) == {"preds", "inputs", "puzzle", "restart"}
            kept = (outputs["preds"][:, -1] == outputs["inputs"][:, 0]).numpy()
            assert with_outputs["metrics"]["first_letter_kept"] == pytest.approx(float(kept.mean()))
            assert without["metrics"]["first_letter_kept"] == with_outputs["metrics"]["first_letter_kept"]
            written = json.loads(next((tmp_path / "b").glob(f"eval_*_D{depth}_B1_kept.json")).read_text())
            assert sorted(written) == sorted(kept.tolist()) and len(written) == 6
        assert not list((tmp_path / "b").glob("*_outputs.pt"))
    finally:
        TASKS.pop("reverse")
        ARCHITECTURES.pop("toy@GatedTRMModel")


def test_unregistered_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="task 'reverse' is not registered"):
        build_task_dataset("reverse", tmp_path / "x", 4, 4)
    with pytest.raises(ConfigError, match="arch.name: unknown name 'toy@GatedTRMModel'"):
        compose_pretrain_config("cfg_pretrain", ["arch.name=toy@GatedTRMModel"])


def test_a_task_symmetry_and_evaluator_come_from_its_entry():
    """The second form of the worked example: TTA draws the task's own symmetry, its evaluator is found by name."""
    register_task(REVERSE_WITH_SYMMETRY)
    try:
        task = get_task("reverse")
        transforms = TransformSet.from_maps(task.symmetry.maps(4, 6, 5, 0))
        inputs, labels = (torch.from_numpy(a.astype(np.int64)) for a in reverse_examples(4, np.random.default_rng(1)))
        index = torch.arange(4)
        moved, moved_labels = transforms.apply(inputs, index), transforms.apply(labels, index)
        assert torch.equal(moved_labels, moved.flip(1))  # still a valid pair
        assert task.follows_rules(moved.numpy(), moved_labels.numpy()).all()
        assert torch.equal(transforms.inverse().apply(moved, index), inputs)
        evaluator = task.evaluator(Path("unused"))
        evaluator.begin()
        evaluator.update({"inputs": inputs.numpy(), "preds": labels.numpy()})
        assert evaluator.result().metrics == {"first_letter_kept": 1.0}
    finally:
        TASKS.pop("reverse")
