"""TRM's augmentation of one ARC task and the random draws it makes, in TRM's order (SPEC_ARC 3.2, 3.5, 6).

A version of a task is a dihedral transform id and a colour mapping that keeps black; version 0 is the
original. `draw_versions` makes the augmentation trials and keeps a version only when its puzzle hash is new;
`translations` draws the canvas offsets of one puzzle's examples. Both take the legacy numpy stream
(`np.random.RandomState(seed)` gives the draws `np.random.seed(seed)` gives TRM), and nothing else here draws.

The trials are the build's hot loop (up to 5 * num_aug per task), so a `TaskGrids` keeps each grid's cells
under all 8 transforms once and a trial is one colour lookup over them; the hash it computes is
`arc_grid.puzzle_hash` of the augmented examples, digit for digit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from dataset.arc.grid import NUM_COLOURS, SIDE, dihedral

Pair = tuple[np.ndarray, np.ndarray]  # (input grid, output grid), uint8
NUM_DIHEDRAL = 8
IDENTITY = np.arange(NUM_COLOURS, dtype=np.uint8)
_COLOURS = np.arange(1, NUM_COLOURS, dtype=np.uint8)  # what is permuted: black stays black
TRIALS_PER_AUGMENTATION = 5


@dataclass(frozen=True)
class Versions:
    """The kept versions of a task, the original first: transform ids [V] and colour mappings [V, 10]."""

    tids: np.ndarray
    mappings: np.ndarray

    def __len__(self) -> int:
        return len(self.tids)


class TaskGrids:
    """A task's example grids (inputs and outputs alternating) under each of the 8 transforms, flattened."""

    def __init__(self, pairs: list[Pair]) -> None:
        self.num_pairs = len(pairs)
        grids = [grid for pair in pairs for grid in pair]
        self._cells, self._shapes, self._prefixes, self._bounds = [], [], [], []
        for tid in range(NUM_DIHEDRAL):
            moved = [dihedral(grid, tid) for grid in grids]
            sizes = np.cumsum([0] + [g.size for g in moved])
            self._cells.append(np.concatenate([g.reshape(-1) for g in moved]) if moved else IDENTITY[:0])
            self._shapes.append([g.shape for g in moved])
            self._prefixes.append([bytes(g.shape) for g in moved])
            self._bounds.append(list(zip(sizes[:-1].tolist(), sizes[1:].tolist(), strict=True)))

    def puzzle_hash(self, tid: int, mapping: np.ndarray) -> str:
        """`arc_grid.puzzle_hash` of the version's examples."""
        cells = mapping[self._cells[tid]].tobytes()
        digests = [hashlib.sha256(prefix + cells[a:b]).hexdigest()
                   for prefix, (a, b) in zip(self._prefixes[tid], self._bounds[tid], strict=True)]
        keys = sorted(f"{digests[i]}|{digests[i + 1]}" for i in range(0, len(digests), 2))
        return hashlib.sha256("|".join(keys).encode()).hexdigest()

    def augmented(self, tid: int, mapping: np.ndarray) -> list[Pair]:
        """The version's examples in order: `arc_grid.augment` of every grid."""
        cells = mapping[self._cells[tid]]
        grids = [cells[a:b].reshape(shape) for (a, b), shape in zip(self._bounds[tid], self._shapes[tid], strict=True)]
        return list(zip(grids[0::2], grids[1::2], strict=True))


def draw_versions(grids: TaskGrids, num_aug: int, rng: np.random.RandomState) -> tuple[Versions, bool]:
    """The original and up to `num_aug` augmentations with new puzzle hashes, from at most 5 * num_aug trials
    (each draws a transform id, then a permutation of colours 1..9); also whether the group is full."""
    tids, mappings = [0], [IDENTITY]
    if num_aug > 0:
        seen = {grids.puzzle_hash(0, IDENTITY)}
        for _ in range(TRIALS_PER_AUGMENTATION * num_aug):
            tid = rng.randint(0, NUM_DIHEDRAL)
            mapping = np.concatenate([IDENTITY[:1], rng.permutation(_COLOURS)])
            digest = grids.puzzle_hash(tid, mapping)
            if digest not in seen:
                seen.add(digest)
                tids.append(tid)
                mappings.append(mapping)
            if len(tids) >= num_aug + 1:
                break
    return Versions(np.array(tids, dtype=np.uint8), np.stack(mappings)), len(tids) >= num_aug + 1


def translations(pairs: list[Pair], rng: np.random.RandomState, translate: bool) -> list[tuple[int, int]]:
    """Canvas offsets (pad_r, pad_c) of one puzzle's examples: one example, drawn first, keeps (0, 0); with
    `translate` (the train split) each other example draws a row then a column offset that fits both grids."""
    keep = rng.randint(0, len(pairs))
    offsets = []
    for k, (x, y) in enumerate(pairs):
        if translate and k != keep:
            pad_r = rng.randint(0, SIDE - max(x.shape[0], y.shape[0]) + 1)
            pad_c = rng.randint(0, SIDE - max(x.shape[1], y.shape[1]) + 1)
            offsets.append((pad_r, pad_c))
        else:
            offsets.append((0, 0))
    return offsets
