"""Evaluation outputs: one JSON + CSV per (checkpoint, overrides, D, B), a markdown table, two PNG plots,
and the same metrics in the reference's file layout.

The JSON keeps the run's settings under `config` and the metrics under `metrics`; the CSV is
the same record flattened into one header line and one value line, so sweeps concatenate
with any CSV tool. `write_reference_files` writes what the reference's evaluate.py writes
(`eval_preds/step_<N>_<label>/eval_metrics_step_<N>.{csv,json}`, `eval_config.yaml`), so
analysis scripts written for it read these results. The schema is documented in docs/evaluation.md.
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
    ("adaptive_breadth/exact_accuracy", "adaptive"),
    ("adaptive_breadth/mean_restarts", "restarts"),
    ("steps", "mean steps"),
    ("final_residual", "final residual"),
]


def overrides_label(overrides: dict[str, Any] | None) -> str:
    """`lambda_=0.9_noise_scale=0.0` (sorted keys), empty without overrides."""
    return "_".join(f"{k}={v}" for k, v in sorted((overrides or {}).items()))


def record_stem(checkpoint: str, depth: int, breadth: int, tta: int = 1, elastic: bool = False,
                overrides: dict[str, Any] | None = None, agree: int | None = None) -> str:
    """`eval_<checkpoint stem>_D<depth>_B<breadth>[_tta<N>][_agree<k>][_elastic][_<key>=<value>...]`."""
    stem = f"eval_{Path(checkpoint).stem}_D{depth}_B{breadth}"
    stem += (f"_tta{tta}" if tta > 1 else "") + (f"_agree{agree}" if agree else "") + ("_elastic" if elastic else "")
    label = overrides_label(overrides)
    return stem + (f"_{label}" if label else "")


def make_record(config: dict[str, Any], metrics: dict[str, float]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "config": config, "metrics": metrics}


def record_stem_of(record: dict[str, Any]) -> str:
    cfg = record["config"]
    return record_stem(cfg["checkpoint"], cfg["halt_max_steps"], cfg["different_init"], cfg["tta"], cfg["elastic"],
                       cfg.get("overrides"), cfg.get("breadth_agree"))


def write_record(record: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.csv`; returns both paths."""
    cfg = record["config"]
    stem = record_stem_of(record)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = output_dir / f"{stem}.json", output_dir / f"{stem}.csv"
    json_path.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    flat = {**{k: _scalar(v) for k, v in cfg.items()}, **record["metrics"]}
    flat["overrides"] = overrides_label(cfg.get("overrides"))
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(flat))
        writer.writeheader()
        writer.writerow(flat)
    return json_path, csv_path


def write_reference_files(record: dict[str, Any], output_dir: Path) -> list[Path]:
    """The reference's layout: `eval_preds/step_<N>_<label>/` holding `eval_metrics_step_<N>.csv` (long:
    `split,metric,value`, one row per metric named `all/<metric>`, plus `all,eval_time_sec,<s>`), the same
    as `.json`, and `eval_config.yaml`. `<label>` is the record stem without its `eval_` prefix."""
    import yaml

    cfg = record["config"]
    step = cfg.get("step") or 0
    folder = output_dir / "eval_preds" / f"step_{step}_{record_stem_of(record).removeprefix('eval_')}"
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {f"all/{k}": v for k, v in record["metrics"].items()}
    csv_path, json_path = folder / f"eval_metrics_step_{step}.csv", folder / f"eval_metrics_step_{step}.json"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "metric", "value"])
        writer.writerows(["all", name, value] for name, value in metrics.items())
        writer.writerow(["all", "eval_time_sec", cfg["pass_wall_s"]])
    json_path.write_text(json.dumps({**metrics, "eval_time_sec": cfg["pass_wall_s"]}, indent=2) + "\n")
    config_path = folder / "eval_config.yaml"
    config_path.write_text(yaml.safe_dump(json.loads(json.dumps(cfg)), sort_keys=False))
    return [csv_path, json_path, config_path]


def write_trajectories(record: dict[str, Any], columns: dict[str, list[float]], output_dir: Path) -> Path:
    """Write `<stem>_trajectories.csv`: one row per trajectory (docs/evaluation.md lists the columns)."""
    path = output_dir / f"{record_stem_of(record)}_trajectories.csv"
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
    with_overrides = any(r["config"].get("overrides") for r in records)
    head = ["checkpoint", *(["overrides"] if with_overrides else []), "D", "B", "tta",
            *[title for _, title in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        cfg, metrics = r["config"], r["metrics"]
        cells = [Path(cfg["checkpoint"]).name, *([overrides_label(cfg.get("overrides"))] if with_overrides else []),
                 str(cfg["halt_max_steps"]), str(cfg["different_init"]), str(cfg["tta"])]
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
        name = " ".join(filter(None, (Path(cfg["checkpoint"]).stem, overrides_label(cfg.get("overrides")))))
        key = (name, cfg["different_init"])
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
