"""Evaluation outputs: one JSON + CSV per (checkpoint, D, B), a markdown table, two PNG plots.

The JSON keeps the run's settings under `config` and the metrics under `metrics`; the CSV is
the same record flattened into one header line and one value line, so sweeps concatenate
with any CSV tool. The schema is documented in docs/evaluation.md.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

SUMMARY_COLUMNS: list[tuple[str, str]] = [
    ("exact_accuracy", "exact acc"),
    ("accuracy", "token acc"),
    ("different_init/pass@1", "pass@1"),
    ("different_init/any_correct", "any correct"),
    ("majority_vote/exact_accuracy", "majority"),
    ("convergence_top_k/exact_accuracy", "conv. top-k"),
    ("steps", "mean steps"),
    ("final_residual", "final residual"),
]


def record_stem(checkpoint: str, depth: int, breadth: int, tta: int = 1, elastic: bool = False) -> str:
    """`eval_<checkpoint stem>_D<depth>_B<breadth>[_tta<N>][_elastic]`."""
    stem = f"eval_{Path(checkpoint).stem}_D{depth}_B{breadth}"
    return stem + (f"_tta{tta}" if tta > 1 else "") + ("_elastic" if elastic else "")


def make_record(config: dict[str, Any], metrics: dict[str, float]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "config": config, "metrics": metrics}


def _stem_of(record: dict[str, Any]) -> str:
    cfg = record["config"]
    return record_stem(cfg["checkpoint"], cfg["halt_max_steps"], cfg["different_init"], cfg["tta"], cfg["elastic"])


def write_record(record: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.csv`; returns both paths."""
    cfg = record["config"]
    stem = _stem_of(record)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = output_dir / f"{stem}.json", output_dir / f"{stem}.csv"
    json_path.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    flat = {**{k: _scalar(v) for k, v in cfg.items()}, **record["metrics"]}
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(flat))
        writer.writeheader()
        writer.writerow(flat)
    return json_path, csv_path


def write_trajectories(record: dict[str, Any], columns: dict[str, list[float]], output_dir: Path) -> Path:
    """Write `<stem>_trajectories.csv`: one row per trajectory (docs/evaluation.md lists the columns)."""
    path = output_dir / f"{_stem_of(record)}_trajectories.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(columns))
        writer.writerows(zip(*columns.values(), strict=True))
    return path


def _scalar(value: Any) -> Any:
    return ";".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def summary_table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown table, one line per (checkpoint, D, B), the columns that the records have."""
    columns = [(k, title) for k, title in SUMMARY_COLUMNS if any(k in r["metrics"] for r in records)]
    head = ["checkpoint", "D", "B", "tta", *[title for _, title in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        cfg, metrics = r["config"], r["metrics"]
        cells = [Path(cfg["checkpoint"]).name, str(cfg["halt_max_steps"]), str(cfg["different_init"]), str(cfg["tta"])]
        cells += [_fmt(metrics.get(k)) for k, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _finish(fig: Any, ax: Any, path: Path) -> Path:
    """Grid, legend, save and close: the common tail of every plot (matplotlib stays a lazy import)."""
    import matplotlib.pyplot as plt

    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(records: Sequence[dict[str, Any]], output_dir: Path) -> list[Path]:
    """Exact accuracy vs depth (log x, one line per checkpoint and B) and accuracy vs final residual."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output_dir.mkdir(parents=True, exist_ok=True)
    series: dict[tuple[str, int], list[tuple[int, float, float, float]]] = {}
    for r in records:
        cfg, m = r["config"], r["metrics"]
        key = (Path(cfg["checkpoint"]).stem, cfg["different_init"])
        series.setdefault(key, []).append((cfg["halt_max_steps"], m.get("exact_accuracy", 0.0),
                                           m.get("accuracy", 0.0), m.get("final_residual", 0.0)))
    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for (name, breadth), points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"{name} B={breadth}")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="depth D (segments)", ylabel="exact accuracy", title="Exact accuracy vs depth", ylim=(-0.02, 1.02))
    paths.append(_finish(fig, ax, output_dir / "exact_accuracy_vs_depth.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for (name, breadth), points in sorted(series.items()):
        ax.scatter([p[3] for p in points], [p[2] for p in points], label=f"{name} B={breadth}")
    ax.set(xlabel="final latent residual", ylabel="token accuracy", title="Accuracy vs final residual",
           ylim=(-0.02, 1.02))
    paths.append(_finish(fig, ax, output_dir / "accuracy_vs_residual.png"))
    return paths
