"""Where a run starts: fresh, from a checkpoint's weights, or exactly where a checkpoint was taken.

- `resume=true|PATH` continues a run where its checkpoint was taken (true: the latest `step_<n>.pth` in
  the run directory, a fresh start when there is none), its W&B run included.
- `load_checkpoint=PATH` starts this run from a checkpoint, as the reference does: the whole trainer
  state (weights, EMA, optimizers, step, sampler position, carry, RNG streams) when the file holds it,
  only the weights with `load_weights_only=true`. A file that holds nothing but weights (an HRM/TRM
  release, a bare state dict, a file without optimizer state) loads its weights with one log line
  saying so; `load_weights_only=false` asks for the whole state and makes such a file an error.
  The run logs to a new W&B run either way.
- A checkpoint that `resume` finds comes first, so a relaunched job continues its own run rather
  than starting again from `load_checkpoint`.
- `resume=true` (or a folder) takes the newest checkpoint that is usable: its recorded SHA-256 matches
  (`step_<n>.pth.sha256`), it loads, and it holds a trainer's state. One that is not (truncated by a
  copy, a partial sync, a disk that filled outside our rename) is named in one log line and the one
  before it is tried; none usable is one error line. A file named by `resume=PATH` is used or refused.
The file is read once here; the trainer's components restore themselves from what this returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.schema import PretrainConfig
from utils.checkpoint import (
    CheckpointContents,
    read_checkpoint,
    resolve_checkpoint,
    step_checkpoints,
    verify_checksum,
)
from utils.safe_load import CheckpointError, safe_torch_load

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartPoint:
    """What the trainer loads before its first step (neither weights nor state: a fresh run)."""

    source: str | None = None
    weights: CheckpointContents | None = None  # initial weights only: step 0, fresh optimizers, EMA from them
    trainer_state: dict[str, Any] | None = None  # every component's state, the step included
    continues_run: bool = False  # resume=: the checkpoint's W&B run goes on


def has_trainer_state(raw: Any) -> bool:
    """A training checkpoint (ours or the reference trainer's) rather than weights alone."""
    return isinstance(raw, dict) and "model" in raw and "optimizers" in raw


def latest_or_none(run_dir: Path) -> Path | None:
    """The run's latest `step_<n>.pth`: what `resume=true` continues and a NaN error names."""
    found = step_checkpoints(run_dir)
    return found[-1] if found else None


TRAINER_KEYS = ("model", "optimizers", "step", "train_dataset")


@dataclass(frozen=True)
class Resumed:
    """The checkpoint a resume continues, read."""

    path: Path
    state: dict[str, Any]


def read_resumable(path: Path) -> Resumed:
    """The checkpoint at `path` if it verifies, loads and holds a trainer's state; else `CheckpointError`."""
    verify_checksum(path)
    raw = safe_torch_load(path, map_location="cpu")
    missing = [key for key in TRAINER_KEYS if not isinstance(raw, dict) or key not in raw]
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint with optimizer state (missing {', '.join(missing)}); "
                              "resume= needs one (use load_checkpoint= to start from its weights)")
    return Resumed(path, raw)


def latest_usable(run_dir: Path) -> Resumed | None:
    """Newest first, the first checkpoint of `run_dir` that `read_resumable` accepts; None when it has none."""
    found = step_checkpoints(run_dir)
    for path in reversed(found):
        try:
            return read_resumable(path)
        except CheckpointError as err:  # this one is unusable: say so and try the one before
            log.warning("resume: skipping %s", err)
    if found:
        raise CheckpointError(f"{run_dir}: none of its {len(found)} checkpoints is usable (the reasons are logged "
                              "above); start afresh with resume=false or name a file with load_checkpoint=")
    return None


def resumed(config: PretrainConfig) -> Resumed | None:
    """The checkpoint `resume=` continues (true or a folder: the latest usable); None for `resume=false` or a
    run without checkpoints."""
    if config.resume is False:
        return None
    target = Path(str(config.checkpoint_path)) if config.resume is True else Path(str(config.resume))
    if config.resume is True or step_checkpoints(target):
        found = latest_usable(target)
    else:  # a file, or a folder of another layout: resolve_checkpoint says what it holds
        found = read_resumable(resolve_checkpoint(target))
    if found is None:
        log.info("resume: no checkpoint in %s, starting %s", target,
                 f"from load_checkpoint={config.load_checkpoint}" if config.load_checkpoint else "fresh")
    return found


def start_point(config: PretrainConfig) -> StartPoint:
    """Decide and read what the run starts from (module docstring); errors name the file."""
    found = resumed(config)
    if found is not None:
        if config.load_checkpoint:
            log.info("resume: continuing from %s; load_checkpoint=%s is not used", found.path, config.load_checkpoint)
        return StartPoint(source=str(found.path), trainer_state=found.state, continues_run=True)
    if not config.load_checkpoint:
        return StartPoint()
    contents = read_checkpoint(config.load_checkpoint, need_config=False)
    source = str(contents.path)
    full = has_trainer_state(contents.raw)
    if config.load_weights_only is False and not full:
        raise CheckpointError(f"{source}: holds weights only (no optimizer state), but load_weights_only=false asks "
                              "for the whole trainer state; leave load_weights_only unset or true to start from "
                              "its weights")
    if full and not config.load_weights_only:
        return StartPoint(source=source, trainer_state=contents.raw)
    if full:
        log.info("load_checkpoint: weights of %s only (load_weights_only=true): step 0, fresh optimizers", source)
    else:
        log.info("load_checkpoint: %s holds weights only (no optimizer state): loading its weights, step 0, "
                 "fresh optimizers", source)
    return StartPoint(source=source, weights=contents)
