"""Maze generation: grids with a start, a goal and a unique shortest path between them.

Grids are square, cells either open or wall. Perfect mazes are carved by a recursive
backtracker over the cells at odd coordinates of the largest odd-sized top-left square
(the rest stays wall), so every two open cells are joined by exactly one path. Random
mazes are open cells with independent walls; there uniqueness of the shortest path is
checked by counting shortest paths during the breadth-first search. Path length is the
number of moves from start to goal.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Literal

import numpy as np

from dataset.maze import GOAL, OPEN, PATH, START, WALL, neighbours

MazeMode = Literal["perfect", "random"]
STARTS_PER_MAZE = 8


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
        for v in neighbours(u, n):
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
        previous = [v for v in neighbours(cell, n) if dist[v] == dist[cell] - 1]
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
