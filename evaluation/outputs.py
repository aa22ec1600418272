"""Model outputs kept per depth for `save_outputs` (the reference's `all_preds`), gathered across ranks.

One file per (D, B) point, `<record stem>_outputs.pt`, loadable with `torch.load(weights_only=True)`:
a dict with the requested fields for every real trajectory, in dataset order (puzzle-major, the
B x tta copies of a puzzle together), plus `puzzle` (the puzzle's index in the evaluated split)
and `restart` (the copy's index within its puzzle). Everything is in the frame the model saw:
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

OUTPUT_FIELDS = ("preds", "logits", "inputs", "labels", "puzzle_identifiers", "q_halt_logits")


class OutputRecorder:
    """Collects the requested fields of the real rows at each recorded depth."""

    def __init__(self, fields: Sequence[str], depths: Sequence[int]) -> None:
        unknown = sorted(set(fields) - set(OUTPUT_FIELDS))
        if unknown:
            raise ValueError(f"save_outputs: unknown {unknown}; known: {list(OUTPUT_FIELDS)}")
        self.fields = list(dict.fromkeys(fields))
        self._parts: dict[int, list[tuple[int, dict[str, torch.Tensor]]]] = {d: [] for d in depths}

    def add(self, depth: int, batch_index: int, run: Any, data: dict[str, torch.Tensor], rows: int) -> None:
        """`run`: the batch's `_BatchRun` at `depth`; `data`: the rows it ran; the first `rows` are real."""
        logits = run.logits[:rows]
        source = {
            "preds": lambda: logits.argmax(-1).to(torch.int32),
            "logits": lambda: logits.float(),
            "inputs": lambda: data["inputs"][:rows],
            "labels": lambda: data["labels"][:rows],
            "puzzle_identifiers": lambda: data["puzzle_identifiers"][:rows],
            "q_halt_logits": lambda: run.q_halt[:rows].float(),
        }
        self._parts[depth].append((batch_index, {f: source[f]().detach().cpu() for f in self.fields}))

    def gather(self, copies: int) -> dict[int, dict[str, torch.Tensor]]:
        """Every rank's rows in dataset order: batch by batch, and rank by rank within a batch."""
        ranked = gather_objects(self._parts)
        out = {}
        for depth in self._parts:
            chunks = sorted(((b, r, part) for r, parts in enumerate(ranked) for b, part in parts[depth]),
                            key=lambda item: (item[0], item[1]))
            fields = {f: torch.cat([part[f] for _, _, part in chunks]) if chunks else torch.empty(0)
                      for f in self.fields}
            index = torch.arange(sum(part[self.fields[0]].shape[0] for _, _, part in chunks))
            out[depth] = {**fields, "puzzle": index // copies, "restart": index % copies}
        return out


def write_outputs(outputs: dict[str, torch.Tensor], path: Path) -> Path:
    """Save through a temporary file and a rename, so an interrupted run leaves no half-written file."""
    with atomic_file(path) as handle:
        torch.save(outputs, handle)
    return path
