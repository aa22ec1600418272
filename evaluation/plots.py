"""The sweep's two figures: exact accuracy against depth, per-trajectory and with breadth, and
token accuracy against the final latent residual.

Every panel shows one way of answering a puzzle (per trajectory; majority vote, the most
converged of the B trajectories and any of them correct for B > 1), with one line per run and
breadth, so EqR, TRM and HRM of one sweep sit side by side. Accuracies are in %. Titles name the
dataset, legends the run (architecture, run folder, checkpoint) and B. matplotlib is a lazy import.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.naming import overrides_label
from utils.atomic import atomic_file

# (metric, panel title); a panel is drawn when some record has its metric.
PANELS: list[tuple[str, str]] = [
    ("exact_accuracy", "per trajectory (pass@1)"),
    ("majority_vote/exact_accuracy", "majority vote of B"),
    ("convergence_top_k/exact_accuracy", "most converged of B (top-k)"),
    ("different_init/any_correct", "any of B correct (pass@B)"),
]
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    with atomic_file(path) as handle:
        fig.savefig(handle, format="png", dpi=120)
    _pyplot().close(fig)
    return path


def series_name(cfg: dict[str, Any]) -> str:
    """What tells one line of a sweep from another: the run, its overrides, the dataset when there are several."""
    return " ".join(filter(None, (cfg.get("run") or Path(cfg["checkpoint"]).stem,
                                  overrides_label(cfg.get("overrides")))))


def _series(records: Sequence[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Records grouped by (series name, B), sorted by D."""
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault((series_name(r["config"]), r["config"]["different_init"]), []).append(r)
    return {key: sorted(rs, key=lambda r: r["config"]["halt_max_steps"]) for key, rs in sorted(out.items())}


def describe_sweep(records: Sequence[dict[str, Any]], width: int = 110) -> str:
    """`Maze-9x9 (test): eqr_quickstart_step_1500 (eqr@EqRModel), ...`: the figure's subtitle."""
    datasets = sorted({str(r["config"].get("dataset_name")) for r in records})
    runs = dict.fromkeys(f"{r['config'].get('run')} ({r['config'].get('arch')})" for r in records)
    text = f"{', '.join(datasets)}: {', '.join(runs)}"
    text = text if len(text) <= 240 else f"{', '.join(datasets)}: {len(runs)} runs"
    return "\n".join(textwrap.wrap(text, width=width))


def _style(series: dict[tuple[str, int], Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """One colour per run and one line style and marker per B, the same in every figure of a sweep."""
    colors = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    runs = list(dict.fromkeys(name for name, _ in series))
    breadths = sorted({b for _, b in series})
    return {(name, b): {"color": colors[runs.index(name) % len(colors)],
                        "linestyle": LINE_STYLES[breadths.index(b) % len(LINE_STYLES)],
                        "marker": MARKERS[breadths.index(b) % len(MARKERS)]} for name, b in series}


def _depth_axis(ax: Any, depths: Sequence[int]) -> None:
    """log2 axis with the evaluated depths as plain numbers."""
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(set(depths)), [str(d) for d in sorted(set(depths))])
    ax.xaxis.set_minor_locator(NullLocator())


def plot_accuracy_vs_depth(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """One panel per answer rule (PANELS); lines per run (colour) and B (line style); log2 depth axis."""
    plt = _pyplot()
    panels = [(k, t) for k, t in PANELS if any(k in r["metrics"] for r in records)]
    series = _series(records)
    style = _style(series)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.4), squeeze=False, sharey=True)
    for ax, (metric, title) in zip(axes[0], panels, strict=True):
        for (name, breadth), rs in series.items():
            points = [(r["config"]["halt_max_steps"], 100 * r["metrics"][metric]) for r in rs if metric in r["metrics"]]
            if points:
                ax.plot(*zip(*points, strict=True), label=f"{name} B={breadth}", **style[(name, breadth)])
        _depth_axis(ax, [r["config"]["halt_max_steps"] for r in records])
        ax.set(title=title, xlabel="depth D (segments)", ylim=(-2, 102))
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("exact accuracy (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.suptitle(f"Exact accuracy vs depth\n{describe_sweep(records)}", fontsize=10)
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.035 * ((len(labels) - 1) // 4), 1, 1))
    return _save(fig, path)


def plot_accuracy_vs_residual(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """Token accuracy (%) against the mean final residual, one point per (run, B, D), each labelled with its D."""
    from evaluation.labels import place_labels

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    points, texts = [], []
    series = _series(records)
    style = _style(series)
    for (name, breadth), rs in series.items():
        xy = [(r["metrics"].get("final_residual", 0.0), 100 * r["metrics"].get("accuracy", 0.0)) for r in rs]
        look = style[(name, breadth)]
        ax.scatter(*zip(*xy, strict=True), label=f"{name} B={breadth}", zorder=3, color=look["color"],
                   marker=look["marker"])
        points += xy
        texts += [f"D={r['config']['halt_max_steps']}" for r in rs]
    ax.set(xlabel="final latent residual (mean over trajectories)", ylabel="token accuracy (%)", ylim=(-2, 102),
           title=f"Token accuracy vs final residual\n{describe_sweep(records, width=80)}")
    ax.title.set_fontsize(10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    place_labels(ax, points, texts, fontsize=7)
    return _save(fig, path)


def write_plots(records: Sequence[dict[str, Any]], output_dir: Path) -> list[Path]:
    """`accuracy_vs_depth.png` and `accuracy_vs_residual.png` in `output_dir`."""
    return [plot_accuracy_vs_depth(records, output_dir / "accuracy_vs_depth.png"),
            plot_accuracy_vs_residual(records, output_dir / "accuracy_vs_residual.png")]
