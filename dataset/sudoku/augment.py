"""Sudoku augmentation drawn exactly as the reference builder draws it (numpy's legacy generator).

The reference makes, per augmented copy and in this order: a permutation of the digits 1..9, a
transpose flag (`rand() < 0.5`), the band order, the row order within each band (in band order),
the stack order, the column order within each stack. Drawing the same calls from a
`np.random.RandomState` seeded like the reference's `np.random.seed` gives the same copies bit for
bit; the draws happen one copy at a time (the stream fixes that), the board moves are vectorised.
"""

from __future__ import annotations

import numpy as np

from dataset import sudoku

_CHUNK = 1 << 16  # copies per vectorised step: bounds the [m, 81] index arrays


def draw_symmetries(rs: np.random.RandomState, m: int) -> tuple[np.ndarray, np.ndarray]:
    """m copies' maps in the reference's call order: cell source indices [m, 81] and digit maps [m, 10].

    The cells are `dataset.sudoku.symmetry_cells` of the drawn orders (the action TTA uses too);
    digit d becomes digit_map[d], 0 (blank) stays 0.
    In-place `shuffle` of an arange draws exactly what `permutation` of it draws, without the copy.
    """
    digit_map = np.tile(np.arange(10), (m, 1))
    transpose = np.empty(m, dtype=bool)
    # per copy: band order, rows within each band (in band order), stack order, columns within each stack
    lines = np.tile(np.arange(3), (m, 8, 1))
    shuffle, rand = rs.shuffle, rs.rand
    for k in range(m):
        shuffle(digit_map[k, 1:])
        transpose[k] = rand() < 0.5
        for piece in lines[k]:
            shuffle(piece)
    lines = lines.reshape(m, 2, 4, 3)
    order = (3 * lines[:, :, 0, :, None] + lines[:, :, 1:]).reshape(m, 2, 9)  # slot s: 3 * group[s] + within[s]
    return sudoku.symmetry_cells(transpose, order[:, 0], order[:, 1]), digit_map


def apply_symmetries(boards: np.ndarray, cells: np.ndarray, digit_map: np.ndarray) -> np.ndarray:
    """Apply one map per board to boards [m, 81] of digits 0..9 (dtype kept)."""
    moved = np.take_along_axis(boards, cells, axis=1)
    return np.take_along_axis(digit_map, moved.astype(np.intp), axis=1).astype(boards.dtype)


def augment(
    puzzles: np.ndarray, solutions: np.ndarray, num_aug: int, rs: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """Boards [N * (1 + num_aug), 81]: each original followed by its num_aug copies, puzzle by puzzle.

    An original draws nothing; puzzle and solution of a copy share its map, so every copy stays a
    valid pair.
    """
    n, per = len(puzzles), 1 + num_aug
    out_puzzles = np.repeat(puzzles, per, axis=0)
    out_solutions = np.repeat(solutions, per, axis=0)
    copies = np.flatnonzero(np.arange(n * per) % per)  # the augmented rows, in drawing order
    for start in range(0, len(copies), _CHUNK):
        rows = copies[start : start + _CHUNK]
        cells, digit_map = draw_symmetries(rs, len(rows))
        out_puzzles[rows] = apply_symmetries(out_puzzles[rows], cells, digit_map)
        out_solutions[rows] = apply_symmetries(out_solutions[rows], cells, digit_map)
    return out_puzzles, out_solutions
