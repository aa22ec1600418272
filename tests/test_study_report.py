"""The study's report on hand-made records: seed averages, the headline and breadth rows, difficulty
buckets, the elastic frontier against the best fixed depth, residual AUROC, wall times."""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis.study_data import auroc, exact_by_rounds, load_study
from analysis.study_report import write_report
from scripts.study_report import main


def test_auroc_matches_pair_counting():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 40).astype(float)  # many ties
    positive = rng.random(40) < 0.4
    pairs = [(p, n) for p, n in itertools.product(scores[positive], scores[~positive])]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert auroc(scores, positive) == pytest.approx(expected)
    assert auroc(np.array([1.0, 2.0]), np.array([False, True])) == 1.0
    assert np.isnan(auroc(np.array([1.0, 2.0]), np.array([True, True])))


def _record(run: Path, name: str, split: str, depth: int, breadth: int, metrics: dict[str, float]) -> Path:
    folder = run / name
    folder.mkdir(parents=True, exist_ok=True)
    config = {"halt_max_steps": depth, "different_init": breadth, "pass_wall_s": 30.0, "split": split}
    path = folder / f"eval_step_5_D{depth}_B{breadth}.json"
    path.write_text(json.dumps({"schema_version": 1, "config": config, "metrics": metrics}))
    return path


def _trajectories(record: Path, depth: int, exact: list[int], residual: list[float]) -> None:
    with record.with_name(f"{record.stem}_trajectories.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "puzzle", "restart", "exact", "accuracy", "final_residual", "convergence_score",
                         "steps", "stop"])
        for i, (e, r) in enumerate(zip(exact, residual, strict=True)):  # as evaluate.py writes them, 2 ranks
            writer.writerow([i % 2, i, 0, e, 0.9 + 0.1 * e, r, "nan", depth, "depth"])


def _frontier(run: Path, best: float, elastic: float, segments: float) -> None:
    points = [{"label": f"D={d}", "kind": "fixed", "depth": d, "exact_accuracy": a, "accuracy": 0.9,
               "segments_per_puzzle": float(d), "wall_s": 6.0, "exit_rate": None, "puzzle_segments": []}
              for d, a in ((16, best - 0.25), (64, best), (256, best))]
    points.append({"label": "stable:2", "kind": "elastic", "depth": 256, "exact_accuracy": elastic, "accuracy": 0.9,
                   "segments_per_puzzle": segments, "wall_s": 6.0, "exit_rate": 1.0, "puzzle_segments": []})
    (run / "frontier").mkdir(parents=True)
    (run / "frontier" / "frontier.json").write_text(json.dumps({"points": points}))


@pytest.fixture()
def study_dir(tmp_path) -> Path:
    out = tmp_path / "study"
    for split, rounds in (("test", [2, 2, 5, 5]), ("hard_test", [9, 9, 12, 12])):
        (out / "data" / "sudoku-rounds" / split).mkdir(parents=True)
        np.save(out / "data" / "sudoku-rounds" / split / "difficulty.npy", np.array(rounds))
    accuracy = {("eqr", 0): (0.5, 0.75), ("eqr", 1): (0.25, 0.75), ("trm", 0): (0.5, 0.5), ("trm", 1): (0.5, 0.25)}
    for (arm, seed), (shallow, deep) in accuracy.items():
        run = out / arm / f"seed{seed}"
        for name, split in (("eval_depth", "test"), ("eval_depth_hard", "hard_test")):
            _record(run, name, split, 16, 1, {"exact_accuracy": shallow})
            record = _record(run, name, split, 64, 1, {"exact_accuracy": deep})
            exact = [0, 1, 1, 1] if deep == 0.75 else [1, 0, 0, 0] if deep == 0.25 else [1, 1, 0, 0]
            _trajectories(record, 64, exact, residual=[0.4, 0.1, 0.2, 0.3] if deep == 0.75 else [0.1, 0.2, 0.3, 0.4])
        if arm == "eqr":
            _record(run, "eval_breadth", "test", 64, 16, {"different_init/avg_pass_rate": 0.7,
                                                          "majority_vote/exact_accuracy": 0.8,
                                                          "convergence_top_k/exact_accuracy": 0.9,
                                                          "different_init/any_correct": 1.0})
        _frontier(run, best=deep, elastic=deep - 0.01 * (seed + 1), segments=8.0 * (seed + 1))
        (run / "train_wall_s.txt").write_text("120")
    return out


def test_report_tables_and_plots(study_dir, tmp_path):
    files = write_report(load_study(study_dir), tmp_path / "report")
    tables = files[0].read_text()
    headline = tables.split("### Headline, test")[1].split("###")[0]
    # D16, D64, best depth over D16 and D64 per seed, then D64 x B16 top-1 and any correct
    assert ("| EqR (RI + NI) | 37.5 ± 17.7 (50.0, 25.0) | 75.0 ± 0.0 (75.0, 75.0) | 75.0 ± 0.0 (75.0, 75.0) "
            "| 90.0 ± 0.0 (90.0, 90.0) | 100.0 ± 0.0 (100.0, 100.0) |") in headline
    assert "| TRM | 50.0 ± 0.0 (50.0, 50.0) | 37.5 ± 17.7 (50.0, 25.0) | 50.0 ± 0.0 (50.0, 50.0) | - | - |" in headline
    breadth = tables.split("### Breadth, test")[1].split("###")[0]
    assert "| EqR (RI + NI) | 64 | 16 | - | 70.0 ± 0.0 (70.0, 70.0) | 80.0 ± 0.0 (80.0, 80.0) |" in breadth
    assert "| EqR (RI + NI) | 64 | 1 | 75.0 ± 0.0 (75.0, 75.0) |" in breadth and "| TRM |" not in breadth
    # eqr, D=64, seeds pooled: puzzles 0-3 rated 2, 2, 5, 5 -> exact 0,1 / 1,1 twice
    difficulty = tables.split("### Difficulty, test")[1].split("###")[0]
    assert "2 rounds (2) | 5 rounds (2) |" in difficulty
    assert "| EqR (RI + NI) | 64 | 50.0 | 100.0 |" in difficulty and "| TRM | 64 | 75.0 | 0.0 |" in difficulty
    # eqr pooled: the wrong ones (0.4) above every right one -> AUROC 1; trm: exact 1,1,0,0 and 1,0,0,0 on 0.1-0.4
    residual = tables.split("### Final residual against correctness, test")[1].split("###")[0]
    assert "| EqR (RI + NI) | 64 | 8 | 75.0 | 0.2 | 0.4 | 1.000 |" in residual
    assert "| TRM | 64 | 8 | 37.5 | 0.1 | 0.3 | 0.967 |" in residual  # 14.5 of 15 pairs ordered
    frontier = tables.split("### Elastic exit")[1].split("###")[0]
    assert "| EqR (RI + NI) | best fixed depth | 64, 64 | 75.0 ± 0.0 (75.0, 75.0) | 64.0 ± 0.0 | - | - |" in frontier
    elastic = ("| EqR (RI + NI) | elastic stable:2 | 256 | 73.5 ± 0.7 (74.0, 73.0) | 12.0 ± 5.7 | -1.0, -2.0 "
               "| 8.0x, 4.0x |")
    assert elastic in frontier
    assert "| TRM | 0 | 2.0 | 1.0 | 0.4 |" in tables  # 120 s training; two passes of 30 s (two depths each); 4 x 6 s
    assert [p.name for p in files[1:]] == ["study_depth.png", "study_breadth.png", "study_difficulty.png",
                                           "study_frontier.png", "study_residual.png"]
    assert all(path.stat().st_size > 10_000 for path in files[1:])


def test_exact_by_rounds_pools_seeds(study_dir):
    study = load_study(study_dir)
    assert exact_by_rounds(study, "trm", "hard_test", 64) == {9: 0.75, 12: 0.0}
    assert exact_by_rounds(study, "trm", "hard_test", 16) == {}  # no per-trajectory rows at D=16


def test_missing_study_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no evaluation records" in capsys.readouterr().err


def test_one_seed_is_reported_as_its_value_and_absent_sections_are_left_out(study_dir, tmp_path):
    for run in study_dir.glob("*/seed1"):
        shutil.rmtree(run)
    shutil.rmtree(study_dir / "eqr" / "seed0" / "eval_breadth")
    tables = write_report(load_study(study_dir), tmp_path / "report")[0].read_text()
    assert "| EqR (RI + NI) | 50.0 | 75.0 | 75.0 |" in tables.split("### Headline, test")[1]
    assert "### Breadth" not in tables
