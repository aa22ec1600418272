"""Evaluation outputs: one JSON + CSV per (run, overrides, D, B), a markdown table, a tidy CSV of every
point of a sweep, and the same metrics in the reference's file layout.

The JSON keeps the run's settings under `config` and the metrics under `metrics`; the CSV is
the same record flattened into one header line and one value line. `points.csv` holds every
record of a sweep, one row per (run, overrides, D, B), so a sweep loads into one data frame.
`write_reference_files` writes what the reference's evaluate.py writes
(`eval_preds/step_<N>_<suffix>_<label>/eval_metrics_step_<N>.{csv,json}`), so analysis scripts
written for it read these results. File names come from `evaluation.naming`;
the schema is documented in docs/evaluation.md. Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dataset.task_evaluator import SummaryColumn
from evaluation.counting import REFERENCE_PREFIX
from evaluation.naming import overrides_label, record_stem
from utils.atomic import atomic_file

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# The generic columns, the tasks' own (`Task.summary_columns`) between the accuracies and the cost;
# per-trajectory exact accuracy is also pass@1, so it is shown once.
ACCURACY_COLUMNS = (
    SummaryColumn("exact_accuracy", "exact % (per traj.)"),
    SummaryColumn("accuracy", "token %"),
    SummaryColumn("majority_vote/exact_accuracy", "majority %"),
    SummaryColumn("convergence_top_k/exact_accuracy", "conv. top-k %"),
    SummaryColumn("different_init/any_correct", "any correct % (pass@B)"),
    SummaryColumn("adaptive_breadth/exact_accuracy", "adaptive %"),
    SummaryColumn("adaptive_breadth/mean_restarts", "restarts", percent=False),
)
COST_COLUMNS = (SummaryColumn("steps", "mean steps", percent=False),
                SummaryColumn("final_residual", "final residual", percent=False))


def make_record(config: dict[str, Any], metrics: dict[str, float]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "config": config, "metrics": metrics}


def record_stem_of(record: dict[str, Any]) -> str:
    return record_stem(record["config"])


def write_text(path: Path, text: str) -> Path:
    with atomic_file(path, "w") as handle:
        handle.write(text)
    return path


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def flat_record(record: dict[str, Any]) -> dict[str, Any]:
    """A record as one CSV row: its settings (lists joined by `;`, overrides as their label), then its metrics."""
    cfg = record["config"]
    flat = {**{k: _scalar(v) for k, v in cfg.items()}, **record["metrics"]}
    flat["overrides"] = overrides_label(cfg.get("overrides"))
    return flat


def write_record(record: dict[str, Any], output_dir: Path) -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.csv`; returns both paths."""
    stem = record_stem_of(record)
    json_path = write_text(output_dir / f"{stem}.json", json.dumps(record, indent=2, sort_keys=False) + "\n")
    flat = flat_record(record)
    csv_path = write_text(output_dir / f"{stem}.csv", _csv_text(list(flat), [list(flat.values())]))
    return json_path, csv_path


def write_points(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """`points.csv`: every record of a sweep, one row per (run, overrides, D, B); the columns are the union
    of the records' settings and metrics (empty where a record has none, e.g. breadth metrics at B = 1)."""
    rows = [flat_record(r) for r in records]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return write_text(path, _csv_text(columns, [[row.get(c, "") for c in columns] for row in rows]))


def reference_folder(checkpoint: str, output_dir: str | None, step: int, suffix: str, label: str) -> Path:
    """`<checkpoint's folder>/../eval_preds/step_<N>_<suffix>_<label>/` (SPEC 5.1), under `output_dir`
    instead when one is given. Runs that share a parent folder share this `eval_preds`, as in the reference."""
    base = Path(output_dir) if output_dir else Path(checkpoint).parent.parent
    return base / "eval_preds" / f"step_{step}_{suffix}_{label}"


def reference_metrics(metrics: dict[str, float], counting: bool | str) -> dict[str, float]:
    """The values the reference's files hold: its own counting (under `ref/` with reference_counting=both)."""
    if counting != "both":
        return dict(metrics)
    return {k.removeprefix(REFERENCE_PREFIX): v for k, v in metrics.items() if k.startswith(REFERENCE_PREFIX)}


def write_reference_files(folder: Path, step: int, metrics: dict[str, float], eval_time_sec: float,
                          config: dict[str, Any]) -> list[Path]:
    """`eval_metrics_step_<N>.csv` and `.json` as the reference writes them (SPEC 5.1 "Output layout"):
    per-trajectory metrics (bare names) are split `all`, the breadth scalars (names with `/`) `global`;
    the JSON holds `metrics` (`all/<name>` and the scalars), `eval_time_sec` and `config`, keys sorted."""
    per_trajectory = {k: v for k, v in metrics.items() if "/" not in k}
    scalars = {k: v for k, v in metrics.items() if "/" in k}
    rows = [["all", k, v] for k, v in per_trajectory.items()] + [["global", k, v] for k, v in scalars.items()]
    json_path = folder / f"eval_metrics_step_{step}.json"
    _warn_if_another_checkpoint(json_path, config.get("checkpoint"))
    csv_path = write_text(folder / f"eval_metrics_step_{step}.csv", _csv_text(["split", "metric", "value"], rows))
    document = {"metrics": {**{f"all/{k}": v for k, v in per_trajectory.items()}, **scalars},
                "eval_time_sec": eval_time_sec, "config": config}
    write_text(json_path, json.dumps(document, indent=2, sort_keys=True) + "\n")
    return [csv_path, json_path]


def _warn_if_another_checkpoint(path: Path, checkpoint: str | None) -> None:
    """The reference's folder names neither run nor dataset: say so when it held another checkpoint's result."""
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text()).get("config", {}).get("checkpoint")
    except (json.JSONDecodeError, AttributeError):
        previous = None
    if previous not in (None, checkpoint):
        log.warning("%s: replaces the result of %s (the reference's layout names only step, suffix and sweep "
                    "values; this evaluation's own records are not shared)", path, previous)


def write_trajectories(record: dict[str, Any], columns: dict[str, list[float]], output_dir: Path) -> Path:
    """Write `<stem>_trajectories.csv`: one row per trajectory (docs/evaluation.md lists the columns)."""
    path = output_dir / f"{record_stem_of(record)}_trajectories.csv"
    return write_text(path, _csv_text(list(columns), list(zip(*columns.values(), strict=True))))


def _scalar(value: Any) -> Any:
    return ";".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def _fmt(value: float | None, percent: bool) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}" if percent else f"{value:.4g}"


def summary_table(records: Sequence[dict[str, Any]], task_columns: Sequence[SummaryColumn] = ()) -> str:
    """Markdown table, one line per (run, overrides, D, B); accuracies in %, the columns the records have
    (`task_columns`: the evaluated tasks' own metrics)."""
    candidates = [*ACCURACY_COLUMNS, *dict.fromkeys(task_columns), *COST_COLUMNS]
    columns = [c for c in candidates if any(c.metric in r["metrics"] for r in records)]
    with_overrides = any(r["config"].get("overrides") for r in records)
    datasets = {r["config"].get("dataset_name") for r in records}
    ablated = any(r["config"].get("puzzle_id_ablation", "none") != "none" for r in records)
    head = ["run", "arch", *(["dataset"] if len(datasets) > 1 else []), *(["overrides"] if with_overrides else []),
            *(["puzzle ids"] if ablated else []), "D", "B", "tta", *[c.title for c in columns]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        cfg, metrics = r["config"], r["metrics"]
        cells = [cfg.get("run", Path(cfg["checkpoint"]).name), str(cfg.get("arch")),
                 *([str(cfg.get("dataset_name"))] if len(datasets) > 1 else []),
                 *([overrides_label(cfg.get("overrides"))] if with_overrides else []),
                 *([cfg.get("puzzle_id_ablation", "none")] if ablated else []),
                 str(cfg["halt_max_steps"]), str(cfg["different_init"]), str(cfg["tta"])]
        cells += [_fmt(metrics.get(c.metric), c.percent) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
