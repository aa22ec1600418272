"""The study task: rounds of simultaneous singles on puzzles with known ratings, and the builder's splits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dataset.build_sudoku_rounds_dataset import RoundsBuildConfig, build_rounds_dataset, load_difficulty
from dataset.format import load_split
from dataset.sudoku.rounds import draw_puzzle, singles_rounds
from dataset.sudoku.solver import generate_puzzle, rate, solve

ROOT = Path(__file__).resolve().parents[1]
EASY = "003020600900305001001806400008102900700000008006708200002609500800203009005010300"  # singles suffice
HARD = "4.....8.5.3..........7......2.....6.....8.4......1.......6.3.7.5..2.....1.4......"  # needs guesses


def _board(text: str) -> list[int]:
    return [0 if ch == "." else int(ch) for ch in text]


def _solution() -> list[int]:
    return solve(_board(EASY))[0]


def test_known_ratings():
    full = _solution()
    assert singles_rounds(full) == 0
    one = full[:]
    one[40] = 0
    assert singles_rounds(one) == 1
    row = [0 if i // 9 == 4 else v for i, v in enumerate(full)]  # each cell of a blank row: a naked single
    assert singles_rounds(row) == 1
    # A blank row and a blank column: every cell but their crossing is a naked single, and the crossing
    # is a hidden single in its row at once (no other cell of the row can take its digit), so one round.
    cross = [0 if i // 9 == 4 or i % 9 == 4 else v for i, v in enumerate(full)]
    assert singles_rounds(cross) == 1
    # Two blank rows of one band: every cell keeps two candidates and every digit two places (swapping
    # the rows is a second solution), so singles stall.
    band = [0 if i // 9 in (3, 4) else v for i, v in enumerate(full)]
    assert singles_rounds(band) is None
    assert singles_rounds(_board(EASY)) == 4
    assert singles_rounds(_board(HARD)) is None


def test_singles_finish_exactly_when_the_search_needs_no_guess():
    """Independent of how rounds are counted: the solver's propagation to a fixpoint (naked and hidden
    singles) solves a puzzle without guessing exactly when simultaneous singles fill it."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        puzzle, solution = generate_puzzle(rng)
        keep = rng.permutation(81)[: rng.integers(0, 20)]
        board = [solution[c] if c in set(keep.tolist()) else v for c, v in enumerate(puzzle)]
        assert (singles_rounds(board) is not None) == (rate(board) == 0)


def test_adding_solution_digits_never_adds_rounds():
    rng = np.random.default_rng(4)
    for _ in range(15):
        puzzle, solution = generate_puzzle(rng)
        board, previous = puzzle[:], singles_rounds(puzzle)
        for cell in rng.permutation(81).tolist():
            board[cell] = solution[cell]
            rounds = singles_rounds(board)
            assert rounds is not None or previous is None
            if previous is not None:
                assert rounds <= previous
            previous = rounds


def test_drawn_puzzles_land_in_range_and_are_unique():
    rng = np.random.default_rng(5)
    drawn = [p for p in (draw_puzzle(rng, 3, 6) for _ in range(12)) if p is not None]
    assert len(drawn) >= 10
    for p in drawn:
        assert 3 <= p.rounds <= 6 and singles_rounds(p.puzzle) == p.rounds
        assert all(v in (0, s) for v, s in zip(p.puzzle, p.solution, strict=True))
        assert solve(p.puzzle)[0] == p.solution and rate(p.puzzle) == 0  # singles alone: one solution


def _small(tmp_path: Path, **changes) -> RoundsBuildConfig:
    values = {"output_dir": tmp_path / "rounds", "train_samples": 12, "val_samples": 4, "test_samples": 6,
              "hard_val_samples": 3, "hard_test_samples": 5, "train_rounds": (2, 5), "hard_rounds": (9, 14),
              "num_aug": 2, "seed": 7}
    return RoundsBuildConfig(**{**values, **changes})


def test_builder_writes_five_rated_splits(tmp_path):
    out = build_rounds_dataset(_small(tmp_path))
    sizes = {"train": 12 * 3, "val": 4, "test": 6, "hard_val": 3, "hard_test": 5}
    boards = {}
    for split, rows in sizes.items():
        metadata, (arrays,) = load_split(out / split)
        difficulty = load_difficulty(out / split)
        assert len(arrays.inputs) == len(difficulty) == rows and metadata.task == "sudoku"
        low, high = (9, 14) if split.startswith("hard") else (2, 5)
        assert difficulty.min() >= low and difficulty.max() <= high
        for puzzle, rounds in zip(np.asarray(arrays.inputs) - 1, difficulty, strict=True):  # tokens: digit + 1
            assert singles_rounds(puzzle.tolist()) == rounds  # symmetric copies keep their original's rating
        boards[split] = {bytes(p) for p in np.asarray(arrays.inputs)}
    assert all(not boards[a] & boards[b] for a in boards for b in boards if a < b)  # no puzzle in two splits
    assert np.array_equal(load_difficulty(out / "train")[::3], load_difficulty(out / "train")[1::3])


def test_builder_is_seeded_and_draws_fresh_test_splits(tmp_path):
    first = build_rounds_dataset(_small(tmp_path / "a"))
    again = build_rounds_dataset(_small(tmp_path / "b"))
    other = build_rounds_dataset(_small(tmp_path / "c", seed=8, test_samples=9))
    same = [np.array_equal(load_split(first / "test")[1][0].inputs, load_split(again / "test")[1][0].inputs)]
    assert same == [True]
    assert len(load_difficulty(other / "test")) == 9
    assert not np.array_equal(load_split(first / "val")[1][0].inputs, load_split(other / "val")[1][0].inputs)
    assert json.loads((first / "identifiers.json").read_text()) == ["<blank>"]


@pytest.mark.parametrize("args, message", [
    (["--hard-rounds", "4", "12"], "--hard-rounds 4 must be above every training puzzle's rating"),
    (["--train-rounds", "5", "3"], "--train-rounds needs 1 <= LOW <= HIGH, got 5 3"),
])
def test_bad_ranges_are_one_line(tmp_path, args, message):
    done = subprocess.run([sys.executable, "-m", "dataset.build_sudoku_rounds_dataset", "--output-dir",
                           str(tmp_path / "x"), *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
