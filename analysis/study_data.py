"""A multi-arm, multi-seed study read back from what `scripts/study.sh` leaves, and its statistics.

`<out>/<arm>/seed<s>/` holds `train_wall_s.txt`, one folder per evaluation (`eval_depth`,
`eval_depth_hard`, `eval_breadth`, `eval_breadth_hard`: `evaluate.py` records and per-trajectory
CSVs) and `frontier/frontier.json`; `<out>/data/sudoku-rounds` holds each split's
`difficulty.npy`. `load_study` reads them into a `Study`.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dataset.build_sudoku_rounds_dataset import load_difficulty
from evaluation.accumulator import TEXT_COLUMNS

RUN_DIR = re.compile(r"seed(\d+)$")
ARM_ORDER = ["transformer", "trm", "eqr_ri", "eqr_ni", "eqr"]
ARM_LABELS = {"transformer": "feedforward", "trm": "TRM", "eqr_ri": "EqR, RI only", "eqr_ni": "EqR, NI only",
              "eqr": "EqR (RI + NI)"}
COLOURS = {"transformer": "tab:grey", "trm": "tab:orange", "eqr_ri": "tab:green", "eqr_ni": "tab:purple",
           "eqr": "tab:blue"}
SPLITS = {"test": ("eval_depth", "eval_breadth"), "hard_test": ("eval_depth_hard", "eval_breadth_hard")}
SPLIT_LABELS = {"test": "test (training's rounds)", "hard_test": "harder split (more rounds than any training puzzle)"}
SELECTIONS = [
    ("different_init/avg_pass_rate", "mean over restarts"),
    ("majority_vote/exact_accuracy", "majority vote"),
    ("convergence_top_k/exact_accuracy", "top-1 convergence"),
    ("different_init/any_correct", "any correct"),
]


@dataclass(frozen=True)
class Record:
    arm: str
    seed: int
    evaluation: str  # the folder: eval_depth, eval_depth_hard, eval_breadth, eval_breadth_hard
    split: str
    depth: int
    breadth: int
    metrics: dict[str, float]
    wall_s: float  # wall time of the evaluation pass this record came from


@dataclass
class Study:
    records: list[Record]
    train_wall_s: dict[tuple[str, int], float]
    # (arm, seed, split, depth, breadth) -> per-trajectory columns
    trajectories: dict[tuple[str, int, str, int, int], dict[str, np.ndarray]]
    frontiers: dict[tuple[str, int], list[dict]]  # (arm, seed) -> frontier.json's points
    difficulty: dict[str, np.ndarray] = field(default_factory=dict)  # split -> rounds of each puzzle

    @property
    def arms(self) -> list[str]:
        found = {r.arm for r in self.records}
        return [a for a in ARM_ORDER if a in found] + sorted(found - set(ARM_ORDER))

    def seeds(self, arm: str) -> list[int]:
        return sorted({r.seed for r in self.records if r.arm == arm})

    def values(self, arm: str, split: str, depth: int, breadth: int, key: str) -> list[float]:
        """One value per seed (seed order); seeds without the record or the key are skipped."""
        found = {r.seed: r.metrics[key] for r in self.records
                 if (r.arm, r.split, r.depth, r.breadth) == (arm, split, depth, breadth) and key in r.metrics}
        return [found[s] for s in sorted(found)]

    def depths(self, split: str, breadth: int = 1, arm: str | None = None) -> list[int]:
        return sorted({r.depth for r in self.records
                       if r.split == split and r.breadth == breadth and (arm is None or r.arm == arm)})

    def breadths(self, split: str, arm: str) -> list[int]:
        return sorted({r.breadth for r in self.records if r.split == split and r.arm == arm and r.breadth > 1})


def _trajectory_columns(path: Path) -> dict[str, np.ndarray]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    columns = {k: np.array([r[k] if k in TEXT_COLUMNS else float(r[k]) for r in rows]) for k in rows[0]}
    columns["exact"] = columns["exact"].astype(bool)
    columns["puzzle"] = columns["puzzle"].astype(int)
    return columns


def _read_run(run: Path, arm: str, seed: int, study: Study) -> None:
    for path in sorted(run.glob("eval_*/*.json")):
        record = json.loads(path.read_text())
        cfg = record["config"]
        depth, breadth = cfg["halt_max_steps"], cfg["different_init"]
        study.records.append(Record(arm, seed, path.parent.name, cfg["split"], depth, breadth, record["metrics"],
                                    cfg["pass_wall_s"]))
        rows_file = path.with_name(f"{path.stem}_trajectories.csv")  # written beside its record
        if rows_file.is_file():
            study.trajectories[(arm, seed, cfg["split"], depth, breadth)] = _trajectory_columns(rows_file)
    frontier = run / "frontier" / "frontier.json"
    if frontier.is_file():
        study.frontiers[(arm, seed)] = json.loads(frontier.read_text())["points"]
    wall = run / "train_wall_s.txt"
    if wall.is_file():
        study.train_wall_s[(arm, seed)] = float(wall.read_text())


def load_study(out: Path, data: Path | None = None) -> Study:
    """Every run under `out` (`<arm>/seed<s>/`), and the difficulty of each split of `data`
    (default `<out>/data/sudoku-rounds`)."""
    study = Study([], {}, {}, {})
    for run in sorted(p for p in out.glob("*/seed*") if p.is_dir() and RUN_DIR.search(p.name)):
        _read_run(run, run.parent.name, int(RUN_DIR.search(run.name).group(1)), study)
    if not study.records:
        raise FileNotFoundError(f"{out}: no evaluation records under <arm>/seed<s>/eval_*/ (run scripts/study.sh)")
    data = out / "data" / "sudoku-rounds" if data is None else data
    for split in sorted({r.split for r in study.records}):
        study.difficulty[split] = load_difficulty(data / split)
    return study


def mean_sd(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counted half; NaN without both."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # 1-based rank of each distinct value's last occurrence
    ranks = (last - (counts - 1) / 2)[inverse]  # tied scores share their mean rank
    return float((ranks[positive].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def pooled_trajectories(study: Study, arm: str, split: str, depth: int, breadth: int = 1,
                        seeds: list[int] | None = None) -> dict[str, np.ndarray] | None:
    """Per-trajectory columns of `seeds` (default: all) of `arm`, concatenated; None if there are none."""
    chosen = study.seeds(arm) if seeds is None else seeds
    parts = [p for s in chosen if (p := study.trajectories.get((arm, s, split, depth, breadth)))]
    if not parts:
        return None
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def exact_by_rounds(study: Study, arm: str, split: str, depth: int) -> dict[int, float]:
    """Exact accuracy (B = 1, seeds pooled) per number of rounds of the puzzles of `split`."""
    pooled = pooled_trajectories(study, arm, split, depth)
    if pooled is None:
        return {}
    rounds = study.difficulty[split][pooled["puzzle"]]
    return {int(r): float(pooled["exact"][rounds == r].mean()) for r in np.unique(rounds)}
