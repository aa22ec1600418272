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
The file is read once here; the trainer's components restore themselves from what this returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.schema import PretrainConfig
from utils.checkpoint import CheckpointContents, read_checkpoint, resolve_checkpoint, step_checkpoints
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


def resume_path(config: PretrainConfig) -> Path | None:
    """The checkpoint `resume=` names (a folder: its latest); None for `resume=false` or an empty run."""
    if config.resume is False:
        return None
    run_dir = Path(str(config.checkpoint_path))
    path = latest_or_none(run_dir) if config.resume is True else resolve_checkpoint(config.resume)
    if path is None:
        log.info("resume: no checkpoint in %s, starting %s", run_dir,
                 f"from load_checkpoint={config.load_checkpoint}" if config.load_checkpoint else "fresh")
    return path


def start_point(config: PretrainConfig) -> StartPoint:
    """Decide and read what the run starts from (module docstring); errors name the file."""
    resumed = resume_path(config)
    if resumed is not None:
        if config.load_checkpoint:
            log.info("resume: continuing from %s; load_checkpoint=%s is not used", resumed, config.load_checkpoint)
        return StartPoint(source=str(resumed), trainer_state=safe_torch_load(resumed, map_location="cpu"),
                          continues_run=True)
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
