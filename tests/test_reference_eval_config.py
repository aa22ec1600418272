"""The reference's eval config as it is (SPEC 5.1): its depth_breadth.yaml, checkpoint_list entries,
shared_param_iter and config-path keys, and the result files in its layout and place."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import pytest

import evaluate
import pretrain
from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset
from evaluation.options import load_options
from tests.test_result_naming import TINY
from utils.validation import ConfigError

REFERENCE_YAML = Path(__file__).parent / "fixtures" / "eval" / "reference_depth_breadth.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(a small maze set, a 2-step EqR checkpoint trained on it) in a module-wide folder."""
    root = tmp_path_factory.mktemp("ref")
    data = build_maze_dataset(MazeBuildConfig(output_dir=root / "maze", grid_size=6, train_samples=8, test_samples=6,
                                              min_path_length=2, max_path_length=6))
    assert pretrain.main(["--config-name", "train/eqr_maze_unique", *TINY, f"dataset.data_path={data}",
                          f"checkpoint_path={root / 'runs' / 'eqr'}"]) == 0
    return data, root / "runs" / "eqr" / "step_2.pth"


@pytest.fixture
def checkpoint(trained, tmp_path) -> Path:
    """The checkpoint copied into `<tmp>/project/run/`, so its `../eval_preds` is this test's own."""
    target = tmp_path / "project" / "run" / "step_2.pth"
    target.parent.mkdir(parents=True)
    shutil.copy(trained[1], target)
    return target


def _read_reference(folder: Path, step: int) -> tuple[list[list[str]], dict]:
    with (folder / f"eval_metrics_step_{step}.csv").open() as handle:
        rows = list(csv.reader(handle))
    return rows, json.loads((folder / f"eval_metrics_step_{step}.json").read_text())


def test_reference_depth_breadth_yaml_runs_as_is(trained, checkpoint, caplog, capsys):
    caplog.set_level(logging.WARNING)
    assert evaluate.main([f"eval_yaml={REFERENCE_YAML}", f"checkpoint={checkpoint}", "progress=false",
                          "plots=false"]) == 0
    warnings = [r.getMessage() for r in caplog.records if "reference's eval config" in r.getMessage()]
    assert len(warnings) == 1 and "wandb_run_name" in warnings[0] and "force_rerun" not in warnings[0]

    folder = checkpoint.parent.parent / "eval_preds" / "step_2_D16_B1_arch_halt_max_steps-16"
    assert sorted(p.name for p in folder.iterdir()) == ["eval_metrics_step_2.csv", "eval_metrics_step_2.json"]
    rows, document = _read_reference(folder, 2)
    record = json.loads(next(checkpoint.parent.glob("eval_*_D16_B1.json")).read_text())
    metrics = record["metrics"]
    assert rows[0] == ["split", "metric", "value"]
    assert all(r[0] == "all" and "/" not in r[1] for r in rows[1:])  # B = 1: no breadth scalars
    assert {r[1]: float(r[2]) for r in rows[1:]} == pytest.approx(metrics)
    assert {"accuracy", "exact_accuracy", "q_halt_accuracy", "q_halt_precision", "q_halt_recall", "steps",
            "residual_of_16_steps"} <= {r[1] for r in rows[1:]}
    text = (folder / "eval_metrics_step_2.json").read_text()
    assert text == json.dumps(document, indent=2, sort_keys=True) + "\n"
    assert sorted(document) == ["config", "eval_time_sec", "metrics"] and document["eval_time_sec"] > 0
    assert document["metrics"] == {f"all/{k}": v for k, v in metrics.items()}
    config = document["config"]
    assert config["checkpoint"] == str(checkpoint) and config["halt_max_steps"] == 16
    assert config["suffix"] == "D16_B1" and config["param_iter"] == {"arch.halt_max_steps": 16}


def test_command_line_values_flow_into_the_yamls_interpolations(trained, checkpoint, capsys):
    assert evaluate.main([f"eval_config={REFERENCE_YAML}", f"checkpoint={checkpoint}", "halt_max_steps=3",
                          "different_init=2", "progress=false", "plots=false"]) == 0
    folder = checkpoint.parent.parent / "eval_preds" / "step_2_D3_B2_arch_halt_max_steps-3"
    rows, document = _read_reference(folder, 2)
    scalars = {r[1]: float(r[2]) for r in rows[1:] if r[0] == "global"}
    assert {"different_init/pass@1", "different_init/any_correct", "majority_vote/exact_accuracy"} <= set(scalars)
    assert all("/" not in r[1] for r in rows[1:] if r[0] == "all")
    assert document["metrics"]["different_init/pass@1"] == scalars["different_init/pass@1"]
    assert document["metrics"]["different_init/total_samples"] == 6  # 6 puzzles, clean counting
    assert all(k.startswith("all/") or "/" in k.removeprefix("all/") for k in document["metrics"])


def test_checkpoint_list_entries_with_their_own_overrides_and_sweeps(trained, checkpoint, tmp_path, capsys):
    data, _ = trained
    other = tmp_path / "other" / "run2" / "step_2.pth"
    other.parent.mkdir(parents=True)
    shutil.copy(checkpoint, other)
    entries = (f"[{{checkpoint: {checkpoint}, suffix: mine, init_override: {{arch.noise_scale: 0.0, "
               f"global_batch_size: 2}}, param_iter: {{arch.lambda_: [0.8, 0.9]}}, description: a run}}, {other}]")
    assert evaluate.main([f"checkpoint_list={entries}", "shared_param_iter={different_init: [1, 2]}",
                          "halt_max_steps=2", f"dataset_data_path={data}", "progress=false", "plots=false"]) == 0
    mine = checkpoint.parent.parent / "eval_preds"
    assert sorted(p.name for p in mine.iterdir()) == [
        f"step_2_mine_different_init-{b}_arch_lambda_-{lam}" for b in (1, 2) for lam in (0.8, 0.9)]
    theirs = other.parent.parent / "eval_preds"
    assert sorted(p.name for p in theirs.iterdir()) == [f"step_2_eval_different_init-{b}" for b in (1, 2)]

    records = {p.name: json.loads(p.read_text()) for p in checkpoint.parent.glob("eval_*.json")}
    assert len(records) == 2 * 2  # lambda_ x B, at depth 2
    for record in records.values():
        assert record["config"]["overrides"]["noise_scale"] == 0.0
        assert record["config"]["global_batch_size"] == 2  # init_override's training batch stands in
    lambdas = {r["config"]["overrides"]["lambda_"] for r in records.values()}
    assert lambdas == {0.8, 0.9}
    low, high = (next(r for r in records.values() if r["config"]["overrides"]["lambda_"] == lam
                      and r["config"]["different_init"] == 1) for lam in (0.8, 0.9))
    assert low["metrics"]["residual_of_2_steps"] != high["metrics"]["residual_of_2_steps"]


def test_other_eval_keys_sweep_as_separate_runs(trained, checkpoint, capsys):
    data, _ = trained
    assert evaluate.main([f"checkpoint={checkpoint}", f"dataset_data_path={data}", "halt_max_steps=2",
                          "different_init=2", "param_iter={convergence_top_k: [1, 2]}", "progress=false",
                          "plots=false"]) == 0
    folders = sorted(p.name for p in (checkpoint.parent.parent / "eval_preds").iterdir())
    assert folders == ["step_2_eval_convergence_top_k-1", "step_2_eval_convergence_top_k-2"]
    tops = {json.loads(p.read_text())["config"]["convergence_top_k"] for p in checkpoint.parent.glob("eval_*.json")}
    assert tops == {1, 2}


def test_unknown_keys_still_fail_with_a_suggestion(trained, checkpoint):
    with pytest.raises(ConfigError, match=r"^forse_rerun: unknown key; did you mean force_rerun\?$"):
        load_options([f"eval_yaml={REFERENCE_YAML}", f"checkpoint={checkpoint}", "forse_rerun=false"])
    with pytest.raises(ConfigError, match="halt_max_steps: an alias of depths; the command line gives both"):
        load_options([f"checkpoint={checkpoint}", "depths=2", "halt_max_steps=3"])
    cfg = load_options([f"eval_yaml={REFERENCE_YAML}", f"checkpoint={checkpoint}", "depths=[2,4]"])
    assert cfg.depth.depths == [2, 4] and cfg.source.param_iter == {"arch.halt_max_steps": [2, 4]}


def test_reference_only_keys_warn_once_when_they_ask_for_something_else(trained, checkpoint, caplog):
    caplog.set_level(logging.WARNING)
    load_options([f"checkpoint={checkpoint}", "force_rerun=true", "load_strict=true"])
    assert not caplog.records
    load_options([f"checkpoint={checkpoint}", "force_rerun=false", "report_conv_acc_stats=true"])
    (warning,) = caplog.records
    assert "force_rerun" in warning.getMessage() and "report_conv_acc_stats" in warning.getMessage()
