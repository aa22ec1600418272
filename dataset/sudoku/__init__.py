"""Sudoku boards as numpy arrays: token encoding, vectorised validity checks, the symmetry group, rendering.

A board array holds digits 0..9 per cell (0 = empty), shape [N, 81], row-major. Model
tokens are digit + 1 (pad 0, blank 1, digits 2..10).

A symmetry is (transpose flag, row order, column order, digit map), rows and columns permuted in
bands and stacks of 3; `symmetry_cells` and `token_maps` are its one implementation, used by the
builder's augmentation (dataset/sudoku/augment.py, the reference's draws) and by test-time
augmentation (`tta_symmetries`, dataset/symmetries.py's invertible `TransformSet`).
"""

from __future__ import annotations

import numpy as np

VOCAB_SIZE = 11
SEQ_LEN = 81

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


def symmetry_cells(transpose: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Source cell of every output cell [m, 81] of m symmetries: the board transposed first, then permuted.

    Output cell (i, j) reads (rows[i], cols[j]), or (cols[j], rows[i]) when transposed (flags [m], orders
    [m, 9]); the reference builder's convention, so its copies come out bit for bit.
    """
    plain = rows[:, :, None] * 9 + cols[:, None, :]
    flipped = cols[:, None, :] * 9 + rows[:, :, None]
    return np.where(transpose[:, None, None], flipped, plain).reshape(-1, SEQ_LEN)


def token_maps(digit_maps: np.ndarray) -> np.ndarray:
    """Digit maps [m, 10] (blank 0 kept) as token maps [m, 11]: the same symmetry on model tokens, pad kept."""
    return np.concatenate([np.zeros((len(digit_maps), 1), dtype=digit_maps.dtype), digit_maps + 1], axis=1)


def tta_symmetries(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Identity plus `count - 1` symmetries from torch's stream seeded with `seed`: cells [T, 81], token maps [T, 11].

    Per symmetry: row order, column order (each a band order, then the rows within each band), a
    transpose flag, a digit permutation; the draws every TTA result so far was made with. They
    permute first and transpose after, which is the builder's convention with row and column order
    swapped.
    """
    import torch  # only TTA's draws need torch's stream; the builders and tools stay torch-free

    generator = torch.Generator().manual_seed(seed)

    def grouped() -> np.ndarray:
        groups = torch.randperm(3, generator=generator)
        return torch.cat([g * 3 + torch.randperm(3, generator=generator) for g in groups]).numpy()

    transpose = np.zeros(count, dtype=bool)
    rows, cols = np.tile(np.arange(9), (count, 1)), np.tile(np.arange(9), (count, 1))
    digits = np.tile(np.arange(10), (count, 1))
    for k in range(1, count):
        rows[k], cols[k] = grouped(), grouped()
        transpose[k] = bool(torch.rand((), generator=generator) < 0.5)
        digits[k, 1:] = 1 + torch.randperm(9, generator=generator).numpy()
    first, second = np.where(transpose[:, None], cols, rows), np.where(transpose[:, None], rows, cols)
    return symmetry_cells(transpose, first, second), token_maps(digits)


def board_to_string(board: np.ndarray) -> str:
    """81 digits with '.' for empty cells (the CSV convention)."""
    return "".join("." if d == 0 else str(int(d)) for d in board)


def encode_tokens(boards: np.ndarray) -> np.ndarray:
    """Digits 0..9 -> token ids 1..10."""
    return (boards + 1).astype(np.uint8)


def unit_digit_counts(boards: np.ndarray) -> np.ndarray:
    """Int [N, 27, 10]: how often each digit (0 = empty) occurs in each unit: the one Sudoku rule check."""
    units = np.clip(boards.astype(np.int64), 0, 9)[:, UNIT_CELLS]  # [N, 27, 9]
    return (units[..., None] == np.arange(10)).sum(axis=2)


def unit_violations(solutions: np.ndarray) -> np.ndarray:
    """Bool [N, 27]: unit u of board n does not hold each digit 1..9 exactly once."""
    return (unit_digit_counts(solutions)[..., 1:] != 1).any(axis=-1)


def repeated_cells(boards: np.ndarray) -> np.ndarray:
    """Bool [N, 81]: the cell's digit occurs again in its row, column or box (empty cells never)."""
    counts = unit_digit_counts(boards)  # [N, 27, 10]
    digits = np.clip(boards.astype(np.int64), 0, 9)  # [N, 81]
    repeated = np.zeros(digits.shape, dtype=bool)
    for unit, cells in enumerate(UNIT_CELLS):
        repeated[:, cells] |= np.take_along_axis(counts[:, unit], digits[:, cells], axis=1) > 1
    return repeated & (digits > 0)


def text_lines(tokens: np.ndarray) -> list[str]:
    """9x9 grid with box separators; token 1 (blank) as '.', pad as ' '."""
    chars = [" ", "."] + [str(d) for d in range(1, 10)]
    lines = []
    for r in range(9):
        if r in (3, 6):
            lines.append("------+-------+------")
        cells = [chars[t] if 0 <= t < len(chars) else "?" for t in tokens[r * 9 : r * 9 + 9]]
        lines.append(" | ".join(" ".join(cells[c : c + 3]) for c in (0, 3, 6)))
    return lines


_CHANGED = (0.99, 0.85, 0.64)  # shade of a cell whose digit changed since the previous segment
_WRONG = "darkorange"  # the mark of a digit that differs from the solution


def _frame_legend(ax) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    def digit(colour: str, name: str, bold: bool = False) -> Line2D:
        return Line2D([], [], linestyle="none", marker=r"$\mathbf{7}$" if bold else "$7$", markersize=8,
                      color=colour, label=name)

    handles = [digit("black", "given digit", bold=True), digit("tab:blue", "predicted digit"),
               digit("red", "repeats in its row, column or box"),
               Patch(facecolor=_CHANGED, edgecolor="0.6", label="changed since the previous segment"),
               Line2D([], [], linestyle="none", marker="x", markersize=5, markeredgewidth=1.5, color=_WRONG,
                      label="differs from the solution")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0), borderaxespad=0.5, ncol=2,
              fontsize=8, frameon=False, columnspacing=1.2, handlelength=1.2)


def draw_frame(ax, inputs: np.ndarray, labels: np.ndarray, pred: np.ndarray, previous: np.ndarray | None) -> None:
    """Givens in bold, predicted digits in blue (red where they repeat in a unit), changed cells shaded, digits
    that differ from the solution marked in the corner; a legend below the grid names each."""
    given = np.clip(inputs.astype(int) - 1, 0, 9).reshape(9, 9)
    digits = np.clip(pred.astype(int) - 1, 0, 9)
    bad = repeated_cells(digits[None])[0].reshape(9, 9)
    digits = digits.reshape(9, 9)
    changed = np.zeros((9, 9), dtype=bool) if previous is None else (
        digits != np.clip(previous.astype(int) - 1, 0, 9).reshape(9, 9))
    ax.imshow(np.where(changed[..., None], _CHANGED, 1.0))
    for r in range(9):
        for c in range(9):
            if given[r, c]:
                ax.text(c, r, str(given[r, c]), ha="center", va="center", fontsize=12, weight="bold")
            elif digits[r, c]:
                ax.text(c, r, str(digits[r, c]), ha="center", va="center", fontsize=12,
                        color="red" if bad[r, c] else "tab:blue")
    rows, cols = np.divmod(np.flatnonzero((pred != labels) & (labels >= 0)), 9)
    ax.scatter(cols + 0.3, rows + 0.3, marker="x", s=14, linewidths=1.2, color=_WRONG)
    for k in range(10):
        width = 2.0 if k % 3 == 0 else 0.5
        ax.axhline(k - 0.5, color="black", lw=width)
        ax.axvline(k - 0.5, color="black", lw=width)
    _frame_legend(ax)


def follows_rules(inputs: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Bool [N]: a predicted grid keeps the givens and repeats no digit in any unit."""
    givens, digits = inputs.astype(np.int64) - 1, preds.astype(np.int64) - 1
    return agrees_with_givens(np.clip(givens, 0, 9), digits) & ~repeated_cells(digits).any(axis=1)


def agrees_with_givens(puzzles: np.ndarray, solutions: np.ndarray) -> np.ndarray:
    """Bool [N]: every given of the puzzle equals the solution's digit in that cell."""
    return ((puzzles == 0) | (puzzles == solutions)).all(axis=1)
