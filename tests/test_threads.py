"""The CPU thread policy: the affinity share at start, fewer threads while other jobs hold the CPUs,
nothing adapts when OMP_NUM_THREADS fixes the count."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from utils import threads

LINUX_WITH_CPUS = sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) >= 2 \
    and Path("/proc/stat").exists()


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _adapt_until(governor: threads.ThreadGovernor, done, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        governor.adapt()
        if done(governor.threads):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not LINUX_WITH_CPUS, reason="needs Linux /proc and at least 2 CPUs")
def test_threads_drop_while_other_jobs_run_and_come_back(monkeypatch, restore_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    governor = threads.ThreadGovernor()
    cpus = threads.cpus_available()
    assert governor.threads == governor.share == cpus and governor.adaptive
    assert "fewer while other jobs need the CPUs" in governor.describe()
    # One busy job on every CPU but one: at most one CPU is left, whatever else runs.
    jobs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cpus - 1)]
    try:
        assert _adapt_until(governor, lambda n: n == 1, 15), governor.threads
        assert torch.get_num_threads() == 1
    finally:
        for job in jobs:
            job.kill()
            job.wait()
    assert _adapt_until(governor, lambda n: n > 1, 15), "the count must rise again once the CPUs are free"
    assert torch.get_num_threads() == governor.threads


# A helper that works briefly whenever this process hands it something, as the W&B service does with
# each step's metrics: runnable at the very moment the governor checks, yet next to no CPU.
WOKEN_HELPER = """
import sys, time
for line in sys.stdin:
    end = time.perf_counter() + 0.002
    while time.perf_counter() < end:
        pass
"""


@pytest.mark.skipif(not LINUX_WITH_CPUS, reason="needs Linux /proc and at least 2 CPUs")
def test_a_helper_woken_at_each_check_keeps_every_thread(monkeypatch, restore_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    governor = threads.ThreadGovernor()
    helper = subprocess.Popen([sys.executable, "-c", WOKEN_HELPER], stdin=subprocess.PIPE, text=True, bufsize=1)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            helper.stdin.write("step\n")
            governor.adapt()
            assert governor.threads == governor.share, "a helper using ~5% of a CPU must not take a thread"
            time.sleep(0.04)
    finally:
        helper.stdin.close()
        helper.wait()


def test_omp_num_threads_fixes_the_count(monkeypatch, restore_threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    governor = threads.ThreadGovernor()
    assert not governor.adaptive and governor.describe() == "threads: 1 (OMP_NUM_THREADS; fixed)"
    governor.adapt()
    assert governor.threads == 1


def test_torchrun_processes_share_the_cpus(monkeypatch, restore_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(threads.cpus_available() * 2))
    governor = threads.ThreadGovernor()  # more processes than CPUs: one thread each, nothing to adapt
    assert governor.share == 1 and governor.threads == 1 and not governor.adaptive
