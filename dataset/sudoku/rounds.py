"""Sudoku difficulty as rounds of simultaneous singles, and puzzles drawn to a target number of rounds.

One round looks at the board as it stands, finds every naked single (an empty cell with one
candidate left) and every hidden single (a digit with one possible cell in a row, column or
box), and writes them all at once. A puzzle's rating is the number of rounds until the board is
full; a puzzle that singles alone cannot finish has no rating (None). A recurrent model that
propagates constraints in parallel needs about as many sequential steps as a puzzle has rounds,
which is why the study task (`dataset.build_sudoku_rounds_dataset`) spreads its puzzles over
rounds and holds out puzzles with more rounds than any training puzzle.

Rounds never increase when a solution digit is added (a fuller board has fewer candidates, so
every single appears no later); `draw_puzzle` relies on that to bisect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dataset.sudoku.solver import ALL, PEERS, UNITS, generate_puzzle

_DIGIT_OF_BIT = {1 << d: d + 1 for d in range(9)}


def _mask_of(board: list[int], cells: Sequence[int]) -> int:
    """The digits written in `cells`, as a 9-bit mask."""
    mask = 0
    for cell in cells:
        if board[cell]:
            mask |= 1 << (board[cell] - 1)
    return mask


def _hidden_singles(board: list[int], cand: dict[int, int], found: dict[int, int]) -> bool:
    """Add each digit with one possible cell in a unit to `found`; False if two disagree on a cell."""
    for unit in UNITS:
        missing = ALL & ~_mask_of(board, unit)
        for d in range(9):
            bit = 1 << d
            if not missing & bit:
                continue
            cells = [cell for cell in unit if cand.get(cell, 0) & bit]
            if len(cells) == 1 and found.setdefault(cells[0], d + 1) != d + 1:
                return False
    return True


def _one_round(board: list[int]) -> dict[int, int] | None:
    """Cells -> digits that one round of naked and hidden singles writes; None on a contradiction."""
    cand = {cell: ALL & ~_mask_of(board, PEERS[cell]) for cell in range(81) if not board[cell]}
    found = {cell: _DIGIT_OF_BIT[mask] for cell, mask in cand.items() if mask and not mask & (mask - 1)}
    return found if _hidden_singles(board, cand, found) else None


def singles_rounds(board: Sequence[int]) -> int | None:
    """Rounds of simultaneous naked and hidden singles that fill `board` (81 ints, 0 = empty); None if they stall."""
    current = [int(v) for v in board]
    rounds = 0
    while 0 in current:
        found = _one_round(current)
        if not found:
            return None
        for cell, digit in found.items():
            current[cell] = digit
        rounds += 1
    return rounds


@dataclass(frozen=True)
class RatedPuzzle:
    puzzle: list[int]
    solution: list[int]
    rounds: int


def draw_puzzle(rng: np.random.Generator, low: int, high: int) -> RatedPuzzle | None:
    """A unique-solution puzzle rated in [low, high] rounds, or None when this draw cannot reach it.

    A minimal puzzle (`generate_puzzle`) has the most rounds its solution allows; solution digits
    are added back in a random order until the rating drops to a target drawn uniformly from
    [low, high] (bisection over how many are added), so ratings spread evenly over the range.
    The puzzle stays uniquely solvable: it contains a uniquely solvable one.
    """
    puzzle, solution = generate_puzzle(rng)
    target = int(rng.integers(low, high + 1))
    rounds = singles_rounds(puzzle)
    if rounds is not None and rounds < low:
        return None
    order = [cell for cell in rng.permutation(81).tolist() if not puzzle[cell]]

    def with_added(k: int) -> list[int]:
        board = puzzle[:]
        for cell in order[:k]:
            board[cell] = solution[cell]
        return board

    if rounds is None or rounds > target:  # fewest additions that bring the rating to <= target
        lo, hi = 0, len(order)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            r = singles_rounds(with_added(mid))
            lo, hi = (mid, hi) if r is None or r > target else (lo, mid)
        puzzle = with_added(hi)
        rounds = singles_rounds(puzzle)
    assert rounds is not None  # the full board (hi = len(order)) rates 0
    return RatedPuzzle(puzzle, solution, rounds) if low <= rounds <= high else None
