"""How one batch's trajectories at one depth become metric counts: clean, or as the reference counts.

Clean (the default) counts real puzzles only. Reference counting reproduces what the reference's
evaluation reports (SPEC 5.1, docs/reference_differences.md): the padding rows of the last batch
count as solved puzzles in every breadth metric, the convergence score is taken in the forward
dtype and sorted without stability, q_halt counts as "halt" above 0 (not at 0), and q_halt
precision and recall are per-batch ratios weighted by the batch's count. Residuals are counted by
the engine (evaluation/engine.py), which sees every segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from dataset.format import IGNORE_LABEL_ID
from evaluation.accumulator import MetricSums
from evaluation.breadth_metrics import breadth_metrics

Counting = Literal["clean", "reference", "both"]
REFERENCE_PREFIX = "ref/"


@dataclass
class DepthView:
    """One batch at one depth. Rows are puzzle-major (row r belongs to puzzle r // copies); the first
    `valid_puzzles` puzzles are real, any after them pad the last batch (their labels are all ignored)."""

    preds: torch.Tensor  # [P * copies, S] in the original frame (TTA inverted)
    labels: torch.Tensor  # [P, S]
    copies: int
    valid_puzzles: int
    q_halt: torch.Tensor  # [P * copies] float
    steps: torch.Tensor  # [P * copies] segments run up to this depth
    final_residual: torch.Tensor  # [P * copies]
    exited: torch.Tensor | None  # [P * copies] bool, elastic exit by this depth; None without elastic
    scores: dict[str, torch.Tensor]  # "clean" / "reference" -> [P * copies] convergence scores, when tracked

    @property
    def valid_rows(self) -> int:
        return self.valid_puzzles * self.copies


def row_correctness(view: DepthView) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scored, exact, token accuracy) per real row; a row with no scored token counts nowhere."""
    labels = view.labels[: view.valid_puzzles].repeat_interleave(view.copies, dim=0)
    mask = labels != IGNORE_LABEL_ID
    counts = mask.sum(-1)
    token_correct = (view.preds[: view.valid_rows] == labels) & mask
    exact = token_correct.sum(-1) == counts
    return counts > 0, exact, token_correct.sum(-1).double() / counts.clamp_min(1)


def count_depth(sums: MetricSums, view: DepthView, top_k: int | None, reference: bool) -> None:
    """Add one batch's contribution at one depth (numerators and denominators, reduced later)."""
    rows = view.valid_rows
    valid, exact, token_accuracy = row_correctness(view)
    count = valid.sum()
    sums.ratio("exact_accuracy", (valid & exact).sum(), count)
    sums.ratio("accuracy", torch.where(valid, token_accuracy, 0).sum(), count)
    sums.ratio("steps", torch.where(valid, view.steps[:rows], 0).sum(), count)
    sums.ratio("final_residual", torch.where(valid, view.final_residual[:rows].double(), 0).sum(), count)
    sums.total("count", count)
    sums.total("num_puzzles", view.valid_puzzles)

    q_halt = view.q_halt[:rows]
    halt = q_halt > 0 if reference else q_halt >= 0
    sums.ratio("q_halt_accuracy", (valid & (halt == exact)).sum(), count)
    true_positive = (valid & halt & exact).sum()
    predicted, actual = (valid & halt).sum(), (valid & exact).sum()
    if reference:  # this batch's ratio, weighted by its count
        sums.ratio("q_halt_precision", true_positive / predicted.clamp_min(1) * count, count)
        sums.ratio("q_halt_recall", true_positive / actual.clamp_min(1) * count, count)
    else:
        sums.ratio("q_halt_precision", true_positive, predicted)
        sums.ratio("q_halt_recall", true_positive, actual)
    if view.exited is not None:
        sums.ratio("elastic/exit_rate", (valid & view.exited[:rows]).sum(), count)
        sums.maximum("elastic/max_segments", torch.where(valid, view.steps[:rows], 0).max())
    puzzles = view.labels.shape[0] if reference else view.valid_puzzles
    if view.copies == 1 or puzzles == 0:
        return
    labels = view.labels[:puzzles]
    scores = view.scores.get("reference" if reference else "clean")
    scores = scores[: puzzles * view.copies] if scores is not None else None
    metrics = breadth_metrics(view.preds[: puzzles * view.copies], labels, view.copies, scores=scores,
                              top_k=top_k if scores is not None else None, stable=not reference)
    tokens = int((labels != IGNORE_LABEL_ID).sum())
    for key, value in metrics.items():
        if key.endswith(("/total_samples", "/num_samples")):
            sums.total(key, value)
        elif key in ("different_init/n", "convergence_top_k/k"):
            sums.maximum(key, value)
        else:
            weight = tokens if key == "majority_vote/accuracy" else puzzles
            sums.ratio(key, value * weight, weight)


def trajectory_columns(view: DepthView, batch_index: int) -> dict[str, torch.Tensor]:
    """One row per real, scored trajectory (`per_trajectory=true`), clean scores."""
    rows = view.valid_rows
    valid, exact, token_accuracy = row_correctness(view)
    index = torch.arange(rows, device=view.preds.device)
    scores = view.scores.get("clean")
    if scores is None:
        scores = torch.full((rows,), float("nan"), device=index.device)
    columns = {
        "batch": torch.full_like(index, batch_index), "puzzle": index // view.copies,
        "restart": index % view.copies, "exact": exact, "accuracy": token_accuracy,
        "final_residual": view.final_residual[:rows],
        "convergence_score": scores[:rows],
        "steps": view.steps[:rows],
    }
    return {k: v[valid] for k, v in columns.items()}


def merge_counted(clean: dict[str, float] | None, reference: dict[str, float] | None) -> dict[str, float]:
    """One metric dict: clean keys as they are, reference-counted ones under `ref/` when both exist."""
    if clean is None:
        return dict(reference or {})
    if reference is None:
        return dict(clean)
    return {**clean, **{REFERENCE_PREFIX + k: v for k, v in reference.items()}}
