"""Sudoku boards as numpy arrays: token encoding, vectorised validity checks and augmentation.

A board array holds digits 0..9 per cell (0 = empty), shape [N, 81], row-major. Model
tokens are digit + 1 (pad 0, blank 1, digits 2..10).
"""

from __future__ import annotations

import numpy as np

VOCAB_SIZE = 11
SEQ_LEN = 81
_AUG_CHUNK = 1 << 16

# Cell indices of the 27 units: 9 rows, 9 columns, 9 boxes.
UNIT_CELLS = np.array(
    [[r * 9 + c for c in range(9)] for r in range(9)]
    + [[r * 9 + c for r in range(9)] for c in range(9)]
    + [
        [(br * 3 + r) * 9 + bc * 3 + c for r in range(3) for c in range(3)]
        for br in range(3)
        for bc in range(3)
    ]
)
UNIT_NAMES = (
    [f"row {i + 1}" for i in range(9)]
    + [f"column {i + 1}" for i in range(9)]
    + [f"box {i + 1}" for i in range(9)]
)


def board_to_string(board: np.ndarray) -> str:
    """81 digits with '.' for empty cells (the CSV convention)."""
    return "".join("." if d == 0 else str(int(d)) for d in board)


def encode_tokens(boards: np.ndarray) -> np.ndarray:
    """Digits 0..9 -> token ids 1..10."""
    return (boards + 1).astype(np.uint8)


def unit_violations(solutions: np.ndarray) -> np.ndarray:
    """Bool [N, 27]: unit u of board n does not hold each digit 1..9 exactly once."""
    digits = solutions.astype(np.int64)
    bits = np.where((digits >= 1) & (digits <= 9), np.left_shift(1, np.clip(digits, 1, 9) - 1), 0)
    unit_bits = np.bitwise_or.reduce(bits[:, UNIT_CELLS], axis=2)
    return unit_bits != 0x1FF


def agrees_with_givens(puzzles: np.ndarray, solutions: np.ndarray) -> np.ndarray:
    """Bool [N]: every given of the puzzle equals the solution's digit in that cell."""
    return ((puzzles == 0) | (puzzles == solutions)).all(axis=1)


def _random_line_order(rng: np.random.Generator, m: int) -> np.ndarray:
    """[m, 9] row (or column) orders: permute the three bands, then rows within each band."""
    bands = rng.permuted(np.tile(np.arange(3), (m, 1)), axis=1)
    within = rng.permuted(np.tile(np.arange(3), (m, 3, 1)), axis=2)
    return (bands[:, :, None] * 3 + within).reshape(m, 9)


def random_symmetries(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    """m random validity-preserving maps: cell source indices [m, 81] and digit maps [m, 10].

    Output cell (r, c) reads source cell (rows[r], cols[c]), or (cols[c], rows[r]) when the
    board is transposed; digit d becomes digit_map[d] with 0 (empty) kept.
    """
    rows = _random_line_order(rng, m)
    cols = _random_line_order(rng, m)
    transpose = rng.random(m) < 0.5
    plain = rows[:, :, None] * 9 + cols[:, None, :]
    flipped = cols[:, None, :] * 9 + rows[:, :, None]
    cells = np.where(transpose[:, None, None], flipped, plain).reshape(m, 81)
    digit_map = np.zeros((m, 10), dtype=np.uint8)
    digit_map[:, 1:] = rng.permuted(np.tile(np.arange(1, 10, dtype=np.uint8), (m, 1)), axis=1)
    return cells, digit_map


def apply_symmetries(boards: np.ndarray, cells: np.ndarray, digit_map: np.ndarray) -> np.ndarray:
    """Apply per-row symmetries to boards [m, 81] (one map per board)."""
    moved = np.take_along_axis(boards, cells, axis=1)
    return np.take_along_axis(digit_map, moved.astype(np.intp), axis=1)


def augment(
    puzzles: np.ndarray, solutions: np.ndarray, num_aug: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Boards [N, 1 + num_aug, 81]: each original followed by num_aug random symmetric copies.

    Puzzle and solution of a copy share the same symmetry, so every copy stays a valid
    pair. Work proceeds in chunks to bound the memory of the index arrays.
    """
    n, per = len(puzzles), 1 + num_aug
    out_puzzles = np.empty((n * per, 81), dtype=np.uint8)
    out_solutions = np.empty_like(out_puzzles)
    for start in range(0, n * per, _AUG_CHUNK):
        rows = np.arange(start, min(start + _AUG_CHUNK, n * per))
        source = rows // per
        cells, digit_map = random_symmetries(rng, len(rows))
        original = rows % per == 0
        cells[original] = np.arange(81)
        digit_map[original] = np.arange(10)
        out_puzzles[rows[0] : rows[-1] + 1] = apply_symmetries(puzzles[source], cells, digit_map)
        out_solutions[rows[0] : rows[-1] + 1] = apply_symmetries(solutions[source], cells, digit_map)
    return out_puzzles.reshape(n, per, 81), out_solutions.reshape(n, per, 81)
