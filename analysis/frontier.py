"""The accuracy-compute frontier of a checkpoint: fixed depths against elastic stop rules.

Each fixed depth D and each elastic setting is its own evaluation pass (so its wall time is its
own). A setting is written `stable:P` (prediction unchanged for P segments), `residual:T` (latent
residual below T), `q` (q_halt > 0), joined by `&` (all must hold) or `|` (any may); every elastic
pass runs to at most `elastic_depth` segments and stops no trajectory before `elastic_min_steps`.
Compute is counted as segments run per puzzle (summed over its B x tta trajectories).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analysis.frontier_point import FrontierPoint
from analysis.machine import describe_machine
from evaluation import EvalConfig, StopRule, parse_eval_config
from evaluation.sweep import evaluate_pass, prepare
from utils import distributed
from utils.atomic import atomic_file
from utils.plugins import KEY as PLUGINS_KEY
from utils.plugins import import_plugins
from utils.validation import ConfigError, format_validation_error

DEFAULT_RULES = ["stable:1", "stable:2", "stable:3", "q", "stable:1|q", "stable:2&q"]


class FrontierConfig(BaseModel):
    """The frontier's own keys; every other key is an evaluation key (docs/evaluation.md)."""

    model_config = ConfigDict(extra="forbid")

    depths: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16, 32], min_length=1)
    elastic: list[str] = Field(default_factory=lambda: list(DEFAULT_RULES))
    elastic_depth: int | None = Field(default=None, ge=1)  # D_max of the elastic passes; default max(depths)
    elastic_min_steps: int = Field(default=1, ge=1)
    output_dir: str | None = None  # default: <checkpoint dir>/frontier

    @field_validator("depths")
    @classmethod
    def _depths(cls, values: list[int]) -> list[int]:
        if any(v < 1 for v in values):
            raise ValueError("every depth must be >= 1")
        return sorted(set(values))

    @field_validator("elastic")
    @classmethod
    def _rules(cls, values: list[str]) -> list[str]:
        for text in values:
            StopRule.parse(text)
        return values


FRONTIER_KEYS = set(FrontierConfig.model_fields)
FORCED = {"per_trajectory": True, "plots": False, "reference_files": False, "save_outputs": [],
          "reference_counting": False, "elastic": False}


def parse_frontier_options(values: dict[str, Any]) -> tuple[FrontierConfig, EvalConfig]:
    """Split `key=value` options into the frontier's and the evaluation's; each validated by name (after
    the `plugins` modules are imported: an elastic setting may name a condition one registers)."""
    import_plugins(values.get(PLUGINS_KEY))
    forced = sorted((set(values) & set(FORCED) | {k for k in values if k.startswith("elastic_")}) - FRONTIER_KEYS)
    if forced:
        raise ConfigError(f"{forced[0]}: set by the frontier itself; give elastic settings as elastic=[stable:2,q]")
    try:
        frontier = FrontierConfig.model_validate({k: v for k, v in values.items() if k in FRONTIER_KEYS})
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None
    rest = {k: v for k, v in values.items() if k not in FRONTIER_KEYS}
    evaluation = parse_eval_config({**rest, **FORCED, "depths": frontier.depths})
    if len(evaluation.source.checkpoints) != 1 or len(evaluation.breadth.different_init) != 1:
        raise ConfigError("checkpoint: the frontier takes one checkpoint and one different_init")
    return frontier, evaluation


def _point(label: str, kind: str, depth: int, metrics: dict[str, float], rows: dict[str, list], wall: float,
           segments: int) -> FrontierPoint:
    per_puzzle: dict[int, int] = {}
    for puzzle, steps in zip(rows["puzzle"], rows["steps"], strict=True):
        per_puzzle[int(puzzle)] = per_puzzle.get(int(puzzle), 0) + int(steps)
    headline = metrics.get("convergence_top_k/exact_accuracy", metrics["exact_accuracy"])
    return FrontierPoint(label, kind, depth, headline, metrics["accuracy"], segments / max(1, metrics["num_puzzles"]),
                         wall, metrics.get("elastic/exit_rate"), [per_puzzle[p] for p in sorted(per_puzzle)])


def run_frontier(frontier: FrontierConfig, evaluation: EvalConfig) -> list[FrontierPoint]:
    """Every fixed depth, then every elastic setting, each its own pass over the test split; the model is
    built (and compiled) once for all of them."""
    info = distributed.setup(evaluation.runtime.device)
    checkpoint = evaluation.source.checkpoints[0]
    top = frontier.elastic_depth or max(frontier.depths)
    passes: list[tuple[str, str, int, EvalConfig, StopRule | None]] = [
        (f"D={d}", "fixed", d, evaluation.with_options(depths=[d]), None) for d in frontier.depths]
    elastic = evaluation.with_options(depths=[top])
    passes += [(text, "elastic", top, elastic, StopRule.parse(text, frontier.elastic_min_steps))
               for text in frontier.elastic]
    prepared = list(prepare(evaluation.with_options(depths=[top, *frontier.depths]), checkpoint, info))
    if len(prepared) != 1:
        raise ConfigError("param_iter: the frontier takes one override point")
    breadth = evaluation.breadth.different_init[0]
    if prepared[0].segment is not None:  # compile before the clock runs: every pass has the same slot shapes
        evaluate_pass(evaluation.with_options(depths=[1], max_eval_steps=1), prepared[0], breadth, info)
    points = []
    for label, kind, depth, cfg, rule in passes:
        run = evaluate_pass(cfg, prepared[0], breadth, info, stop=rule).run
        points.append(_point(label, kind, depth, run.metrics[depth], run.per_trajectory[depth], run.wall_s,
                             run.trajectory_segments))
    return points


def best_fixed(points: list[FrontierPoint]) -> FrontierPoint:
    """The smallest fixed depth reaching the highest fixed-depth accuracy: the fair reference."""
    fixed = [p for p in points if p.kind == "fixed"]
    best = max(p.exact_accuracy for p in fixed)
    return min((p for p in fixed if p.exact_accuracy == best), key=lambda p: p.depth)


def frontier_table(points: list[FrontierPoint]) -> str:
    """Markdown: accuracy, segments and wall time of every pass, elastic ones against the best fixed depth."""
    ref = best_fixed(points)
    largest = max((p for p in points if p.kind == "fixed"), key=lambda p: p.depth)
    lines = [
        f"Reference: the best fixed depth {ref.label} ({100 * ref.exact_accuracy:.2f}% exact, "
        f"{ref.segments_per_puzzle:.2f} segments/puzzle, {ref.wall_s:.2f} s); the largest is {largest.label}.",
        "",
        "| setting | D / D_max | exact acc % | token acc % | segments/puzzle | wall s | exit rate | "
        "Δ acc vs best (points) | segments: best ÷ this | wall: best ÷ this | segments: largest ÷ this |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        exit_rate = "" if p.exit_rate is None else f"{100 * p.exit_rate:.0f}%"
        label = p.label.replace("|", r"\|")  # a markdown cell cannot hold a bare |
        lines.append(
            f"| {label} | {p.depth} | {100 * p.exact_accuracy:.2f} | {100 * p.accuracy:.2f} | "
            f"{p.segments_per_puzzle:.2f} | {p.wall_s:.2f} | {exit_rate} | "
            f"{100 * (p.exact_accuracy - ref.exact_accuracy):+.2f} | "
            f"{ref.segments_per_puzzle / p.segments_per_puzzle:.2f}x | "
            f"{ref.wall_s / p.wall_s:.2f}x | {largest.segments_per_puzzle / p.segments_per_puzzle:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def write_frontier(points: list[FrontierPoint], out: Path, command: str,
                   settings: dict[str, Any]) -> list[Path]:
    """frontier.md (command, machine, table), frontier.json, frontier.png and frontier_steps.png."""
    from analysis.frontier_plots import plot_frontier, plot_steps

    out.mkdir(parents=True, exist_ok=True)
    machine = describe_machine(str(settings.get("device", "cpu")))
    text = "\n".join([
        "# Accuracy-compute frontier", "",
        f"Command: `{command}`", "",
        f"Machine: {machine}", "",
        f"Settings: {json.dumps(settings, sort_keys=True)}", "",
        frontier_table(points), "",
        "![frontier](frontier.png)", "", "![steps](frontier_steps.png)", "",
    ])
    paths = [out / "frontier.md", out / "frontier.json"]
    with atomic_file(paths[0], "w") as handle:
        handle.write(text)
    with atomic_file(paths[1], "w") as handle:
        json.dump({"command": command, "machine": machine, "settings": settings,
                   "points": [asdict(p) for p in points]}, handle, indent=1)
    title = " ".join(f"{settings[k]}" for k in ("run", "arch", "dataset") if settings.get(k))
    paths.append(plot_frontier(points, out / "frontier.png", title))
    paths.append(plot_steps(points, out / "frontier_steps.png", title))
    return paths
