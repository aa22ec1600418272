"""ARC grids and their 900-token rows: the pieces TRM's builder and its evaluator share (SPEC_ARC 2-3, 8.2).

A grid is a 2-D uint8 array of colours 0..9, at most 30x30. On the 30x30 canvas colour c is token c + 2,
the row under a grid and the column right of it (only beside the grid) are EOS, the rest PAD. An
augmentation is a dihedral transform id (0..7) and a colour mapping that keeps black; its name records
both (`{task}|||t{tid}|||{ten digits}`) so the evaluator can map a prediction back to the task's frame.
Hashes (SHA-256 over shape bytes and cells) identify grids and whole task versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

SIDE = 30
SEQ_LEN = SIDE * SIDE
VOCAB_SIZE = 12
PAD, EOS, COLOUR_OFFSET = 0, 1, 2
NUM_COLOURS = 10
NAME_SEPARATOR = "|||"
BLANK_NAME = "<blank>"
INVERSE_DIHEDRAL = (0, 3, 2, 1, 4, 5, 6, 7)
SWAPS_SHAPE = frozenset({1, 3, 6, 7})  # the transforms that exchange height and width


def dihedral(grid: np.ndarray, tid: int) -> np.ndarray:
    """Transform `tid` of SPEC_ARC 3.1 (0 identity, 1 rot90 ccw, 2 rot180, 3 rot90 cw, 4 mirror left-right,
    5 mirror up-down, 6 transpose, 7 anti-transpose); any other id is the identity."""
    transforms = {
        1: lambda a: np.rot90(a, 1), 2: lambda a: np.rot90(a, 2), 3: lambda a: np.rot90(a, 3),
        4: np.fliplr, 5: np.flipud, 6: lambda a: a.T, 7: lambda a: np.rot90(a, 2).T,
    }
    transform = transforms.get(tid)
    return grid if transform is None else np.ascontiguousarray(transform(grid))


def inverse_dihedral(grid: np.ndarray, tid: int) -> np.ndarray:
    return dihedral(grid, INVERSE_DIHEDRAL[tid]) if 0 <= tid < len(INVERSE_DIHEDRAL) else grid


def augment(grid: np.ndarray, tid: int, mapping: np.ndarray) -> np.ndarray:
    """New colour = mapping[old], then the dihedral transform (the two commute)."""
    return dihedral(mapping[grid], tid)


def augmentation_name(task_id: str, tid: int, mapping: np.ndarray) -> str:
    return NAME_SEPARATOR.join((task_id, f"t{tid}", "".join(str(int(v)) for v in mapping)))


def task_of_name(name: str) -> str:
    """The task id of a puzzle name: the text before the first separator."""
    return name.split(NAME_SEPARATOR, 1)[0]


def to_original_frame(grid: np.ndarray, name: str) -> np.ndarray:
    """Undo the augmentation the name records (a name without a separator is the original)."""
    if NAME_SEPARATOR not in name:
        return grid
    fields = name.split(NAME_SEPARATOR)
    tid = int(fields[-2][1:])
    inverse_mapping = np.argsort(np.array([int(d) for d in fields[-1]])).astype(np.uint8)
    return inverse_mapping[inverse_dihedral(grid, tid)]


def grid_hash(grid: np.ndarray) -> str:
    """SHA-256 hex of the height and width bytes then the cells as uint8, row-major."""
    height, width = grid.shape
    return hashlib.sha256(bytes((height, width)) + np.ascontiguousarray(grid, dtype=np.uint8).tobytes()).hexdigest()


def puzzle_hash(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> str:
    """One task version's hash: the sorted `{input hash}|{output hash}` strings of all its examples."""
    keys = sorted(f"{grid_hash(i)}|{grid_hash(o)}" for i, o in pairs)
    return hashlib.sha256("|".join(keys).encode()).hexdigest()


def encode(grid: np.ndarray, pad_r: int = 0, pad_c: int = 0) -> np.ndarray:
    """The grid on the 30x30 canvas at offset (pad_r, pad_c) as 900 uint8 tokens, EOS row and column beside it."""
    height, width = grid.shape
    canvas = np.full((SIDE, SIDE), PAD, dtype=np.uint8)
    canvas[pad_r:pad_r + height, pad_c:pad_c + width] = grid + COLOUR_OFFSET
    if pad_r + height < SIDE:
        canvas[pad_r + height, pad_c:pad_c + width] = EOS
    if pad_c + width < SIDE:
        canvas[pad_r:pad_r + height, pad_c + width] = EOS
    return canvas.reshape(-1)


def crop_sizes(tokens: np.ndarray) -> np.ndarray:
    """(height, width) [N, 2] each row of `tokens` [N, 900] crops to under TRM's rule (SPEC_ARC 8.2): the
    largest top-left block of colour tokens whose width is the shortest leading run of colours so far."""
    canvas = np.asarray(tokens).reshape(-1, SIDE, SIDE)
    colour = (canvas >= COLOUR_OFFSET) & (canvas < COLOUR_OFFSET + NUM_COLOURS)
    run = np.where(colour.all(axis=2), SIDE, np.argmin(colour, axis=2))  # leading colour cells of each row
    width = np.minimum.accumulate(run, axis=1)
    area = width * np.arange(1, SIDE + 1)
    best = np.argmax(area, axis=1)  # the first largest: TRM's strict `>` scan
    rows = np.arange(len(canvas))
    height = np.where(area[rows, best] > 0, best + 1, 0)
    return np.stack([height, np.where(height > 0, width[rows, best], 0)], axis=1)


def crop(tokens: np.ndarray) -> np.ndarray:
    """One 900-token row back to its grid (uint8 colours; 0x0 when it starts with a non-colour token)."""
    height, width = crop_sizes(tokens[None])[0]
    canvas = np.asarray(tokens).reshape(SIDE, SIDE)
    return (canvas[:height, :width] - COLOUR_OFFSET).astype(np.uint8)
