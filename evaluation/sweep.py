"""Run an evaluation sweep: checkpoints x points (evaluation/points.py) x breadths, all depths of a breadth in one pass.

Checks that the dataset fits the checkpoint before building anything, loads EMA weights
when present (unless `use_ema=false`), evaluates on CPU, one GPU or under torchrun (each
rank its slice, metrics summed across ranks) and writes the records on rank 0.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig, read_metadata
from dataset.symmetries import TransformSet
from dataset.tasks import Task, task_of
from evaluation.ablation import ablation_table
from evaluation.config import CheckpointEntry, EvalConfig, PassContext
from evaluation.engine import EvalResult, batches_in, run_evaluation
from evaluation.naming import dataset_label, overrides_label, run_label, run_labels, sweep_label
from evaluation.outputs import write_outputs
from evaluation.plots import write_plots
from evaluation.points import Point, plan_points
from evaluation.report import (
    make_record,
    record_stem_of,
    reference_folder,
    reference_metrics,
    summary_table,
    write_points,
    write_record,
    write_reference_files,
    write_text,
    write_trajectories,
)
from evaluation.resume import FinishedPass, PassFile, PassSaving, pass_identity
from evaluation.stopping import StopRule
from evaluation.tta import build_transforms
from models.act import ACTModel
from models.loading import LoadedModel, data_fields, infer_data_fields, model_for_dataset
from models.registry import resolve_architecture
from models.runtime import prepare_runtime
from utils import distributed
from utils.checkpoint import CheckpointContents, CheckpointError, read_checkpoint, resolve_checkpoint
from utils.signals import SignalFlag
from utils.validation import ConfigError

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    summary: str = ""
    folder: Path | None = None  # the sweep's own folder: summary, points.csv, plots


@dataclass(frozen=True)
class Fit:
    """A checkpoint read and checked against the data it is evaluated on."""

    contents: CheckpointContents
    data_paths: list[str]
    fields: dict[str, int]  # the dataset's seq_len, vocab_size, num_puzzle_identifiers
    task: Task


def check_fit(checkpoint: str, cfg: EvalConfig) -> Fit:
    """The checkpoint, the data paths, the dataset's shape fields and task; refuses a dataset that does
    not fit, before any model is built (a mismatch would otherwise surface as a list of weight shapes)."""
    contents = read_checkpoint(checkpoint)
    arch = contents.arch
    try:
        resolve_architecture(str(arch.get("name")))
    except ConfigError as err:
        raise CheckpointError(f"{checkpoint}: {err}") from None
    paths = cfg.source.dataset_data_path or contents.data_paths
    if not paths:
        raise ConfigError("dataset_data_path: not set, and the checkpoint's config names no data path")
    meta = read_metadata(paths, cfg.source.split)
    fields = data_fields(meta)
    inferred = infer_data_fields(arch, contents.model_state)
    for key in ("seq_len", "vocab_size"):
        if key in inferred and inferred[key] != fields[key]:
            raise ConfigError(
                f"dataset_data_path: {key} {fields[key]} of {', '.join(paths)} does not match the checkpoint's "
                f"{inferred[key]} ({checkpoint})"
            )
    return Fit(contents, paths, fields, task_of(meta, ", ".join(paths)))


DEFAULT_BATCH = 16  # puzzles per evaluation batch when the checkpoint records no training batch


def _pass_settings(cfg: EvalConfig, prepared: Prepared, breadth: int, info: distributed.DistInfo,
                   run: str | None) -> dict[str, Any]:
    """What the records of a pass say about how they were made: the pass's options (`result_options`) and
    what it ran on; its depth (`halt_max_steps`) and cost (`pass_wall_s`, `pass_trajectory_segments`) are
    left None here, filled per record."""
    loaded = prepared.loaded
    settings = {
        "checkpoint": prepared.checkpoint, "step": loaded.step, "used_ema": loaded.used_ema,
        "arch": loaded.contents.arch.get("name"), "dataset": prepared.data_paths, "split": cfg.source.split,
        **cfg.result_options(),
        "halt_max_steps": None, "different_init": breadth, "overrides": prepared.point.arch,
        "global_batch_size": prepared.batch, "compiled": prepared.segment is not None,
        "world_size": info.world_size, "device": info.device.type, "pass_depth": max(cfg.depth.depths),
        "pass_wall_s": None, "pass_trajectory_segments": None,
    }
    settings.update(run=run or run_label(prepared.checkpoint, settings["arch"]),
                    dataset_name=dataset_label(prepared.data_paths, cfg.source.split))
    return settings


@dataclass
class Prepared:
    """A checkpoint at one override point, built (and compiled) once for any number of passes."""

    checkpoint: str
    loaded: LoadedModel
    model: ACTModel
    segment: Callable[..., tuple] | None  # the compiled inner network, or None for eager
    data_paths: list[str]
    point: Point
    batch: int  # puzzles per evaluation batch
    transforms: TransformSet
    task: Task  # the dataset's puzzle type: its evaluator adds metrics of its own


@dataclass
class Evaluated:
    """One pass over the data: a (checkpoint, override point, breadth) and its per-depth result."""

    checkpoint: str
    loaded: LoadedModel
    data_paths: list[str]
    point: Point
    cfg: EvalConfig  # the options of the pass
    breadth: int
    run: EvalResult
    task: Task


def build_point(point: Point, checkpoint: str, fit: Fit, info: distributed.DistInfo) -> Prepared:
    """The model of `checkpoint` at `point` on this rank's device, compiled as `models.runtime` decides."""
    cfg, runtime_options = point.cfg, point.cfg.runtime
    trained = point.training_batch or int(fit.contents.config.get("global_batch_size") or DEFAULT_BATCH)
    batch = runtime_options.global_batch_size or trained
    if batch % info.world_size:
        raise ConfigError(f"global_batch_size: {batch} puzzles do not divide among {info.world_size} ranks"
                          + ("" if runtime_options.global_batch_size else
                             " (the checkpoint's training batch; set one)"))
    transforms = build_transforms(cfg.breadth.tta, cfg.breadth.tta_kind, fit.task, fit.fields["seq_len"],
                                  fit.fields["vocab_size"], runtime_options.seed)
    overrides = dict(point.arch)  # the depth is the engine's (the plan's depths), never the model config's
    if runtime_options.forward_dtype:
        overrides["forward_dtype"] = runtime_options.forward_dtype
    loaded = model_for_dataset(fit.contents, fit.fields, overrides, use_ema=runtime_options.use_ema)
    runtime = prepare_runtime(loaded.act_model, info.device, runtime_options.kernels, runtime_options.compile,
                              announce=info.rank == 0)
    model = runtime.model.eval()
    table = ablation_table(cfg.source.puzzle_id_ablation, fit.data_paths[0], cfg.source.split,
                           fit.fields["num_puzzle_identifiers"], runtime_options.seed)
    if table is not None:
        model.inner.remap_puzzle_identifiers(table)
    segment = torch.compile(model.inner, dynamic=False) if runtime.compile else None
    return Prepared(checkpoint, loaded, model, segment, fit.data_paths, point, batch, transforms, fit.task)


def prepare(cfg: EvalConfig, checkpoint: str, info: distributed.DistInfo,
            entry: CheckpointEntry | None = None) -> Iterator[Prepared]:
    """`checkpoint` built at every point of `entry` (default: the checkpoint alone under `cfg`), after
    checking that the data fits it and every point's keys and values (evaluation/points.py)."""
    fit = check_fit(checkpoint, cfg)
    points = plan_points(cfg, entry or CheckpointEntry(checkpoint=checkpoint), fit.contents.arch, fit.fields)
    for point in points:
        yield build_point(point, checkpoint, fit, info)


def evaluate_pass(cfg: EvalConfig, prepared: Prepared, breadth: int, info: distributed.DistInfo,
                  stop: StopRule | None = None, saving: PassSaving | None = None) -> Evaluated:
    """One pass of `prepared` over the split at breadth `breadth`: every depth of `cfg`, its other options
    (`EvalConfig.to_plan`); `stop` replaces the stop rule of `cfg`'s `elastic*` keys (the frontier's
    settings); `saving`: how the pass is saved part-way and continued (evaluation/resume.py)."""
    dataset = PuzzleDataset(
        PuzzleDatasetConfig(data_paths=prepared.data_paths, global_batch_size=prepared.batch, rank=info.rank,
                            world_size=info.world_size, seed=cfg.runtime.seed, test_set_mode=True),
        split=cfg.source.split,
    )
    compiled = prepared.segment is not None
    if info.rank == 0:
        log.info("%s: D=%s B=%d tta=%d, %d puzzles per batch%s%s", prepared.checkpoint, cfg.depth.depths, breadth,
                 cfg.breadth.tta, prepared.batch, ", compiled" if compiled else "",
                 f" {prepared.point.arch}" if prepared.point.arch else "")
    limit = cfg.runtime.max_eval_steps
    context = PassContext(transforms=prepared.transforms, segment=prepared.segment,
                          evaluators=prepared.task.evaluators(prepared.data_paths, cfg.depth.depths),
                          total_batches=batches_in(dataset.num_examples, prepared.batch, limit))
    plan = cfg.to_plan(breadth, context, stop)
    if saving is not None:
        plan = saving.apply(plan)
    run = run_evaluation(prepared.model, islice(dataset.test_batches(), limit), plan)
    return Evaluated(prepared.checkpoint, prepared.loaded, prepared.data_paths, prepared.point, cfg, breadth, run,
                     prepared.task)


def evaluate_checkpoint(cfg: EvalConfig, checkpoint: str, info: distributed.DistInfo,
                        entry: CheckpointEntry | None = None) -> Iterator[Evaluated]:
    """Evaluate `checkpoint` at every point and breadth of its entry, all depths of a breadth in one pass."""
    for prepared in prepare(cfg, checkpoint, info, entry):
        for breadth in prepared.point.cfg.breadth.different_init:
            yield evaluate_pass(prepared.point.cfg, prepared, breadth, info)


def resolve_runs(cfg: EvalConfig) -> list[tuple[CheckpointEntry, str, str | None]]:
    """(entry, checkpoint file, run label) for every checkpoint of the sweep: a folder means its latest
    checkpoint. Several checkpoints get labels distinct within the sweep (more parent folders where two
    would agree); a single one gets its label once its architecture is read (None here)."""
    entries = cfg.source.entries
    files = [str(resolve_checkpoint(e.checkpoint)) for e in entries]
    if len(files) == 1:
        return [(entries[0], files[0], None)]
    arch_names = [read_checkpoint(f).arch.get("name") for f in files]
    return list(zip(entries, files, run_labels(files, arch_names), strict=True))


def _write_point(record: dict[str, Any], done: Evaluated, depth: int, folder: Path) -> list[Path]:
    """The files of one (run, overrides, D, B) point, and the reference's files of its combination."""
    cfg = done.cfg
    files = list(write_record(record, folder))
    if cfg.outputs.reference_files:
        point = done.point
        step = done.loaded.step or 0
        where = reference_folder(done.checkpoint, cfg.outputs.output_dir, step, point.suffix,
                                 point.reference_label(depth, done.breadth))
        config = {**record["config"], "suffix": point.suffix, "param_iter": point.combination(depth, done.breadth)}
        metrics = reference_metrics(record["metrics"], cfg.counting.reference_counting)
        files += write_reference_files(where, step, metrics, done.run.wall_s, config)
    if done.run.per_trajectory is not None:
        files.append(write_trajectories(record, done.run.per_trajectory[depth], folder))
    stem = record_stem_of(record)
    if done.run.outputs is not None:
        files.append(write_outputs(done.run.outputs[depth], folder / f"{stem}_outputs.pt"))
    return files + _write_task_files(done, depth, folder / stem)


def _write_task_files(done: Evaluated, depth: int, prefix: Path) -> list[Path]:
    """The task evaluator's files of one depth as `<stem>_<name>`, and with `arc_plots` its pictures."""
    task_files = done.run.task_files.get(depth, {})
    files = [write_text(prefix.with_name(f"{prefix.name}_{name}"), json.dumps(content))
             for name, content in task_files.items()]
    if done.cfg.outputs.arc_plots and done.task.draw_results is not None:
        files += done.task.draw_results(Path(done.data_paths[0]), task_files,
                                        prefix.with_name(f"{prefix.name}_plots"), done.cfg.outputs.arc_plots)
    return files


def sweep_folder(cfg: EvalConfig, records: list[dict[str, Any]]) -> Path:
    """`sweep_<runs>_<dataset>_D.._B..[_tags]` in `output_dir` (or beside the first checkpoint)."""
    first = records[0]["config"]
    runs = list(dict.fromkeys(r["config"]["run"] for r in records))
    datasets = "+".join(dict.fromkeys(r["config"]["dataset_name"] for r in records))
    points = list({overrides_label(r["config"]["overrides"]): r["config"]["overrides"] for r in records}.values())
    depths = sorted({r["config"]["halt_max_steps"] for r in records})
    breadths = sorted({r["config"]["different_init"] for r in records})
    label = sweep_label(runs, datasets, depths, breadths, first, points)
    return cfg.outputs.directory_for(first["checkpoint"]) / f"sweep_{label}"


def _sweep_pass(prepared: Prepared, breadth: int, info: distributed.DistInfo, run: str | None, folder: Path,
                stop: SignalFlag) -> tuple[list[dict[str, Any]], list[Path]]:
    """One pass's records and files: read back when an earlier run wrote them with the same settings (unless
    `resume=false`), else evaluated, continued from its saved state if it has one, and written on rank 0."""
    cfg = prepared.point.cfg
    settings = _pass_settings(cfg, prepared, breadth, info, run)
    what = f"D={cfg.depth.depths} B={breadth}{f' {prepared.point.arch}' if prepared.point.arch else ''} of " \
           f"{prepared.checkpoint}"
    identity = pass_identity(settings, cfg.depth.depths, prepared.checkpoint)
    finished = FinishedPass.of(folder, identity, cfg.outputs.model_dump(exclude={"output_dir", "plots"}))
    planned = [make_record({**settings, "halt_max_steps": depth}, {}) for depth in cfg.depth.depths]
    earlier = finished.records(planned, folder) if cfg.runtime.resume else None
    if distributed.on_every_rank(earlier is not None, info):
        if info.rank == 0:
            log.info("%s: finished earlier with the same settings; its files in %s are reused (resume=false "
                     "evaluates again)", what, folder)
        return earlier or [], [folder / f"{record_stem_of(record)}.json" for record in planned]
    minutes = cfg.runtime.eval_checkpoint_minutes
    file = PassFile.of(folder, identity, info.rank)
    saving = PassSaving(file, None if minutes is None else 60 * minutes, stop, what, cfg.runtime.resume)
    done = evaluate_pass(cfg, prepared, breadth, info, saving=saving)
    if done.run.segments_run != done.run.trajectory_segments and info.world_size == 1:
        log.info("%s: ran %d of the pass's %d trajectory-segments", what, done.run.segments_run,
                 done.run.trajectory_segments)
    records, files = [], []
    for depth in cfg.depth.depths:
        cost = {"pass_wall_s": done.run.wall_s, "pass_trajectory_segments": done.run.trajectory_segments}
        records.append(make_record({**settings, "halt_max_steps": depth, **cost}, done.run.metrics[depth]))
        if info.rank == 0:
            files.extend(_write_point(records[-1], done, depth, folder))
    if info.rank == 0:
        finished.write(files)
    file.discard()
    return records, files


def run_sweep(cfg: EvalConfig) -> SweepResult:
    """Evaluate every checkpoint entry at every (point, D, B); on rank 0 write every point's files, and
    the sweep's summary, `points.csv` and plots into its own folder. A first SIGINT/SIGTERM saves the pass
    in progress at its next segment and stops (evaluation/resume.py); rerunning the command continues."""
    info = distributed.setup(cfg.runtime.device)
    result = SweepResult()
    announce = "saving the evaluation pass at its next segment, then stopping" if info.is_main else None
    task_columns = []
    with SignalFlag(announce) as stop:
        for entry, checkpoint, run in resolve_runs(cfg):
            folder = cfg.outputs.directory_for(checkpoint)
            for prepared in prepare(cfg, checkpoint, info, entry):
                task_columns += prepared.task.summary_columns
                for breadth in prepared.point.cfg.breadth.different_init:
                    records, files = _sweep_pass(prepared, breadth, info, run, folder, stop)
                    result.records.extend(records)
                    result.files.extend(files)
    result.summary = summary_table(result.records, task_columns)
    if info.rank == 0 and result.records:
        result.folder = sweep_folder(cfg, result.records)
        result.files.append(write_text(result.folder / "eval_summary.md", result.summary))
        result.files.append(write_points(result.records, result.folder / "points.csv"))
        if cfg.outputs.plots:
            result.files.extend(write_plots(result.records, result.folder))
    return result
