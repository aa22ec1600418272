"""Every bad input a new user can give the CLIs ends in one line on stderr, never a traceback.

Each case runs the real entry point in a subprocess (in a scratch directory, so nothing lands
in the repository) and checks: non-zero exit, no traceback, exactly one error line, last on
stderr, naming the key or file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset
from tests.conftest import FIXTURES, ROOT
from utils import cli
from utils.validation import ConfigError

TINY = ["arch.hidden_size=32", "arch.num_heads=2", "arch.forward_dtype=float32", "arch.H_cycles=1",
        "arch.L_cycles=1", "global_batch_size=16", "wandb_mode=disabled", "max_steps=1"]


@pytest.fixture(scope="module")
def maze(tmp_path_factory) -> Path:
    return build_maze_dataset(MazeBuildConfig(output_dir=tmp_path_factory.mktemp("data") / "maze7", grid_size=7,
                                              train_samples=40, test_samples=8, min_path_length=3,
                                              max_path_length=10))


@pytest.fixture(scope="module")
def files(tmp_path_factory, maze) -> dict[str, Path]:
    """Broken checkpoint files, and one of another architecture's size."""
    folder = tmp_path_factory.mktemp("ckpt")
    (folder / "empty.pth").write_bytes(b"")
    data = (FIXTURES / "release_format_sudoku.pth").read_bytes()
    (folder / "truncated.pth").write_bytes(data[: len(data) // 3])
    wide = folder / "wide"
    proc = run("pretrain.py", "--config-name", "train/eqr_maze_unique", *TINY, "arch.hidden_size=64",
               f"dataset.data_path={maze}", f"checkpoint_path={wide}", "checkpoint_interval_steps=1", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert not (folder / "outputs").exists(), "a run must leave nothing but its checkpoint folder"
    return {"empty": folder / "empty.pth", "truncated": folder / "truncated.pth", "wide": wide / "step_1.pth"}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    script, *rest = args
    command = [sys.executable, "-m", script] if not script.endswith(".py") else [sys.executable,
                                                                                str(ROOT / script)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([*command, *rest], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def assert_one_line(proc: subprocess.CompletedProcess, *expected: str) -> None:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith(("error:", "config error:"))]
    assert len(errors) == 1 and errors[0] == lines[-1], proc.stderr
    for text in expected:
        assert text in errors[0], (text, errors[0])


def pretrain(maze: Path, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run("pretrain.py", "--config-name", "train/eqr_maze_unique", *TINY, f"dataset.data_path={maze}",
               f"checkpoint_path={tmp_path / 'run'}", *overrides, cwd=tmp_path)


@pytest.mark.parametrize(("override", "expected"), [
    ("+arch.hiden_size=64", "config error: arch.hiden_size: unknown key for eqr@EqRModel; did you mean hidden_size?"),
    ("arch.hiden_size=64", "config error: arch.hiden_size: unknown key; did you mean hidden_size?"),
    ("lrr=0.1", "config error: lrr: unknown key; did you mean lr?"),
    ("+arch.noise_scale_=0.1", "arch.noise_scale_: unknown key for eqr@EqRModel; did you mean noise_scale?"),
    ("arch.pos_encodings=learned", "arch.pos_encodings: Input should be"),
    ("global_batch_size=64", "global_batch_size: 64 exceeds the 40 groups of the training set"),
    ("dataset.data_path=/no/such/data", "error: /no/such/data: no such dataset directory"),
    ("gradient_accumulation_steps=4", "gradient_accumulation_steps: 4 is not supported"),
])
def test_pretrain_bad_override(maze, tmp_path, override, expected):
    assert_one_line(pretrain(maze, tmp_path, override), expected)
    assert not (tmp_path / "run").exists() and not (tmp_path / "outputs").exists()


def test_arch_is_checked_before_the_batch_and_the_data(maze, tmp_path):
    """The default batch (768) does not fit this dataset either; the arch error comes first."""
    proc = run("pretrain.py", "--config-name", "train/eqr_maze_unique", "arch.hidden_size=abc",
               f"dataset.data_path={maze}", cwd=tmp_path)
    assert_one_line(proc, "config error: arch.hidden_size: Input should be a valid integer")
    proc = run("pretrain.py", "--config-name", "train/eqr_maze_unique", "arch.hidden_size=abc",
               "dataset.data_path=/no/such/data", cwd=tmp_path)
    assert_one_line(proc, "arch.hidden_size")


def test_pretrain_bad_config_name(tmp_path):
    proc = run("pretrain.py", "--config-name", "train/nope", cwd=tmp_path)
    assert_one_line(proc, "--config-name train/nope: no such config; available: cfg_pretrain, train/eqr_arc1, "
                          "train/eqr_arc2")
    proc = run("pretrain.py", "--config-name", "eqr_sudoku", cwd=tmp_path)
    assert_one_line(proc, "--config-name eqr_sudoku: no such config; did you mean train/eqr_sudoku?",
                    "train/hrm_sudoku")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_pretrain_cuda_without_a_gpu(maze, tmp_path):
    assert_one_line(pretrain(maze, tmp_path, "device=cuda"), "config error: device: cuda requested")


@pytest.mark.parametrize(("option", "which", "expected"), [
    ("resume", "empty", "empty file"),
    ("resume", "truncated", "not a PyTorch checkpoint"),
    ("resume", "wide", "does not fit the model"),
    ("load_checkpoint", "empty", "empty file"),
    ("load_checkpoint", "wide", "does not fit the model"),
])
def test_pretrain_bad_checkpoint_file(maze, files, tmp_path, option, which, expected):
    proc = pretrain(maze, tmp_path, f"{option}={files[which]}")
    assert_one_line(proc, f"error: {files[which]}", expected)


def test_pretrain_debug_shows_the_traceback(maze, tmp_path):
    proc = pretrain(maze, tmp_path, "lrr=0.1", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_evaluate_and_visualize_empty_checkpoint(maze, files, tmp_path):
    assert_one_line(run("evaluate.py", f"checkpoint={files['empty']}", cwd=tmp_path),
                    f"error: {files['empty']}: empty file")
    assert_one_line(run("scripts/visualize.py", str(files["empty"]), str(maze), cwd=tmp_path),
                    f"error: {files['empty']}: empty file")


def test_dataset_builders_bad_values(tmp_path):
    assert_one_line(run("dataset.build_maze_unique_dataset", "--grid-size", "4", "--output-dir", "m", cwd=tmp_path),
                    "error: --grid-size 4: too small for a perfect maze")
    assert_one_line(run("dataset.build_sudoku_dataset", "--source", "generate", "--source-dir", "x", cwd=tmp_path),
                    "--source-dir conflicts with --source generate")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(("args", "status", "expected"), [
    (("dataset.show", "nodata"), 1, "error: nodata: no such dataset directory"),
    (("dataset.baselines", "nodata"), 2, "error: nodata: no such dataset directory"),
    (("dataset.build_task", "--task", "nope", "--output-dir", "t"), 2, "error: task 'nope' is not registered"),
    (("dataset.build_maze_unique_dataset", "--output-dir", "existing"), 1, "error: existing already exists"),
    (("dataset.sudoku.generate", "--output-dir", "existing"), 1, "error: existing already exists"),
    (("dataset.build_sudoku_dataset", "--source", "generate", "--output-dir", "existing"), 1,
     "error: existing already exists"),
])
def test_dataset_commands_bad_input(tmp_path, args, status, expected):
    """Each refuses at once (an existing output before any generation), with its own exit status."""
    (tmp_path / "existing").mkdir()
    proc = run(*args, cwd=tmp_path)
    assert_one_line(proc, expected)
    assert proc.returncode == status and "generating" not in proc.stderr  # no progress bar: refused up front
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]


def test_dataset_builder_debug_shows_the_traceback(tmp_path):
    proc = run("dataset.build_maze_unique_dataset", "--grid-size", "4", "--output-dir", "m", "--debug", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr
    assert not (tmp_path / "m").exists()


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith(("error:", "config error:"))]


def test_an_error_under_torchrun_is_printed_once(maze, tmp_path):
    """Every rank raises it; only the node's first process prints it (the launcher's own report follows)."""
    proc = run("torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(ROOT / "pretrain.py"),
               "--config-name", "train/eqr_maze_unique", *TINY, "dataset.data_path=/no/such/data", cwd=tmp_path)
    assert proc.returncode != 0
    errors = _error_lines(proc)
    assert len(errors) == 1 and errors[0].startswith("error: /no/such/data: no such dataset directory"), errors


def test_train_sh_checks_the_config_before_torchrun(maze, tmp_path):
    env = {**os.environ, "NPROC_PER_NODE": "3", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "train.sh"), "eqr_maze_unique", *TINY,
                           f"dataset.data_path={maze}"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "torch.distributed" not in proc.stderr
    assert proc.stderr.strip() == "config error: global_batch_size: 16 is not divisible by 3 ranks"


@pytest.mark.parametrize(("name", "recipe"), [
    ("eqr_sudoku", "train/eqr_sudoku"), ("train/eqr_maze_unique", "train/eqr_maze_unique"),
    ("config/train/eqr_sudoku.yaml", "train/eqr_sudoku"), ("eqr_maze_unique.yaml", "train/eqr_maze_unique"),
])
def test_train_sh_takes_a_recipe_by_name_or_file(maze, tmp_path, name, recipe):
    """`--check` composes the recipe and reads its dataset's metadata, then prints the name it composed."""
    data = maze if "maze" in recipe else FIXTURES / "train_golden" / "eqr_sudoku_data"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "train.sh"), name, "--check", f"dataset.data_path={data}",
                           "global_batch_size=16"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == f"config ok: {recipe}", proc.stderr


def test_train_sh_names_a_missing_recipe(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "train.sh"), "config/train/eqr_sudok.yaml"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert_one_line(proc, "--config-name train/eqr_sudok: no such config; did you mean train/eqr_sudoku?")


def test_key_value_arguments_have_one_parser():
    """evaluate.py, scripts/frontier.py and the benchmarks read `key=value` through `cli.parse_key_values`."""
    assert cli.parse_key_values(["depths=[1,2]", "a.b=x"]) == {"depths": [1, 2], "a": {"b": "x"}}
    with pytest.raises(ConfigError, match=r"^depths: expected key=value$"):
        cli.parse_key_values(["depths"])
    with pytest.raises(ConfigError, match=r"^command line: "):
        cli.parse_key_values(["a=${x"])


@pytest.mark.parametrize("script", ["evaluate.py", "scripts/frontier.py"])
def test_a_malformed_value_is_one_line(script, tmp_path):
    proc = run(script, "depths=${x", cwd=tmp_path)
    assert proc.returncode == 2
    assert_one_line(proc, "config error: command line: ")
    proc = run(script, "checkpoint=x.pth", "depths=[1,2", cwd=tmp_path)  # a YAML syntax error in one value
    assert proc.returncode == 2
    assert_one_line(proc, "config error: command line: depths=[1,2: while parsing a flow sequence: expected")
