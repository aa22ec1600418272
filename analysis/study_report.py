"""The report of a multi-seed, multi-arm study (analysis/study_data.py reads it back).

Averages over seeds (mean and sample standard deviation; every seed's value is listed too) and
writes the four results of docs/results/mini_study.md: (a) accuracy at the trained depth, (b)
accuracy against depth, (c) breadth selection rules, (d) final residual against correctness,
as markdown tables and the plots of analysis/study_plots.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.study_data import (
    BREADTH_KEYS,
    LENGTH_BINS,
    Study,
    auroc,
    mean_sd,
    path_lengths,
    pooled_trajectories,
)
from analysis.study_plots import plot_breadth, plot_depth, plot_residual, plot_trained_depth


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    mean, sd = mean_sd(values)
    seeds = ", ".join(f"{100 * v:.1f}" for v in values)
    return f"{100 * mean:.1f} ± {100 * sd:.1f} ({seeds})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


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




def breadth_table(study: Study, depth: int) -> str:
    rows = []
    for arm in study.arms:
        rows.append([arm, "1", _cell(study.values(arm, "eval_indist", depth, 1, "exact_accuracy"))] + ["-"] * 3)
        for breadth in sorted({r.breadth for r in study.records if r.arm == arm and r.evaluation == "eval_breadth"}):
            rows.append([arm, str(breadth)] + [_cell(study.values(arm, "eval_breadth", depth, breadth, key))
                                              for key, _ in BREADTH_KEYS])
    return _table(["arm", "B"] + [label for _, label in BREADTH_KEYS], rows)


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


def length_table(study: Study, evaluation: str, depths: list[int]) -> str:
    """Exact accuracy by shortest-path length (seeds pooled): which mazes the extra depth solves."""
    lengths = path_lengths(study.sources[evaluation])
    rows = []
    for arm in study.arms:
        for depth in depths:
            pooled = pooled_trajectories(study, arm, evaluation, depth)
            if pooled is None:
                continue
            moves = lengths[pooled["puzzle"].astype(int)]  # the puzzle's index in the split, on any rank
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
