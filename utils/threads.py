"""CPU threads: as many as this process's share of its CPUs, and fewer while other work needs them.

torch's OpenMP threads busy-wait for each other at the end of every parallel region. When another
job runs on the same CPUs, one of them is descheduled and the others spin until it returns: on
2 cores with one competing job, 2 threads ran training at half the speed of 1 thread and an
evaluation at 0.63x (benchmarks/README.md, "CPU threads"). So:

- the thread count starts at the CPUs in the affinity mask divided by the processes torchrun
  starts on this node (no oversubscription), logged once;
- while other jobs use CPUs (the machine's busy CPU time in /proc/stat less this process's own,
  over the last half second), `ThreadGovernor.adapt` lowers it to the CPUs left free and raises it
  back when they are free again, logging each change; it is called between steps and segments and
  costs one file read at most twice a second. CPU time over an interval, not the runnable tasks of
  one moment: a helper this process wakes as it works (the W&B service receiving a step's metrics)
  is runnable exactly when the check runs, yet uses next to no CPU;
- OMP_NUM_THREADS, when set, fixes the count: nothing adapts (the way to keep a CPU training run
  bit-identical whatever else runs, since float32 sums differ with the thread count).

Linux only; elsewhere the count is fixed.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from pathlib import Path

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.5
SAMPLES = 3  # decisions use the median of the last few readings, each over CHECK_EVERY_S
TAKEN = 0.3  # a CPU counts as taken once other jobs use this fraction of it: spinning threads collapse
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # /proc/stat's unit


def cpus_available() -> int:
    """CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def processes_on_node() -> int:
    """Processes torchrun starts on this node (1 outside torchrun)."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def machine_busy_seconds() -> float | None:
    """CPU seconds all CPUs have spent working since boot (None where /proc/stat is missing)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[1:8])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


class _OthersMeter:
    """CPUs that other processes used on average since the previous reading."""

    def __init__(self) -> None:
        self._last = self._now()

    @staticmethod
    def _now() -> tuple[float, float | None, float]:
        return time.monotonic(), machine_busy_seconds(), time.process_time()

    def read(self) -> float | None:
        (wall0, busy0, own0), (wall1, busy1, own1) = self._last, self._now()
        self._last = (wall1, busy1, own1)
        if busy0 is None or busy1 is None or wall1 <= wall0:
            return None
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / (wall1 - wall0)


class ThreadGovernor:
    """Owns torch's intra-op thread count for one process (see the module docstring)."""

    def __init__(self) -> None:
        import torch

        self._torch = torch
        pinned = os.environ.get("OMP_NUM_THREADS", "")
        self.pinned = pinned.isdigit() and int(pinned) > 0
        self.share = max(1, cpus_available() // processes_on_node())
        torch.set_num_threads(int(pinned) if self.pinned else self.share)
        self.threads = torch.get_num_threads()
        # Other jobs are counted machine-wide, so adapt only where this process may use every CPU
        # (a process pinned to a subset, by taskset or a scheduler, was given those CPUs).
        self.cpus = os.cpu_count() or 1
        self.adaptive = (not self.pinned and self.share > 1 and cpus_available() == self.cpus
                         and machine_busy_seconds() is not None)
        self._others = _OthersMeter()
        self._readings: deque[float] = deque(maxlen=SAMPLES)
        self._next_check = 0.0

    def describe(self) -> str:
        if self.pinned:
            return f"threads: {self.threads} (OMP_NUM_THREADS; fixed)"
        how = "; fewer while other jobs need the CPUs" if self.adaptive else ""
        return (f"threads: {self.threads} ({cpus_available()} CPUs in the affinity mask, "
                f"{processes_on_node()} process(es) on this node{how})")

    def adapt(self) -> int:
        """Between units of work: match the thread count to the CPUs other jobs leave free."""
        if not self.adaptive or time.monotonic() < self._next_check:
            return self.threads
        self._next_check = time.monotonic() + CHECK_EVERY_S
        others = self._others.read()
        if others is None:
            return self.threads
        self._readings.append(others)
        if len(self._readings) < SAMPLES:
            return self.threads
        used = sorted(self._readings)[SAMPLES // 2]
        busy = int(used + 1 - TAKEN)
        wanted = max(1, min(self.share, self.cpus - busy))
        if wanted != self.threads:
            log.info("threads: %d -> %d (other jobs use %.1f of %d CPUs)", self.threads, wanted, used, self.cpus)
            self._torch.set_num_threads(wanted)
            self.threads = wanted
        return self.threads


_governor: ThreadGovernor | None = None


def configure() -> ThreadGovernor:
    """The process's governor, created (and logged) on first use."""
    global _governor
    if _governor is None:
        _governor = ThreadGovernor()
        if os.environ.get("RANK", "0") == "0":  # once per run, not once per torchrun rank
            log.info(_governor.describe())
    return _governor


def adapt() -> None:
    """Let the governor adjust the thread count, if one was configured (entry points configure it)."""
    if _governor is not None:
        _governor.adapt()


def release() -> None:
    """Forget the process's governor, so nothing adapts until an entry point configures one again
    (entry points called in-process one after another, as tests call them, each start fresh)."""
    global _governor
    _governor = None
