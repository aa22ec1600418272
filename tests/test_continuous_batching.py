"""Continuous batching and elastic exits (evaluation/trajectories.py): slots stay full, nothing is run twice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from evaluation.engine import run_evaluation
from evaluation.plan import Breadth, EvalPlan, Outputs, Runtime, Selection
from evaluation.stopping import StopRule
from tests.conftest import ScriptedInner, noisy_eqr_and_batches, scripted_model

S, V = 3, 4
# Hand-set stopping steps of 10 puzzles: each trajectory's q_halt turns positive at its step.
STOP_AT = [1, 5, 2, 8, 3, 3, 1, 7, 4, 2]


class CountingInner(ScriptedInner):
    """q_halt > 0 from the puzzle's hand-set step on; the answer is the label."""

    def outputs(self, step, batch):
        stop_at = torch.tensor(STOP_AT, dtype=step.dtype)[batch["puzzle_identifiers"].long()]
        return nn.functional.one_hot(batch["labels"].long(), V).float(), torch.where(step >= stop_at, 1.0, -1.0)


def counting_model() -> nn.Module:
    return scripted_model(CountingInner(), S, V)


def puzzle_batches(per_batch: int) -> list[tuple[dict[str, torch.Tensor], int]]:
    batches = []
    for start in range(0, len(STOP_AT), per_batch):
        ids = list(range(start, min(start + per_batch, len(STOP_AT))))
        pad = per_batch - len(ids)
        labels = torch.tensor([[1, 2, 3]] * len(ids) + [[0] * S] * pad, dtype=torch.int32)
        batches.append(({"inputs": torch.ones(per_batch, S, dtype=torch.int32), "labels": labels,
                         "puzzle_identifiers": torch.tensor(ids + [0] * pad, dtype=torch.int32)}, len(ids)))
    return batches


@pytest.mark.parametrize("per_batch", [10, 4])
def test_three_slots_run_exactly_the_minimal_slot_segments(per_batch):
    model = counting_model()
    q_rule = StopRule(rules=("q",), min_steps=1)
    result = run_evaluation(model, puzzle_batches(per_batch), EvalPlan([2, 8], breadth=Breadth(restart_std=None),
                                                                       stopping=q_rule,
                                                                       outputs=Outputs(per_trajectory=True),
                                                                       runtime=Runtime(max_rows=3, progress=False)))
    minimal = sum(STOP_AT)  # each trajectory runs until its own stop, not one segment more
    assert result.trajectory_segments == minimal
    rows = model.inner.rows_per_segment
    assert sum(rows) == minimal
    # The 3 slots stay full until the queue drains; then only the unfinished trajectories run.
    draining = rows.index(next(r for r in rows if r < 3))
    assert all(r == 3 for r in rows[:draining]) and rows[draining:] == sorted(rows[draining:], reverse=True)
    assert len(rows) == 13  # 3 slots fed greedily in queue order: the last (puzzle 3, step 8) ends at segment 13
    records = result.per_trajectory[8]
    assert records["puzzle"] == list(range(10)) and records["steps"] == STOP_AT
    assert records["stop"] == ["q"] * 10
    at_two = result.per_trajectory[2]
    assert at_two["steps"] == [min(s, 2) for s in STOP_AT]
    assert at_two["stop"] == ["q" if s <= 2 else "depth" for s in STOP_AT]
    assert result.metrics[8]["steps"] == pytest.approx(minimal / 10)
    assert result.metrics[8]["elastic/exit_rate"] == 1.0 and result.metrics[2]["elastic/exit_rate"] == 0.4


def test_without_elastic_every_trajectory_runs_the_largest_depth():
    model = counting_model()
    result = run_evaluation(model, puzzle_batches(4), EvalPlan([3, 5], breadth=Breadth(restart_std=None),
                                                               runtime=Runtime(max_rows=3, progress=False)))
    assert result.trajectory_segments == 10 * 5 == sum(model.inner.rows_per_segment)
    assert result.metrics[3]["steps"] == 3 and result.metrics[5]["steps"] == 5


def _without_elastic_keys(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if "elastic/" not in k}


@pytest.fixture(scope="module")
def eqr_and_batches():
    return noisy_eqr_and_batches(3, 4)


def shared(depths: list[int], stopping: StopRule | None = None, **runtime) -> EvalPlan:
    """B = 2, top-1 selection over a window of 2, both countings, one row per trajectory, at `depths`."""
    return EvalPlan(depths, breadth=Breadth(restarts=2), stopping=stopping, selection=Selection(top_k=1, window=2),
                    counting="both", outputs=Outputs(per_trajectory=True), runtime=Runtime(seed=5, progress=False,
                                                                                             **runtime))


def test_elastic_rule_that_never_fires_equals_fixed_depth(eqr_and_batches):
    model, batches = eqr_and_batches
    depths = [1, 3, 6]
    fixed = run_evaluation(model, batches, shared(depths))
    never = StopRule(rules=("residual",), tol=0.0, min_steps=1)
    elastic = run_evaluation(model, batches, shared(depths, never))
    assert elastic.trajectory_segments == fixed.trajectory_segments == 3 * 4 * 2 * 6
    # In 5 slots rather than 8 the trajectories start in other slots, which changes only the reference's
    # first residual: it measures a trajectory's first segment from the state its slot held before.
    fewer_slots = run_evaluation(model, batches, shared(depths, never, max_rows=5))
    for depth in depths:
        assert _without_elastic_keys(elastic.metrics[depth]) == fixed.metrics[depth]
        slot_dependent = {"ref/residual_of_1_steps"}
        assert ({k: v for k, v in fewer_slots.metrics[depth].items() if k not in slot_dependent}
                == {k: v for k, v in elastic.metrics[depth].items() if k not in slot_dependent})
        assert elastic.metrics[depth]["elastic/exit_rate"] == 0.0
        for key, values in fixed.per_trajectory[depth].items():
            if key != "stop":  # bit-equal, NaN (no convergence score at depth 1) included
                torch.testing.assert_close(torch.tensor(elastic.per_trajectory[depth][key]), torch.tensor(values),
                                           rtol=0, atol=0, equal_nan=True)
        assert set(elastic.per_trajectory[depth]["stop"]) == {"depth"}


def test_elastic_at_depth_one_equals_depth_one(eqr_and_batches):
    model, batches = eqr_and_batches
    fixed = run_evaluation(model, batches, shared([1]))
    always = StopRule(rules=("residual", "stable"), tol=float("inf"), combine="any", min_steps=1)
    elastic = run_evaluation(model, batches, shared([1], always))
    assert _without_elastic_keys(elastic.metrics[1]) == fixed.metrics[1]
    assert elastic.trajectory_segments == fixed.trajectory_segments == 3 * 4 * 2
    assert elastic.metrics[1]["elastic/mean_segments"] == 1.0


def test_fixed_shape_segment_gives_the_same_results(eqr_and_batches):
    """A compiled segment runs every slot every segment (empty ones on stale data): same records, same cost."""
    model, batches = eqr_and_batches
    rule = StopRule(rules=("stable",), patience=1, min_steps=2)
    eager = run_evaluation(model, batches, shared([2, 5], rule, max_rows=6))
    fixed = run_evaluation(model, batches, shared([2, 5], rule, max_rows=6, segment=model.inner))
    assert fixed.trajectory_segments == eager.trajectory_segments < 3 * 4 * 2 * 5
    for depth in (2, 5):
        assert fixed.metrics[depth] == pytest.approx(eager.metrics[depth], rel=1e-5, nan_ok=True)
        assert fixed.per_trajectory[depth]["steps"] == eager.per_trajectory[depth]["steps"]


def test_allocator_keeps_freed_memory_unless_the_user_chose(monkeypatch):
    import ctypes.util
    import sys

    from utils.allocator import keep_freed_memory

    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_MAX_", raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert keep_freed_memory() is False  # the user's choice stands
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    glibc = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(ctypes.util.find_library("c")),
                                                          "gnu_get_libc_version")
    assert keep_freed_memory() is glibc
