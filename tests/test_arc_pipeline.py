"""ARC end to end in one process: a 2-task build trains EqR, TRM and HRM with the puzzle embedding, evaluates
with the ARC evaluator in the loop, checkpoints, resumes, and evaluate.py sweeps depth x breadth to a
submission.json, with the memorisation check and the pictures."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dataset import tasks
from dataset.arc.evaluator import ArcEvaluator
from dataset.format import load_split
from evaluation import load_options, run_sweep
from evaluation.ablation import ablation_table
from training import Trainer, compose_pretrain_config
from utils.distributed import DistInfo
from utils.validation import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "arc" / "build" / "input"
TRAINING, EVALUATION = "007bbfb7", "05a7bcf2"  # one ARC-AGI-1 training task and one evaluation task
CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
ARCHS = {
    "eqr": ["arch=eqr", "+arch.puzzle_emb_len=16", "+arch.puzzle_emb_ndim=16"],
    "trm": ["arch=trm", "+arch.puzzle_emb_len=16", "+arch.puzzle_emb_ndim=16"],
    "hrm": ["arch=hrm", "arch.H_layers=1", "arch.puzzle_emb_ndim=16"],
}


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory) -> Path:
    """TRM's builder on one training and one evaluation task of the fixture, 3 augmentations each."""
    root = tmp_path_factory.mktemp("arc")
    for split, task in (("training", TRAINING), ("evaluation", EVALUATION)):
        for kind in ("challenges", "solutions"):
            data = json.loads((FIXTURE / f"arc-agi_{split}_{kind}.json").read_text())
            (root / f"arc-agi_{split}_{kind}.json").write_text(json.dumps({task: data[task]}))
    out = root / "arc2"
    subprocess.run([sys.executable, "-m", "dataset.build_arc_dataset", "--input-file-prefix", str(root / "arc-agi"),
                    "--output-dir", str(out), "--subsets", "training", "evaluation", "--test-set-name", "evaluation",
                    "--num-aug", "3"], cwd=ROOT, check=True, capture_output=True)
    return out


def arc_trainer(arch: str, data: Path, run_dir: Path, steps: int, *extra: str) -> Trainer:
    config = compose_pretrain_config("cfg_pretrain", [
        *ARCHS[arch], "arch.hidden_size=16", "arch.num_heads=2", "arch.H_cycles=1", "arch.L_cycles=1",
        "arch.L_layers=1", "arch.forward_dtype=float32", "arch.halt_max_steps=2",
        f"dataset.data_path={data}", "dataset.name=arc", "global_batch_size=8", f"max_steps={steps}",
        "lr_warmup_steps=0", "eval_interval_steps=2", "checkpoint_interval_steps=2", "wandb_mode=disabled",
        f"checkpoint_path={run_dir}", *extra])
    return Trainer(config, CPU)


@pytest.fixture(scope="module")
def eqr_checkpoint(two_tasks, tmp_path_factory) -> Path:
    """A 2-step EqR run on the 2-task build."""
    run = tmp_path_factory.mktemp("eqr_run")
    arc_trainer("eqr", two_tasks, run, 2).run()
    return run / "step_2.pth"


def submission_of(path: Path, data: Path) -> dict:
    """The submission, checked against the ARC Prize layout: every task of test_puzzles.json, one entry per
    test input, two attempts of 0..9 grids each."""
    submission = json.loads(path.read_text())
    puzzles = json.loads((data / "test_puzzles.json").read_text())
    assert list(submission) == list(puzzles)
    for task, entries in submission.items():
        assert len(entries) == len(puzzles[task]["test"])
        for entry in entries:
            assert set(entry) == {"attempt_1", "attempt_2"}
            assert all(0 <= v <= 9 for grid in entry.values() for row in grid for v in row)
    return submission


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_arc_trains_evaluates_checkpoints_and_resumes(arch, two_tasks, tmp_path):
    trainer = arc_trainer(arch, two_tasks, tmp_path / "run", 4)
    table = trainer.head.model.inner.puzzle_emb.weights
    assert table.shape == (json.loads((two_tasks / "train" / "dataset.json").read_text())["num_puzzle_identifiers"],
                           16) and not table.any()  # zero init
    last = trainer.run()
    assert table[1:].abs().sum(dim=1).gt(0).any() and not table[0].any()  # trained rows move, the blank never
    assert {"eval/ARC/pass@1", "eval/ARC/pass@2", "eval/ARC/official_pass@2"} <= set(last)
    for step in (2, 4):
        submission_of(tmp_path / "run" / f"evaluator_arc_step_{step}" / "submission.json", two_tasks)
        assert (tmp_path / "run" / f"step_{step}.pth").is_file()

    resumed = arc_trainer(arch, two_tasks, tmp_path / "run", 6, "resume=true")
    assert resumed.step == 4 and torch.equal(resumed.head.model.inner.puzzle_emb.weights, table)
    resumed.run()
    assert resumed.step == 6 and (tmp_path / "run" / "evaluator_arc_step_6" / "submission.json").is_file()


def test_aggregated_voting_keeps_the_votes_of_earlier_evaluations(two_tasks, tmp_path):
    """TRM's training-loop behaviour on request: the second evaluation's ranking counts the first's votes."""
    trainer = arc_trainer("trm", two_tasks, tmp_path / "run", 4, "aggregated_voting=true", "ema=false")
    trainer.run()
    ranked = trainer.task_evaluator.ranking()
    rows = len(load_split(two_tasks / "test")[1][0].inputs)
    assert sum(c.count for pairs in ranked.values() for cands in pairs for c in cands) == 2 * rows
    fresh = arc_trainer("trm", two_tasks, tmp_path / "fresh", 4, "ema=false")
    fresh.run()
    ranked = fresh.task_evaluator.ranking()
    assert sum(c.count for pairs in ranked.values() for cands in pairs for c in cands) == rows


def test_evaluate_sweeps_depth_and_breadth_on_arc(two_tasks, eqr_checkpoint, tmp_path):
    checkpoint = eqr_checkpoint
    common = [f"checkpoint={checkpoint}", "depths=[1,2]", "different_init=[1,2]", "plots=false", "progress=false",
              "max_rows=5", f"output_dir={tmp_path / 'eval'}", "arc_plots=1"]
    result = run_sweep(load_options(common))
    assert len(result.records) == 4
    tests = len(load_split(two_tasks / "test")[1][0].inputs)
    for record in result.records:
        depth, breadth = record["config"]["halt_max_steps"], record["config"]["different_init"]
        metrics = record["metrics"]
        assert {f"ARC/pass@{k}" for k in (1, 2, 5, 10, 100, 1000)} | {"ARC/official_pass@2"} <= set(metrics)
        assert metrics["count"] == tests * breadth
        stem = f"eval_*_D{depth}_B{breadth}"
        submission_of(next((tmp_path / "eval").glob(f"{stem}_submission.json")), two_tasks)
        assert [p.name for p in (tmp_path / "eval").glob(f"{stem}_plots/*.png")] == [f"{EVALUATION}.png"]

    elastic = run_sweep(load_options([*common, "different_init=[2]", "elastic=true", "elastic_min_steps=1"]))
    assert all("ARC/pass@2" in r["metrics"] and "elastic/mean_segments" in r["metrics"] for r in elastic.records)


@pytest.mark.parametrize("breadth", [["different_init=[2]"], ["tta=2", "tta_kind=dihedral"]])
def test_restarts_and_augmented_copies_vote_in_the_tasks_frame(breadth, two_tasks, eqr_checkpoint, tmp_path):
    """At B = 2 (or two dihedral copies of the canvas) every augmented version of a test input votes twice,
    and the evaluator sees each row in the data's own frame: the stored test inputs, each twice."""
    seen: list[np.ndarray] = []

    class Recording(ArcEvaluator):
        def update(self, rows):
            seen.append(rows["inputs"])
            super().update(rows)

    arc_task = tasks.TASKS["arc"]
    tasks.TASKS["arc"] = dataclasses.replace(arc_task, evaluator=Recording)
    try:
        result = run_sweep(load_options([f"checkpoint={eqr_checkpoint}", "depths=[2]", *breadth, "plots=false",
                                         "progress=false", f"output_dir={tmp_path / 'eval'}"]))
    finally:
        tasks.TASKS["arc"] = arc_task
    stored = load_split(two_tasks / "test")[1][0].inputs
    fed = np.concatenate(seen)
    assert len(fed) == 2 * len(stored)
    assert sorted(map(bytes, fed.astype(np.uint8))) == sorted(map(bytes, np.repeat(stored, 2, axis=0)))
    assert "ARC/pass@2" in result.records[0]["metrics"]


def test_memorisation_check_replaces_identifiers_for_the_model_only(two_tasks, eqr_checkpoint, tmp_path):
    names = json.loads((two_tasks / "identifiers.json").read_text())
    test_ids = np.unique(load_split(two_tasks / "test")[1][0].puzzle_identifiers)
    blank = ablation_table("blank", two_tasks, "test", len(names))
    assert blank[test_ids].eq(0).all() and blank.shape == (len(names),)
    with pytest.raises(ConfigError, match="shuffled needs at least two tasks"):
        ablation_table("shuffled", two_tasks, "test", len(names))

    common = [f"checkpoint={eqr_checkpoint}", "depths=[2]", "plots=false", "progress=false",
              f"output_dir={tmp_path / 'eval'}", "save_outputs=[logits,puzzle_identifiers,inputs]", "use_ema=false"]
    runs = {kind: run_sweep(load_options([*common, f"puzzle_id_ablation={kind}"])) for kind in ("none", "blank")}
    assert runs["blank"].records[0]["config"]["puzzle_id_ablation"] == "blank"
    assert "ARC/pass@2" in runs["blank"].records[0]["metrics"]
    saved = {kind: torch.load(next((tmp_path / "eval").glob(f"eval_*_D2_B1_live{tag}_outputs.pt")), weights_only=True)
             for kind, tag in (("none", ""), ("blank", "_idsblank"))}
    assert len(list((tmp_path / "eval").glob("*_idsblank_submission.json"))) == 1
    for field in ("puzzle_identifiers", "inputs"):  # the data and the evaluator's view stay the true ones
        assert torch.equal(saved["none"][field], saved["blank"][field])
    assert not torch.equal(saved["none"]["logits"], saved["blank"]["logits"])  # what the model saw did change


def test_shuffled_identifiers_point_at_another_task(tmp_path):
    """Every test puzzle of a task is shown one of another task's identifiers, never its own task's."""
    data = tmp_path / "fixture"
    shutil.copytree(ROOT / "tests" / "fixtures" / "arc" / "build" / "output", data)
    names = json.loads((data / "identifiers.json").read_text())
    table = ablation_table("shuffled", data, "test", len(names), seed=3)
    test_ids = np.unique(load_split(data / "test")[1][0].puzzle_identifiers)
    task = [n.split("|||")[0] for n in names]
    assert all(task[int(table[i])] != task[i] for i in test_ids)
    assert len({task[int(table[i])] for i in test_ids}) == 4  # a permutation of the 4 test tasks
    assert torch.equal(table[[0, *[i for i in range(len(names)) if i not in set(test_ids.tolist())]]],
                       torch.tensor([0, *[i for i in range(len(names)) if i not in set(test_ids.tolist())]]))


@pytest.mark.parametrize(("option", "message"), [
    ("tta=2", "tta: the arc task declares no symmetries (ARC's augmentations are built into its test split"),
    ("puzzle_id_ablation=shuffled", "puzzle_id_ablation: shuffled needs at least two tasks in the split"),
    ("puzzle_id_ablation=forgotten", "puzzle_id_ablation"),
])
def test_arc_evaluation_errors_are_one_line(option, message, eqr_checkpoint, tmp_path):
    proc = subprocess.run([sys.executable, "evaluate.py", f"checkpoint={eqr_checkpoint}", "depths=[1]",
                           "progress=false", f"output_dir={tmp_path}", *option.split()],
                          cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert message in lines[-1] and sum("error" in line.lower() for line in lines) == 1, proc.stderr


@pytest.mark.parametrize("name", ["trm_arc1", "eqr_arc1", "hrm_arc1", "trm_arc2", "eqr_arc2", "hrm_arc2"])
def test_arc_recipes_carry_the_published_values(name):
    """SPEC_ARC 10: TRM's and HRM's values; EqR's is TRM's plus its RI/NI defaults; an evaluation and a
    checkpoint every 10,000 epochs (5 or 7 steps an epoch on the full builds)."""
    config = compose_pretrain_config(f"train/{name}", [])
    arch, dataset = name.split("_")
    assert (config.global_batch_size, config.epochs, config.lr, config.lr_min_ratio, config.lr_warmup_steps) == (
        768, 100000, 1e-4, 1.0, 2000)
    assert (config.beta1, config.beta2, config.weight_decay) == (0.9, 0.95, 0.1)
    assert (config.puzzle_emb_lr, config.puzzle_emb_weight_decay) == (1e-2, 0.1)
    assert config.eval_interval_steps == config.checkpoint_interval_steps == {"arc1": 50000, "arc2": 70000}[dataset]
    assert config.dataset.data_path == f"data/{dataset}concept-aug-1000"
    a = config.arch
    assert (a["hidden_size"], a["num_heads"], a["expansion"], a["puzzle_emb_ndim"], a["pos_encodings"]) == (
        512, 8, 4, 512, "rope")
    assert (a["halt_max_steps"], a["halt_exploration_prob"], a["loss"]["loss_type"]) == (
        16, 0.1, "stablemax_cross_entropy")
    if arch == "hrm":
        assert (a["H_layers"], a["L_layers"], a["H_cycles"], a["L_cycles"], config.ema) == (4, 4, 2, 2, False)
        assert a.get("puzzle_emb_len", 0) == 0  # ceil(512 / 512) = 1 position
    else:
        assert (a["L_layers"], a["H_cycles"], a["L_cycles"], a["mlp_t"], a["puzzle_emb_len"]) == (2, 3, 4, False, 16)
        assert (config.ema, config.ema_rate) == (True, 0.999)
    if arch == "eqr":
        assert (a["lambda_"], a["noise_scale"], a["H_init_std"], a["L_init_std"]) == (0.95, 0.01, 1.0, 1.0)
