"""Ctrl-C and SIGTERM during training: finish the step, write a checkpoint, stop.

The first SIGINT or SIGTERM is only remembered (utils/signals.py); the loop asks `requested()`
after every step and then saves and stops, so the checkpoint holds a whole step and resumes to the
same weights as an uninterrupted run. Under torchrun the ranks agree on it (one all-reduce of a
flag per step): the signal reaches them at different moments, and all must stop after the same
step to save together. A second signal stops at once, without saving.
"""

from __future__ import annotations

import torch

from utils.distributed import DistInfo, all_reduce_sum_
from utils.signals import SignalFlag


class StopOnSignal(SignalFlag):
    """The first SIGINT/SIGTERM as a stop request that every rank hears after the same step."""

    def __init__(self, dist: DistInfo) -> None:
        super().__init__("stopping after this step and writing a checkpoint" if dist.is_main else None)
        self.dist = dist

    def requested(self) -> bool:
        """Whether any rank got a signal; every rank must call this after the same step."""
        if self.dist.world_size == 1:
            return self.caught is not None
        flag = torch.tensor([float(self.caught is not None)], device=self.dist.device)
        all_reduce_sum_([flag])
        return bool(flag.item() > 0)
