"""Maze builder: unique shortest paths (independent BFS), labels, lengths, dedupe, grid shapes, errors."""

from __future__ import annotations

import json
import random
import time
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset
from dataset.build_maze_unique_dataset import main as build_main
from dataset.maze.generate import perfect_maze
from dataset.show import main as show_main

WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5


def bfs(passable: np.ndarray, source: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Independent BFS: distances and (uncapped) shortest-path counts."""
    n = passable.shape[0]
    dist = np.full((n, n), -1)
    ways = np.zeros((n, n), dtype=object)
    dist[source], ways[source] = 0, 1
    queue = deque([source])
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < n and 0 <= nc < n and passable[nr, nc]:
                if dist[nr, nc] < 0:
                    dist[nr, nc] = dist[r, c] + 1
                    queue.append((nr, nc))
                if dist[nr, nc] == dist[r, c] + 1:
                    ways[nr, nc] += ways[r, c]
    return dist, ways


def check_sample(inputs: np.ndarray, labels: np.ndarray, n: int, lengths: range) -> int:
    """Assert the sample's invariants; return its path length."""
    grid, label = inputs.reshape(n, n), labels.reshape(n, n)
    assert set(np.unique(grid).tolist()) <= {WALL, OPEN, START, GOAL}
    assert (grid == START).sum() == 1 and (grid == GOAL).sum() == 1
    start = tuple(np.argwhere(grid == START)[0])
    goal = tuple(np.argwhere(grid == GOAL)[0])
    passable = grid != WALL
    from_start, ways = bfs(passable, start)
    from_goal, _ = bfs(passable, goal)
    length = int(from_start[goal])
    assert length in lengths
    assert ways[goal] == 1
    on_path = (from_start >= 0) & (from_goal >= 0) & (from_start + from_goal == length)
    interior = on_path & (grid == OPEN)
    assert ((label == PATH) == interior).all()
    assert (label[~interior] == grid[~interior]).all()
    assert interior.sum() == length - 1
    return length


def load(out, split, field):
    return np.load(out / split / f"all__{field}.npy")


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(7, 16),
    seed=st.integers(0, 10**6),
    mode=st.sampled_from(["perfect", "random"]),
    span=st.integers(0, 4),
)
def test_built_mazes_have_one_shortest_path_interior_labels_and_no_duplicates(
    tmp_path_factory, n, seed, mode, span
):
    lo = 4 if mode == "perfect" else 3
    config = MazeBuildConfig(
        output_dir=tmp_path_factory.mktemp("maze") / "out",
        grid_size=n,
        train_samples=12,
        test_samples=8,
        maze_mode=mode,
        wall_prob=0.3,
        min_path_length=lo,
        max_path_length=lo + span,
        seed=seed,
    )
    out = build_maze_dataset(config)
    seen = set()
    for split, count in (("train", 12), ("test", 8)):
        inputs, labels = load(out, split, "inputs"), load(out, split, "labels")
        assert inputs.shape == labels.shape == (count, n * n)
        for x, y in zip(inputs, labels, strict=True):
            check_sample(x, y, n, range(lo, lo + span + 1))
            seen.add(x.tobytes())
    assert len(seen) == 20


@pytest.mark.parametrize("n", [9, 10])
def test_perfect_maze_is_a_tree_on_the_largest_odd_square(n):
    grid = perfect_maze(n, random.Random(n))
    m = n if n % 2 else n - 1
    assert not grid[m - 1 :, :].any() and not grid[:, m - 1 :].any()
    assert not grid[0, :].any() and not grid[:, 0].any()
    cells = int(grid.sum())
    assert cells == 2 * ((m - 1) // 2) ** 2 - 1
    edges = int((grid[1:, :] & grid[:-1, :]).sum() + (grid[:, 1:] & grid[:, :-1]).sum())
    assert edges == cells - 1
    dist, _ = bfs(grid, tuple(np.argwhere(grid)[0]))
    assert (dist[grid] >= 0).all()


def test_default_build_matches_the_reference_setup(tmp_path):
    defaults = MazeBuildConfig()
    assert str(defaults.output_dir) == "data/maze-30x30-unique-1k"
    assert (defaults.grid_size, defaults.train_samples, defaults.test_samples) == (30, 1000, 1000)
    assert (defaults.min_path_length, defaults.max_path_length, defaults.length_distribution) == (
        100,
        140,
        "uniform",
    )
    out = build_maze_dataset(defaults.model_copy(update={"output_dir": tmp_path / "maze"}))
    lengths = []
    for split in ("train", "test"):
        inputs, labels = load(out, split, "inputs"), load(out, split, "labels")
        assert inputs.shape == (1000, 900)
        lengths += [int((y == PATH).sum()) + 1 for y in labels]
        meta = json.loads((out / split / "dataset.json").read_text())
        assert (meta["vocab_size"], meta["seq_len"], meta["total_groups"], meta["ignore_label_id"]) == (
            6,
            900,
            1000,
            0,
        )
    assert min(lengths) >= 100 and max(lengths) <= 140
    assert len(set(lengths)) > 30
    both = np.concatenate([load(out, "train", "inputs"), load(out, "test", "inputs")])
    assert len({row.tobytes() for row in both}) == 2000
    for x, y in zip(both[:25], np.concatenate([load(out, "train", "labels")])[:25], strict=True):
        check_sample(x, y, 30, range(100, 141))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--grid-size", "9", "--min-path-length", "10", "--max-path-length", "40"],
            "path length 40 cannot occur",
        ),
        (
            ["--min-path-length", "391", "--max-path-length", "400"],
            "path length 391 cannot occur in a perfect 30x30 maze (possible: 1..390 moves)",
        ),
        (["--length-distribution", "fixed", "--path-length", "1000"], "path length 1000 cannot occur"),
        (
            ["--min-path-length", "50", "--max-path-length", "20"],
            "--min-path-length 50 > --max-path-length 20",
        ),
        (["--length-distribution", "list"], "needs --path-lengths"),
    ],
)
def test_impossible_lengths_fail_up_front(tmp_path, capsys, args, message):
    begin = time.perf_counter()
    assert build_main(["--output-dir", str(tmp_path / "out"), *args]) == 2
    assert time.perf_counter() - begin < 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")
    assert not (tmp_path / "out").exists()


def test_unreachable_length_gives_a_clear_error_not_a_hang(tmp_path, capsys):
    begin = time.perf_counter()
    args = ["--length-distribution", "fixed", "--path-length", "380", "--max-attempts", "100"]
    rc = build_main(["--output-dir", str(tmp_path / "out"), *args])
    assert rc == 1 and time.perf_counter() - begin < 10
    assert "no perfect 30x30 maze with a path of 380 moves in 100 attempts" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_too_few_distinct_mazes_is_reported(tmp_path, capsys):
    args = ["--grid-size", "5", "--min-path-length", "2", "--max-path-length", "2", "--max-attempts", "50"]
    rc = build_main(["--output-dir", str(tmp_path / "out"), "--train-samples", "100", *args])
    assert rc == 1 and "distinct mazes after 50 duplicates in a row" in capsys.readouterr().err


def test_length_distributions(tmp_path):
    base = {"grid_size": 15, "train_samples": 30, "test_samples": 0, "seed": 3}
    cases = [
        ({"length_distribution": "fixed", "path_length": 12}, {12}),
        ({"length_distribution": "list", "path_lengths": [8, 20]}, {8, 20}),
        ({"length_distribution": "normal", "min_path_length": 10, "max_path_length": 30}, set(range(10, 31))),
    ]
    for i, (extra, allowed) in enumerate(cases):
        out = build_maze_dataset(MazeBuildConfig(output_dir=tmp_path / str(i), **base, **extra))
        lengths = {int((y == PATH).sum()) + 1 for y in load(out, "train", "labels")}
        assert lengths <= allowed and (len(lengths) == len(allowed) or len(allowed) > 2)


def test_config_rejects_bad_mean():
    with pytest.raises(ValidationError, match="length-mean"):
        MazeBuildConfig(length_distribution="normal", length_mean=500)


def test_show_prints_the_maze_with_its_path(tmp_path, capsys):
    config = MazeBuildConfig(
        output_dir=tmp_path / "m",
        grid_size=11,
        train_samples=2,
        test_samples=5,
        min_path_length=10,
        max_path_length=12,
    )
    out = build_maze_dataset(config)
    capsys.readouterr()
    assert show_main([str(out), "--split", "test", "--index", "3"]) == 0
    text = capsys.readouterr().out
    grid = load(out, "test", "inputs")[3].reshape(11, 11)
    first_row = "".join(" #SGo"[v % 5] if v != 2 else " " for v in grid[0])
    assert first_row == "#" * 11 and first_row in text
    lines = text.splitlines()
    label_lines = lines[lines.index("label:") + 1 :]
    assert len(label_lines) == 11 and sum(line.count("o") for line in label_lines) in range(9, 12)
    assert sum(line.count("S") + line.count("G") for line in label_lines) == 2
