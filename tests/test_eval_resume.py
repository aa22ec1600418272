"""A stopped evaluation continues where it stopped: a pass killed mid-way (SIGTERM saves its state, SIGKILL
leaves the last periodic save) is rerun by the same command to the identical records, recomputing only
what was not finished; finished points are read back instead of evaluated again."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataset.build_sudoku_dataset import SudokuBuildConfig, build_sudoku_dataset
from evaluation import load_options, run_sweep
from evaluation.pass_state import PassState
from evaluation.report import record_stem_of
from evaluation.resume import PARTIAL_FOLDER, PassFile, PassSaver
from tests.conftest import ROOT
from utils.cli import Interrupted
from utils.safe_load import safe_torch_load
from utils.signals import SignalFlag

CKPT = Path(__file__).parent / "fixtures" / "release_format_sudoku.pth"
OPTIONS = ["depths=[2,12]", "different_init=2", "convergence_top_k=1", "global_batch_size=2", "per_trajectory=true",
           "plots=false", "progress=false"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
COST = ("pass_wall_s",)  # the one setting two runs of a pass may differ in


@pytest.fixture(scope="module")
def sudoku(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "sudoku"
    return build_sudoku_dataset(SudokuBuildConfig(output_dir=out, source="generate", subsample_size=1,
                                                  test_subsample_size=8, num_aug=0, seed=0))


def _options(sudoku: Path, out: Path, *extra: str) -> list[str]:
    return [f"checkpoint={CKPT}", f"dataset_data_path={sudoku}", f"output_dir={out}", *OPTIONS, *extra]


@pytest.fixture(scope="module")
def unbroken(sudoku, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("unbroken")
    run_sweep(load_options(_options(sudoku, out)))
    return out


def _results(folder: Path) -> dict[str, object]:
    """Every record (without its wall time) and every per-trajectory table of a folder, by file name."""
    found: dict[str, object] = {}
    for path in sorted(folder.glob("eval_*.json")):
        record = json.loads(path.read_text())
        record["config"] = {k: v for k, v in record["config"].items() if k not in COST}
        found[path.name] = record
    for path in sorted(folder.glob("eval_*_trajectories.csv")):
        found[path.name] = path.read_text()
    return found


def _saved_state(out: Path) -> tuple[Path, PassState] | None:
    files = list((out / PARTIAL_FOLDER).glob("*.rank0.pt"))
    return (files[0], PassState.from_dict(safe_torch_load(files[0]))) if files else None


def _stop_midway(command: list[str], out: Path, sig: signal.Signals) -> tuple[int, str]:
    """Start `command`, send `sig` once its saved state has counted a batch, return (exit status, stderr)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None, f"the evaluation ended before it was stopped: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, "the evaluation saved nothing"
        saved = _saved_state(out)
        if saved is not None and saved[1].counted >= 1:
            break
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_evaluation_reruns_to_the_identical_records(sudoku, unbroken, tmp_path, sig):
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "evaluate.py"), *_options(sudoku, out, "eval_checkpoint_minutes=0")]
    code, err = _stop_midway(command, out, sig)
    path, state = _saved_state(out)
    if sig == signal.SIGTERM:
        assert code == 130, err
        assert err.strip().splitlines()[-1] == (f"interrupted (SIGTERM) during D=[2, 12] B=2 of {CKPT}: saved {path}; "
                                                "rerun the same command to continue")
    else:
        assert code == -signal.SIGKILL
    assert not list(out.glob("eval_*.json")), "no record before the pass ends"
    done = state.tallies["segments"] + sum(t["slot_segments"] for t in state.finished.values())

    rerun = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert _results(out) == _results(unbroken)
    assert not list((out / PARTIAL_FOLDER).glob("*.pt")), "a finished pass's state is removed"
    total = json.loads(next(out.glob("eval_*_D12_*.json")).read_text())["config"]["pass_trajectory_segments"]
    ran = re.search(r"ran (\d+) of the pass's (\d+) trajectory-segments", rerun.stderr)
    assert f"continuing from {path}" in rerun.stderr
    assert ran is not None and int(ran[2]) == total
    assert 0 < int(ran[1]) == total - done < total  # only what the saved state had not finished


def test_an_unreadable_state_is_named_and_the_pass_starts_over(tmp_path, caplog):
    file = PassFile.of(tmp_path, "abc", rank=1)
    file.save(PassState(counted=2, elapsed_s=1.5))
    assert file.load() == PassState(counted=2, elapsed_s=1.5)
    file.path.write_bytes(file.path.read_bytes()[:100])  # truncated by a full disk or a partial copy
    with caplog.at_level(logging.WARNING, logger="evaluation.resume"):
        assert file.load() is None
    assert f"{file.path}: unreadable saved evaluation state" in caplog.text
    file.discard()
    assert not (tmp_path / PARTIAL_FOLDER).exists()


def test_finished_points_are_read_back_with_the_same_settings(sudoku, tmp_path, caplog):
    out = tmp_path / "out"
    first = run_sweep(load_options(_options(sudoku, out, "max_eval_steps=1")))
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("eval_*")}
    with caplog.at_level(logging.INFO, logger="evaluation.sweep"):
        again = run_sweep(load_options(_options(sudoku, out, "max_eval_steps=1")))
    assert "finished earlier with the same settings" in caplog.text
    assert again.records == first.records  # wall times included: read back, not measured again
    assert {p: p.stat().st_mtime_ns for p in out.glob("eval_*")} == stamps

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="evaluation"):
        other = run_sweep(load_options(_options(sudoku, out, "max_eval_steps=1", "seed=1")))
        more = run_sweep(load_options(_options(sudoku, out, "max_eval_steps=1", "save_outputs=[preds]")))
        fresh = run_sweep(load_options(_options(sudoku, out, "max_eval_steps=1", "resume=false")))
    assert "finished earlier" not in caplog.text  # another option, other files asked for, or resume=false
    assert other.records[0]["config"]["seed"] == 1
    assert all((out / f"{record_stem_of(r)}_outputs.pt").is_file() for r in more.records)
    assert [r["metrics"] for r in fresh.records] == [r["metrics"] for r in first.records] == \
        [r["metrics"] for r in more.records]

    gone = out / f"{record_stem_of(first.records[-1])}_trajectories.csv"
    gone.unlink()  # a file the finished pass wrote
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="evaluation"):
        run_sweep(load_options(_options(sudoku, out, "max_eval_steps=1")))
    assert "of the files a finished pass wrote are gone" in caplog.text
    assert gone.is_file()


def test_a_signal_stops_a_pass_that_cannot_be_saved_with_one_line():
    flag = SignalFlag()
    flag.caught = "SIGTERM"
    with pytest.raises(Interrupted, match=r"^interrupted \(SIGTERM\) during the pass, which cannot be saved part-way"):
        PassSaver(None, None, flag, "the pass")(lambda: PassState())


def test_adaptive_breadth_runs_unsaved_and_says_so(sudoku, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="evaluation.resume"):
        run_sweep(load_options(_options(sudoku, tmp_path, "breadth_agree=2", "eval_checkpoint_minutes=0",
                                        "max_eval_steps=1")))
    assert "not saved part-way (breadth_agree:" in caplog.text
    assert not (tmp_path / PARTIAL_FOLDER).exists()
