"""Validity-preserving puzzle transforms and their exact inverses (test-time augmentation).

Each transform is a position permutation plus a token permutation, so a puzzle and its
solution transform alike and a prediction made in the transformed frame maps back to the
original frame exactly. Transform 0 is always the identity. Two families exist: `sudoku` (digit,
band/row and stack/column permutations, transpose) and `dihedral` (the 8 symmetries of a square
grid, which keep a maze's walls, start and goal). A task names its family (dataset/tasks.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from utils.validation import ConfigError

SUDOKU_SEQ_LEN = 81
SUDOKU_VOCAB = 11  # pad 0, blank 1, digits 1..9 -> tokens 2..10


@dataclass(frozen=True)
class TransformSet:
    """T transforms as gather indices: transformed[i] = token_map[x[position_perm[i]]]."""

    position_perm: torch.Tensor  # [T, S] int64
    token_map: torch.Tensor  # [T, V] int64

    def __post_init__(self) -> None:
        T, S = self.position_perm.shape
        if self.token_map.shape[0] != T:
            raise ValueError(f"{T} position permutations but {self.token_map.shape[0]} token maps")
        for name, perm in (("position_perm", self.position_perm), ("token_map", self.token_map)):
            expected = torch.arange(perm.shape[1], device=perm.device).expand_as(perm)
            if not torch.equal(perm.sort(dim=1).values, expected):
                raise ValueError(f"{name}: every row must be a permutation")

    @property
    def size(self) -> int:
        return self.position_perm.shape[0]

    def to(self, device: torch.device | str) -> TransformSet:
        return TransformSet(self.position_perm.to(device), self.token_map.to(device))

    def inverse(self) -> TransformSet:
        return TransformSet(self.position_perm.argsort(dim=1), self.token_map.argsort(dim=1))

    def apply(self, grids: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Transform each row of `grids` [R, S] by transform `index[r]`; -100 (ignored) stays -100."""
        moved = grids.gather(1, self.position_perm[index])
        ignored = moved < 0
        mapped = self.token_map[index].gather(1, moved.clamp_min(0).long()).to(grids.dtype)
        return torch.where(ignored, moved, mapped)


def identity(seq_len: int, vocab_size: int, count: int = 1) -> TransformSet:
    return TransformSet(
        torch.arange(seq_len).repeat(count, 1),
        torch.arange(vocab_size).repeat(count, 1),
    )


def dihedral_transforms(side: int, vocab_size: int, count: int) -> TransformSet:
    """The first `count` of the 8 symmetries of a side x side grid (identity first)."""
    if not 1 <= count <= 8:
        raise ConfigError(f"tta: a square grid has 8 symmetries, asked for {count}")
    grid = torch.arange(side * side).view(side, side)
    perms = []
    for flip in (False, True):
        base = grid.T if flip else grid
        perms.extend(torch.rot90(base, k, dims=(0, 1)).reshape(-1) for k in range(4))
    return TransformSet(torch.stack(perms[:count]), torch.arange(vocab_size).repeat(count, 1))


def _grouped_perm(generator: torch.Generator) -> torch.Tensor:
    """A permutation of 0..8 that permutes the 3 groups of 3 and the members within each."""
    groups = torch.randperm(3, generator=generator)
    return torch.cat([g * 3 + torch.randperm(3, generator=generator) for g in groups])


def sudoku_transforms(count: int, seed: int = 0) -> TransformSet:
    """Identity plus `count - 1` random Sudoku symmetries drawn from `seed` (the same for every puzzle)."""
    if count < 1:
        raise ValueError(f"tta: need at least 1 transform, got {count}")
    generator = torch.Generator().manual_seed(seed)
    grid = torch.arange(SUDOKU_SEQ_LEN).view(9, 9)
    perms, maps = [grid.reshape(-1)], [torch.arange(SUDOKU_VOCAB)]
    for _ in range(count - 1):
        rows, cols = _grouped_perm(generator), _grouped_perm(generator)
        moved = grid[rows][:, cols]
        if torch.rand((), generator=generator) < 0.5:
            moved = moved.T
        perms.append(moved.reshape(-1))
        maps.append(torch.cat([torch.arange(2), 2 + torch.randperm(9, generator=generator)]))
    return TransformSet(torch.stack(perms), torch.stack(maps))


def square_side(seq_len: int) -> int:
    side = math.isqrt(seq_len)
    if side * side != seq_len:
        raise ConfigError(f"tta: dihedral symmetries need a square grid, seq_len {seq_len} is not a square")
    return side


def family_transforms(family: str, count: int, seq_len: int, vocab_size: int, seed: int = 0) -> TransformSet:
    """`count` transforms of a family (identity first) for a dataset of this shape."""
    if count == 1:
        return identity(seq_len, vocab_size)
    if family == "sudoku":
        if (seq_len, vocab_size) != (SUDOKU_SEQ_LEN, SUDOKU_VOCAB):
            raise ConfigError(f"tta: sudoku symmetries need seq_len 81 and vocab 11, got {seq_len} and {vocab_size}")
        return sudoku_transforms(count, seed)
    if family == "dihedral":
        return dihedral_transforms(square_side(seq_len), vocab_size, count)
    raise ConfigError(f"tta: unknown symmetry family {family!r}; known: {', '.join(FAMILIES)}")


FAMILIES = ("sudoku", "dihedral")
