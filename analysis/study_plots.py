"""The mini study's four plots (docs/results/mini_study/*.png), one function each."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from analysis.study_data import BREADTH_KEYS, COLOURS, EVALUATIONS, Study, mean_sd, pooled_trajectories  # noqa: E402


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
            mean, sd = mean_sd(values)
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
            ax.plot(depths, [100 * mean_sd(c)[0] for c in curves], color=COLOURS.get(arm), marker="o", lw=2,
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
    one = mean_sd(study.values(arm, "eval_indist", depth, 1, "exact_accuracy"))
    ax.axhline(100 * one[0], color="grey", ls="--", label="B=1")
    for i, (key, label) in enumerate(BREADTH_KEYS):
        means = [mean_sd(study.values(arm, "eval_breadth", depth, b, key)) for b in breadths]
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
