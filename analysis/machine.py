"""One line naming the machine a measurement ran on (CPU model, threads, torch, GPU), for reports."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what `platform` knows."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_machine(device: str = "cpu") -> str:
    gpu = f", {torch.cuda.get_device_name()}" if device != "cpu" and torch.cuda.is_available() else ""
    return f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}{gpu}"
