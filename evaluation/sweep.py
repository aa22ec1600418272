"""Run an evaluation sweep: checkpoints x override points x breadths, every depth of a breadth in one pass.

Checks that the dataset fits the checkpoint before building anything, loads EMA weights
when present (unless `use_ema=false`), evaluates on CPU, one GPU or under torchrun (each
rank its slice, metrics summed across ranks) and writes the records on rank 0.
"""

from __future__ import annotations

import itertools
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
from evaluation.config import EvalConfig
from evaluation.engine import EvalResult, batches_in, run_evaluation
from evaluation.naming import dataset_label, overrides_label, run_label, run_labels, sweep_label
from evaluation.outputs import write_outputs
from evaluation.plots import write_plots
from evaluation.report import (
    make_record,
    record_stem_of,
    summary_table,
    write_points,
    write_record,
    write_reference_files,
    write_text,
    write_trajectories,
)
from evaluation.tta import build_transforms
from models.act import ACTModel
from models.config import parse_config
from models.loading import LoadedCheckpoint, build_from_checkpoint, infer_data_fields
from models.registry import ARCHITECTURES
from utils import distributed
from utils.checkpoint import CheckpointContents, CheckpointError, read_checkpoint, resolve_checkpoint
from utils.validation import ConfigError

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    summary: str = ""
    folder: Path | None = None  # the sweep's own folder: summary, points.csv, plots


def check_fit(checkpoint: str, cfg: EvalConfig) -> tuple[CheckpointContents, list[str], dict[str, int], Task]:
    """The checkpoint, the data paths, the dataset's shape fields and task; refuses a dataset that does
    not fit, before any model is built (a mismatch would otherwise surface as a list of weight shapes)."""
    contents = read_checkpoint(checkpoint)
    arch = contents.arch
    if arch.get("name") not in ARCHITECTURES:
        raise CheckpointError(f"{checkpoint}: arch.name: unknown name {arch.get('name')!r}; "
                              f"known: {', '.join(sorted(ARCHITECTURES))}")
    paths = cfg.dataset_data_path or contents.data_paths
    if not paths:
        raise ConfigError("dataset_data_path: not set, and the checkpoint's config names no data path")
    meta = read_metadata(paths, cfg.split)
    fields = {"seq_len": meta.seq_len, "vocab_size": meta.vocab_size,
              "num_puzzle_identifiers": meta.num_puzzle_identifiers}
    inferred = infer_data_fields(arch, contents.model_state)
    for key in ("seq_len", "vocab_size"):
        if key in inferred and inferred[key] != fields[key]:
            raise ConfigError(
                f"dataset_data_path: {key} {fields[key]} of {', '.join(paths)} does not match the checkpoint's "
                f"{inferred[key]} ({checkpoint})"
            )
    return contents, paths, fields, task_of(meta, ", ".join(paths))


DEFAULT_BATCH = 16  # puzzles per evaluation batch when the checkpoint records no training batch
DATA_FIELDS = {"seq_len", "vocab_size", "num_puzzle_identifiers", "batch_size"}


def override_points(cfg: EvalConfig, contents: CheckpointContents, fields: dict[str, int]) -> list[dict[str, Any]]:
    """`init_override` merged into every point of the `param_iter` product, checked against the
    architecture's schema before any model is built; unknown keys and bad values name the key."""
    name = contents.arch["name"]
    config_cls = ARCHITECTURES[name].config_cls
    allowed = sorted(set(config_cls.model_fields) - DATA_FIELDS - {"halt_max_steps"})
    for section, keys in (("init_override", cfg.init_override), ("param_iter", cfg.param_iter)):
        for key in keys:
            if key not in allowed:
                raise ConfigError(f"{section}.{key}: not an architecture key of {name}; known: {', '.join(allowed)}")
    keys = list(cfg.param_iter)
    points = [{**cfg.init_override, **dict(zip(keys, values, strict=True))}
              for values in itertools.product(*cfg.param_iter.values())]
    for point in points:
        try:
            parse_config(config_cls, {**contents.arch, **fields, **point})
        except ConfigError as err:
            raise ConfigError(f"init_override/param_iter {point}: {err}") from None
    return points


def _settings(cfg: EvalConfig, done: Evaluated, depth: int, info: distributed.DistInfo) -> dict:
    """What a record says about how it was made."""
    loaded, run = done.loaded, done.run
    return {
        "checkpoint": done.checkpoint, "step": loaded.step, "used_ema": loaded.used_ema,
        "arch": loaded.contents.arch.get("name"), "dataset": done.data_paths, "split": cfg.split,
        "halt_max_steps": depth, "different_init": done.breadth, "tta": cfg.tta, "overrides": done.point,
        "different_init_reset_std": cfg.different_init_reset_std, "reference_counting": cfg.reference_counting,
        "convergence_top_k": cfg.convergence_top_k, "convergence_window": cfg.convergence_window,
        "breadth_agree": cfg.breadth_agree,
        "elastic": cfg.elastic, "elastic_patience": cfg.elastic_patience,
        "elastic_tol": cfg.elastic_tol, "elastic_use_q": cfg.elastic_use_q, "elastic_rules": cfg.elastic_rules,
        "elastic_combine": cfg.elastic_combine, "elastic_min_steps": cfg.elastic_min_steps, "seed": cfg.seed,
        "global_batch_size": done.batch, "max_rows": cfg.max_rows, "compiled": done.compiled, "kernels": cfg.kernels,
        "max_eval_steps": cfg.max_eval_steps, "world_size": info.world_size, "device": info.device.type,
        "pass_depth": max(cfg.depths), "pass_wall_s": run.wall_s, "pass_trajectory_segments": run.trajectory_segments,
    }


@dataclass
class Prepared:
    """A checkpoint at one override point, built (and compiled) once for any number of passes."""

    checkpoint: str
    loaded: LoadedCheckpoint
    model: ACTModel
    segment: Callable[..., tuple] | None  # the compiled inner network, or None for eager
    data_paths: list[str]
    point: dict[str, Any]
    batch: int  # puzzles per evaluation batch
    transforms: TransformSet


@dataclass
class Evaluated:
    """One pass over the data: a (checkpoint, override point, breadth) and its per-depth result."""

    checkpoint: str
    loaded: LoadedCheckpoint
    data_paths: list[str]
    point: dict[str, Any]
    breadth: int
    batch: int  # puzzles per evaluation batch
    compiled: bool
    run: EvalResult


def prepare(cfg: EvalConfig, checkpoint: str, info: distributed.DistInfo) -> Iterator[Prepared]:
    """`checkpoint` built at every override point of `cfg`, after checking that the data fits it."""
    compiled = cfg.compile if cfg.compile is not None else info.device.type == "cuda"
    contents, data_paths, fields, task = check_fit(checkpoint, cfg)
    batch = cfg.global_batch_size or int(contents.config.get("global_batch_size") or DEFAULT_BATCH)
    if batch % info.world_size:
        raise ConfigError(f"global_batch_size: {batch} puzzles do not divide among {info.world_size} ranks"
                          + ("" if cfg.global_batch_size else " (the checkpoint's training batch; set one)"))
    points = override_points(cfg, contents, fields)
    transforms = build_transforms(cfg.tta, cfg.tta_kind, task, fields["seq_len"], fields["vocab_size"], cfg.seed)
    for point in points:
        overrides = {**fields, "halt_max_steps": max(cfg.depths), **point}
        if cfg.forward_dtype:
            overrides["forward_dtype"] = cfg.forward_dtype
        loaded = build_from_checkpoint(contents, use_ema=cfg.use_ema, data_fields=overrides)
        model = loaded.act_model.to(info.device).eval()
        changes = model.use_kernels(cfg.kernels)
        if info.rank == 0:
            log.info("kernels: %s%s", cfg.kernels, f" ({'; '.join(changes)})" if changes else "")
        segment = torch.compile(model.inner, dynamic=False) if compiled else None
        yield Prepared(checkpoint, loaded, model, segment, data_paths, point, batch, transforms)


def evaluate_pass(cfg: EvalConfig, prepared: Prepared, breadth: int, info: distributed.DistInfo) -> Evaluated:
    """One pass of `prepared` over the split at breadth `breadth`: every depth of `cfg`, its other options."""
    dataset = PuzzleDataset(
        PuzzleDatasetConfig(data_paths=prepared.data_paths, global_batch_size=prepared.batch, rank=info.rank,
                            world_size=info.world_size, seed=cfg.seed, test_set_mode=True),
        split=cfg.split,
    )
    compiled = prepared.segment is not None
    if info.rank == 0:
        log.info("%s: D=%s B=%d tta=%d, %d puzzles per batch%s%s", prepared.checkpoint, cfg.depths, breadth,
                 cfg.tta, prepared.batch, ", compiled" if compiled else "",
                 f" {prepared.point}" if prepared.point else "")
    run = run_evaluation(
        prepared.model, islice(dataset.test_batches(), cfg.max_eval_steps), cfg.depths,
        different_init=breadth, convergence_top_k=cfg.convergence_top_k,
        convergence_window=cfg.convergence_window, seed=cfg.seed, tta=prepared.transforms,
        elastic=cfg.elastic_exit, per_trajectory=cfg.per_trajectory,
        restart_std=cfg.different_init_reset_std, counting=cfg.counting, save_outputs=cfg.save_outputs,
        total_batches=batches_in(dataset.num_examples, prepared.batch, cfg.max_eval_steps),
        progress=cfg.progress, max_rows=cfg.max_rows, segment=prepared.segment, breadth_agree=cfg.breadth_agree,
    )
    return Evaluated(prepared.checkpoint, prepared.loaded, prepared.data_paths, prepared.point, breadth,
                     prepared.batch, compiled, run)


def evaluate_checkpoint(cfg: EvalConfig, checkpoint: str, info: distributed.DistInfo) -> Iterator[Evaluated]:
    """Evaluate `checkpoint` at every override point and breadth of `cfg`, all depths of a breadth in one pass."""
    for prepared in prepare(cfg, checkpoint, info):
        for breadth in cfg.different_init:
            yield evaluate_pass(cfg, prepared, breadth, info)


def resolve_runs(cfg: EvalConfig) -> list[tuple[str, str | None]]:
    """(checkpoint file, run label) for every checkpoint of the sweep: a folder means its latest checkpoint.
    Several checkpoints get labels distinct within the sweep (more parent folders where two would agree);
    a single one gets its label once its architecture is read (None here)."""
    files = [str(resolve_checkpoint(c)) for c in cfg.checkpoints]
    if len(files) == 1:
        return [(files[0], None)]
    arch_names = [read_checkpoint(f).arch.get("name") for f in files]
    return list(zip(files, run_labels(files, arch_names), strict=True))


def _record(cfg: EvalConfig, done: Evaluated, depth: int, info: distributed.DistInfo,
            run: str | None) -> dict[str, Any]:
    settings = _settings(cfg, done, depth, info)
    settings.update(run=run or run_label(done.checkpoint, settings["arch"]),
                    dataset_name=dataset_label(done.data_paths, cfg.split), use_ema=cfg.use_ema,
                    tta_kind=cfg.tta_kind, forward_dtype=cfg.forward_dtype)
    return make_record(settings, done.run.metrics[depth])


def _write_point(cfg: EvalConfig, record: dict[str, Any], done: Evaluated, depth: int, folder: Path) -> list[Path]:
    """The files of one (run, overrides, D, B) point."""
    files = list(write_record(record, folder))
    if cfg.reference_files:
        files += write_reference_files(record, folder)
    if done.run.per_trajectory is not None:
        files.append(write_trajectories(record, done.run.per_trajectory[depth], folder))
    if done.run.outputs is not None:
        files.append(write_outputs(done.run.outputs[depth], folder / f"{record_stem_of(record)}_outputs.pt"))
    return files


def sweep_folder(cfg: EvalConfig, records: list[dict[str, Any]]) -> Path:
    """`sweep_<runs>_<dataset>_D.._B..[_tags]` in `output_dir` (or beside the first checkpoint)."""
    first = records[0]["config"]
    runs = list(dict.fromkeys(r["config"]["run"] for r in records))
    datasets = "+".join(dict.fromkeys(r["config"]["dataset_name"] for r in records))
    points = list({overrides_label(r["config"]["overrides"]): r["config"]["overrides"] for r in records}.values())
    label = sweep_label(runs, datasets, cfg.depths, cfg.different_init, first, points)
    return cfg.output_dir_for(first["checkpoint"]) / f"sweep_{label}"


def run_sweep(cfg: EvalConfig) -> SweepResult:
    """Evaluate every checkpoint at every (override point, D, B); on rank 0 write every point's files, and
    the sweep's summary, `points.csv` and plots into its own folder."""
    info = distributed.setup(cfg.device)
    result = SweepResult()
    for checkpoint, run in resolve_runs(cfg):
        folder = cfg.output_dir_for(checkpoint)
        for done in evaluate_checkpoint(cfg, checkpoint, info):
            for depth in cfg.depths:
                record = _record(cfg, done, depth, info, run)
                result.records.append(record)
                if info.rank == 0:
                    result.files.extend(_write_point(cfg, record, done, depth, folder))
    result.summary = summary_table(result.records)
    if info.rank == 0 and result.records:
        result.folder = sweep_folder(cfg, result.records)
        result.files.append(write_text(result.folder / "eval_summary.md", result.summary))
        result.files.append(write_points(result.records, result.folder / "points.csv"))
        if cfg.plots:
            result.files.extend(write_plots(result.records, result.folder))
    return result
