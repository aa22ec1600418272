"""What a cluster does to a run: a latest checkpoint truncated outside our rename, a disk that fills."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.test_training import CPU, TINY, make_config, run_pretrain
from training import state
from training.trainer import Trainer
from utils import checkpoint
from utils.safe_load import CheckpointError, safe_torch_load

OPTS = ("arch.halt_exploration_prob=0.5", "arch.noise_scale=0.05", "arch.halt_max_steps=2")


def trainer(data: Path, run: Path, *overrides: str) -> Trainer:
    return Trainer(make_config("train/eqr_maze_unique", data, run, *OPTS, *overrides), CPU)


@pytest.fixture(scope="module")
def full_run(maze_dir, tmp_path_factory) -> Path:
    """6 steps of EqR (noise, RI, exploration on) with a checkpoint every 2."""
    run = tmp_path_factory.mktemp("full")
    trainer(maze_dir, run, "max_steps=6", "checkpoint_interval_steps=2").run()
    return run


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = safe_torch_load(a), safe_torch_load(b)
    assert left["step"] == right["step"]
    for key, value in left["model"].items():
        assert torch.equal(value, right["model"][key]), key


def copy_run(source: Path, target: Path, steps: tuple[int, ...]) -> Path:
    target.mkdir()
    for step in steps:
        for name in (f"step_{step}.pth", f"step_{step}.pth.sha256"):
            shutil.copy(source / name, target / name)
    return target


def test_every_checkpoint_has_a_sha256sum_record(full_run):
    assert sorted(p.name for p in full_run.glob("step_*")) == [
        f"step_{s}.pth{suffix}" for s in (2, 4, 6) for suffix in ("", ".sha256")]
    done = subprocess.run(["sha256sum", "-c", "step_4.pth.sha256"], cwd=full_run, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "step_4.pth: OK"


@pytest.mark.parametrize("record", [True, False])
def test_a_truncated_latest_checkpoint_is_skipped(maze_dir, full_run, tmp_path, caplog, record):
    """With its record the checksum tells; without it (killed between the two renames) loading does."""
    run = copy_run(full_run, tmp_path / "run", (2, 4))
    latest = run / "step_4.pth"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # a partial copy
    if not record:
        checkpoint.checksum_path(latest).unlink()
    with caplog.at_level(logging.WARNING, logger="training.start"):
        resumed = trainer(maze_dir, run, "max_steps=6", "checkpoint_interval_steps=2", "resume=true")
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 1 and str(latest) in skipped[0]
    assert ("SHA-256" in skipped[0]) == record
    assert resumed.step == 2
    resumed.run()  # and goes on exactly as the run it came from
    assert_same_weights(full_run / "step_6.pth", run / "step_6.pth")


def test_no_usable_checkpoint_is_one_line(maze_dir, full_run, tmp_path):
    run = copy_run(full_run, tmp_path / "run", (2,))
    (run / "step_2.pth").write_bytes(b"PK\x03\x04 not much of a zip")
    with pytest.raises(CheckpointError, match=r"none of its 1 checkpoints is usable") as err:
        trainer(maze_dir, run, "max_steps=6", "resume=true")
    assert "\n" not in str(err.value)


def test_a_named_bad_file_is_refused_not_replaced(maze_dir, full_run, tmp_path):
    run = copy_run(full_run, tmp_path / "run", (2, 4))
    (run / "step_4.pth").write_bytes((run / "step_4.pth").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="step_4.pth: SHA-256"):
        trainer(maze_dir, tmp_path / "other", "max_steps=6", f"resume={run / 'step_4.pth'}")


Usage = namedtuple("Usage", "total used free")


def test_a_full_disk_keeps_the_previous_checkpoint_and_training_goes_on(maze_dir, full_run, tmp_path, monkeypatch,
                                                                         caplog):
    """The disk is full when step 4 is saved: one error line, step 2 stays, training goes on and saves step 6;
    a full disk at the last step is an error, since the run's result would be lost."""
    calls = []

    def disk_usage(path):
        calls.append(path)
        return Usage(10**12, 0, 0 if len(calls) == 2 else 10**12)

    monkeypatch.setattr(checkpoint.shutil, "disk_usage", disk_usage)
    run = tmp_path / "run"
    with caplog.at_level(logging.ERROR, logger="training.trainer"):
        trainer(maze_dir, run, "max_steps=6", "checkpoint_interval_steps=2").run()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and f"could not save {run / 'step_4.pth'}" in errors[0]
    assert f"{run / 'step_2.pth'}, is kept" in errors[0] and "0.0 MiB free" in errors[0]
    assert sorted(p.name for p in run.glob("step_*.pth")) == ["step_2.pth", "step_6.pth"]
    assert not list(run.glob(".step_4*"))
    assert_same_weights(full_run / "step_6.pth", run / "step_6.pth")  # the failed save changed nothing

    calls.clear()
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda path: Usage(10**12, 0, 0))
    with pytest.raises(CheckpointError, match=r"could not save .*step_2.pth .*the previous checkpoint, none"):
        trainer(maze_dir, tmp_path / "last", "max_steps=2", "checkpoint_interval_steps=2").run()


def _rank_pids(run: Path, rank: int) -> list[int]:
    """The pretrain.py processes of `run` (not train.sh's --check) whose RANK is `rank`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (FileNotFoundError, PermissionError, ProcessLookupError, NotADirectoryError):
            continue  # not a process, or one that ended while we looked
        if any(a.endswith(b"pretrain.py") for a in cmdline) and f"checkpoint_path={run}".encode() in cmdline \
                and b"--check" not in cmdline and f"RANK={rank}".encode() in environ:
            found.append(int(proc.name))
    return found


def _train_sh(data: Path, run: Path) -> subprocess.Popen:
    args = [*TINY, *OPTS, f"dataset.data_path={data}", f"checkpoint_path={run}", "max_steps=40",
            "checkpoint_interval_steps=4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NPROC_PER_NODE": "2", "MAX_RESTARTS": "2"}
    return subprocess.Popen(["bash", str(ROOT / "scripts" / "train.sh"), "eqr_maze_unique", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="finds the rank's process through /proc")
def test_a_killed_rank_restarts_the_group_from_its_checkpoint(maze_dir, tmp_path):
    """scripts/train.sh under torchrun (2 ranks, gloo): rank 1 SIGKILLed after the first checkpoint, the group
    restarts with resume=true and ends where an uninterrupted run ends, bit for bit."""
    whole = _train_sh(maze_dir, tmp_path / "whole")
    whole_log = whole.communicate(timeout=600)[0]
    assert whole.returncode == 0, whole_log[-3000:]

    run = tmp_path / "killed"
    job = _train_sh(maze_dir, run)
    deadline = time.time() + 300
    while not (run / "step_4.pth").is_file() and time.time() < deadline and job.poll() is None:
        time.sleep(0.005)
    victims = _rank_pids(run, 1)
    assert victims and not (run / "step_40.pth").exists(), "the run must still be going when rank 1 is killed"
    os.kill(victims[0], signal.SIGKILL)
    log = job.communicate(timeout=600)[0]
    assert job.returncode == 0, log[-3000:]
    assert "resumed from" in log and "resumed from" not in whole_log
    assert_same_weights(tmp_path / "whole" / "step_40.pth", run / "step_40.pth")


def _global_carry(ckpt: dict) -> torch.Tensor:
    return torch.cat([s["carry"]["z_H"] for s in ckpt["rank_states"]])


@pytest.mark.slow  # 35 s of four 1- and 2-rank training runs: keeps the default run under 10 minutes
def test_a_checkpoint_resumes_on_another_number_of_ranks(maze_dir, tmp_path):
    """2 ranks -> 1 and 1 -> 2 (gloo): the global carry is split anew and the following steps match the
    uninterrupted runs up to float reduction order (TRM without exploration: nothing random is drawn)."""
    common = ("--config-name", "train/trm_maze_unique", *TINY, f"dataset.data_path={maze_dir}", "max_steps=8",
              "checkpoint_interval_steps=4", "arch.halt_exploration_prob=0.0", "device=cpu")
    runs = {}
    for ranks in (1, 2):
        runs[ranks] = tmp_path / f"ranks{ranks}"
        runs[ranks].mkdir()
        done = run_pretrain(*common, f"checkpoint_path={runs[ranks]}", nproc=ranks)
        assert done.returncode == 0, done.stderr[-3000:]
    for before, after in ((2, 1), (1, 2)):
        run = tmp_path / f"from{before}to{after}"
        run.mkdir()
        shutil.copy(runs[before] / "step_4.pth", run / "step_4.pth")
        done = run_pretrain(*common, f"checkpoint_path={run}", "resume=true", nproc=after)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"written by {before} rank(s); its global carry is split over {after}" in done.stderr
        ours, theirs = safe_torch_load(run / "step_8.pth"), safe_torch_load(runs[after] / "step_8.pth")
        assert len(ours["rank_states"]) == after and ours["train_dataset"] == theirs["train_dataset"]
        for key, value in theirs["model"].items():
            torch.testing.assert_close(ours["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
        torch.testing.assert_close(_global_carry(ours), _global_carry(theirs), rtol=1e-5, atol=1e-5)


def test_a_global_batch_that_does_not_divide_is_one_line(maze_dir, tmp_path):
    run = tmp_path / "run"
    trainer(maze_dir, run, "max_steps=2", "checkpoint_interval_steps=2").run()  # global batch 16 on one rank
    ckpt = safe_torch_load(run / "step_2.pth")
    with pytest.raises(CheckpointError, match=r"global batch of 16 rows, which does not divide into 3 ranks"):
        state.rank_states_of(ckpt, "step_2.pth", world=3, seed=0)
    split = state.rank_states_of(ckpt, "step_2.pth", world=4, seed=0)
    assert [s["carry"]["z_H"].shape[0] for s in split] == [4] * 4
    assert torch.equal(torch.cat([s["carry"]["z_H"] for s in split]), ckpt["carry"]["z_H"])
    assert len({s["seed"] for s in split}) == 4


def test_a_dead_peer_ends_the_survivor_with_one_line(maze_dir, tmp_path):
    """Two ranks started by hand, as on two nodes (no torchrun agent beside the survivor to end it): rank 1
    SIGKILLed mid-run, rank 0 stops at its next collective with one line naming itself and exit status 1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(ROOT / "pretrain.py"), "--config-name", "train/eqr_maze_unique", *TINY, *OPTS,
               f"dataset.data_path={maze_dir}", f"checkpoint_path={tmp_path / 'run'}", "max_steps=400",
               "checkpoint_interval_steps=1000", "device=cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    ranks = [subprocess.Popen(command, env={**env, "RANK": str(rank)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    try:
        for line in ranks[0].stdout:  # rank 0's summary line of every step
            if line.startswith("step 3/"):
                break
        else:
            pytest.fail(f"rank 0 ended before rank 1 was killed: {ranks[0].stderr.read()[-3000:]}")
        ranks[1].kill()
        start = time.monotonic()
        _, err = ranks[0].communicate(timeout=120)
    finally:
        for proc in ranks:
            proc.kill()
    assert ranks[0].returncode == 1, err[-3000:]
    assert re.fullmatch(r"error: rank 0 of 2: a collective failed, another rank is gone or stuck \(.+\)",
                        err.strip().splitlines()[-1]), err[-3000:]
    assert time.monotonic() - start < 60
