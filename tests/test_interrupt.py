"""Ctrl-C (or SIGTERM) in training keeps the work: the step finishes, a checkpoint is written, one line says
how to resume, and resuming reaches exactly the weights of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset
from tests.conftest import ROOT

STEPS = 120
ARGS = ["--config-name", "train/eqr_maze_unique", "arch.hidden_size=32", "arch.num_heads=2",
        "arch.forward_dtype=float32", "arch.H_cycles=2", "arch.L_cycles=2", "global_batch_size=16",
        "wandb_mode=disabled", f"max_steps={STEPS}", "eval_interval_steps=null", "checkpoint_interval_steps=1000",
        "log_interval_steps=1", "lr_warmup_steps=5"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # fixed threads: bit-identical runs


@pytest.fixture(scope="module")
def maze(tmp_path_factory) -> Path:
    return build_maze_dataset(MazeBuildConfig(output_dir=tmp_path_factory.mktemp("data") / "maze", grid_size=7,
                                              train_samples=40, test_samples=8, min_path_length=3,
                                              max_path_length=10))


def _command(maze: Path, run: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "pretrain.py"), *ARGS, f"dataset.data_path={maze}", f"checkpoint_path={run}",
            *extra]


@pytest.fixture(scope="module")
def uninterrupted(maze, tmp_path_factory) -> dict:
    run = tmp_path_factory.mktemp("straight")
    proc = subprocess.run(_command(maze, run), capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return torch.load(run / f"step_{STEPS}.pth", weights_only=False)


def _interrupt(command: list[str], sig: signal.Signals) -> tuple[int, str]:
    """Start `command`, send `sig` once it has logged its third step, return (exit status, stderr)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 300
    for line in proc.stdout:  # one summary line per step
        if line.startswith("step 3/"):
            proc.send_signal(sig)
            break
        assert time.monotonic() < deadline, "training did not start"
    else:
        pytest.fail(f"training ended before it was interrupted: {proc.stderr.read()}")
    proc.stdout.read()
    err = proc.stderr.read()
    return proc.wait(timeout=300), err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_saves_and_resumes_to_the_same_weights(maze, uninterrupted, tmp_path, sig):
    run = tmp_path / "run"
    code, err = _interrupt(_command(maze, run), sig)
    assert code == 130, err
    assert "Traceback" not in err
    saved = sorted(run.glob("step_*.pth"))
    assert len(saved) == 1, err
    step = int(saved[0].stem.removeprefix("step_"))
    assert 3 <= step < STEPS
    assert err.strip().splitlines()[-1] == (f"interrupted ({sig.name}) at step {step} of {STEPS}: saved {saved[0]}; "
                                            "resume with resume=true")
    assert not list(run.glob(".*tmp*")), "no temporary file may be left"
    assert torch.load(saved[0], weights_only=False)["step"] == step

    proc = subprocess.run(_command(maze, run, "resume=true"), capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr
    resumed = torch.load(run / f"step_{STEPS}.pth", weights_only=False)
    for key in ("model", "ema"):
        expected = uninterrupted[key] if key == "model" else uninterrupted[key]["shadow"]
        got = resumed[key] if key == "model" else resumed[key]["shadow"]
        assert set(got) == set(expected)
        assert all(torch.equal(got[name], expected[name]) for name in expected), key
