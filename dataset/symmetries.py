"""Validity-preserving puzzle transforms as an invertible `TransformSet` (test-time augmentation).

Each transform is a position permutation plus a token permutation, so a puzzle and its
solution transform alike and a prediction made in the transformed frame maps back to the
original frame exactly. Transform 0 is always the identity. The transforms are a task's
`Symmetry` (dataset/tasks.py: `sudoku`, `dihedral`), drawn by the same action functions its
builder augments training data with (dataset/sudoku/, dataset/maze/); here they become
torch gathers and their inverses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

Maps = tuple[np.ndarray, np.ndarray]  # cells [T, S], token maps [T, V]: transformed[i] = token_map[x[cells[i]]]


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

    @classmethod
    def from_maps(cls, maps: Maps) -> TransformSet:
        """The set a `Symmetry` drew (numpy cells and token maps, int64 on the CPU)."""
        cells, tokens = (torch.from_numpy(np.asarray(m, dtype=np.int64)) for m in maps)
        return cls(cells, tokens)

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
