"""`scripts/mini_study.sh` end to end at toy size (slow: about one minute on 2 CPU cores).

Run with `python -m pytest -q -m slow tests/test_mini_study.py`.
"""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOY = {"SEEDS": "0 1", "STEPS": "10", "TRAIN_SAMPLES": "64", "TEST_SAMPLES": "20", "HARD_SAMPLES": "30",
       "DEPTHS": "[1,2,8]", "BREADTH_DEPTH": "2", "BREADTHS": "[2]", "RESIDUAL_DEPTH": "8"}


def _study(out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **TOY, "OUT": str(out)}
    return subprocess.run(["bash", "scripts/mini_study.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_mini_study_script_end_to_end(tmp_path):
    out = tmp_path / "study"
    done = _study(out)
    assert done.returncode == 0, done.stderr[-3000:]
    for arm in ("eqr", "trm"):
        for seed in (0, 1):
            run = out / arm / f"seed{seed}"
            assert (run / "step_10.pth").is_file() and float((run / "train_wall_s.txt").read_text()) > 0
            label = f"eval_{arm}_seed{seed}_step_10"  # the run label: architecture, run folder, checkpoint
            for name, data, count in (("eval_indist", "maze-9x9-mini", 20), ("eval_long", "maze-9x9-mini-long", 30)):
                assert (run / name / f"{label}_{data}_D2_B1.json").is_file()
                with (run / name / f"{label}_{data}_D8_B1_trajectories.csv").open() as handle:
                    assert len(list(csv.DictReader(handle))) == count
            breadth = run / "eval_breadth" / f"{label}_maze-9x9-mini_D2_B2_top1.json"
            assert breadth.is_file() == (arm == "eqr")
    report = out / "report"
    tables = (report / "tables.md").read_text()
    for heading in ("(a) Exact accuracy at the trained depth", "(b) Exact accuracy as depth grows, test mazes",
                    "(b) Exact accuracy as depth grows, longest paths", "(c) Breadth on the test mazes at D=2",
                    "(d) Final residual against correctness, test mazes", "Wall time"):
        assert heading in tables
    assert "| eqr | 2 |" in tables  # the B=2 breadth row
    assert "| trm | all | 40 |" in tables and "| trm | all | 60 |" in tables  # 2 seeds x 20 test mazes / 30 longest
    for name in ("a_trained_depth", "b_depth", "c_breadth", "d_residual"):
        assert (report / f"mini_study_{name}.png").stat().st_size > 10_000

    again = _study(out)  # everything is done: nothing is trained or evaluated twice
    assert again.returncode == 0, again.stderr[-3000:]
    assert "== train" not in again.stdout and "== evaluate" not in again.stdout
