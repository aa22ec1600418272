"""What an evaluation pass has finished, as a plain structure that can be saved and continued from.

A pass counts its batches in order (evaluation/engine.py). Its state after batch k - 1 was counted
is `counted` = k, the tallies of batches 0 .. k - 1, and the results of the trajectories of later
batches that had already finished (their snapshots, residuals and segments; not their data, which
the batch gives back). Every trajectory draws from its own random stream, so the trajectories
still in flight run again from their start and end exactly as they would have: a pass continued
from its state ends with the same numbers, bit for bit, as one that never stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TRAJECTORY_RESULT = ("snapshots", "slot_segments", "residuals", "reference_residuals")


@dataclass
class PassState:
    counted: int = 0  # batches 0 .. counted - 1 are in `tallies`
    tallies: dict[str, Any] = field(default_factory=dict)
    # (batch, row, copy) -> the finished trajectory's TRAJECTORY_RESULT fields
    finished: dict[tuple[int, int, int], dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Containers, numbers, strings and tensors only (loadable with `torch.load(weights_only=True)`)."""
        return {"counted": self.counted, "tallies": self.tallies,
                "finished": [{"key": list(key), **result} for key, result in self.finished.items()]}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> PassState:
        finished = {tuple(entry["key"]): {k: entry[k] for k in TRAJECTORY_RESULT} for entry in state["finished"]}
        return cls(int(state["counted"]), state["tallies"], finished)
