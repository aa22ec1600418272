"""Breadth metrics against the reference fixture and small hand-computed cases."""

from collections import Counter
from fractions import Fraction
from math import comb

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.breadth_metrics import (
    breadth_metrics,
    exact_correct,
    pass_at_k,
)

# ---------------------------------------------------------------- exact correctness and pass@k


def test_exact_correct_ignores_masked_labels():
    labels = torch.tensor([[1, 2, -100], [1, 2, -100], [1, 2, 3], [-100, -100, -100]])
    preds = torch.tensor([[1, 2, 0], [1, 0, 0], [1, 2, 0], [4, 4, 4]])
    assert exact_correct(preds, labels).tolist() == [True, False, False, True]


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 1, 2, 0.5),
        (4, 0, 2, 0.0),
        (4, 4, 2, 1.0),
        (4, 3, 2, 1.0),
        (5, 2, 2, 0.7),
        (8, 4, 1, 0.5),
        (128, 1, 64, 0.5),
        (10, 3, 4, 1 - 35 / 210),
    ],
)
def test_pass_at_k_hand_cases(n, c, k, expected):
    assert pass_at_k(torch.tensor([c]), n, k).item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_matches_exact_binomials(case):
    n, c, k = case
    exact = 1 - Fraction(comb(n - c, k), comb(n, k))
    assert pass_at_k(torch.tensor([c]), n, k).item() == pytest.approx(float(exact), rel=1e-9, abs=1e-12)


def test_pass_at_k_errors():
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(torch.tensor([1]), 4, 5)
    with pytest.raises(ValueError, match="num_correct"):
        pass_at_k(torch.tensor([5]), 4, 2)


# ---------------------------------------------------------------- majority vote


def _one_puzzle(rows: list[list[int]], label: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(rows), torch.tensor([label])


def test_majority_tie_goes_to_lowest_index():
    # Two-two ties; neither the last occurrence nor the lexicographically smallest row decides.
    right, wrong = [1, 2, 3], [0, 0, 0]
    preds, labels = _one_puzzle([right, wrong, right, wrong], [1, 2, 3])
    assert breadth_metrics(preds, labels, B=4)["majority_vote/exact_accuracy"] == 1.0
    preds, labels = _one_puzzle([wrong, right, wrong, right], [1, 2, 3])
    metrics = breadth_metrics(preds, labels, B=4)
    assert metrics["majority_vote/exact_accuracy"] == 0.0
    assert metrics["majority_vote/accuracy"] == 0.0


def test_majority_counts_ignored_positions():
    # Three correct answers that differ at the ignored position lose to two identical wrong ones.
    preds, labels = _one_puzzle([[1, 2, 0], [5, 5, 5], [5, 5, 5], [1, 2, 3], [1, 2, 4]], [1, 2, -100])
    metrics = breadth_metrics(preds, labels, B=5)
    assert metrics["majority_vote/exact_accuracy"] == 0.0
    assert metrics["different_init/avg_pass_rate"] == pytest.approx(0.6)


def test_majority_token_accuracy_is_pooled():
    preds = torch.tensor([[1, 2, 3, 0], [1, 2, 3, 0], [9, 9, 9, 9], [0, 0, 0, 0], [7, 7, 7, 7], [0, 0, 0, 0]])
    labels = torch.tensor([[1, 2, 3, -100], [0, 1, -100, -100], [7, 0, -100, -100]])
    metrics = breadth_metrics(preds, labels, B=2)
    # Winners: [1,2,3,0] (3/3 valid), [9,9,9,9] (0/2, tie -> first), [7,7,7,7] (1/2) => 4 of 7 tokens.
    assert metrics["majority_vote/accuracy"] == pytest.approx(4 / 7)
    assert metrics["majority_vote/exact_accuracy"] == pytest.approx(1 / 3)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda n: st.integers(1, 6).flatmap(
            lambda b: st.tuples(
                st.just(b),
                st.lists(st.lists(st.integers(0, 2), min_size=3, max_size=3), min_size=n * b, max_size=n * b),
                st.lists(st.lists(st.integers(0, 2), min_size=3, max_size=3), min_size=n, max_size=n),
            )
        )
    )
)
def test_majority_matches_counting(case):
    B, rows, label_rows = case
    winners = []
    for p, label in enumerate(label_rows):
        group = [tuple(r) for r in rows[p * B : (p + 1) * B]]
        counts = Counter(group)
        best = max(counts.values())
        winners.append(next(r for r in group if counts[r] == best) == tuple(label))
    metrics = breadth_metrics(torch.tensor(rows), torch.tensor(label_rows), B)
    assert metrics["majority_vote/exact_accuracy"] == pytest.approx(sum(winners) / len(winners))


# ---------------------------------------------------------------- different_init and convergence


def test_different_init_hand_case():
    labels = torch.tensor([[1, 1], [2, 2]])
    preds = torch.tensor([[1, 1], [0, 0], [0, 0], [0, 0], [2, 2], [2, 2], [0, 0], [2, 2]])
    metrics = breadth_metrics(preds, labels, B=4)
    assert metrics["different_init/avg_pass_rate"] == pytest.approx((1 / 4 + 3 / 4) / 2)
    assert metrics["different_init/any_correct"] == 1.0
    assert metrics["different_init/pass@1"] == pytest.approx(0.5)
    assert metrics["different_init/pass@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert "different_init/pass@4" not in metrics
    assert metrics["different_init/majority_vote_acc"] == pytest.approx(0.5)
    assert metrics["different_init/n"] == 4.0
    assert metrics["different_init/total_samples"] == 2.0


def test_pass_at_k_key_range():
    labels = torch.zeros(1, 2, dtype=torch.long)
    keys = breadth_metrics(torch.zeros(9, 2, dtype=torch.long), labels, B=9).keys()
    assert [k for k in keys if "pass@" in k] == [f"different_init/pass@{k}" for k in (1, 2, 4, 8)]
    keys = breadth_metrics(torch.zeros(300, 2, dtype=torch.long), labels, B=300).keys()
    assert max(int(k.split("@")[1]) for k in keys if "pass@" in k) == 128


def test_convergence_top_k_selection():
    a, b = [1, 2], [0, 0]
    preds = torch.tensor([a, b, a, a, b, b, a, b])
    labels = torch.tensor([a, b])
    # Puzzle 0 (answer a): equal scores at 1 and 3 -> stable order picks 1 (wrong), then 3 (right).
    # Puzzle 1 (answer b): lowest scores at its trajectories 3 (right) and 0 (right).
    scores = torch.tensor([[0.3, 0.1, 0.2, 0.1], [0.5, 0.9, 0.8, 0.2]])
    metrics = breadth_metrics(preds, labels, B=4, scores=scores, top_k=2)
    assert metrics["convergence_top_k/exact_accuracy"] == pytest.approx(3 / 4)
    assert metrics["convergence_top_k/any_correct"] == 1.0
    assert metrics["convergence_top_k/avg_convergence_score"] == pytest.approx((0.1 + 0.35) / 2)
    assert metrics["convergence_top_k/pass@1"] == pytest.approx(3 / 4)
    assert metrics["convergence_top_k/cumulative_exact_acc_top1"] == pytest.approx(1 / 2)
    assert metrics["convergence_top_k/cumulative_exact_acc_top2"] == pytest.approx(3 / 4)
    assert metrics["convergence_top_k/k"] == 2.0
    flat = breadth_metrics(preds, labels, B=4, scores=scores.flatten(), top_k=2)
    assert flat == metrics


def test_single_trajectory_per_puzzle():
    preds = torch.tensor([[1, 2, 3], [0, 2, 3], [4, 4, 4]])
    labels = torch.tensor([[1, 2, -100], [1, 2, 3], [4, 4, 4]])
    metrics = breadth_metrics(preds, labels, B=1, scores=torch.tensor([0.5, 0.1, 0.2]), top_k=1)
    assert metrics == {
        "different_init/avg_pass_rate": pytest.approx(2 / 3),
        "different_init/any_correct": pytest.approx(2 / 3),
        "different_init/majority_vote_acc": pytest.approx(2 / 3),
        "different_init/total_samples": 3.0,
        "different_init/n": 1.0,
        "majority_vote/exact_accuracy": pytest.approx(2 / 3),
        "majority_vote/accuracy": pytest.approx(7 / 8),
        "majority_vote/num_samples": 3.0,
        "convergence_top_k/exact_accuracy": pytest.approx(2 / 3),
        "convergence_top_k/any_correct": pytest.approx(2 / 3),
        "convergence_top_k/avg_convergence_score": pytest.approx(0.8 / 3),
        "convergence_top_k/total_samples": 3.0,
        "convergence_top_k/k": 1.0,
        "convergence_top_k/cumulative_exact_acc_top1": pytest.approx(2 / 3),
    }


# ---------------------------------------------------------------- input validation


def test_breadth_metrics_errors():
    preds = torch.zeros(8, 3, dtype=torch.long)
    labels = torch.zeros(2, 3, dtype=torch.long)
    scores = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="top_k"):
        breadth_metrics(preds, labels, B=4, scores=scores, top_k=5)
    with pytest.raises(ValueError, match="top_k"):
        breadth_metrics(preds, labels, B=4, scores=scores, top_k=0)
    with pytest.raises(ValueError, match="B"):
        breadth_metrics(preds, labels, B=0)
    with pytest.raises(ValueError, match="does not match"):
        breadth_metrics(preds, labels, B=3)
    with pytest.raises(ValueError, match="does not match"):
        breadth_metrics(preds[:, :2], labels, B=4)
    with pytest.raises(ValueError, match="together"):
        breadth_metrics(preds, labels, B=4, scores=scores)
    with pytest.raises(ValueError, match="scores has"):
        breadth_metrics(preds, labels, B=4, scores=torch.zeros(7), top_k=2)
