"""docs/extending.md, run: its modules (a task, a stop-rule condition, an architecture) are extracted from
the page into a folder outside the repository and used through `plugins=` and `module@Class` from the
command line, with the page's own commands; the same modules are then used in process.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dataset.build_task import build_task_dataset
from dataset.symmetries import TransformSet
from dataset.tasks import SYMMETRIES, TASKS, get_task
from evaluation import load_options, run_sweep
from evaluation.engine import run_evaluation
from evaluation.plan import Breadth, EvalPlan, Outputs, Runtime
from evaluation.randomness import initial_state, trajectory_keys
from evaluation.stopping import CONDITIONS
from models.act import Carry
from models.reasoner import latent_residual
from models.registry import ARCHITECTURES, build_model
from tests.conftest import ROOT, tiny_arch
from training import Trainer, compose_pretrain_config
from training.state import reshard
from utils.distributed import DistInfo
from utils.validation import ConfigError

PAGE = ROOT / "docs" / "extending.md"
MODULE_BLOCK = re.compile(r"<!-- file: (\S+) -->\n```python\n(.*?)```", re.S)
ANY_BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)
ENTRY_POINTS = ("pretrain.py", "evaluate.py", "scripts")  # what the page's commands run from the repository root


def page_modules() -> dict[str, str]:
    """Path (relative to the folder the commands run in) -> source, every module block of the page."""
    return {path: source for path, source in MODULE_BLOCK.findall(PAGE.read_text())}


def page_commands() -> list[str]:
    return [body for language, body in ANY_BLOCK.findall(PAGE.read_text()) if language == "bash"]


def test_every_block_of_the_page_is_run():
    """Each block is a module the tests write out or a command they run: none is left unexercised."""
    blocks = ANY_BLOCK.findall(PAGE.read_text())
    assert len(blocks) == len(page_modules()) + len(page_commands()) and len(page_modules()) == 3
    assert set(page_modules()) == {"my_research/reverse_task.py", "my_research/confident.py",
                                   "my_research/scratch_trm.py"}


def write_modules(folder: Path) -> Path:
    for path, source in page_modules().items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(source)
    return folder


def env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Path:
    """The page's commands, run in a folder outside the repository holding its modules (the entry points
    linked in, as if it were the repository root)."""
    folder = write_modules(tmp_path_factory.mktemp("research"))
    for name in ENTRY_POINTS:
        (folder / name).symlink_to(ROOT / name)
    for i, commands in enumerate(page_commands()):
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], cwd=folder, env=env(),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"block {i}:\n{commands}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        (folder / f"block{i}.out").write_text(proc.stdout)
    return folder


def test_the_task_builds_and_shows(ran):
    assert json.loads((ran / "data/reverse/test/dataset.json").read_text())["task"] == "reverse"
    shown = (ran / "block0.out").read_text().splitlines()
    given = shown[shown.index("input:") + 1]
    assert len(given) == 6 and set(given) <= set(" abcd") and shown[shown.index("label:") + 1] == given[::-1]


def test_the_architecture_trains_from_its_module_path(ran):
    checkpoint = torch.load(ran / "checkpoints/reverse/step_200.pth", map_location="cpu", weights_only=False)
    assert checkpoint["config"]["arch"]["name"] == "my_research.scratch_trm@ScratchTRMModel"
    assert checkpoint["config"]["plugins"] == ["my_research.reverse_task"]
    assert checkpoint["model"]["model.inner.gate"].item() != 0.0  # the new parameter trains
    assert "model.inner.S_init" in checkpoint["model"]
    latents = {k: v.shape for k, v in checkpoint["carry"].items() if k.startswith("z_")}
    assert latents == {name: (32, 6, 32) for name in ("z_H", "z_L", "z_S")}  # the carry holds all three


def test_the_evaluation_uses_the_task_its_symmetry_its_scorer_and_the_rule(ran):
    records = [json.loads(p.read_text()) for p in sorted((ran / "runs/reverse").glob("eval_*.json"))
               if not p.name.endswith("_kept.json")]
    assert sorted(r["config"]["halt_max_steps"] for r in records) == [1, 2, 4]
    for record in records:
        depth = record["config"]["halt_max_steps"]
        assert record["metrics"]["num_puzzles"] == 24 and record["config"]["tta"] == 2
        kept = json.loads(next((ran / "runs/reverse").glob(f"eval_*_D{depth}_B2_*_kept.json")).read_text())
        assert record["metrics"]["first_letter_kept"] == pytest.approx(np.mean(kept)) and len(kept) == 96
    rows = list(csv.DictReader(next((ran / "runs/reverse").glob("eval_*_D4_B2_*_trajectories.csv")).open()))
    stops = {row["stop"] for row in rows}
    assert len(rows) == 96 and any("confident" in stop for stop in stops), stops  # 24 puzzles x 2 x 2 renamings
    assert stops <= {"depth", "confident", "stable", "confident+stable"}
    summary = next((ran / "runs/reverse").glob("sweep_*/eval_summary.md")).read_text()
    assert "| first letter kept % |" in summary  # the task's own column
    frontier = json.loads((ran / "runs/reverse_frontier/frontier.json").read_text())
    assert [p["label"] for p in frontier["points"]][-2:] == ["confident:0.3", "stable:1"]
    assert sorted(p.name for p in (ran / "runs/reverse_frames").glob("frame_*.png")) == [
        "frame_001.png", "frame_002.png", "frame_003.png", "frame_004.png"]


@pytest.mark.parametrize("command", [
    ["pretrain.py", "plugins=[my_research.nothing]"],
    ["evaluate.py", "checkpoint=x.pth", "plugins=[my_research.nothing]"],
    ["scripts/frontier.py", "checkpoint=x.pth", "plugins=[my_research.nothing]"],
    ["scripts/visualize.py", "x.pth", "data", "plugins=[my_research.nothing]"],
    ["-m", "dataset.show", "data", "plugins=[my_research.nothing]"],
    ["-m", "dataset.build_task", "--task", "reverse", "--output-dir", "out", "plugins=[my_research.nothing]"],
])
def test_an_unknown_plugin_is_one_line_naming_it(command, tmp_path):
    if not command[0].startswith("-"):
        command = [str(ROOT / command[0]), *command[1:]]
    proc = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "plugins: no module named 'my_research.nothing' (is its folder on PYTHONPATH?)"), proc.stderr


# ---- the same modules in process ----------------------------------------------------------------

@pytest.fixture
def modules(tmp_path, monkeypatch):
    """The page's modules imported from a scratch folder; what they registered is removed afterwards."""
    monkeypatch.syspath_prepend(str(write_modules(tmp_path)))
    names = ("my_research.reverse_task", "my_research.confident", "my_research.scratch_trm")
    yield {name.split(".")[-1]: importlib.import_module(name) for name in names}
    for name in names:
        sys.modules.pop(name, None)
    sys.modules.pop("my_research", None)
    TASKS.pop("reverse", None)
    SYMMETRIES.pop("letters", None)
    CONDITIONS.pop("confident", None)
    ARCHITECTURES.pop("my_research.scratch_trm@ScratchTRMModel", None)


def scratch_trainer(data: Path, run_dir: Path, steps: int) -> Trainer:
    """A tiny three-latent TRM run on a reverse dataset, checkpointed at its last step."""
    config = compose_pretrain_config("cfg_pretrain", [
        "arch=trm", "arch.name=my_research.scratch_trm@ScratchTRMModel", "arch.hidden_size=16", "arch.num_heads=2",
        "arch.H_cycles=1", "arch.L_cycles=1", "arch.L_layers=1", "arch.forward_dtype=float32",
        "arch.halt_max_steps=2", f"dataset.data_path={data}", "dataset.name=reverse", "global_batch_size=16",
        f"max_steps={steps}", "lr_warmup_steps=0", f"checkpoint_interval_steps={steps}", "eval_interval_steps=null",
        "wandb_mode=disabled", f"checkpoint_path={run_dir}"])
    return Trainer(config, DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu")))


def test_a_task_evaluator_adds_its_metrics_to_every_record(modules, tmp_path):
    """The evaluation feeds the task's evaluator every finished row at each depth, merges its metrics into
    that depth's record and writes its files beside it; the outputs are written only when asked for."""
    data = build_task_dataset("reverse", tmp_path / "reverse", train_samples=32, test_samples=6)
    scratch_trainer(data, tmp_path / "run", steps=1).run()
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


def test_a_task_symmetry_and_evaluator_come_from_its_entry(modules):
    """TTA draws the task's own symmetry (registered with the task, so `tta_kind=letters` names it), its
    evaluator is found by name."""
    task = get_task("reverse")
    assert SYMMETRIES["letters"] is task.symmetry
    transforms = TransformSet.from_maps(task.symmetry.maps(4, 6, 5, 0))
    examples = modules["reverse_task"].reverse_examples(4, np.random.default_rng(1))
    inputs, labels = (torch.from_numpy(a.astype(np.int64)) for a in examples)
    index = torch.arange(4)
    moved, moved_labels = transforms.apply(inputs, index), transforms.apply(labels, index)
    assert torch.equal(moved_labels, moved.flip(1))  # still a valid pair
    assert task.follows_rules(moved.numpy(), moved_labels.numpy()).all()
    assert torch.equal(transforms.inverse().apply(moved, index), inputs)
    evaluator = task.evaluator(Path("unused"))
    evaluator.begin()
    evaluator.update({"inputs": inputs.numpy(), "preds": labels.numpy()})
    assert evaluator.result().metrics == {"first_letter_kept": 1.0}
    assert load_options(["checkpoint=x.pth", "tta_kind=letters", "elastic=confident:0.5"]).stopping.rule.rules == \
        ("confident",)


def test_unregistered_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="task 'reverse' is not registered"):
        build_task_dataset("reverse", tmp_path / "x", 4, 4)
    with pytest.raises(ConfigError, match="arch.name: unknown name 'toy@GatedTRMModel'"):
        compose_pretrain_config("cfg_pretrain", ["arch.name=toy@GatedTRMModel"])
    with pytest.raises(ConfigError, match="arch.name: models.trm has no ACTModel subclass named 'TRMInner'"):
        compose_pretrain_config("cfg_pretrain", ["arch.name=models.trm@TRMInner"])


def test_a_three_latent_reasoner_in_every_part_that_holds_a_carry(modules):
    """The page's three-latent TRM: ACT resets all three, restarts draw each from its own stream (z_H and z_L
    keep TRM's streams 254 and 255 shifted by one: 253, 254, 255), the residual covers all three, and a saved
    carry reshards by rows with every latent."""
    torch.manual_seed(0)
    arch = {**tiny_arch("my_research.scratch_trm@ScratchTRMModel"), "halt_max_steps": 3}
    model = build_model(arch).model.eval()
    assert model.inner.latent_names == ("z_H", "z_L", "z_S")
    batch = {"inputs": torch.randint(1, 7, (4, 16), dtype=torch.int32),
             "labels": torch.randint(1, 7, (4, 16), dtype=torch.int32),
             "puzzle_identifiers": torch.zeros(4, dtype=torch.int32)}
    carry, _ = model(model.initial_carry(batch), batch)
    assert set(carry.latents) == {"z_H", "z_L", "z_S"}
    fresh = model.inner.reset(torch.tensor([True, False, True, False]), carry.latents)
    assert torch.equal(fresh["z_S"][0], model.inner.S_init.expand(16, 32))  # halted rows restart from S_init
    assert torch.equal(fresh["z_S"][1], carry.latents["z_S"][1]) and torch.equal(fresh["z_H"][2][0], model.inner.H_init)

    keys = trajectory_keys(0, torch.arange(4), torch.zeros(4, dtype=torch.long))
    shape = {name: (16, 32) for name in ("z_H", "z_L", "z_S")}
    three = initial_state(keys, dict.fromkeys(("z_H", "z_L", "z_S"), 1.0), shape, torch.float32)
    two = initial_state(keys, dict.fromkeys(("z_H", "z_L"), 1.0), shape, torch.float32)
    assert torch.equal(three["z_L"], two["z_H"]) and torch.equal(three["z_S"], two["z_L"])
    assert not torch.equal(three["z_H"], three["z_L"])

    run = run_evaluation(model, [(batch, 4)], EvalPlan([2], breadth=Breadth(restarts=3),
                                                       outputs=Outputs(per_trajectory=True),
                                                       runtime=Runtime(progress=False)))
    finals = torch.tensor(run.per_trajectory[2]["final_residual"]).view(4, 3)
    assert len(set(finals[0].tolist())) == 3  # three restarts, three different draws of three latents
    latents = {name: value.clone() for name, value in carry.latents.items()}
    moved = model.inner(latents, carry.current_data).latents
    assert latent_residual(moved, latents).shape == (4,)
    assert latent_residual(moved, latents).square().allclose(
        sum((moved[n] - latents[n]).flatten(1).square().sum(1) for n in latents))

    saved = [{"carry": Carry({n: v[rows] for n, v in carry.latents.items()}, carry.steps[rows], carry.halted[rows],
                             {k: v[rows] for k, v in carry.current_data.items()}).to_dict()}
             for rows in (slice(0, 2), slice(2, 4))]
    (one,) = reshard(saved, 1, "two ranks", seed=0, step=1)
    assert all(torch.equal(one["carry"][name], carry.latents[name]) for name in ("z_H", "z_L", "z_S"))
