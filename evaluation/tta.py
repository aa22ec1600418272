"""Augmentation breadth: which validity-preserving transforms `tta=N` evaluates on a dataset.

`tta_kind=auto` takes the `Symmetry` the dataset's task declares (dataset/tasks.py); an explicit
name (`sudoku`, `dihedral`, or one a plug-in registered with `register_symmetry`) names one of
`SYMMETRIES`. The transforms, and their exact inverses, are
dataset/symmetries.py's `TransformSet`.
"""

from __future__ import annotations

from dataset.symmetries import TransformSet, identity
from dataset.tasks import SYMMETRIES, Task
from evaluation.plan import TTAKind  # "auto" or the name of a registered symmetry
from utils.validation import ConfigError


def build_transforms(count: int, kind: TTAKind, task: Task, seq_len: int, vocab_size: int,
                     seed: int = 0) -> TransformSet:
    """The transform set `tta=count` asks for on a dataset of this task and shape (identity first)."""
    if count == 1:
        return identity(seq_len, vocab_size)
    symmetry = task.symmetry if kind == "auto" else SYMMETRIES.get(kind)
    if symmetry is None:
        known = ", ".join(SYMMETRIES)
        note = f" ({task.tta_note})" if task.tta_note else ""
        raise ConfigError(f"tta: the {task.name} task declares no symmetries{note}; set tta_kind to one of {known} "
                          "or tta=1" if kind == "auto" else f"tta: unknown symmetry {kind!r}; known: {known}")
    return TransformSet.from_maps(symmetry.maps(count, seq_len, vocab_size, seed))
