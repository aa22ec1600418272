"""Model outputs kept per depth for `save_outputs` (the reference's `all_preds`), gathered across ranks.

One file per (D, B) point, `<record stem>_outputs.pt`, loadable with `torch.load(weights_only=True)`:
a dict with the requested fields for every real trajectory, in dataset order (puzzle-major, the
B x tta copies of a puzzle together), plus `puzzle` (the puzzle's index in the evaluated split)
and `restart` (the copy's index within its puzzle, transform-major with TTA). Everything is in the frame the model saw:
with `tta` > 1, `inputs`, `labels` and `logits` of a copy are those of its transformed puzzle,
and `preds` is always the argmax of `logits`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from utils.atomic import atomic_file
from utils.distributed import gather_objects


def row_fields(traj: Any, depth: int, fields: Sequence[str]) -> dict[str, torch.Tensor]:
    """One finished trajectory's `fields` at `depth`, on the CPU (OUTPUT_FIELDS of evaluation/plan.py)."""
    snap = traj.snapshots[depth]
    source = {
        "preds": lambda: snap["preds"].to(torch.int32),
        "logits": lambda: snap["logits"],
        "inputs": lambda: traj.data["inputs"][0],
        "labels": lambda: traj.data["labels"][0],
        "puzzle_identifiers": lambda: traj.data["puzzle_identifiers"][0],
        "q_halt_logits": lambda: snap["q_halt"],
    }
    return {f: torch.as_tensor(source[f]()).detach().cpu() for f in fields}


class OutputRecorder:
    """Collects the requested fields of the real rows at each recorded depth."""

    def __init__(self, fields: Sequence[str], depths: Sequence[int]) -> None:
        self.fields = list(dict.fromkeys(fields))
        self._parts: dict[int, list[tuple[int, int, dict[str, torch.Tensor]]]] = {d: [] for d in depths}

    def state_dict(self) -> dict[int, list[tuple[int, int, dict[str, torch.Tensor]]]]:
        return {depth: list(parts) for depth, parts in self._parts.items()}

    def load_state_dict(self, state: dict[int, list[tuple[int, int, dict[str, torch.Tensor]]]]) -> None:
        self._parts = {depth: [tuple(entry) for entry in parts] for depth, parts in state.items()}

    def add(self, depth: int, trajectories: Sequence[Any]) -> None:
        """The finished `trajectories` (evaluation/trajectories.py) at `depth`."""
        for traj in trajectories:
            self._parts[depth].append((traj.puzzle, traj.copy, row_fields(traj, depth, self.fields)))

    def gather(self) -> dict[int, dict[str, torch.Tensor]]:
        """Every rank's rows in dataset order: by puzzle, then by copy."""
        ranked = gather_objects(self._parts)
        out = {}
        for depth in self._parts:
            rows = sorted((entry for parts in ranked for entry in parts[depth]), key=lambda e: (e[0], e[1]))
            fields = {f: torch.stack([row[f] for *_, row in rows]) if rows else torch.empty(0) for f in self.fields}
            out[depth] = {**fields, "puzzle": torch.tensor([p for p, _, _ in rows], dtype=torch.int64),
                          "restart": torch.tensor([c for _, c, _ in rows], dtype=torch.int64)}
        return out


def write_outputs(outputs: dict[str, torch.Tensor], path: Path) -> Path:
    """Save through a temporary file and a rename, so an interrupted run leaves no half-written file."""
    with atomic_file(path) as handle:
        torch.save(outputs, handle)
    return path
