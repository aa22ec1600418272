"""Ctrl-C and SIGTERM during training: finish the step, write a checkpoint, stop.

The first SIGINT or SIGTERM is only remembered; the loop asks `requested()` after every step and
then saves and stops, so the checkpoint holds a whole step and resumes to the same weights as an
uninterrupted run. Under torchrun the ranks agree on it (one all-reduce of a flag per step):
the signal reaches them at different moments, and all must stop after the same step to save
together. A second signal stops at once, without saving.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Any

import torch

from utils.distributed import DistInfo, all_reduce_sum_

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """Context manager that turns the first SIGINT/SIGTERM into a stop request (main thread only)."""

    def __init__(self, dist: DistInfo) -> None:
        self.dist = dist
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        except ValueError:  # not the main thread: signals stay as they are
            self._previous = {}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        if self.dist.is_main:
            log.warning("%s: stopping after this step and writing a checkpoint (again to stop at once, "
                        "without saving)", self.signal_name)

    def requested(self) -> bool:
        """Whether any rank got a signal; every rank must call this after the same step."""
        if self.dist.world_size == 1:
            return self.signal_name is not None
        flag = torch.tensor([float(self.signal_name is not None)], device=self.dist.device)
        all_reduce_sum_([flag])
        return bool(flag.item() > 0)
