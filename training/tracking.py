"""Metric logging: Weights & Biases on rank 0 (never blocking on a login prompt) plus the console."""

from __future__ import annotations

import logging
import netrc
import os
from typing import Any

from utils.validation import ConfigError

log = logging.getLogger(__name__)


def has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def resolve_wandb_mode(requested: str | None) -> str:
    """`null` means the `WANDB_MODE` environment variable when set, else online when credentials
    exist and offline otherwise (runs sync later)."""
    if requested is not None:
        return requested
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env:
        mode = {"dryrun": "offline", "run": "online"}.get(env, env)
        if mode not in ("online", "offline", "disabled"):
            raise ConfigError(f"WANDB_MODE: {env!r} is not online, offline or disabled")
        return mode
    return "online" if has_wandb_credentials() else "offline"


class Tracker:
    """W&B run on the main rank; every other rank (and mode `disabled`) logs nothing."""

    def __init__(self, config: dict[str, Any], *, project: str, name: str, entity: str | None,
                 mode: str | None, directory: str, enabled: bool, run_id: str | None = None) -> None:
        self.run = None
        self.mode = resolve_wandb_mode(mode)
        if not enabled or self.mode == "disabled":
            return
        import wandb

        os.makedirs(directory, exist_ok=True)
        self.run = wandb.init(project=project, name=name, entity=entity, mode=self.mode, config=config,
                              dir=directory, id=run_id, resume="allow" if run_id else None)
        log.info("W&B run %s (%s)", self.run.id, self.mode)

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
