"""Metric accumulation that reduces exactly across ranks: sums of counts, never averages of averages.

Every metric is kept as a numerator and a denominator (or a plain total, or a maximum) in
float64; `reduce` sums them over torch.distributed ranks with one all_reduce (and one for the
maxima) and only then divides. Ranks may have seen different keys (a rank without data has
none), so the key set is agreed first.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from utils.distributed import gather_objects

Number = torch.Tensor | float | int


class MetricSums:
    """Named numerators/denominators, totals and maxima; `reduce` returns the final values."""

    def __init__(self) -> None:
        self._sum: dict[str, Number] = {}
        self._max: dict[str, Number] = {}

    def _add(self, key: str, value: Number) -> None:
        self._sum[key] = self._sum.get(key, 0) + value

    def state_dict(self) -> dict[str, dict[str, Number]]:
        return {"sum": dict(self._sum), "max": dict(self._max)}

    def load_state_dict(self, state: dict[str, dict[str, Number]]) -> None:
        self._sum, self._max = dict(state["sum"]), dict(state["max"])

    def ratio(self, key: str, numerator: Number, denominator: Number) -> None:
        """`key` = sum of numerators / sum of denominators (0 when nothing was counted)."""
        self._add(f"num:{key}", numerator)
        self._add(f"den:{key}", denominator)

    def total(self, key: str, value: Number) -> None:
        self._add(f"sum:{key}", value)

    def maximum(self, key: str, value: Number) -> None:
        old = self._max.get(key)
        self._max[key] = value if old is None else max(float(old), float(value))

    @staticmethod
    def _stack(values: dict[str, Number], keys: list[str], device: torch.device) -> torch.Tensor:
        if not keys:
            return torch.zeros(0, dtype=torch.float64, device=device)
        return torch.stack([torch.as_tensor(values.get(k, 0), dtype=torch.float64, device=device).reshape(())
                            for k in keys])

    @staticmethod
    def _keys(local: list[str]) -> list[str]:
        return sorted({k for keys in gather_objects(sorted(local)) for k in keys})

    def reduce(self, device: torch.device | str = "cpu") -> dict[str, float]:
        """Sum over ranks (when distributed) and turn numerators/denominators into values."""
        device = torch.device(device)
        sum_keys, max_keys = self._keys(list(self._sum)), self._keys(list(self._max))
        sums = self._stack(self._sum, sum_keys, device)
        maxes = self._stack(self._max, max_keys, device)
        if dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(sums, op=dist.ReduceOp.SUM)
            if maxes.numel():
                dist.all_reduce(maxes, op=dist.ReduceOp.MAX)
        reduced = dict(zip(sum_keys, sums.tolist(), strict=True))
        out: dict[str, float] = {}
        for key, value in reduced.items():
            kind, name = key.split(":", 1)
            if kind == "sum":
                out[name] = value
            elif kind == "num":
                den = reduced[f"den:{name}"]
                out[name] = value / den if den else 0.0
        out.update(zip(max_keys, maxes.tolist(), strict=True))
        return out


TRAJECTORY_COLUMNS = ("rank", "puzzle", "restart", "exact", "accuracy", "final_residual", "convergence_score",
                      "steps", "stop")
TEXT_COLUMNS = ("stop",)  # why a trajectory stopped: "depth" or the elastic rules; every other column is a number


class TrajectoryRecords:
    """One row per trajectory and depth, for questions the averages cannot answer (are the correct
    answers the converged ones?). `puzzle` is the puzzle's index in the evaluated split, `restart` the
    trajectory of that puzzle (transform-major with TTA); `convergence_score` is NaN when none was
    tracked. Rows come sorted by (puzzle, restart)."""

    def __init__(self, depths: list[int]) -> None:
        self._parts: dict[int, list[dict[str, torch.Tensor]]] = {d: [] for d in depths}

    def state_dict(self) -> dict[int, list[dict[str, list]]]:
        return {depth: list(parts) for depth, parts in self._parts.items()}

    def load_state_dict(self, state: dict[int, list[dict[str, list]]]) -> None:
        self._parts = {depth: list(parts) for depth, parts in state.items()}

    def add(self, depth: int, **columns: torch.Tensor | list[str]) -> None:
        part = {k: v if isinstance(v, list) else (v.long() if v.dtype == torch.bool else v).detach().cpu().tolist()
                for k, v in columns.items()}
        self._parts[depth].append(part)

    def gather(self) -> dict[int, dict[str, list]]:
        """Every rank's rows (rank order), as plain lists keyed by `TRAJECTORY_COLUMNS`."""
        local = {depth: {k: [v for p in parts for v in p[k]] for k in TRAJECTORY_COLUMNS[1:]}
                 for depth, parts in self._parts.items()}
        merged = {depth: {k: [] for k in TRAJECTORY_COLUMNS} for depth in self._parts}
        for rank, part in enumerate(gather_objects(local)):
            for depth, columns in part.items():
                merged[depth]["rank"].extend([rank] * len(columns["exact"]))
                for key, values in columns.items():
                    merged[depth][key].extend(values)
        for depth, columns in merged.items():
            order = sorted(range(len(columns["puzzle"])), key=lambda i, c=columns: (c["puzzle"][i], c["restart"][i]))
            merged[depth] = {k: [v[i] for i in order] for k, v in columns.items()}
        return merged


class ResidualSums:
    """Sums of `residual_of_{i}_steps` by segment i: clean over real trajectories, the reference's
    over every row (padding included) divided by the real ones."""

    def __init__(self, depth: int) -> None:
        self.clean = torch.zeros(depth + 1, dtype=torch.float64)
        self.reference = torch.zeros(depth + 1, dtype=torch.float64)
        self.real = torch.zeros(depth + 1, dtype=torch.float64)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"clean": self.clean.clone(), "reference": self.reference.clone(), "real": self.real.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.clean, self.reference, self.real = (state[k].clone() for k in ("clean", "reference", "real"))

    def add(self, residuals: list[float], reference: list[float], padding: bool) -> None:
        """One trajectory's residual at each segment it ran (segment i at index i - 1); `reference` empty:
        the reference's residuals are `residuals` (only its counting measures them apart)."""
        ran = slice(1, len(residuals) + 1)
        clean = torch.tensor(residuals, dtype=torch.float64)
        if not padding:
            self.clean[ran] += clean
            self.real[ran] += 1
        self.reference[ran] += torch.tensor(reference, dtype=torch.float64) if reference else clean

    def into(self, sums: dict[str, MetricSums]) -> None:
        for i in range(1, len(self.real)):
            key = f"residual_of_{i}_steps"
            if "clean" in sums and self.real[i] > 0:
                sums["clean"].ratio(key, self.clean[i], self.real[i])
            if "reference" in sums and (self.real[i] > 0 or self.reference[i] > 0):
                sums["reference"].ratio(key, self.reference[i], self.real[i])
