"""Where and how a built model runs: its device, its kernel path, and one compile policy for every caller.

Training, evaluation, visualization and benchmarks prepare their model here, so `kernels=`,
`compile=` and `DISABLE_COMPILE` mean the same everywhere. What is compiled stays the caller's:
training compiles its whole loss-head step, evaluation the inner segment it drives.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from models.act import ACTModel

log = logging.getLogger(__name__)


def compile_enabled(requested: bool | None, device: torch.device) -> bool:
    """Whether to `torch.compile`: `DISABLE_COMPILE` set (to anything but "" or "0") turns it off whatever
    was asked, the one switch for a machine without a working compiler; else `compile=`; unset: on CUDA."""
    if os.environ.get("DISABLE_COMPILE", "0") not in ("", "0"):
        return False
    return device.type == "cuda" if requested is None else requested


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """`module` in eval mode inside the block; its mode before is restored however the block ends."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@dataclass(frozen=True)
class Runtime:
    model: ACTModel  # on its device, its kernel path selected
    compile: bool  # the policy's answer (`compile_enabled`)


def prepare_runtime(model: ACTModel, device: torch.device, kernels: str = "reference", compile: bool | None = None,
                    announce: bool = True) -> Runtime:
    """`model` on `device` with `kernels` (docs/kernels.md) and the compile decision; `announce` logs the
    kernel path once (rank 0)."""
    model = model.to(device)
    changes = model.use_kernels(kernels)
    if announce:
        log.info("kernels: %s%s", kernels, f" ({'; '.join(changes)})" if changes else "")
    return Runtime(model=model, compile=compile_enabled(compile, device))
