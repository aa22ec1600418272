"""Breadth metrics: scoring and selecting among B independent trajectories per puzzle.

At test time every puzzle is repeated B times (``repeat_interleave``), so trajectory ``r`` belongs
to puzzle ``r // B``. These functions turn the B final predictions per puzzle into the
``different_init/*``, ``majority_vote/*`` and ``convergence_top_k/*`` metrics (see ``docs/metrics.md``).
Everything is vectorised over puzzles and trajectories and runs on whatever device the inputs live on.
"""

from __future__ import annotations

import torch

from utils.labels import IGNORE_LABEL_ID

__all__ = [
    "breadth_metrics",
    "convergence_scores",
    "exact_correct",
    "pass_at_k",
]


def convergence_scores(logit_trajectory: torch.Tensor, window: int) -> torch.Tensor:
    """Score each trajectory by how much its logits still move; low score = converged.

    ``logit_trajectory`` is [T, R, S, V] (segments, trajectories, tokens, vocab). The score is the mean
    over the last ``window`` segment-to-segment differences (all T-1 of them when ``window >= T - 1``)
    of the per-token L2 norm over vocab, averaged over tokens. Returns [R] in float32.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if logit_trajectory.dim() != 4:
        raise ValueError(f"logit_trajectory must be [T, R, S, V], got shape {tuple(logit_trajectory.shape)}")
    if logit_trajectory.shape[0] < 2:
        raise ValueError("logit_trajectory needs at least 2 segments to form a difference")
    tail = logit_trajectory[-(window + 1) :].float()
    return torch.linalg.vector_norm(tail[1:] - tail[:-1], dim=-1).mean(dim=-1).mean(dim=0)


def exact_correct(preds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[R] bool: prediction equals the label at every position whose label is not -100.

    A row whose labels are all ignored is vacuously correct.
    """
    if preds.shape != labels.shape:
        raise ValueError(f"preds shape {tuple(preds.shape)} != labels shape {tuple(labels.shape)}")
    return ((preds == labels) | (labels == IGNORE_LABEL_ID)).all(dim=-1)


def pass_at_k(num_correct: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """Unbiased pass@k per puzzle: 1 - C(n - c, k) / C(n, k), in float64.

    Uses C(n - c, k) / C(n, k) = prod_{j<k} (n - c - j) / (n - j): no factorials, so it stays exact
    enough for n in the hundreds. A factor reaches 0 (then is clamped) once fewer than k are wrong.
    """
    if n < 1 or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got n={n}, k={k}")
    c = num_correct.to(torch.float64)
    if bool(((c < 0) | (c > n)).any()):
        raise ValueError(f"num_correct must lie in [0, {n}]")
    j = torch.arange(k, dtype=torch.float64, device=c.device)
    ratio = ((n - c.unsqueeze(-1) - j) / (n - j)).clamp(min=0.0).prod(dim=-1)
    return 1.0 - ratio


def _powers_of_two_below(limit: int, cap: int) -> list[int]:
    """k in {1, 2, 4, ..., cap} with k < limit."""
    ks, k = [], 1
    while k <= cap and k < limit:
        ks.append(k)
        k *= 2
    return ks


def _majority_index(preds: torch.Tensor, num_puzzles: int, B: int) -> torch.Tensor:
    """[N] index (within the puzzle) of the most frequent full prediction; ties -> lowest index.

    Identical rows get the same id via ``unique`` over (puzzle, prediction) rows, so memory is
    O(N * B) rather than the O(N * B^2 * S) of pairwise comparison.
    """
    puzzle = torch.arange(num_puzzles, device=preds.device).repeat_interleave(B).unsqueeze(1)
    _, ids = torch.unique(torch.cat([puzzle, preds.long()], dim=1), dim=0, return_inverse=True)
    counts = torch.bincount(ids)[ids].view(num_puzzles, B)
    local = torch.arange(B, device=preds.device)
    # Unique key per row: frequency first, then earlier trajectory wins.
    return (counts * B + (B - 1 - local)).argmax(dim=1)


def _check_inputs(
    preds: torch.Tensor, labels: torch.Tensor, B: int, scores: torch.Tensor | None, top_k: int | None
) -> None:
    if B < 1:
        raise ValueError(f"B (trajectories per puzzle) must be >= 1, got {B}")
    if preds.dim() != 2 or labels.dim() != 2:
        raise ValueError(f"preds and labels must be 2-D, got {tuple(preds.shape)} and {tuple(labels.shape)}")
    if preds.shape != (labels.shape[0] * B, labels.shape[1]):
        raise ValueError(
            f"preds shape {tuple(preds.shape)} does not match labels {tuple(labels.shape)} with B={B}: "
            f"expected {(labels.shape[0] * B, labels.shape[1])}"
        )
    if labels.shape[0] < 1:
        raise ValueError("need at least one puzzle")
    if (scores is None) != (top_k is None):
        raise ValueError("scores and top_k must be given together")
    if scores is not None and top_k is not None:
        if not 1 <= top_k <= B:
            raise ValueError(f"top_k must satisfy 1 <= top_k <= B={B}, got {top_k}")
        if scores.numel() != preds.shape[0]:
            raise ValueError(f"scores has {scores.numel()} elements, expected N*B = {preds.shape[0]}")


def breadth_metrics(
    preds: torch.Tensor,
    labels: torch.Tensor,
    B: int,
    scores: torch.Tensor | None = None,
    top_k: int | None = None,
    stable: bool = True,
) -> dict[str, float]:
    """All breadth metrics for preds [N*B, S] against labels [N, S].

    ``scores`` ([N, B] or [N*B], lower = more converged) and ``top_k`` add the ``convergence_top_k/*``
    keys. Majority vote picks the most frequent full prediction (all positions, ignored ones included);
    ties go to the one that occurs first, i.e. the lowest trajectory index. Convergence selection sorts
    by ascending score and keeps the first ``top_k``; ``stable`` keeps equal scores in trajectory order
    (the reference's sort is unstable).
    """
    _check_inputs(preds, labels, B, scores, top_k)
    N = labels.shape[0]
    labels = labels.to(preds.device)
    correct = exact_correct(preds, labels.repeat_interleave(B, dim=0)).view(N, B)
    num_correct = correct.sum(dim=1)

    majority = preds.view(N, B, -1)[torch.arange(N, device=preds.device), _majority_index(preds, N, B)]
    valid = labels != IGNORE_LABEL_ID
    majority_exact = exact_correct(majority, labels).double().mean().item()
    majority_tokens = ((majority == labels) & valid).sum().item() / max(int(valid.sum().item()), 1)

    metrics: dict[str, float] = {
        "different_init/avg_pass_rate": (num_correct.double() / B).mean().item(),
        "different_init/any_correct": correct.any(dim=1).double().mean().item(),
        "different_init/majority_vote_acc": majority_exact,
        "different_init/total_samples": float(N),
        "different_init/n": float(B),
        "majority_vote/exact_accuracy": majority_exact,
        "majority_vote/accuracy": majority_tokens,
        "majority_vote/num_samples": float(N),
    }
    for k in _powers_of_two_below(B, 128):
        metrics[f"different_init/pass@{k}"] = pass_at_k(num_correct, B, k).mean().item()

    if scores is None or top_k is None:
        return metrics

    scores = scores.to(preds.device).reshape(N, B).float()
    chosen = torch.argsort(scores, dim=1, stable=stable)[:, :top_k]
    chosen_correct = correct.gather(1, chosen)
    metrics.update(
        {
            "convergence_top_k/exact_accuracy": chosen_correct.double().mean().item(),
            "convergence_top_k/any_correct": chosen_correct.any(dim=1).double().mean().item(),
            "convergence_top_k/avg_convergence_score": scores.gather(1, chosen).double().mean().item(),
            "convergence_top_k/total_samples": float(N),
            "convergence_top_k/k": float(top_k),
        }
    )
    chosen_num_correct = chosen_correct.sum(dim=1)
    for k in _powers_of_two_below(top_k, 64):
        metrics[f"convergence_top_k/pass@{k}"] = pass_at_k(chosen_num_correct, top_k, k).mean().item()
    cumulative = chosen_correct.double().cumsum(dim=1).sum(dim=0)
    for i in range(1, top_k + 1):
        metrics[f"convergence_top_k/cumulative_exact_acc_top{i}"] = (cumulative[i - 1] / (N * i)).item()
    return metrics
