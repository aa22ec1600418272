"""Run an evaluation sweep: checkpoints x breadths, every depth of a breadth in one pass.

Checks that the dataset fits the checkpoint before building anything, loads EMA weights
when present (unless `use_ema=false`), evaluates on CPU, one GPU or under torchrun (each
rank its slice, metrics summed across ranks) and writes the records on rank 0.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig, read_metadata
from models.registry import ARCHITECTURES
from utils.checkpoint import (
    CheckpointContents,
    CheckpointError,
    build_from_checkpoint,
    infer_data_fields,
    read_checkpoint,
)
from utils.eval_config import EvalConfig
from utils.eval_report import make_record, summary_table, write_plots, write_record, write_trajectories
from utils.evaluation import run_evaluation
from utils.tta import build_transforms
from utils.validation import ConfigError

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    summary: str = ""


def init_distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); joins the torchrun process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA device is available")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if use_cuda:
        index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
        return rank, world, torch.device("cuda", index)
    return rank, world, torch.device("cpu")


def check_fit(checkpoint: str, cfg: EvalConfig) -> tuple[CheckpointContents, list[str], dict[str, int]]:
    """The checkpoint, the data paths and the dataset's shape fields; refuses a dataset that does not
    fit, before any model is built (a mismatch would otherwise surface as a list of weight shapes)."""
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
    return contents, paths, fields


def run_sweep(cfg: EvalConfig) -> SweepResult:
    """Evaluate every checkpoint at every (D, B); write records, summary and plots on rank 0."""
    rank, world, device = init_distributed(cfg.device)
    if cfg.global_batch_size % world:
        raise ConfigError(f"global_batch_size: {cfg.global_batch_size} is not divisible by {world} ranks")
    result = SweepResult()
    for checkpoint in cfg.checkpoints:
        contents, data_paths, fields = check_fit(checkpoint, cfg)
        overrides = {**fields, "halt_max_steps": max(cfg.halt_max_steps)}
        if cfg.forward_dtype:
            overrides["forward_dtype"] = cfg.forward_dtype
        loaded = build_from_checkpoint(contents, use_ema=cfg.use_ema, data_fields=overrides)
        model = loaded.act_model.to(device).eval()
        transforms = build_transforms(cfg.tta, cfg.tta_kind, fields["seq_len"], fields["vocab_size"], cfg.seed)
        for breadth in cfg.different_init:
            dataset = PuzzleDataset(
                PuzzleDatasetConfig(data_paths=data_paths, global_batch_size=cfg.global_batch_size, rank=rank,
                                    world_size=world, seed=cfg.seed, test_set_mode=True),
                split=cfg.split,
            )
            batches = islice(dataset.test_batches(), cfg.max_eval_steps)
            if rank == 0:
                log.info("%s: D=%s B=%d tta=%d", checkpoint, cfg.halt_max_steps, breadth, cfg.tta)
            run = run_evaluation(model, batches, cfg.halt_max_steps, breadth, cfg.convergence_top_k,
                                 cfg.convergence_window, cfg.seed, transforms, cfg.elastic_exit, cfg.per_trajectory)
            for depth in cfg.halt_max_steps:
                settings = {
                    "checkpoint": checkpoint, "step": loaded.step, "used_ema": loaded.used_ema,
                    "arch": contents.arch.get("name"), "dataset": data_paths, "split": cfg.split,
                    "halt_max_steps": depth, "different_init": breadth, "tta": cfg.tta,
                    "convergence_top_k": cfg.convergence_top_k, "convergence_window": cfg.convergence_window,
                    "elastic": cfg.elastic, "elastic_patience": cfg.elastic_patience,
                    "elastic_tol": cfg.elastic_tol, "elastic_use_q": cfg.elastic_use_q, "seed": cfg.seed,
                    "global_batch_size": cfg.global_batch_size, "max_eval_steps": cfg.max_eval_steps,
                    "world_size": world, "device": device.type, "pass_depth": max(cfg.halt_max_steps),
                    "pass_wall_s": run.wall_s, "pass_trajectory_segments": run.trajectory_segments,
                }
                record = make_record(settings, run.metrics[depth])
                result.records.append(record)
                if rank == 0:
                    folder = cfg.output_dir_for(checkpoint)
                    result.files.extend(write_record(record, folder))
                    if run.per_trajectory is not None:
                        result.files.append(write_trajectories(record, run.per_trajectory[depth], folder))
    result.summary = summary_table(result.records)
    if rank == 0:
        out = cfg.output_dir_for(cfg.checkpoints[0])
        summary_path = out / "eval_summary.md"
        summary_path.write_text(result.summary)
        result.files.append(summary_path)
        if cfg.plots:
            result.files.extend(write_plots(result.records, out))
    return result
