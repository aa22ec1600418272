"""One point of the accuracy-compute frontier: what the table, the JSON and the plots show."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FrontierPoint:
    label: str
    kind: str  # "fixed" or "elastic"
    depth: int  # D, or D_max of an elastic pass
    exact_accuracy: float  # the headline: convergence top-1 when B > 1 with convergence_top_k, else per trajectory
    accuracy: float
    segments_per_puzzle: float
    wall_s: float
    exit_rate: float | None = None
    puzzle_segments: list[int] = field(default_factory=list)  # per puzzle, for the histograms
