"""Maze grids with a start, a goal and a unique shortest path between them.

Grids are square, cells either open or wall. Perfect mazes are carved by a recursive
backtracker over the cells at odd coordinates of the largest odd-sized top-left square
(the rest stays wall), so every two open cells are joined by exactly one path. Random
mazes are open cells with independent walls; there uniqueness of the shortest path is
checked by counting shortest paths during the breadth-first search. Path length is the
number of moves from start to goal.

A maze's symmetries are the 8 of its square (`dihedral_cells`): they keep walls, start, goal and
path, so the Maze-Hard builder's augmentation and test-time augmentation both use them.
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Literal

import numpy as np

CHARSET = "# SGo"
WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5
VOCAB_SIZE = 1 + len(CHARSET)
MazeMode = Literal["perfect", "random"]
STARTS_PER_MAZE = 8


def dihedral_cells(side: int, element: int) -> np.ndarray:
    """Source cell of every output cell [side * side] for element 0..7 of the square's symmetry group.

    Element k < 4 rotates the grid k times by 90 degrees counter-clockwise, k >= 4 rotates its
    transpose k - 4 times: the order TTA numbers them in; builders map their own order onto it.
    """
    grid = np.arange(side * side).reshape(side, side)
    return np.rot90(grid.T if element >= 4 else grid, element % 4).reshape(-1)


class MazeGenerationError(RuntimeError):
    """No maze with the requested path length turned up within the attempt budget."""


def carved_size(grid_size: int) -> int:
    """Side of the square a perfect maze is carved on: the largest odd size that fits."""
    return grid_size if grid_size % 2 else grid_size - 1


def longest_possible_path(grid_size: int, mode: MazeMode) -> int:
    """Upper bound on the shortest-path length any maze of this kind can hold."""
    if mode == "perfect":
        cells = (carved_size(grid_size) - 1) // 2
        return max(2 * cells * cells - 2, 0)
    return grid_size * grid_size - 1


def perfect_maze(grid_size: int, rng: random.Random) -> np.ndarray:
    """Bool [n, n] open-cell grid of a recursive-backtracker maze."""
    k = (carved_size(grid_size) - 1) // 2
    grid = np.zeros((grid_size, grid_size), dtype=bool)
    if k == 0:
        return grid
    visited = [[False] * k for _ in range(k)]
    start = (rng.randrange(k), rng.randrange(k))
    visited[start[0]][start[1]] = True
    grid[2 * start[0] + 1, 2 * start[1] + 1] = True
    stack = [start]
    while stack:
        r, c = stack[-1]
        options = [
            (r + dr, c + dc)
            for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
            if 0 <= r + dr < k and 0 <= c + dc < k and not visited[r + dr][c + dc]
        ]
        if not options:
            stack.pop()
            continue
        nr, nc = rng.choice(options)
        visited[nr][nc] = True
        grid[r + nr + 1, c + nc + 1] = True
        grid[2 * nr + 1, 2 * nc + 1] = True
        stack.append((nr, nc))
    return grid


def random_maze(grid_size: int, wall_prob: float, rng: random.Random) -> np.ndarray:
    """Bool [n, n] grid, each cell a wall with probability wall_prob."""
    return np.array([[rng.random() >= wall_prob for _ in range(grid_size)] for _ in range(grid_size)])


def _neighbours(cell: int, n: int) -> list[int]:
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


def shortest_paths(grid: np.ndarray, start: int) -> tuple[list[int], list[int]]:
    """BFS distances from start (-1 unreachable) and shortest-path counts capped at 2."""
    n = grid.shape[0]
    is_open = grid.ravel().tolist()
    dist = [-1] * (n * n)
    count = [0] * (n * n)
    dist[start], count[start] = 0, 1
    queue = deque([start])
    while queue:
        u = queue.popleft()
        for v in _neighbours(u, n):
            if not is_open[v]:
                continue
            if dist[v] < 0:
                dist[v], count[v] = dist[u] + 1, count[u]
                queue.append(v)
            elif dist[v] == dist[u] + 1:
                count[v] = min(2, count[v] + count[u])
    return dist, count


def trace_path(dist: list[int], goal: int, n: int, rng: random.Random) -> list[int]:
    """Cells of one shortest path from start to goal (the only one when the count is 1)."""
    path = [goal]
    while dist[path[-1]]:
        cell = path[-1]
        previous = [v for v in _neighbours(cell, n) if dist[v] == dist[cell] - 1]
        path.append(previous[0] if len(previous) == 1 else rng.choice(previous))
    return path[::-1]


def place_path(
    grid: np.ndarray, length: int, require_unique: bool, rng: random.Random
) -> tuple[int, int, list[int]] | None:
    """Start and goal `length` moves apart (with a unique shortest path if required), or None."""
    open_cells = np.flatnonzero(grid).tolist()
    if len(open_cells) < 2:
        return None
    for start in rng.sample(open_cells, min(STARTS_PER_MAZE, len(open_cells))):
        dist, count = shortest_paths(grid, start)
        goals = [v for v in open_cells if dist[v] == length and (count[v] == 1 or not require_unique)]
        if goals:
            goal = rng.choice(goals)
            return start, goal, trace_path(dist, goal, grid.shape[0], rng)
    return None


def render(grid: np.ndarray, path: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids [n*n] of the puzzle (walls, open, S, G) and its label (interior path 'o')."""
    inputs = np.where(grid.ravel(), OPEN, WALL).astype(np.uint8)
    inputs[path[0]], inputs[path[-1]] = START, GOAL
    labels = inputs.copy()
    labels[path[1:-1]] = PATH
    return inputs, labels


def sample_maze(
    grid_size: int,
    length: int,
    mode: MazeMode,
    wall_prob: float,
    require_unique: bool,
    rng: random.Random,
    max_attempts: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A (inputs, labels) pair whose start-goal shortest path has `length` moves."""
    for _ in range(max_attempts):
        grid = perfect_maze(grid_size, rng) if mode == "perfect" else random_maze(grid_size, wall_prob, rng)
        placed = place_path(grid, length, require_unique, rng)
        if placed is not None:
            return render(grid, placed[2])
    raise MazeGenerationError(
        f"no {mode} {grid_size}x{grid_size} maze with a path of {length} moves in {max_attempts} attempts; "
        "lower the path lengths or raise --max-attempts"
    )


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
        degree = {c: sum(n in cells for n in _neighbours(c, side)) for c in cells}
        start, goal = int(np.flatnonzero(x == START)[0]), int(np.flatnonzero(x == GOAL)[0])
        reached, frontier = {start}, [start]
        while frontier:
            frontier = [n for c in frontier for n in _neighbours(c, side) if n in cells and n not in reached]
            reached.update(frontier)
        out[i] = (reached == cells and degree[start] == degree[goal] == 1
                  and all(d == 2 for c, d in degree.items() if c not in (start, goal)))
    return out


def mark_every_open_cell(inputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Trivial baseline: 'o' on every open cell, right wherever the path runs, wrong on every dead end."""
    preds = np.where(inputs == OPEN, PATH, inputs)
    correct = preds == labels
    return {"exact_accuracy": float(correct.all(axis=1).mean()), "accuracy": float(correct.mean())}
