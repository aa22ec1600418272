"""`scripts/study.sh` end to end at toy size, then `scripts/release_study.py` and the released-weights path
that `scripts/reproduce_tables.sh --study` takes (slow: about three minutes on 2 CPU cores).

Run with `python -m pytest -q -m slow tests/test_study.py`.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from utils.checkpoint import canonical_state_dict

ROOT = Path(__file__).resolve().parents[1]
ARMS = ["eqr", "trm", "transformer", "eqr_ri", "eqr_ni"]
TOY = {"ARMS": " ".join(ARMS), "SEEDS": "0 1", "STEPS": "4", "TRAIN_SAMPLES": "70", "NUM_AUG": "1",
       "TEST_SAMPLES": "6", "DEPTHS": "[1,2,4]", "BREADTHS": "[2]", "HARD_BREADTHS": "[2]",
       "BREADTH_DEPTHS": "[2]",
       "ABLATION_DEPTHS": "[1,2,4]", "FRONTIER_DEPTHS": "[1,2]", "ELASTIC": "[stable:1]", "ELASTIC_DEPTH": "4",
       "BATCH": "6", "JOBS": "2"}


def _study(out: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **TOY, "OUT": str(out), **extra}
    return subprocess.run(["bash", "scripts/study.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1200)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_study_script_end_to_end(tmp_path):
    out = tmp_path / "study"
    done = _study(out)
    assert done.returncode == 0, done.stderr[-3000:] + "".join(p.read_text()[-3000:] for p in out.glob("worker*.log"))
    for arm in ARMS:
        for seed in (0, 1):
            run = out / arm / f"seed{seed}"
            assert (run / "step_4.pth").is_file() and float((run / "train_wall_s.txt").read_text()) >= 0
            recurrent, breadth = arm != "transformer", arm in ("eqr", "eqr_ri")
            for name in ("eval_depth", "eval_depth_hard"):
                depth = 4 if recurrent else 1
                assert len(list((run / name).glob(f"eval_*_D{depth}_B1.json"))) == 1
                if recurrent:
                    assert len(_rows(next((run / name).glob("eval_*_D4_B1_trajectories.csv")))) == 6
            assert len(list((run / "eval_breadth").glob("eval_*_D2_B2_top1.json"))) == breadth
            assert len(list((run / "eval_breadth_hard").glob("eval_*-hard_test_D2_B2_top1.json"))) == breadth
            assert (run / "frontier" / "frontier.json").is_file() == (arm in ("eqr", "trm"))
    tables = (out / "report" / "tables.md").read_text()
    for heading in ("Headline, test", "Depth, harder split", "Breadth, test", "Difficulty, test",
                    "Final residual against correctness, harder split", "Elastic exit", "Wall time"):
        assert heading in tables
    assert "| EqR (RI + NI) | 2 | 2 |" in tables and "| feedforward |" in tables
    for name in ("depth", "breadth", "difficulty", "frontier", "residual"):
        assert (out / "report" / f"study_{name}.png").stat().st_size > 10_000

    again = _study(out)  # everything is done: nothing is trained or evaluated twice
    assert again.returncode == 0, again.stderr[-3000:]
    logs = again.stdout + "".join(p.read_text() for p in out.glob("worker*.log"))
    assert "== train" not in logs and "== evaluate" not in logs and "== frontier" not in logs

    released = tmp_path / "released"
    subprocess.run([sys.executable, "scripts/release_study.py", str(out), str(released)], cwd=ROOT, check=True)
    small = torch.load(released / "eqr" / "seed1.pth", weights_only=False)
    full = torch.load(out / "eqr" / "seed1" / "step_4.pth", weights_only=False)
    assert set(small) == {"model", "config", "step"} and small["step"] == 4
    shadow = canonical_state_dict(full["ema"]["shadow"])
    assert shadow and all(torch.equal(small["model"][k], v) for k, v in shadow.items())
    # the released weights evaluate to the study's own numbers (the data is rebuilt from its seed)
    again = _study(tmp_path / "reproduced", CHECKPOINTS=str(released), ARMS="eqr trm", SEEDS="1",
                   FRONTIER_ARMS="")
    assert again.returncode == 0, again.stderr[-3000:]
    for arm in ("eqr", "trm"):
        for name in ("eval_depth", "eval_depth_hard"):
            ours = next((tmp_path / "reproduced" / arm / "seed1" / name).glob("*_D4_B1_trajectories.csv"))
            theirs = next((out / arm / "seed1" / name).glob("*_D4_B1_trajectories.csv"))
            assert _rows(ours) == _rows(theirs)
