"""What an evaluation pass has finished, as a plain structure that can be saved and continued from.

A pass counts its batches in order (evaluation/engine.py). Its state after batch k - 1 was counted
is `counted` = k, the tallies of batches 0 .. k - 1, and the results of the trajectories of later
batches that had already finished (their snapshots, residuals and segments; not their data, which
the batch gives back). Every trajectory draws from its own random stream, so the trajectories
still in flight run again from their start and end exactly as they would have: a pass continued
from its state ends with the same numbers, bit for bit, as one that never stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

TRAJECTORY_RESULT = ("snapshots", "slot_segments", "residuals", "reference_residuals")
Path = tuple[Any, ...]  # the keys leading to one value of a trajectory's result


@dataclass
class PassState:
    counted: int = 0  # batches 0 .. counted - 1 are in `tallies`
    tallies: dict[str, Any] = field(default_factory=dict)
    # (batch, row, copy) -> the finished trajectory's TRAJECTORY_RESULT fields
    finished: dict[tuple[int, int, int], dict[str, Any]] = field(default_factory=dict)
    elapsed_s: float = 0.0  # wall time the pass had run so far, over all its attempts

    def to_dict(self) -> dict[str, Any]:
        """Containers, numbers, strings and tensors only (loadable with `torch.load(weights_only=True)`); the
        finished trajectories column by column, so a state of 100k trajectories is a few large tensors, not
        a million small ones (its cost: benchmarks/README.md, "Saving a stopped evaluation")."""
        results = [{k: result[k] for k in TRAJECTORY_RESULT} for result in self.finished.values()]
        return {"counted": self.counted, "tallies": self.tallies, "elapsed_s": self.elapsed_s,
                "keys": torch.tensor(list(self.finished), dtype=torch.int64).reshape(-1, 3),
                "columns": [_column(path, [_at(r, path) for r in results]) for path in _paths(results[0])]
                if results else []}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> PassState:
        keys = [tuple(key) for key in state["keys"].tolist()]
        results: list[dict[str, Any]] = [{} for _ in keys]
        for column in state["columns"]:
            for result, value in zip(results, _values(column), strict=True):
                _put(result, column["path"], value)
        return cls(int(state["counted"]), state["tallies"], dict(zip(keys, results, strict=True)),
                   float(state["elapsed_s"]))


def _paths(result: dict[Any, Any], prefix: Path = ()) -> Iterator[Path]:
    for key, value in result.items():
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, key))
        else:
            yield (*prefix, key)


def _at(result: dict[Any, Any], path: Path) -> Any:
    for key in path:
        result = result[key]
    return result


def _put(result: dict[Any, Any], path: Path, value: Any) -> None:
    for key in path[:-1]:
        result = result.setdefault(key, {})
    result[path[-1]] = value


def _column(path: Path, values: list[Any]) -> dict[str, Any]:
    """One value of every trajectory: tensors of one shape and dtype stacked (integers narrowed, with their
    dtype), float lists (the residual traces, of any lengths) concatenated in float64 with their lengths,
    anything else as a list."""
    first = values[0]
    if isinstance(first, torch.Tensor) and all(
            isinstance(v, torch.Tensor) and v.shape == first.shape and v.dtype == first.dtype for v in values):
        stacked = torch.stack(values)
        return {"path": list(path), "stacked": _narrowed(stacked), "dtype": str(stacked.dtype).removeprefix("torch.")}
    if isinstance(first, list) and all(isinstance(v, list) and all(isinstance(x, float) for x in v) for v in values):
        return {"path": list(path), "ragged": torch.tensor([x for v in values for x in v], dtype=torch.float64),
                "lengths": torch.tensor([len(v) for v in values], dtype=torch.int64)}
    return {"path": list(path), "values": values}


def _values(column: dict[str, Any]) -> list[Any]:
    if "stacked" in column:
        return list(column["stacked"].to(getattr(torch, column["dtype"])).unbind(0))
    if "ragged" in column:
        return [part.tolist() for part in column["ragged"].split(column["lengths"].tolist())]
    return list(column["values"])


def _narrowed(values: torch.Tensor) -> torch.Tensor:
    """Integers in the smallest integer type that holds them all (predictions are tokens: a byte each, not 8)."""
    if values.dtype not in (torch.int64, torch.int32) or values.numel() == 0:
        return values
    low, high = int(values.min()), int(values.max())
    for dtype in (torch.int8, torch.int16, torch.int32):
        info = torch.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return values.to(dtype)
    return values
