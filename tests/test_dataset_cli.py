"""The dataset commands as a user runs them: in a subprocess, as a file or a module, stopped by a signal.

A file run (`python dataset/<name>.py`) puts dataset/, not the repository root, on sys.path; a build
stopped by Ctrl-C or SIGTERM ends with one line and exit status 130 and leaves no output behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT

COMMANDS = ("build_sudoku_dataset", "build_maze_unique_dataset", "build_task", "download", "show", "baselines",
            "sudoku/generate")
TINY_MAZE = ["--grid-size", "7", "--train-samples", "8", "--test-samples", "2", "--min-path-length", "3",
             "--max-path-length", "10"]
# 30x30 mazes at about 2000 a second: minutes of generation, so the signal always lands mid-build
LONG_MAZE = ["--train-samples", "100000", "--test-samples", "0"]


def environment() -> dict[str, str]:
    """This environment without PYTHONPATH, so only the command itself can find the repository."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=environment(),
                          timeout=300)


@pytest.mark.parametrize("name", COMMANDS)
def test_runs_as_a_file_from_the_repository_root(name):
    proc = run(f"dataset/{name}.py", "--help", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {name.split('/')[-1]}.py") and "--debug" in proc.stdout


def test_file_and_module_forms_build_the_same_dataset(tmp_path):
    outputs = {"file": tmp_path / "file", "absolute": tmp_path / "absolute", "module": tmp_path / "module"}
    commands = {
        "file": (["dataset/build_maze_unique_dataset.py"], ROOT),
        "absolute": ([str(ROOT / "dataset" / "build_maze_unique_dataset.py")], tmp_path),  # another folder
        "module": (["-m", "dataset.build_maze_unique_dataset"], ROOT),
    }
    for form, (command, cwd) in commands.items():
        proc = run(*command, "--output-dir", str(outputs[form] / "m"), *TINY_MAZE, cwd=cwd)
        assert proc.returncode == 0, (form, proc.stderr)
    reference = sorted(p.relative_to(outputs["module"]) for p in outputs["module"].rglob("*") if p.is_file())
    assert len([p for p in reference if p.suffix == ".npy"]) == 2 * 5  # inputs, labels, 3 index arrays a split
    for form in ("file", "absolute"):
        built = outputs[form]
        assert sorted(p.relative_to(built) for p in built.rglob("*") if p.is_file()) == reference, form
        for name in reference:
            if name.suffix == ".npy":
                np.testing.assert_array_equal(np.load(built / name), np.load(outputs["module"] / name),
                                              err_msg=f"{form}: {name}")
            else:
                assert (built / name).read_bytes() == (outputs["module"] / name).read_bytes(), (form, name)

def default_sigint() -> None:
    """In the child: Ctrl-C's default action even when this runner ignores SIGINT (a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_until(done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"nothing happened within {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_a_build_with_one_line_and_leaves_nothing(tmp_path, sig):
    out, log = tmp_path / "maze", tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "dataset.build_maze_unique_dataset", "--output-dir",
                                 str(out), *LONG_MAZE], cwd=ROOT, env=environment(), stdout=subprocess.DEVNULL,
                                stderr=stderr, preexec_fn=default_sigint)
        try:
            wait_until(lambda: "generating mazes" in log.read_text() or proc.poll() is not None, timeout=120)
            assert proc.poll() is None, f"the build ended ({proc.returncode}) before the signal: {log.read_text()}"
            proc.send_signal(sig)
            status = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()  # universal newlines: the progress bar's carriage returns end lines too
    assert status == 130 and "Traceback" not in text, text
    assert text.splitlines()[-1] == "interrupted", text
    assert not out.exists() and not list(tmp_path.glob(f".{out.name}.tmp-*"))
