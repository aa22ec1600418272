"""The memorisation check: evaluate with the puzzle identifiers taken away from the model.

Models with a puzzle embedding (HRM, TRM and EqR on ARC) learn one vector per task version, trained on
that task's demonstrations; `puzzle_id_ablation` asks how much of a score rests on those vectors.
`blank`: every puzzle is shown the blank identifier (row 0, never trained: zeros). `shuffled`: every
task is shown another task's identifiers (a random cyclic shift of the tasks, version k of a task
seeing version k modulo the other's count), so the vectors are trained ones but belong elsewhere. Only
what the model looks up changes: the data, the labels and the task evaluator's view of each row (which
task it answers, how to undo its augmentation) stay the true ones.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from dataset.arc.grid import task_of_name
from dataset.format import load_split
from utils.validation import ConfigError

ABLATIONS = ("none", "blank", "shuffled")


def _task_versions(data_dir: Path, split: str) -> dict[str, list[int]]:
    """task name -> the identifiers of its versions in `split`, ascending (blank rows left out)."""
    metadata, sets = load_split(data_dir / split)
    names_file = data_dir / "identifiers.json"
    names = json.loads(names_file.read_text()) if names_file.is_file() else None
    used = np.unique(np.concatenate([np.asarray(s.puzzle_identifiers) for s in sets]))
    used = used[used != metadata.blank_identifier_id]
    if names is None or used.size == 0:
        raise ConfigError(f"puzzle_id_ablation: {data_dir / split} has no named puzzle identifiers to take away")
    if int(used.max()) >= len(names):
        raise ConfigError(f"puzzle_id_ablation: {names_file} names {len(names)} identifiers, the data uses "
                          f"{int(used.max()) + 1}")
    tasks: dict[str, list[int]] = defaultdict(list)
    for identifier in used.tolist():
        tasks[task_of_name(names[identifier])].append(identifier)
    return dict(sorted(tasks.items()))


def ablation_table(kind: str, data_dir: Path | str, split: str, num_identifiers: int, seed: int = 0,
                   blank_id: int = 0) -> torch.Tensor | None:
    """The identifier each identifier is shown as (int64 [num_identifiers]); None for `none`."""
    if kind not in ABLATIONS:
        raise ConfigError(f"puzzle_id_ablation: {kind!r} is not one of {', '.join(ABLATIONS)}")
    if kind == "none":
        return None
    table = torch.arange(num_identifiers, dtype=torch.int64)
    tasks = _task_versions(Path(data_dir), split)
    ids = [i for versions in tasks.values() for i in versions]
    if max(ids) >= num_identifiers:
        raise ConfigError(f"puzzle_id_ablation: the data uses identifier {max(ids)}, the model's table has "
                          f"{num_identifiers} rows")
    if kind == "blank":
        table[ids] = blank_id
        return table
    if len(tasks) < 2:
        raise ConfigError("puzzle_id_ablation: shuffled needs at least two tasks in the split, it has one")
    order = [list(tasks.values())[i] for i in np.random.default_rng(seed).permutation(len(tasks))]
    for k, versions in enumerate(order):
        other = order[(k + 1) % len(order)]
        table[versions] = torch.tensor([other[v % len(other)] for v in range(len(versions))])
    return table
