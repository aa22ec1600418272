"""Constraint-propagation Sudoku solver, difficulty rating and offline puzzle generator.

Boards are sequences of 81 ints, row-major, 0 for an empty cell and 1..9 for a digit.
Candidates are kept as 9-bit masks; propagation applies naked and hidden singles and
the search branches on a cell with the fewest candidates. The number of guesses the
search makes before it reaches the first solution is the puzzle's rating, so puzzles
solved by propagation alone rate 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ALL = 0x1FF
_ROWS = [tuple(r * 9 + c for c in range(9)) for r in range(9)]
_COLS = [tuple(r * 9 + c for r in range(9)) for c in range(9)]
_BOXES = [
    tuple((br * 3 + r) * 9 + bc * 3 + c for r in range(3) for c in range(3))
    for br in range(3)
    for bc in range(3)
]
UNITS: list[tuple[int, ...]] = _ROWS + _COLS + _BOXES
PEERS: list[tuple[int, ...]] = [
    tuple(sorted({p for unit in UNITS if cell in unit for p in unit} - {cell})) for cell in range(81)
]
_POPCOUNT = [bin(m).count("1") for m in range(ALL + 1)]
_DIGIT_OF_BIT = {1 << d: d + 1 for d in range(9)}


def _eliminate(cand: list[int], queue: list[int]) -> bool:
    """Remove each queued single's digit from its peers; False on a contradiction."""
    while queue:
        cell = queue.pop()
        bit = cand[cell]
        for peer in PEERS[cell]:
            mask = cand[peer]
            if mask & bit:
                mask &= ~bit
                if not mask:
                    return False
                cand[peer] = mask
                if not mask & (mask - 1):
                    queue.append(peer)
    return True


def _propagate(cand: list[int], queue: list[int]) -> bool:
    """Naked singles plus hidden singles until nothing changes; False on a contradiction."""
    while True:
        if not _eliminate(cand, queue):
            return False
        for unit in UNITS:
            once = twice = 0
            for cell in unit:
                mask = cand[cell]
                twice |= once & mask
                once |= mask
            if once != ALL:
                return False
            hidden = once & ~twice
            while hidden:
                bit = hidden & -hidden
                hidden ^= bit
                for cell in unit:
                    if cand[cell] & bit:
                        if cand[cell] != bit:
                            cand[cell] = bit
                            queue.append(cell)
                        break
        if not queue:
            return True


def _initial(board: Sequence[int]) -> list[int] | None:
    cand = [ALL] * 81
    queue = []
    for cell, digit in enumerate(board):
        if digit:
            cand[cell] = 1 << (int(digit) - 1)
            queue.append(cell)
    return cand if _propagate(cand, queue) else None


class _Search:
    """Depth-first search over propagated candidate states, counting guesses."""

    def __init__(self, limit: int, rng: np.random.Generator | None = None):
        self.limit = limit
        self.rng = rng
        self.guesses = 0
        self.solutions: list[list[int]] = []

    def run(self, cand: list[int]) -> None:
        best, best_n = -1, 10
        for cell in range(81):
            mask = cand[cell]
            if mask & (mask - 1):
                n = _POPCOUNT[mask]
                if n < best_n:
                    best, best_n = cell, n
                    if n == 2:
                        break
        if best < 0:
            self.solutions.append([_DIGIT_OF_BIT[m] for m in cand])
            return
        mask = cand[best]
        bits = [1 << d for d in range(9) if mask >> d & 1]
        if self.rng is not None:
            self.rng.shuffle(bits)
        for bit in bits:
            if len(self.solutions) >= self.limit:
                return
            self.guesses += 1
            child = cand[:]
            child[best] = bit
            if _propagate(child, [best]):
                self.run(child)


def solve(board: Sequence[int]) -> tuple[list[int] | None, int]:
    """First solution (digits 1..9) or None, and the number of guesses the search made."""
    cand = _initial(board)
    if cand is None:
        return None, 0
    search = _Search(limit=1)
    search.run(cand)
    return (search.solutions[0] if search.solutions else None), search.guesses


def rate(board: Sequence[int]) -> int:
    """Difficulty: guesses needed to reach the first solution (0 = propagation alone)."""
    return solve(board)[1]


def random_solution(rng: np.random.Generator) -> list[int]:
    """A uniformly shuffled search over the empty board: a random complete grid."""
    search = _Search(limit=1, rng=rng)
    search.run([ALL] * 81)
    return search.solutions[0]


def _has_other_solution(board: list[int], cell: int, digit: int) -> bool:
    """Whether the board (cell already cleared) has a solution with `digit` not at `cell`.

    The board before clearing had a unique solution with `digit` at `cell`, so another
    solution exists exactly when one avoids that digit there.
    """
    cand = _initial(board)
    if cand is None:
        return False
    mask = cand[cell] & ~(1 << (digit - 1))
    if not mask:
        return False
    cand[cell] = mask
    if not _propagate(cand, [] if mask & (mask - 1) else [cell]):
        return False
    search = _Search(limit=1)
    search.run(cand)
    return bool(search.solutions)


def generate_puzzle(rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """A minimal puzzle with a unique solution: clear cells of a random grid in random order
    while the solution stays unique. Returns (puzzle, solution)."""
    solution = random_solution(rng)
    board = solution[:]
    for cell in rng.permutation(81).tolist():
        digit = board[cell]
        board[cell] = 0
        if _has_other_solution(board, cell, digit):
            board[cell] = digit
    return board, solution
