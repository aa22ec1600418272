"""No evaluation overwrites another: result files, the sweep folder and table rows are named by run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import evaluate
import pretrain
from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset
from evaluation.naming import option_tags, record_stem, run_labels, sweep_label
from utils.validation import ConfigError

TINY = ["arch.hidden_size=16", "arch.num_heads=2", "arch.forward_dtype=float32", "arch.H_cycles=1",
        "arch.L_cycles=1", "arch.L_layers=1", "global_batch_size=8", "wandb_mode=disabled", "max_steps=2",
        "eval_interval_steps=null", "checkpoint_interval_steps=2"]


@pytest.fixture(scope="module")
def mazes(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    first, second = (build_maze_dataset(MazeBuildConfig(output_dir=root / name, grid_size=6, train_samples=16,
                                                        test_samples=4, min_path_length=2, max_path_length=6,
                                                        seed=seed)) for name, seed in (("maze_a", 0), ("maze_b", 1)))
    return first, second


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory, mazes) -> list[Path]:
    """EqR, TRM and HRM checkpoints that share a file name (step_2.pth) and, for two, a folder name."""
    root = tmp_path_factory.mktemp("runs")
    runs = {"eqr": root / "x" / "run", "trm": root / "y" / "run", "hrm": root / "hrm"}
    for arch, folder in runs.items():
        code = pretrain.main(["--config-name", "train/eqr_maze_unique", f"arch={arch}", *TINY,
                              f"dataset.data_path={mazes[0]}", f"checkpoint_path={folder}"]
                             + (["arch.H_layers=1"] if arch == "hrm" else []))
        assert code == 0
    return [folder / "step_2.pth" for folder in runs.values()]


def test_three_architectures_in_one_sweep_write_three_sets_of_files(three_runs, mazes, tmp_path, capsys, caplog):
    out = tmp_path / "out"
    args = [f"checkpoint_list=[{','.join(map(str, three_runs))}]", f"dataset_data_path={mazes[0]}",
            "depths=[1,2]", "different_init=[1,2]", f"output_dir={out}", "progress=false"]
    assert evaluate.main(args) == 0
    stdout = capsys.readouterr().out
    labels = ["eqr_run_step_2", "trm_run_step_2", "hrm_step_2"]
    records = sorted(out.glob("eval_*.json"))
    assert len(records) == 3 * 2 * 2  # runs x D x B: nothing overwritten
    for label, arch in zip(labels, ("eqr@EqRModel", "trm@TRMModel", "hrm@HRMModel"), strict=True):
        mine = [json.loads(p.read_text()) for p in records if p.name.startswith(f"eval_{label}_maze_a_")]
        assert len(mine) == 4 and {r["config"]["arch"] for r in mine} == {arch}
        assert {r["config"]["run"] for r in mine} == {label}
        assert sum(f"| {label} | {arch} |" in line for line in stdout.splitlines()) == 4
    sweep = out / "sweep_eqr_run_step_2+trm_run_step_2+hrm_step_2_maze_a_D1-2_B1-2"
    with (sweep / "points.csv").open() as handle:
        points = list(csv.DictReader(handle))
    assert [p["run"] for p in points] == [label for label in labels for _ in range(4)]
    assert all((sweep / name).stat().st_size > 0 for name in ("accuracy_vs_depth.png", "accuracy_vs_residual.png"))
    # The reference's layout names step, suffix and sweep values only: the three runs share its folders
    # (the last one's numbers stay, with a warning), while the records above keep every run apart.
    assert sorted(p.name for p in (out / "eval_preds").iterdir()) == [
        f"step_2_eval_halt_max_steps-{d}_different_init-{b}" for d in (1, 2) for b in (1, 2)]
    kept = json.loads((out / "eval_preds" / "step_2_eval_halt_max_steps-2_different_init-2" /
                       "eval_metrics_step_2.json").read_text())
    assert kept["config"]["checkpoint"] == str(three_runs[2]) and kept["config"]["param_iter"] == {
        "halt_max_steps": 2, "different_init": 2}
    assert "replaces the result of" in caplog.text

    before = {p: p.read_bytes() for p in sweep.iterdir()}
    assert evaluate.main([*args[:1], f"dataset_data_path={mazes[1]}", *args[2:]]) == 0  # another dataset
    assert {p: p.read_bytes() for p in sweep.iterdir()} == before
    assert len(list(out.glob("eval_*_maze_b_*.json"))) == 12 and len(list(out.glob("sweep_*"))) == 2


def test_a_folder_means_its_latest_checkpoint(three_runs, mazes, tmp_path, capsys):
    folder = three_runs[1].parent
    assert evaluate.main([f"checkpoint={folder}", f"dataset_data_path={mazes[0]}", "depths=1",
                          f"output_dir={tmp_path}", "plots=false", "progress=false"]) == 0
    record = json.loads(next(tmp_path.glob("eval_*.json")).read_text())
    assert record["config"]["checkpoint"] == str(three_runs[1]) and record["config"]["run"] == "trm_run_step_2"


def test_labels_grow_until_distinct_and_repeats_are_refused(tmp_path):
    assert run_labels(["a/x/step_1.pth", "b/x/step_1.pth"], ["eqr@EqRModel"] * 2) == \
        ["eqr_a_x_step_1", "eqr_b_x_step_1"]
    assert run_labels(["runs/eqr_big/step_5.pth", "runs/trm/step_5.pth"],
                      ["eqr@EqRModel", "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1"]) == \
        ["eqr_big_step_5", "trm_step_5"]
    with pytest.raises(ConfigError, match="checkpoint_list: a/step_1.pth is given twice"):
        run_labels(["a/step_1.pth", "a/../a/step_1.pth"], ["eqr@EqRModel"] * 2)


def test_every_option_that_moves_a_metric_is_in_the_name():
    base = {"run": "eqr_r_step_1", "dataset_name": "maze", "halt_max_steps": 4, "different_init": 2}
    assert record_stem(base) == "eval_eqr_r_step_1_maze_D4_B2"
    changed = {"tta": 4, "tta_kind": "dihedral", "convergence_top_k": 1, "convergence_window": 5, "breadth_agree": 2,
               "elastic": True, "elastic_rules": ["q"], "elastic_min_steps": 1, "seed": 3, "use_ema": False,
               "max_eval_steps": 2, "reference_counting": True, "global_batch_size": 768,
               "different_init_reset_std": 0.5, "forward_dtype": "bfloat16", "kernels": "fast"}
    assert option_tags(changed) == ["tta4dihedral", "top1", "win5", "agree2", "elastic-q-min1", "seed3", "live",
                                    "first2", "refcount", "batch768", "std0.5", "bfloat16", "fast"]
    assert record_stem({**base, "overrides": {"noise_scale": 0.0, "lambda_": 0.9}}) == \
        "eval_eqr_r_step_1_maze_D4_B2_lambda_=0.9_noise_scale=0.0"
    long = sweep_label([f"run{i}_with_a_long_name" for i in range(8)], "maze", [1, 2], [1], {}, [])
    assert long.startswith("8runs-") and long.endswith("_maze_D1-2_B1")
