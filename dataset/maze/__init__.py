"""Maze grids as token arrays: the encoding, the symmetry group, rendering and the rules a predicted path
must follow. How mazes are made is dataset/maze/generate.py.

A grid is square, a token per cell (`# SGo`: wall, open, start, goal, path; pad 0), row-major.
A maze's symmetries are the 8 of its square (`dihedral_cells`): they keep walls, start, goal and
path, so the Maze-Hard builder's augmentation and test-time augmentation both use them.
"""

from __future__ import annotations

import math

import numpy as np

CHARSET = "# SGo"
WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5
VOCAB_SIZE = 1 + len(CHARSET)


def dihedral_cells(side: int, element: int) -> np.ndarray:
    """Source cell of every output cell [side * side] for element 0..7 of the square's symmetry group.

    Element k < 4 rotates the grid k times by 90 degrees counter-clockwise, k >= 4 rotates its
    transpose k - 4 times: the order TTA numbers them in; builders map their own order onto it.
    """
    grid = np.arange(side * side).reshape(side, side)
    return np.rot90(grid.T if element >= 4 else grid, element % 4).reshape(-1)


def neighbours(cell: int, n: int) -> list[int]:
    """The cells sharing a side with `cell` on an n x n grid (row-major)."""
    r, c = divmod(cell, n)
    out = []
    if r > 0:
        out.append(cell - n)
    if r < n - 1:
        out.append(cell + n)
    if c > 0:
        out.append(cell - 1)
    if c < n - 1:
        out.append(cell + 1)
    return out


def decode_grid(tokens: np.ndarray, size: int) -> list[str]:
    """Rows of characters for display ('?' for pad or unknown ids)."""
    chars = "?" + CHARSET
    return [
        "".join(chars[t] if 0 <= t < len(chars) else "?" for t in row) for row in tokens.reshape(size, size)
    ]


def text_lines(tokens: np.ndarray) -> list[str]:
    """The grid as rows of `# SGo` characters."""
    return decode_grid(np.asarray(tokens), math.isqrt(len(tokens)))


# What a frame shows: the colour of each cell kind, and the marks on cells the prediction gets wrong.
_CELL_COLOURS = {"#": ((0.2, 0.2, 0.2), "wall"), " ": ((1, 1, 1), "open"), "S": ((0.2, 0.7, 0.2), "start"),
                 "G": ((0.85, 0.2, 0.2), "goal"), "o": ((0.3, 0.5, 1), "predicted path")}
_MARKS = {"wrong": ("x", "orange", "wrong cell (e.g. path off the solution)"),
          "missed": ("o", "orange", "solution path cell not predicted")}


def draw_frame(ax, inputs: np.ndarray, labels: np.ndarray, pred: np.ndarray, previous: np.ndarray | None) -> None:
    """Walls, start, goal and the predicted path, the cells it gets wrong marked; a legend below names each."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    side = math.isqrt(len(inputs))
    image = np.ones((len(inputs), 3))
    for token, char in enumerate(CHARSET, start=1):
        image[inputs == token] = _CELL_COLOURS[char][0]
    image[(pred == PATH) & (inputs == OPEN)] = _CELL_COLOURS["o"][0]
    ax.imshow(image.reshape(side, side, 3))
    scored = labels >= 0
    missed = scored & (labels == PATH) & (pred != PATH)
    cells = {"wrong": scored & (pred != labels) & ~missed, "missed": missed}
    for kind, (marker, colour, _) in _MARKS.items():
        rows, cols = np.divmod(np.flatnonzero(cells[kind]), side)
        filled = {"facecolors": "none", "edgecolors": colour} if marker == "o" else {"color": colour}
        ax.scatter(cols, rows, marker=marker, s=30, linewidths=1.5, **filled)
    handles = [Patch(facecolor=rgb, edgecolor="0.6", label=name) for rgb, name in _CELL_COLOURS.values()]
    handles += [Line2D([], [], linestyle="none", marker=marker, markersize=6, markeredgewidth=1.5,
                       markerfacecolor="none", markeredgecolor=colour, label=name)
                for marker, colour, name in _MARKS.values()]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0), borderaxespad=0.5, ncol=3,
              fontsize=8, frameon=False, columnspacing=1.2, handlelength=1.2)


def follows_rules(inputs: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Bool [N]: the predicted path cells are open cells that form one simple chain from S to G."""
    out = np.zeros(len(inputs), dtype=bool)
    side = math.isqrt(inputs.shape[1])
    for i, (x, y) in enumerate(zip(inputs, preds, strict=True)):
        path = (y == PATH) & (x == OPEN)
        if ((y == PATH) & (x != OPEN)).any() or (x == START).sum() != 1 or (x == GOAL).sum() != 1:
            continue
        on = path | (x == START) | (x == GOAL)
        cells = {int(c) for c in np.flatnonzero(on)}
        degree = {c: sum(n in cells for n in neighbours(c, side)) for c in cells}
        start, goal = int(np.flatnonzero(x == START)[0]), int(np.flatnonzero(x == GOAL)[0])
        reached, frontier = {start}, [start]
        while frontier:
            frontier = [n for c in frontier for n in neighbours(c, side) if n in cells and n not in reached]
            reached.update(frontier)
        out[i] = (reached == cells and degree[start] == degree[goal] == 1
                  and all(d == 2 for c, d in degree.items() if c not in (start, goal)))
    return out


def mark_every_open_cell(inputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Trivial baseline: 'o' on every open cell, right wherever the path runs, wrong on every dead end."""
    preds = np.where(inputs == OPEN, PATH, inputs)
    correct = preds == labels
    return {"exact_accuracy": float(correct.all(axis=1).mean()), "accuracy": float(correct.mean())}
