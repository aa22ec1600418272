"""A task's transforms are one implementation: the builders' augmented copies are undone by the task's TTA inverse.

Sudoku: the builder draws in the reference's order and TTA from torch's stream, both through
`dataset.sudoku.symmetry_cells`; maze: the Maze-Hard builder's 8 copies are the TTA group's
elements in the reference's order (`DIHEDRAL`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dataset import sudoku
from dataset.build_maze_dataset import DIHEDRAL, dihedral_copies, read_maze_csv
from dataset.sudoku.augment import augment, draw_symmetries
from dataset.symmetries import TransformSet
from dataset.tasks import TASKS
from evaluation.tta import build_transforms
from tests.test_sudoku_data import digits, fixture_rows

MAZES = Path(__file__).parent / "fixtures" / "maze_hard_build" / "src" / "train.csv"


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_sudoku_copies_invert_with_the_task_transforms(seed):
    row = fixture_rows()[1]
    puzzle, solution = (np.array([digits(row[key])], dtype=np.uint8) for key in ("question", "answer"))
    puzzles, solutions = augment(puzzle, solution, 6, np.random.RandomState(seed))
    cells, digit_maps = draw_symmetries(np.random.RandomState(seed), 6)  # the copies' maps, drawn again
    transforms = TransformSet.from_maps((cells, sudoku.token_maps(digit_maps)))
    index = torch.arange(6)
    for boards, original in ((puzzles, puzzle), (solutions, solution)):
        copies = torch.from_numpy(sudoku.encode_tokens(boards[1:]))
        tokens = torch.from_numpy(sudoku.encode_tokens(original)).repeat(6, 1)
        assert torch.equal(transforms.apply(tokens, index), copies)
        assert torch.equal(transforms.inverse().apply(copies, index), tokens)


def test_sudoku_builder_and_tta_share_the_board_move(monkeypatch):
    calls = []

    def spy(*args: np.ndarray) -> np.ndarray:
        calls.append(len(args[0]))
        return real(*args)

    real = sudoku.symmetry_cells
    monkeypatch.setattr(sudoku, "symmetry_cells", spy)
    board = np.zeros((1, 81), dtype=np.uint8)
    augment(board, board, 2, np.random.RandomState(0))
    tta = build_transforms(5, "auto", TASKS["sudoku"], sudoku.SEQ_LEN, sudoku.VOCAB_SIZE)
    assert calls == [2, 5] and tta.size == 5


def test_maze_copies_are_the_tta_group_in_the_reference_order():
    questions, _ = read_maze_csv(MAZES)
    questions = questions[:3]
    copies = torch.from_numpy(dihedral_copies(questions).astype(np.int64)).view(3, 8, -1)
    tta = build_transforms(8, "auto", TASKS["maze"], questions.shape[1], 6)
    original = torch.from_numpy(questions.astype(np.int64))
    for k, element in enumerate(DIHEDRAL):
        index = torch.full((3,), element)
        assert torch.equal(tta.apply(original, index), copies[:, k])
        assert torch.equal(tta.inverse().apply(copies[:, k], index), original)
