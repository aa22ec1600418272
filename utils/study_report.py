"""Tables and plots of a multi-seed, multi-arm study from `evaluate.py` records.

`scripts/mini_study.sh` leaves `<out>/<arm>/seed<s>/` with `train_wall_s.txt` and one folder
per evaluation (`eval_indist`: the test mazes, `eval_long`: the longest paths, `eval_breadth`)
of JSON records and per-trajectory CSVs. This module reads them back, averages over seeds (mean and
sample standard deviation; every seed's value is listed too) and writes the four results of
docs/results/mini_study.md: (a) accuracy at the trained depth, (b) accuracy against depth,
(c) breadth selection rules, (d) final residual against correctness.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from dataset.format import load_metadata, load_set  # noqa: E402
from dataset.maze import CHARSET  # noqa: E402

RUN_DIR = re.compile(r"seed(\d+)$")
COLOURS = {"eqr": "tab:blue", "trm": "tab:orange"}
PATH_TOKEN = 1 + CHARSET.index("o")
LENGTH_BINS = [(2, 8), (9, 16), (17, 24), (25, 30)]
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
    sources: dict[str, tuple[str, int]]  # evaluation -> (dataset directory, global batch size)

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
            sources[path.parent.name] = (cfg["dataset"][0], cfg["global_batch_size"])
        for path in sorted(run.glob("eval_*/*_B1_trajectories.csv")):
            depth = int(re.search(r"_D(\d+)_B1_trajectories", path.name).group(1))
            with path.open() as handle:
                rows = list(csv.DictReader(handle))
            columns = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]} if rows else {}
            trajectories[(arm, seed, path.parent.name, depth)] = columns
    if not records:
        raise FileNotFoundError(f"{out}: no evaluation records under <arm>/seed<s>/eval_*/ (run scripts/mini_study.sh)")
    return Study(records, walls, trajectories, sources)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    mean, sd = _mean_sd(values)
    seeds = ", ".join(f"{100 * v:.1f}" for v in values)
    return f"{100 * mean:.1f} ± {100 * sd:.1f} ({seeds})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counted half; NaN without both."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # 1-based rank of each distinct value's last occurrence
    ranks = (last - (counts - 1) / 2)[inverse]  # tied scores share their mean rank
    return float((ranks[positive].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def trained_depth_table(study: Study, depth: int) -> str:
    rows = []
    for arm in study.arms:
        rows.append([arm, _cell(study.values(arm, "eval_indist", depth, 1, "exact_accuracy")),
                     _cell(study.values(arm, "eval_indist", depth, 1, "accuracy")),
                     _cell(study.values(arm, "eval_long", depth, 1, "exact_accuracy"))])
    return _table(["arm", f"exact acc, test mazes, D={depth}", "token acc, test mazes",
                   f"exact acc, longest paths, D={depth}"], rows)


def depth_table(study: Study, evaluation: str, trained: int) -> str:
    depths = study.depths(evaluation)
    header = ["arm"] + [f"D={d}" + (f" ({d // trained}x)" if d >= trained and d % trained == 0 else "")
                        for d in depths]
    rows = [[arm] + [_cell(study.values(arm, evaluation, d, 1, "exact_accuracy")) for d in depths]
            for arm in study.arms]
    return _table(header, rows)


BREADTH_KEYS = [
    ("different_init/avg_pass_rate", "mean over restarts"),
    ("majority_vote/exact_accuracy", "majority vote"),
    ("convergence_top_k/exact_accuracy", "convergence top-1"),
    ("different_init/any_correct", "any correct"),
]


def breadth_table(study: Study, depth: int) -> str:
    rows = []
    for arm in study.arms:
        rows.append([arm, "1", _cell(study.values(arm, "eval_indist", depth, 1, "exact_accuracy"))] + ["-"] * 3)
        for breadth in sorted({r.breadth for r in study.records if r.arm == arm and r.evaluation == "eval_breadth"}):
            rows.append([arm, str(breadth)] + [_cell(study.values(arm, "eval_breadth", depth, breadth, key))
                                              for key, _ in BREADTH_KEYS])
    return _table(["arm", "B"] + [label for _, label in BREADTH_KEYS], rows)


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


def _percent_exact(exact: np.ndarray) -> str:
    return f"{100 * exact.mean():.1f}" if len(exact) else "-"


def _median(values: np.ndarray) -> str:
    return f"{np.median(values):.3g}" if len(values) else "-"


def residual_table(study: Study, evaluation: str, depth: int) -> str:
    """Per arm and seed, then seeds pooled: how well a low final residual picks out the exact answers."""
    rows = []
    for arm in study.arms:
        for label, seeds in [(str(s), [s]) for s in study.seeds(arm)] + [("all", None)]:
            pooled = pooled_trajectories(study, arm, evaluation, depth, seeds)
            if pooled is None:
                continue
            residual, exact = pooled["final_residual"], pooled["exact"]
            low = residual <= np.median(residual)
            rows.append([arm, label, str(len(exact)), _percent_exact(exact), _percent_exact(exact[low]),
                         _percent_exact(exact[~low]), _median(residual[exact]), _median(residual[~exact]),
                         f"{auroc(-residual, exact):.3f}"])
    return _table(["arm", "seed", "trajectories", "exact %", "exact %, lower-residual half", "exact %, upper half",
                   "median residual, correct", "median residual, wrong", "AUROC (low residual -> correct)"], rows)


def path_lengths(data_dir: str | Path) -> np.ndarray:
    """Moves of each test maze's shortest path: the path cells between start and goal, plus one."""
    split = Path(data_dir) / "test"
    return (np.asarray(load_set(split, "all", load_metadata(split)).labels) == PATH_TOKEN).sum(1) + 1


def length_table(study: Study, evaluation: str, depths: list[int]) -> str:
    """Exact accuracy by shortest-path length (seeds pooled): which mazes the extra depth solves."""
    data_dir, batch_size = study.sources[evaluation]
    lengths = path_lengths(data_dir)
    rows = []
    for arm in study.arms:
        for depth in depths:
            pooled = pooled_trajectories(study, arm, evaluation, depth)
            if pooled is None:
                continue
            if np.any(pooled["rank"] != 0):
                raise ValueError(f"{evaluation}: per-trajectory rows of several ranks; run the study in one process")
            moves = lengths[(pooled["batch"] * batch_size + pooled["puzzle"]).astype(int)]
            cells = [_percent_exact(pooled["exact"][(moves >= lo) & (moves <= hi)]) for lo, hi in LENGTH_BINS]
            rows.append([arm, str(depth)] + cells)
    counts = [str(int(((lengths >= lo) & (lengths <= hi)).sum())) for lo, hi in LENGTH_BINS]
    header = ["arm", "D"] + [f"{lo}-{hi} moves ({n} mazes)" for (lo, hi), n in zip(LENGTH_BINS, counts, strict=True)]
    return _table(header, rows)


def wall_table(study: Study) -> str:
    rows = []
    for arm in study.arms:
        for seed in study.seeds(arm):
            evals = {(r.evaluation, r.breadth): r.wall_s for r in study.records if (r.arm, r.seed) == (arm, seed)}
            train = study.train_wall_s.get((arm, seed))
            rows.append([arm, str(seed), "-" if train is None else f"{train / 60:.1f}",
                         f"{sum(evals.values()) / 60:.1f}"])
    return _table(["arm", "seed", "training (min)", "evaluation (min)"], rows)


def _finish(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_trained_depth(study: Study, depth: int, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, (evaluation, _) in enumerate(EVALUATIONS):
        for j, arm in enumerate(study.arms):
            values = study.values(arm, evaluation, depth, 1, "exact_accuracy")
            x = i + (j - 0.5) * 0.35
            mean, sd = _mean_sd(values)
            ax.bar(x, 100 * mean, width=0.33, yerr=100 * sd, color=COLOURS.get(arm), capsize=4,
                   label=arm if i == 0 else None)
            ax.scatter([x] * len(values), [100 * v for v in values], color="black", s=12, zorder=3)
    ax.set_xticks(range(len(EVALUATIONS)), [label for _, label in EVALUATIONS])
    ax.set_ylabel("exact accuracy (%)")
    ax.set_title(f"(a) at the trained depth D={depth}: mean ± sd, dots = seeds")
    ax.legend()
    return _finish(fig, path)


def plot_depth(study: Study, trained: int, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (evaluation, label) in zip(axes, EVALUATIONS, strict=True):
        depths = study.depths(evaluation)
        for arm in study.arms:
            curves = [study.values(arm, evaluation, d, 1, "exact_accuracy") for d in depths]
            for i in range(min(map(len, curves), default=0)):
                ax.plot(depths, [100 * c[i] for c in curves], color=COLOURS.get(arm), alpha=0.3, lw=1)
            ax.plot(depths, [100 * _mean_sd(c)[0] for c in curves], color=COLOURS.get(arm), marker="o", lw=2,
                    label=f"{arm} (mean; thin: seeds)")
        ax.axvline(trained, color="grey", ls=":", label=f"trained depth {trained}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("depth D (segments)")
        ax.set_ylabel("exact accuracy (%)")
        ax.set_title(f"(b) {label}")
        ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_breadth(study: Study, depth: int, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    arm = "eqr" if "eqr" in study.arms else study.arms[0]
    breadths = sorted({r.breadth for r in study.records if r.arm == arm and r.evaluation == "eval_breadth"})
    one = _mean_sd(study.values(arm, "eval_indist", depth, 1, "exact_accuracy"))
    ax.axhline(100 * one[0], color="grey", ls="--", label="B=1")
    for i, (key, label) in enumerate(BREADTH_KEYS):
        means = [_mean_sd(study.values(arm, "eval_breadth", depth, b, key)) for b in breadths]
        x = np.arange(len(breadths)) + (i - 1.5) * 0.2
        ax.bar(x, [100 * m for m, _ in means], width=0.19, yerr=[100 * s for _, s in means], capsize=3, label=label)
    ax.set_xticks(range(len(breadths)), [f"B={b}" for b in breadths])
    ax.set_ylabel("exact accuracy (%), test mazes")
    ax.set_title(f"(c) {arm}: breadth at D={depth}, mean ± sd over seeds")
    ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_residual(study: Study, evaluation: str, depth: int, path: Path) -> Path:
    fig, axes = plt.subplots(1, len(study.arms), figsize=(5 * len(study.arms), 3.8), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, arm in zip(axes[0], study.arms, strict=True):
        pooled = pooled_trajectories(study, arm, evaluation, depth)
        if pooled is None:
            continue
        residual, accuracy, exact = pooled["final_residual"], pooled["accuracy"], pooled["exact"]
        jitter = rng.uniform(-0.004, 0.004, len(accuracy))
        for mask, colour, label in [(exact, "tab:green", "exact"), (~exact, "tab:red", "wrong")]:
            ax.scatter(np.maximum(residual[mask], 1e-8), 100 * (accuracy[mask] + jitter[mask]), s=6, alpha=0.4,
                       color=colour, label=f"{label} ({mask.sum()})")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("final residual ||state_D - state_(D-1)||")
        ax.set_ylabel("token accuracy (%)")
        ax.set_title(f"(d) {arm}, {dict(EVALUATIONS)[evaluation]}, D={depth}, all seeds")
        ax.legend(fontsize=8)
    return _finish(fig, path)


def write_report(study: Study, report: Path, trained_depth: int, breadth_depth: int,
                 residual_depth: int) -> list[Path]:
    """`tables.md` with the four results and wall times, and one PNG per result."""
    report.mkdir(parents=True, exist_ok=True)
    sections = [
        ("(a) Exact accuracy at the trained depth (%; mean ± sd, then each seed)",
         trained_depth_table(study, trained_depth)),
        ("(b) Exact accuracy as depth grows, test mazes (%)", depth_table(study, "eval_indist", trained_depth)),
        ("(b) Exact accuracy as depth grows, longest paths (%)", depth_table(study, "eval_long", trained_depth)),
        (f"(b) Exact accuracy by shortest-path length, test mazes, D={trained_depth} and D={residual_depth} "
         "(%, seeds pooled)", length_table(study, "eval_indist", [trained_depth, residual_depth])),
        (f"(c) Breadth on the test mazes at D={breadth_depth} (%)", breadth_table(study, breadth_depth)),
        (f"(d) Final residual against correctness, test mazes, D={residual_depth}, B=1",
         residual_table(study, "eval_indist", residual_depth)),
        (f"(d) Final residual against correctness, longest paths, D={residual_depth}, B=1",
         residual_table(study, "eval_long", residual_depth)),
        ("Wall time per run (2 CPU cores unless stated)", wall_table(study)),
    ]
    tables = report / "tables.md"
    tables.write_text("\n\n".join(f"### {title}\n\n{table}" for title, table in sections) + "\n")
    return [tables,
            plot_trained_depth(study, trained_depth, report / "mini_study_a_trained_depth.png"),
            plot_depth(study, trained_depth, report / "mini_study_b_depth.png"),
            plot_breadth(study, breadth_depth, report / "mini_study_c_breadth.png"),
            plot_residual(study, "eval_indist", residual_depth, report / "mini_study_d_residual.png")]
