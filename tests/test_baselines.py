"""The trivial maze baseline, on a hand-made grid and on a built dataset."""

from __future__ import annotations

import numpy as np

from dataset.baselines import main
from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset
from dataset.maze import mark_every_open_cell as maze_mark_every_open_cell

WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5


def test_mark_every_open_cell_on_a_hand_made_row():
    inputs = np.array([[START, OPEN, OPEN, GOAL, OPEN], [START, OPEN, GOAL, WALL, WALL]])
    labels = np.array([[START, PATH, PATH, GOAL, OPEN], [START, PATH, GOAL, WALL, WALL]])
    result = maze_mark_every_open_cell(inputs, labels)
    assert result == {"exact_accuracy": 0.5, "accuracy": 0.9}


def test_cli_on_a_built_dataset(tmp_path, capsys):
    out = tmp_path / "maze"
    build_maze_dataset(MazeBuildConfig(output_dir=out, grid_size=9, train_samples=20, test_samples=40,
                                       min_path_length=8, max_path_length=30, seed=0))
    assert main([str(out)]) == 0
    line = capsys.readouterr().out
    assert "trivial baseline (mark every open cell as path)" in line
    accuracy = float(line.rsplit("accuracy ", 1)[1])
    assert 0.7 < accuracy < 0.95  # open dead ends are the only mistakes
    assert main([str(tmp_path / "missing")]) == 2
