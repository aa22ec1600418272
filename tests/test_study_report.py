"""The mini study's report on hand-made records: seed averages, breadth rows, residual AUROC, path-length bins."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from analysis.study_data import auroc, load_study, path_lengths
from analysis.study_report import write_report
from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset


def test_auroc_matches_pair_counting():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 40).astype(float)  # many ties
    positive = rng.random(40) < 0.4
    pairs = [(p, n) for p, n in itertools.product(scores[positive], scores[~positive])]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert auroc(scores, positive) == pytest.approx(expected)
    assert auroc(np.array([1.0, 2.0]), np.array([False, True])) == 1.0
    assert np.isnan(auroc(np.array([1.0, 2.0]), np.array([True, True])))


def _record(run: Path, name: str, depth: int, breadth: int, data: Path, metrics: dict[str, float]) -> None:
    folder = run / name
    folder.mkdir(parents=True, exist_ok=True)
    config = {"halt_max_steps": depth, "different_init": breadth, "pass_wall_s": 30.0, "dataset": [str(data)]}
    path = folder / f"eval_step_5_D{depth}_B{breadth}.json"
    path.write_text(json.dumps({"schema_version": 1, "config": config, "metrics": metrics}))


def _trajectories(run: Path, name: str, depth: int, exact: list[int], residual: list[float]) -> None:
    with (run / name / f"eval_step_5_D{depth}_B1_trajectories.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "puzzle", "restart", "exact", "accuracy", "final_residual", "convergence_score",
                         "steps", "stop"])
        for i, (e, r) in enumerate(zip(exact, residual, strict=True)):  # as evaluate.py writes them, 2 ranks
            writer.writerow([i % 2, i, 0, e, 0.9 + 0.1 * e, r, "nan", depth, "depth"])


@pytest.fixture()
def study_dir(tmp_path) -> tuple[Path, Path]:
    data = build_maze_dataset(MazeBuildConfig(output_dir=tmp_path / "maze", grid_size=9, train_samples=1,
                                              test_samples=4, min_path_length=4, max_path_length=28, seed=3))
    out = tmp_path / "study"
    accuracy = {("eqr", 0): (0.5, 0.75), ("eqr", 1): (0.25, 0.75), ("trm", 0): (0.5, 0.5), ("trm", 1): (0.5, 0.25)}
    for (arm, seed), (shallow, deep) in accuracy.items():
        run = out / arm / f"seed{seed}"
        for name in ("eval_indist", "eval_long"):
            _record(run, name, 2, 1, data, {"exact_accuracy": shallow, "accuracy": 0.9})
            _record(run, name, 8, 1, data, {"exact_accuracy": deep, "accuracy": 0.95})
            exact = [1, 1, 1, 0] if deep == 0.75 else [1, 0, 0, 0] if deep == 0.25 else [1, 1, 0, 0]
            _trajectories(run, name, 8, exact, residual=[0.1, 0.2, 0.3, 0.4])
        if arm == "eqr":
            _record(run, "eval_breadth", 8, 4, data, {"different_init/avg_pass_rate": 0.7,
                                                      "majority_vote/exact_accuracy": 0.8,
                                                      "convergence_top_k/exact_accuracy": 0.9,
                                                      "different_init/any_correct": 1.0})
        (run / "train_wall_s.txt").write_text("120")
    return out, data


def test_report_tables_and_plots(study_dir, tmp_path):
    out, data = study_dir
    files = write_report(load_study(out), tmp_path / "report", trained_depth=2, breadth_depth=8, residual_depth=8)
    tables = files[0].read_text()
    assert "| eqr | 37.5 ± 17.7 (50.0, 25.0) | 90.0 ± 0.0 (90.0, 90.0) | 37.5 ± 17.7 (50.0, 25.0) |" in tables
    assert "| trm | 50.0 ± 0.0 (50.0, 50.0) | 37.5 ± 17.7 (50.0, 25.0) |" in tables  # D=2, D=8 (4x)
    assert "| eqr | 4 | 70.0 ± 0.0 (70.0, 70.0) | 80.0 ± 0.0 (80.0, 80.0) | 90.0 ± 0.0 (90.0, 90.0) |" in tables
    # eqr at D=8 pooled: exact 1,1,1,0 twice over residuals .1-.4 -> low half all correct, AUROC 1
    assert "| eqr | all | 8 | 75.0 | 100.0 | 50.0 | 0.2 | 0.4 | 1.000 |" in tables
    assert "| trm | 1 | 4 | 25.0 | 50.0 | 0.0 | 0.1 | 0.3 | 1.000 |" in tables  # one seed: exact 1,0,0,0
    assert "| eqr | 0 | 2.0 | 1.5 |" in tables and "| trm | 0 | 2.0 | 1.0 |" in tables  # 120 s; passes of 30 s
    moves = path_lengths(data)
    assert len(moves) == 4 and moves.min() >= 4 and moves.max() <= 28
    bins = tables.split("by shortest-path length")[1].split("###")[0]
    assert "| eqr | 8 |" in bins and "| trm | 2 |" not in bins  # D=2 has no per-trajectory rows here
    assert all(path.stat().st_size > 10_000 for path in files[1:])


def test_missing_study_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no evaluation records"):
        load_study(tmp_path)


def test_trajectory_file_of_the_earlier_format_is_named(study_dir):
    out, _ = study_dir
    path = out / "eqr" / "seed0" / "eval_long" / "eval_step_5_D8_B1_trajectories.csv"
    path.write_text("rank,batch,puzzle,restart,exact,accuracy,final_residual,convergence_score,steps\n"
                    "0,1,0,0,1,1.0,0.1,nan,8\n")
    with pytest.raises(ValueError, match=f"{path}: written by an earlier evaluate.py"):
        load_study(out)
