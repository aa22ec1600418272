"""The report of `scripts/study.sh`: tables (markdown) and plots of a multi-arm, multi-seed study.

`write_report` (`python scripts/study_report.py OUT --report DIR`) writes `DIR/tables.md` and the
PNGs of analysis/study_plots.py. A cell is the mean ± sample standard deviation over seeds, then every
seed's value in seed order; accuracies are exact (the whole grid right), in percent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.study_data import (
    ARM_LABELS,
    SELECTIONS,
    SPLIT_LABELS,
    Study,
    auroc,
    exact_by_rounds,
    mean_sd,
    pooled_trajectories,
)
from analysis.study_plots import plot_breadth, plot_depth, plot_difficulty, plot_frontier, plot_residual
from utils.atomic import atomic_file

TABLE_DEPTHS = (16, 64, 256, 1024)


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    mean, sd = mean_sd(values)
    seeds = ", ".join(f"{100 * v:.1f}" for v in values)
    return f"{100 * mean:.1f} ± {100 * sd:.1f} ({seeds})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _label(arm: str) -> str:
    return ARM_LABELS.get(arm, arm)


def _best_depth(study: Study, arm: str, split: str) -> list[float]:
    """Per seed, the best B = 1 accuracy over every evaluated depth (an oracle choice of D, as the paper's best)."""
    per_depth = [study.values(arm, split, d, 1, "exact_accuracy") for d in study.depths(split, arm=arm)]
    seeds = min(map(len, per_depth), default=0)
    return [max(values[i] for values in per_depth) for i in range(seeds)]


def headline_table(study: Study, split: str) -> str:
    """The paper's Table 1 shape: B = 1 at growing depth, the best depth, breadth 16 with top-1 convergence."""
    depths = [d for d in TABLE_DEPTHS if d in study.depths(split)]
    breadth_depths = study.depths(split, breadth=16)
    rows = []
    for arm in study.arms:
        row = [_label(arm)]
        row += [_cell(study.values(arm, split, d, 1, "exact_accuracy")) for d in depths]
        row.append(_cell(_best_depth(study, arm, split)))
        for depth in breadth_depths:
            row.append(_cell(study.values(arm, split, depth, 16, "convergence_top_k/exact_accuracy")))
            row.append(_cell(study.values(arm, split, depth, 16, "different_init/any_correct")))
        rows.append(row)
    header = ["arm"] + [f"D{d}" for d in depths] + ["best D, B=1"]
    for depth in breadth_depths:
        header += [f"D{depth} x B16, top-1 conv.", f"D{depth} x B16, any correct"]
    return _table(header, rows)


def depth_table(study: Study, split: str) -> str:
    depths = study.depths(split)
    rows = [[_label(arm)] + [_cell(study.values(arm, split, d, 1, "exact_accuracy")) for d in depths]
            for arm in study.arms]
    return _table(["arm"] + [f"D={d}" for d in depths], rows)


def breadth_table(study: Study, split: str) -> str:
    """Every breadth pass of every arm that has one: the four ways of reading B restarts, and B = 1 beside them."""
    rows = []
    for arm in study.arms:
        for depth in study.depths(split, breadth=max(study.breadths(split, arm), default=0)):
            rows.append([_label(arm), str(depth), "1", _cell(study.values(arm, split, depth, 1, "exact_accuracy"))]
                        + ["-"] * len(SELECTIONS))
            for breadth in study.breadths(split, arm):
                rows.append([_label(arm), str(depth), str(breadth), "-"]
                            + [_cell(study.values(arm, split, depth, breadth, key)) for key, _ in SELECTIONS])
    return _table(["arm", "D", "B", "B=1"] + [label for _, label in SELECTIONS], rows)


def difficulty_table(study: Study, split: str, depths: list[int]) -> str:
    """Exact accuracy per number of rounds (B = 1, seeds pooled): which puzzles the extra depth solves."""
    rounds, counts = np.unique(study.difficulty[split], return_counts=True)
    rows = []
    for arm in study.arms:
        for depth in depths:
            by = exact_by_rounds(study, arm, split, depth)
            if by:
                rows.append([_label(arm), str(depth)] + [f"{100 * by[int(r)]:.1f}" if int(r) in by else "-"
                                                          for r in rounds])
    header = ["arm", "D"] + [f"{r} rounds ({n})" for r, n in zip(rounds, counts, strict=True)]
    return _table(header, rows)


def frontier_table(study: Study) -> str:
    """Per arm: the best fixed depth (its accuracy and segments), and each elastic rule against it."""
    rows = []
    for arm in study.arms:
        seeds = sorted(s for a, s in study.frontiers if a == arm)
        if not seeds:
            continue
        per_seed = [study.frontiers[(arm, s)] for s in seeds]
        best = []
        for points in per_seed:
            fixed = [p for p in points if p["kind"] == "fixed"]
            top = max(p["exact_accuracy"] for p in fixed)
            best.append(min((p for p in fixed if p["exact_accuracy"] == top), key=lambda p: p["depth"]))
        rows.append([_label(arm), "best fixed depth", ", ".join(str(p["depth"]) for p in best),
                     _cell([p["exact_accuracy"] for p in best]), _segments([p["segments_per_puzzle"] for p in best]),
                     "-", "-"])
        for label in [p["label"] for p in per_seed[0] if p["kind"] == "elastic"]:
            points = [next(p for p in pts if p["label"] == label) for pts in per_seed]
            delta = [100 * (p["exact_accuracy"] - b["exact_accuracy"]) for p, b in zip(points, best, strict=True)]
            ratio = [b["segments_per_puzzle"] / p["segments_per_puzzle"] for p, b in zip(points, best, strict=True)]
            rows.append([_label(arm), f"elastic {label}".replace("|", r"\|"), str(points[0]["depth"]),
                         _cell([p["exact_accuracy"] for p in points]),
                         _segments([p["segments_per_puzzle"] for p in points]),
                         ", ".join(f"{d:+.1f}" for d in delta), ", ".join(f"{r:.1f}x" for r in ratio)])
    return _table(["arm", "setting", "D / D_max (per seed)", "exact %", "segments per puzzle",
                   "Δ vs best fixed (points, per seed)", "segments saved vs best fixed (per seed)"], rows)


def _segments(values: list[float]) -> str:
    mean, sd = mean_sd(values)
    return f"{mean:.1f} ± {sd:.1f}"


def residual_table(study: Study, split: str) -> str:
    """Seeds pooled, B = 1, each arm at its largest depth: how well a low final residual picks out the
    exact answers."""
    rows = []
    for arm in study.arms:
        depth = max(study.depths(split, arm=arm), default=0)
        pooled = pooled_trajectories(study, arm, split, depth)
        if pooled is None:
            continue
        residual, exact = pooled["final_residual"], pooled["exact"]
        rows.append([_label(arm), str(depth), str(len(exact)), f"{100 * exact.mean():.1f}",
                     f"{np.median(residual[exact]):.3g}" if exact.any() else "-",
                     f"{np.median(residual[~exact]):.3g}" if (~exact).any() else "-",
                     f"{auroc(-residual, exact):.3f}"])
    return _table(["arm", "D", "trajectories", "exact %", "median residual, correct", "median residual, wrong",
                   "AUROC (low residual -> correct)"], rows)


def wall_table(study: Study) -> str:
    rows = []
    for arm in study.arms:
        for seed in study.seeds(arm):
            # one pass per evaluation folder and breadth: its depths are read from the one pass
            passes = {(r.evaluation, r.breadth): r.wall_s for r in study.records if (r.arm, r.seed) == (arm, seed)}
            frontier = sum(p["wall_s"] for p in study.frontiers.get((arm, seed), []))
            train = study.train_wall_s.get((arm, seed))
            rows.append([_label(arm), str(seed), "-" if train is None else f"{train / 60:.1f}",
                         f"{sum(passes.values()) / 60:.1f}", f"{frontier / 60:.1f}"])
    return _table(["arm", "seed", "training (min)", "evaluation passes (min)", "frontier (min)"], rows)


def _sections(study: Study) -> list[tuple[str, str]]:
    sections = []
    for split in ("test", "hard_test"):
        if split not in study.difficulty:
            continue
        name = SPLIT_LABELS[split]
        depths = [d for d in (4, 16, 64, 256, 1024) if d in study.depths(split)]
        sections += [
            (f"Headline, {name}: exact accuracy %", headline_table(study, split)),
            (f"Depth, {name}: exact accuracy %, B = 1", depth_table(study, split)),
            (f"Breadth, {name}: exact accuracy %", breadth_table(study, split)) if any(
                study.breadths(split, arm) for arm in study.arms) else None,
            (f"Difficulty, {name}: exact accuracy % per rounds of singles, B = 1, seeds pooled",
             difficulty_table(study, split, depths)),
            (f"Final residual against correctness, {name}, each arm's largest D, B = 1",
             residual_table(study, split)),
        ]
    if study.frontiers:
        sections.append(("Elastic exit against fixed depth, test split, B = 1", frontier_table(study)))
    sections.append(("Wall time per run", wall_table(study)))
    return [section for section in sections if section is not None]


def write_report(study: Study, report: Path) -> list[Path]:
    """`tables.md` and the plots; returns the files written."""
    report.mkdir(parents=True, exist_ok=True)
    tables = report / "tables.md"
    with atomic_file(tables, "w") as handle:
        handle.write("\n\n".join(f"### {title}\n\n{table}" for title, table in _sections(study)) + "\n")
    paths = [tables, plot_depth(study, report / "study_depth.png")]
    paths += [p for p in (plot_breadth(study, report / "study_breadth.png"),
                          plot_difficulty(study, report / "study_difficulty.png"),
                          plot_frontier(study, report / "study_frontier.png"),
                          plot_residual(study, report / "study_residual.png")) if p is not None]
    return paths
