"""The study's plots (docs/results/study/*.png), one function each; a plot without data returns None."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from analysis.study_data import (  # noqa: E402
    ARM_LABELS,
    COLOURS,
    SELECTIONS,
    SPLIT_LABELS,
    Study,
    exact_by_rounds,
    mean_sd,
    pooled_trajectories,
)

TRAINED_DEPTH = 16


def _finish(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _splits(study: Study) -> list[str]:
    return [s for s in ("test", "hard_test") if s in study.difficulty]


def _log2_axis(ax: plt.Axes, label: str) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel(label)


def plot_depth(study: Study, path: Path) -> Path:
    """Exact accuracy against depth D (B = 1) per arm: mean with a band of ± sd, thin lines per seed."""
    splits = _splits(study)
    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 4), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        for arm in study.arms:
            depths = study.depths(split, arm=arm)
            curves = [study.values(arm, split, d, 1, "exact_accuracy") for d in depths]
            if len(depths) == 1:  # the feedforward arm: one pass, drawn as a level
                ax.axhline(100 * mean_sd(curves[0])[0], color=COLOURS.get(arm), ls="--", label=ARM_LABELS.get(arm, arm))
                continue
            stats = np.array([mean_sd(c) for c in curves]) * 100
            ax.plot(depths, stats[:, 0], color=COLOURS.get(arm), marker="o", ms=3, lw=2, label=ARM_LABELS.get(arm, arm))
            ax.fill_between(depths, stats[:, 0] - stats[:, 1], stats[:, 0] + stats[:, 1], color=COLOURS.get(arm),
                            alpha=0.15)
        ax.axvline(TRAINED_DEPTH, color="grey", ls=":", label=f"trained depth {TRAINED_DEPTH}")
        _log2_axis(ax, "depth D (segments)")
        ax.set_ylabel("exact accuracy (%)")
        ax.set_title(SPLIT_LABELS[split], fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle("Depth: B = 1, mean ± sd over seeds")
    return _finish(fig, path)


def plot_breadth(study: Study, path: Path) -> Path | None:
    """EqR: accuracy against breadth B at each breadth depth, per selection rule (mean over seeds)."""
    arm = "eqr" if "eqr" in study.arms else next((a for a in study.arms if study.breadths("test", a)), None)
    splits = [s for s in _splits(study) if arm is not None and study.breadths(s, arm)]
    if not splits:
        return None
    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 4), squeeze=False)
    styles = {"mean over restarts": ":", "majority vote": "--", "top-1 convergence": "-", "any correct": "-."}
    for ax, split in zip(axes[0], splits, strict=True):
        breadths = study.breadths(split, arm)
        for i, depth in enumerate(study.depths(split, breadth=max(breadths))):
            colour = plt.get_cmap("viridis")(i / max(1, len(study.depths(split, breadth=max(breadths))) - 1))
            one = mean_sd(study.values(arm, split, depth, 1, "exact_accuracy"))[0]
            for key, label in SELECTIONS:
                ys = [one] + [mean_sd(study.values(arm, split, depth, b, key))[0] for b in breadths]
                ax.plot([1, *breadths], 100 * np.array(ys), color=colour, ls=styles[label], marker="o", ms=3,
                        label=f"D={depth}, {label}")
        _log2_axis(ax, "breadth B (restarts)")
        ax.set_ylabel("exact accuracy (%)")
        ax.set_title(f"{ARM_LABELS.get(arm, arm)}: {SPLIT_LABELS[split]}", fontsize=10)
        ax.legend(fontsize=6, ncol=2)
    return _finish(fig, path)


def plot_difficulty(study: Study, path: Path) -> Path | None:
    """Exact accuracy per rounds of singles, one line per depth, for the best-known arm (EqR) and TRM."""
    arms = [a for a in ("eqr", "trm") if a in study.arms]
    if not arms:
        return None
    fig, axes = plt.subplots(1, len(arms), figsize=(5.5 * len(arms), 4), squeeze=False)
    for ax, arm in zip(axes[0], arms, strict=True):
        depths = [d for d in (1, 4, 16, 64, 256, 1024) if d in study.depths("test", arm=arm)]
        for i, depth in enumerate(depths):
            colour = plt.get_cmap("viridis")(i / max(1, len(depths) - 1))
            for split, marker in (("test", "o"), ("hard_test", "s")):
                by = exact_by_rounds(study, arm, split, depth) if split in study.difficulty else {}
                if by:
                    ax.plot(list(by), [100 * v for v in by.values()], color=colour, marker=marker, ms=3,
                            label=f"D={depth}" if split == "test" else None)
        ax.set_xlabel("rounds of simultaneous singles (circles: test, squares: harder split)")
        ax.set_ylabel("exact accuracy (%), seeds pooled")
        ax.set_title(ARM_LABELS.get(arm, arm))
        ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_frontier(study: Study, path: Path) -> Path | None:
    """Accuracy against segments per puzzle: fixed depths (line) and elastic rules (stars), per arm, a panel
    per seed (the elastic saving depends on the seed)."""
    arms = [a for a in study.arms if any(key[0] == a for key in study.frontiers)]
    if not arms:
        return None
    seeds = sorted({s for _, s in study.frontiers})
    fig, axes = plt.subplots(1, len(seeds), figsize=(5.2 * len(seeds), 4.2), squeeze=False, sharey=True)
    for ax, seed in zip(axes[0], seeds, strict=True):
        for arm in (a for a in arms if (a, seed) in study.frontiers):
            points = study.frontiers[(arm, seed)]
            fixed = sorted((p for p in points if p["kind"] == "fixed"), key=lambda p: p["segments_per_puzzle"])
            ax.plot([p["segments_per_puzzle"] for p in fixed], [100 * p["exact_accuracy"] for p in fixed],
                    color=COLOURS.get(arm), marker="o", ms=3, label=f"{ARM_LABELS.get(arm, arm)}, fixed D")
            for p in (p for p in points if p["kind"] == "elastic"):
                ax.scatter(p["segments_per_puzzle"], 100 * p["exact_accuracy"], color=COLOURS.get(arm), marker="*",
                           s=60)
                ax.annotate(p["label"], (p["segments_per_puzzle"], 100 * p["exact_accuracy"]), fontsize=6)
        _log2_axis(ax, "segments per puzzle")
        ax.set_title(f"seed {seed}: elastic exit (stars) against fixed depth", fontsize=9)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("exact accuracy (%), test")
    return _finish(fig, path)


def plot_residual(study: Study, path: Path) -> Path | None:
    """Final residual against token accuracy at each arm's largest depth (test, B = 1, seeds pooled)."""
    depth = {arm: max(study.depths("test", arm=arm), default=0) for arm in study.arms}
    arms = [a for a in study.arms if pooled_trajectories(study, a, "test", depth[a]) is not None]
    if not arms:
        return None
    fig, axes = plt.subplots(1, len(arms), figsize=(4.2 * len(arms), 3.8), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, arm in zip(axes[0], arms, strict=True):
        pooled = pooled_trajectories(study, arm, "test", depth[arm])
        residual, accuracy, exact = pooled["final_residual"], pooled["accuracy"], pooled["exact"]
        jitter = rng.uniform(-0.004, 0.004, len(accuracy))
        for mask, colour, label in [(exact, "tab:green", "exact"), (~exact, "tab:red", "wrong")]:
            ax.scatter(np.maximum(residual[mask], 1e-8), 100 * (accuracy[mask] + jitter[mask]), s=5, alpha=0.4,
                       color=colour, label=f"{label} ({mask.sum()})")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("final residual")
        ax.set_ylabel("token accuracy (%)")
        ax.set_title(f"{ARM_LABELS.get(arm, arm)}, D={depth[arm]}", fontsize=10)
        ax.legend(fontsize=7)
    return _finish(fig, path)
