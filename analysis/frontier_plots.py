"""The frontier's two figures: accuracy against compute, and how many segments each puzzle used."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.frontier_point import FrontierPoint  # noqa: E402
from evaluation.labels import place_labels  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def _coords(points: list[FrontierPoint], cost: str) -> list[tuple[float, float]]:
    return [(getattr(p, cost), 100 * p.exact_accuracy) for p in points]


def frontier_figure(points: list[FrontierPoint], title: str = "") -> plt.Figure:
    """Exact accuracy vs segments per puzzle (log 2) and vs wall time: fixed depths as a line, elastic as dots.

    Laid out before the labels go on, so that their placement (evaluation/labels.py) is the one saved.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6 if title else 4.2))
    if title:
        fig.suptitle(title, fontsize=10)
    fixed = sorted((p for p in points if p.kind == "fixed"), key=lambda p: p.depth)
    elastic = [p for p in points if p.kind == "elastic"]
    costs = (("segments_per_puzzle", "segments per puzzle"), ("wall_s", "wall time (s)"))
    for ax, (cost, name) in zip(axes, costs, strict=True):
        ax.plot([getattr(p, cost) for p in fixed], [100 * p.exact_accuracy for p in fixed], marker="o",
                color="tab:blue", label="fixed depth D")
        ax.scatter([getattr(p, cost) for p in elastic], [100 * p.exact_accuracy for p in elastic], marker="s",
                   color="tab:orange", zorder=3, label="elastic (rule)")
        ax.set_xscale("log", base=2)
        ax.margins(x=0.08, y=0.12)  # room for the labels of the outermost points
        ax.set(xlabel=name, ylabel="exact accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].set_title("accuracy vs compute")
    axes[1].set_title("accuracy vs wall time")
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    for ax, (cost, _) in zip(axes, costs, strict=True):
        for group, others, colour in ((fixed, elastic, "tab:blue"), (elastic, fixed, "tab:orange")):
            place_labels(ax, _coords(group, cost), [p.label for p in group], avoid=_coords(others, cost), fontsize=7,
                         color=colour)
    return fig


def plot_frontier(points: list[FrontierPoint], path: Path, title: str = "") -> Path:
    """The frontier figure (`frontier_figure`) as a PNG; `title` names the checkpoint, architecture and data."""
    return _save(frontier_figure(points, title), path)


def plot_steps(points: list[FrontierPoint], path: Path, title: str = "") -> Path:
    """One histogram per elastic setting: segments used per puzzle (a fixed depth would be one bar)."""
    elastic = [p for p in points if p.kind == "elastic"] or points
    cols = min(3, len(elastic))
    rows = math.ceil(len(elastic) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 2.8 * rows), squeeze=False)
    for ax, p in zip(axes.flat, elastic, strict=False):
        top = max(p.puzzle_segments, default=1)
        ax.hist(p.puzzle_segments, bins=[b - 0.5 for b in range(top + 2)], color="tab:orange", edgecolor="white")
        ax.set_title(f"{p.label} (D_max {p.depth}): mean {p.segments_per_puzzle:.2f}", fontsize=9)
        ax.set(xlabel="segments per puzzle", ylabel="puzzles")
    for ax in list(axes.flat)[len(elastic):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)
