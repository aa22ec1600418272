"""A multi-seed, multi-arm study read back from `evaluate.py` records, and the statistics its report uses.

`scripts/mini_study.sh` leaves `<out>/<arm>/seed<s>/` with `train_wall_s.txt` and one folder per
evaluation (`eval_indist`: the test mazes, `eval_long`: the longest paths, `eval_breadth`) of JSON
records and per-trajectory CSVs; `load_study` reads them into a `Study`.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataset.format import load_metadata, load_set
from dataset.maze import PATH
from evaluation.accumulator import TEXT_COLUMNS

RUN_DIR = re.compile(r"seed(\d+)$")
COLOURS = {"eqr": "tab:blue", "trm": "tab:orange"}
LENGTH_BINS = [(2, 8), (9, 16), (17, 24), (25, 30)]
BREADTH_KEYS = [
    ("different_init/avg_pass_rate", "mean over restarts"),
    ("majority_vote/exact_accuracy", "majority vote"),
    ("convergence_top_k/exact_accuracy", "convergence top-1"),
    ("different_init/any_correct", "any correct"),
]
EVALUATIONS = [("eval_indist", "test mazes (2-30 moves)"), ("eval_long", "longest paths (24-30 moves)")]


@dataclass(frozen=True)
class Record:
    arm: str
    seed: int
    evaluation: str  # eval_indist | eval_long | eval_breadth
    depth: int
    breadth: int
    metrics: dict[str, float]
    wall_s: float  # wall time of the evaluation pass this record came from


@dataclass
class Study:
    records: list[Record]
    train_wall_s: dict[tuple[str, int], float]
    trajectories: dict[tuple[str, int, str, int], dict[str, np.ndarray]]  # (arm, seed, evaluation, depth)
    sources: dict[str, str]  # evaluation -> its dataset directory

    @property
    def arms(self) -> list[str]:
        return sorted({r.arm for r in self.records})

    def seeds(self, arm: str) -> list[int]:
        return sorted({r.seed for r in self.records if r.arm == arm})

    def values(self, arm: str, evaluation: str, depth: int, breadth: int, key: str) -> list[float]:
        """One value per seed (seed order); seeds without the record or the key are skipped."""
        found = {r.seed: r.metrics[key] for r in self.records
                 if (r.arm, r.evaluation, r.depth, r.breadth) == (arm, evaluation, depth, breadth) and key in r.metrics}
        return [found[s] for s in sorted(found)]

    def depths(self, evaluation: str) -> list[int]:
        return sorted({r.depth for r in self.records if r.evaluation == evaluation})


def _trajectory_columns(path: Path) -> dict[str, np.ndarray]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    if rows and "batch" in rows[0]:
        raise ValueError(f"{path}: written by an earlier evaluate.py (puzzles numbered per batch); "
                         "rerun its evaluation")
    return {k: np.array([r[k] if k in TEXT_COLUMNS else float(r[k]) for r in rows]) for k in rows[0]} if rows else {}


def load_study(out: Path) -> Study:
    """Read every `<arm>/seed<s>/eval_*/*.json` and `*_trajectories.csv` under `out`."""
    records, walls, trajectories, sources = [], {}, {}, {}
    for run in sorted(p for p in out.glob("*/seed*") if p.is_dir() and RUN_DIR.search(p.name)):
        arm, seed = run.parent.name, int(RUN_DIR.search(run.name).group(1))
        wall = run / "train_wall_s.txt"
        if wall.is_file():
            walls[(arm, seed)] = float(wall.read_text())
        for path in sorted(run.glob("eval_*/*.json")):
            record = json.loads(path.read_text())
            cfg = record["config"]
            records.append(Record(arm, seed, path.parent.name, cfg["halt_max_steps"], cfg["different_init"],
                                  record["metrics"], cfg["pass_wall_s"]))
            sources[path.parent.name] = cfg["dataset"][0]
            rows_file = path.with_name(f"{path.stem}_trajectories.csv")  # written beside its record
            if cfg["different_init"] == 1 and rows_file.is_file():
                trajectories[(arm, seed, path.parent.name, cfg["halt_max_steps"])] = _trajectory_columns(rows_file)
    if not records:
        raise FileNotFoundError(f"{out}: no evaluation records under <arm>/seed<s>/eval_*/ (run scripts/mini_study.sh)")
    return Study(records, walls, trajectories, sources)


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


def pooled_trajectories(study: Study, arm: str, evaluation: str, depth: int,
                        seeds: list[int] | None = None) -> dict[str, np.ndarray] | None:
    """Per-trajectory columns of `seeds` (default: all) of `arm` at `depth`, concatenated; None if there are none."""
    chosen = study.seeds(arm) if seeds is None else seeds
    parts = [p for s in chosen if (p := study.trajectories.get((arm, s, evaluation, depth)))]
    if not parts:
        return None
    pooled = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    pooled["exact"] = pooled["exact"].astype(bool)
    return pooled


def path_lengths(data_dir: str | Path) -> np.ndarray:
    """Moves of each test maze's shortest path: the path cells between start and goal, plus one."""
    split = Path(data_dir) / "test"
    return (np.asarray(load_set(split, "all", load_metadata(split)).labels) == PATH).sum(1) + 1
