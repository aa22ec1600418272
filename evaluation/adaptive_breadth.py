"""Adaptive breadth (`breadth_agree=k`): stop starting restarts of a puzzle once k of them agree.

A puzzle starts k restarts; when one finishes, the next is started only while the largest number
of its finished restarts that agree, plus those still running, is below k, so no restart is run
that could not change the outcome. Once k finished restarts give the same answer (at the largest
depth, in the original frame) the remaining ones are skipped. Freed slots meanwhile take the next
puzzles' restarts, so the batch stays full. A puzzle's answer at any depth is the most frequent
answer among its started restarts when at least k of them give it; otherwise the most converged
one (lowest convergence score) when scores are tracked, else the majority vote (ties: the
earliest restart).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterator

import torch

from evaluation.trajectories import Trajectory
from utils.labels import IGNORE_LABEL_ID

PREFIX = "adaptive_breadth/"


class AdaptiveQueue:
    """The trajectories to start, fed back with those that finish (`finished`).

    `puzzles` yields each puzzle's restarts in order; `skip` receives the restarts never started.
    `next(queue, None)` is None while every started restart is still running: the caller asks again
    after it reported the next finished one."""

    def __init__(self, puzzles: Iterator[list[Trajectory]], k: int, skip: Callable[[Trajectory], None]) -> None:
        self.puzzles, self.k, self.skip = puzzles, k, skip
        self.ready: deque[Trajectory] = deque()
        self.later: dict[int, deque[Trajectory]] = {}
        self.running: Counter[int] = Counter()
        self.votes: dict[int, Counter[bytes]] = {}

    def __iter__(self) -> AdaptiveQueue:
        return self

    def __next__(self) -> Trajectory:
        if not self.ready:
            restarts = next(self.puzzles)  # StopIteration ends the queue (for now)
            puzzle = restarts[0].puzzle
            self.ready.extend(restarts[: self.k])
            self.later[puzzle] = deque(restarts[self.k:])
            self.votes[puzzle] = Counter()
        traj = self.ready.popleft()
        self.running[traj.puzzle] += 1
        return traj

    def finished(self, traj: Trajectory, prediction: torch.Tensor) -> None:
        """`traj` finished with `prediction` (original frame): skip or start the puzzle's next restarts."""
        puzzle = traj.puzzle
        self.running[puzzle] -= 1
        votes = self.votes[puzzle]
        votes[prediction.cpu().numpy().tobytes()] += 1
        later, agreed = self.later[puzzle], max(votes.values())
        if agreed >= self.k:
            while later:
                self.skip(later.popleft())
        start: list[Trajectory] = []
        while later and agreed + self.running[puzzle] + self._queued(puzzle) + len(start) < self.k:
            start.append(later.popleft())
        self.ready.extendleft(reversed(start))  # into the slot just freed, ahead of new puzzles
        if not later and self.running[puzzle] == 0 and not self._queued(puzzle):
            del self.later[puzzle], self.votes[puzzle], self.running[puzzle]

    def _queued(self, puzzle: int) -> int:
        return sum(t.puzzle == puzzle for t in self.ready)


def choose(preds: torch.Tensor, k: int, scores: torch.Tensor | None) -> tuple[int, bool]:
    """(index of the chosen restart among `preds` [n, S], whether >= k of them agree on its answer)."""
    _, ids, counts = torch.unique(preds, dim=0, return_inverse=True, return_counts=True)
    votes = counts[ids]
    best = int(votes.max())
    if best >= k:
        return int((votes == best).nonzero()[0]), True
    if scores is not None and not bool(scores.isnan().all()):
        return int(torch.nan_to_num(scores.float(), nan=float("inf")).argmin()), False
    return int((votes == best).nonzero()[0]), False


def adaptive_metrics(preds: torch.Tensor, labels: torch.Tensor, copies: int, launched: torch.Tensor,
                     steps: torch.Tensor, k: int, scores: torch.Tensor | None) -> dict[str, float]:
    """`adaptive_breadth/*` sums for puzzles [P] with rows [P * copies] (skipped rows: `launched` False).

    Returns per-batch sums (exact answers, agreed puzzles, restarts and segments started) and the
    puzzle count; the engine turns them into means over every puzzle."""
    exact = agreed = restarts = 0
    for p in range(labels.shape[0]):
        rows = torch.arange(p * copies, (p + 1) * copies)[launched[p * copies:(p + 1) * copies]]
        pick, agree = choose(preds[rows], k, scores[rows] if scores is not None else None)
        answer, target = preds[rows[pick]], labels[p]
        exact += bool(((answer == target) | (target == IGNORE_LABEL_ID)).all())
        agreed += agree
        restarts += len(rows)
    return {"exact_accuracy": exact, "agreed": agreed, "mean_restarts": restarts,
            "segments_per_puzzle": float(steps[launched].sum()), "puzzles": labels.shape[0]}
