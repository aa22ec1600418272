"""Convergence scores and the incremental tracker, against the reference golden fixture and by hand."""


import pytest
import torch

from evaluation.breadth_metrics import (
    ConvergenceTracker,
    breadth_metrics,
    convergence_scores,
)

# ---------------------------------------------------------------- golden fixture


def test_golden_scores_match_reference(breadth_golden):
    scores = convergence_scores(breadth_golden["logit_trajectory"], breadth_golden["window"])
    N, B = breadth_golden["scores"].shape
    torch.testing.assert_close(scores.view(N, B), breadth_golden["scores"], rtol=1e-5, atol=0.0)


def test_golden_preds_are_last_argmax(breadth_golden):
    assert torch.equal(breadth_golden["logit_trajectory"][-1].argmax(dim=-1), breadth_golden["preds"])


def test_golden_metrics_match_reference(breadth_golden):
    g = breadth_golden
    metrics = breadth_metrics(g["preds"], g["labels"], g["B"], g["scores"], g["top_k"])
    expected = breadth_golden["metrics"]
    assert list(metrics) == list(expected)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-6), key


def test_golden_metrics_from_recomputed_scores(breadth_golden):
    scores = convergence_scores(breadth_golden["logit_trajectory"], breadth_golden["window"])
    g = breadth_golden
    metrics = breadth_metrics(g["preds"], g["labels"], g["B"], scores, g["top_k"])
    for key, value in breadth_golden["metrics"].items():
        assert metrics[key] == pytest.approx(value, rel=1e-6), key


def test_golden_without_scores_has_no_convergence_keys(breadth_golden):
    metrics = breadth_metrics(breadth_golden["preds"], breadth_golden["labels"], breadth_golden["B"])
    expected = {k: v for k, v in breadth_golden["metrics"].items() if not k.startswith("convergence_top_k/")}
    assert metrics.keys() == expected.keys()
    assert metrics["different_init/pass@2"] == pytest.approx(0.738095238095238, rel=1e-6)


# ---------------------------------------------------------------- convergence scores


def test_convergence_score_hand_case():
    # One trajectory, one token, vocab 2: steps of norm 5, 1, 3 between 4 segments.
    logits = torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0], [3.0, 8.0]]).view(4, 1, 1, 2)
    assert convergence_scores(logits, window=1).item() == pytest.approx(3.0)
    assert convergence_scores(logits, window=2).item() == pytest.approx(2.0)
    assert convergence_scores(logits, window=3).item() == pytest.approx(3.0)
    assert convergence_scores(logits, window=50).item() == pytest.approx(3.0)


def test_convergence_score_averages_tokens():
    # Two tokens moving by norm 2 and 4: token average 3 (not the norm over both, sqrt(20)).
    logits = torch.zeros(2, 1, 2, 3)
    logits[1, 0, 0, 0] = 2.0
    logits[1, 0, 1, 2] = 4.0
    assert convergence_scores(logits, window=3).item() == pytest.approx(3.0)


@pytest.mark.parametrize("window", [1, 2, 3, 6, 20])
def test_tracker_equals_batch(window):
    gen = torch.Generator().manual_seed(window)
    trajectory = torch.randn(7, 5, 4, 6, generator=gen)
    tracker = ConvergenceTracker(window)
    tracker.update(trajectory[0])
    for t in range(1, trajectory.shape[0]):
        tracker.update(trajectory[t])
        torch.testing.assert_close(tracker.scores(), convergence_scores(trajectory[: t + 1], window))


def test_tracker_equals_batch_on_golden(breadth_golden):
    tracker = ConvergenceTracker(breadth_golden["window"])
    for logits in breadth_golden["logit_trajectory"]:
        tracker.update(logits)
    N, B = breadth_golden["scores"].shape
    torch.testing.assert_close(tracker.scores().view(N, B), breadth_golden["scores"], rtol=1e-5, atol=0.0)


def test_convergence_errors():
    with pytest.raises(ValueError, match="at least 2 segments"):
        convergence_scores(torch.zeros(1, 2, 3, 4), window=3)
    with pytest.raises(ValueError, match="window"):
        convergence_scores(torch.zeros(3, 2, 3, 4), window=0)
    tracker = ConvergenceTracker(2)
    tracker.update(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="at least 2 updates"):
        tracker.scores()
    with pytest.raises(ValueError, match="shape changed"):
        tracker.update(torch.zeros(3, 3, 4))
