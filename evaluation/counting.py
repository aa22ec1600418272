"""How one batch's trajectories at one depth become metric counts: clean, or as the reference counts.

Clean (the default) counts real puzzles only. Reference counting reproduces what the reference's
evaluation reports (SPEC 5.1, docs/reference_differences.md): the padding rows of the last batch
count as solved puzzles in every breadth metric, the convergence score is taken in the forward
dtype and sorted without stability, q_halt counts as "halt" above 0 (not at 0), and q_halt
precision and recall are per-batch ratios over all of a batch's rows, padding included, weighted
by the batch's count. Residuals are counted by
the engine (evaluation/engine.py), which sees every segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluation.accumulator import MetricSums
from evaluation.adaptive_breadth import PREFIX, adaptive_metrics
from evaluation.breadth_metrics import breadth_metrics
from utils.labels import IGNORE_LABEL_ID

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
    stops: list[str] | None  # [P * copies] why each stopped by this depth ("depth" or the rules); None without elastic
    scores: dict[str, torch.Tensor]  # "clean" / "reference" -> [P * copies] convergence scores, when tracked
    launched: torch.Tensor | None = None  # [P * copies] bool with adaptive breadth: the restart was started

    @property
    def exited(self) -> torch.Tensor | None:
        """[P * copies] bool: an elastic rule stopped the trajectory by this depth."""
        return None if self.stops is None else torch.tensor([s != "depth" for s in self.stops], dtype=torch.bool)

    @property
    def valid_rows(self) -> int:
        return self.valid_puzzles * self.copies


def row_correctness(view: DepthView) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scored, exact, token accuracy) per real row; a row with no scored token, or a restart that
    adaptive breadth skipped, counts nowhere."""
    labels = view.labels[: view.valid_puzzles].repeat_interleave(view.copies, dim=0)
    mask = labels != IGNORE_LABEL_ID
    counts = mask.sum(-1)
    token_correct = (view.preds[: view.valid_rows] == labels) & mask
    exact = token_correct.sum(-1) == counts
    scored = counts > 0
    if view.launched is not None:
        scored &= view.launched[: view.valid_rows]
    return scored, exact, token_correct.sum(-1).double() / counts.clamp_min(1)


def count_depth(sums: MetricSums, view: DepthView, top_k: int | None, reference: bool,
                agree: int | None = None) -> None:
    """Add one batch's contribution at one depth (numerators and denominators, reduced later).
    With adaptive breadth (`agree`, evaluation/adaptive_breadth.py) the started restarts of a puzzle
    vary in number, so its metrics replace those of a full breadth."""
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
    if reference:
        _count_reference_q_halt(sums, view, count)
    else:
        true_positive = (valid & halt & exact).sum()
        sums.ratio("q_halt_precision", true_positive, (valid & halt).sum())
        sums.ratio("q_halt_recall", true_positive, (valid & exact).sum())
    exited = view.exited
    if exited is not None:
        sums.ratio("elastic/exit_rate", (valid & exited[:rows]).sum(), count)
        sums.maximum("elastic/max_segments", torch.where(valid, view.steps[:rows], 0).max())
    puzzles = view.labels.shape[0] if reference else view.valid_puzzles
    if view.copies == 1 or puzzles == 0:
        return
    if agree is not None and view.launched is not None:
        _count_adaptive(sums, view, agree)
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


def _count_reference_q_halt(sums: MetricSums, view: DepthView, count: torch.Tensor) -> None:
    """SPEC 5.1: this batch's ratios over ALL its rows (a padding row has no scored label, so it is
    correct), `>= 0` in the precision's denominator, each weighted by the batch's valid count."""
    labels = view.labels.repeat_interleave(view.copies, dim=0)
    mask = labels != IGNORE_LABEL_ID
    correct = ((view.preds == labels) & mask).sum(-1) == mask.sum(-1)
    true_positive = ((view.q_halt > 0) & correct).sum()
    precision = true_positive / (view.q_halt >= 0).sum().clamp_min(1)
    recall = true_positive / correct.sum().clamp_min(1)
    sums.ratio("q_halt_precision", precision * count, count)
    sums.ratio("q_halt_recall", recall * count, count)


def _count_adaptive(sums: MetricSums, view: DepthView, agree: int) -> None:
    rows = view.valid_rows
    scores = view.scores.get("clean")
    scores = scores[:rows] if scores is not None else None
    found = adaptive_metrics(view.preds[:rows], view.labels[: view.valid_puzzles], view.copies,
                             view.launched[:rows], view.steps[:rows], agree, scores)
    for key in ("exact_accuracy", "agreed", "mean_restarts", "segments_per_puzzle"):
        sums.ratio(PREFIX + key, found[key], found["puzzles"])
    sums.maximum(PREFIX + "k", agree)


def trajectory_columns(view: DepthView, puzzles: torch.Tensor) -> dict[str, torch.Tensor | list[str]]:
    """One row per real, scored trajectory (`per_trajectory=true`), clean scores; `puzzles` holds the
    view's global puzzle indices; `stop` says why it stopped ("depth", or the elastic rules that held)."""
    rows = view.valid_rows
    valid, exact, token_accuracy = row_correctness(view)
    index = torch.arange(rows, device=view.preds.device)
    scores = view.scores.get("clean")
    if scores is None:
        scores = torch.full((rows,), float("nan"), device=index.device)
    columns = {
        "puzzle": puzzles.to(index.device)[index // view.copies], "restart": index % view.copies,
        "exact": exact, "accuracy": token_accuracy,
        "final_residual": view.final_residual[:rows],
        "convergence_score": scores[:rows],
        "steps": view.steps[:rows],
    }
    out: dict[str, torch.Tensor | list[str]] = {k: v[valid] for k, v in columns.items()}
    stops = view.stops[:rows] if view.stops is not None else ["depth"] * rows
    out["stop"] = [reason for reason, keep in zip(stops, valid.tolist(), strict=True) if keep]
    return out


def merge_counted(clean: dict[str, float] | None, reference: dict[str, float] | None) -> dict[str, float]:
    """One metric dict: clean keys as they are, reference-counted ones under `ref/` when both exist."""
    if clean is None:
        return dict(reference or {})
    if reference is None:
        return dict(clean)
    return {**clean, **{REFERENCE_PREFIX + k: v for k, v in reference.items()}}
