"""scripts/visualize.py: frames, GIF and residual curve for Sudoku and maze puzzles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset
from dataset.build_sudoku_dataset import SudokuBuildConfig, build_sudoku_dataset
from dataset.sudoku import repeated_cells
from models.registry import build_model
from scripts.visualize import main
from tests.conftest import FIXTURES, tiny_arch

SOLVED = np.array([[(3 * (r % 3) + r // 3 + c) % 9 + 1 for c in range(9)] for r in range(9)])


def sudoku_violations(grid: np.ndarray) -> np.ndarray:
    return repeated_cells(grid.reshape(1, 81))[0].reshape(9, 9)


def test_sudoku_violations_flag_exactly_the_duplicates():
    assert not sudoku_violations(SOLVED).any()
    broken = SOLVED.copy()
    broken[0, 0] = broken[0, 1]
    bad = sudoku_violations(broken)
    # the copied digit clashes in row 0, and with the originals in its column and box
    assert bad[0, 0] and bad[0, 1] and bad.sum() >= 2
    empty = np.zeros((9, 9), dtype=int)
    assert not sudoku_violations(empty).any()


def test_sudoku_frames_gif_and_residuals(tmp_path, capsys):
    data = tmp_path / "sudoku"
    build_sudoku_dataset(SudokuBuildConfig(source="generate", output_dir=data, subsample_size=1,
                                           test_subsample_size=2, num_aug=1, seed=0))
    out = tmp_path / "vis"
    assert main([str(FIXTURES / "release_format_sudoku.pth"), str(data), "--index", "1", "--segments", "3",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("frame_*.png")) == ["frame_001.png", "frame_002.png", "frame_003.png"]
    assert Image.open(out / "trajectory.gif").n_frames == 3
    assert (out / "residuals.png").stat().st_size > 0
    assert "wrote 3 frames" in capsys.readouterr().out


def test_maze_checkpoint_and_bad_inputs(tmp_path, capsys):
    data = tmp_path / "maze"
    build_maze_dataset(MazeBuildConfig(output_dir=data, grid_size=7, train_samples=4, test_samples=4,
                                       min_path_length=3, max_path_length=10, seed=0))
    arch = tiny_arch(seq_len=49, vocab_size=6)
    head = build_model(arch)
    ckpt = tmp_path / "tiny.pth"
    torch.save({"model": head.state_dict(), "config": {"arch": arch}}, ckpt)
    assert main([str(ckpt), str(data), "--index", "2", "--segments", "2", "--out", str(tmp_path / "vis")]) == 0
    assert Image.open(tmp_path / "vis" / "trajectory.gif").n_frames == 2
    assert main([str(ckpt), str(data), "--index", "99"]) == 2
    assert "--index: 99 is outside 0..3" in capsys.readouterr().err
    assert main([str(FIXTURES / "release_format_sudoku.pth"), str(data)]) == 2
    assert "shape mismatch" in capsys.readouterr().err


def test_record_trajectory_residuals_match_the_states():
    from analysis.trajectory import record_trajectory

    arch = tiny_arch(noise_scale=0.0)
    model = build_model(arch).model
    batch = {"inputs": torch.randint(0, 7, (2, 16), dtype=torch.int32),
             "labels": torch.randint(0, 7, (2, 16), dtype=torch.int32)}
    traj = record_trajectory(model, batch, segments=3, seed=5)
    again = record_trajectory(model, batch, segments=3, seed=5)
    assert traj.preds.shape == (3, 16) and traj.residuals.shape == (3,)
    np.testing.assert_array_equal(traj.preds, again.preds)
    assert traj.residuals[0] == pytest.approx(again.residuals[0])
    assert (traj.residuals > 0).all()
