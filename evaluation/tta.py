"""Augmentation breadth: which validity-preserving transforms `tta=N` evaluates on a dataset.

`tta_kind=auto` takes the symmetry family the dataset's task declares (dataset/tasks.py); an
explicit `sudoku` or `dihedral` names the family. The transforms themselves, and their exact
inverses, are dataset/symmetries.py's.
"""

from __future__ import annotations

from typing import Literal

from dataset.symmetries import FAMILIES, TransformSet, family_transforms, identity
from dataset.tasks import Task
from utils.validation import ConfigError

TTAKind = Literal["auto", "sudoku", "dihedral"]


def build_transforms(count: int, kind: TTAKind, task: Task, seq_len: int, vocab_size: int,
                     seed: int = 0) -> TransformSet:
    """The transform set `tta=count` asks for on a dataset of this task and shape (identity first)."""
    if count == 1:
        return identity(seq_len, vocab_size)
    family = task.symmetry if kind == "auto" else kind
    if family is None:
        raise ConfigError(f"tta: the {task.name} task declares no symmetries; set tta_kind to one of "
                          f"{', '.join(FAMILIES)} or tta=1")
    return family_transforms(family, count, seq_len, vocab_size, seed)
