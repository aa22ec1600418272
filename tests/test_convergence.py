"""Convergence scores as the evaluation computes them (evaluation/trajectories.py), against the reference
golden fixture and by hand."""

import pytest
import torch

from evaluation.breadth_metrics import breadth_metrics, convergence_scores
from evaluation.engine import run_evaluation
from evaluation.plan import Breadth, EvalPlan, Outputs, Runtime, Selection
from tests.conftest import ScriptedInner, scripted_model


class Replayed(ScriptedInner):
    """Plays recorded logits [T, P * B, S, V] back: segment t of puzzle p's restart c emits logits[t - 1, p * B + c]
    (the puzzle's index is its puzzle identifier)."""

    def __init__(self, logits: torch.Tensor, breadth: int) -> None:
        super().__init__()
        self.logits, self.breadth = logits, breadth

    def outputs(self, step, batch):
        row = batch["puzzle_identifiers"].long() * self.breadth + batch["copy"].long()
        return self.logits[step.long() - 1, row], torch.zeros(len(row))


def replay(logits: torch.Tensor, labels: torch.Tensor, breadth: int, window: int, top_k: int, depths=None,
           max_rows=None):
    """The engine's result for the puzzles whose restarts emit `logits` [T, P * B, S, V] (at `depths`, all T
    segments by default; `max_rows` slots)."""
    T, _, S, V = logits.shape
    P = labels.shape[0]
    batch = {"inputs": torch.zeros(P, S, dtype=torch.int32), "labels": labels.to(torch.int32),
             "puzzle_identifiers": torch.arange(P, dtype=torch.int32)}
    plan = EvalPlan(depths or [T], breadth=Breadth(restarts=breadth, restart_std=None),
                    selection=Selection(top_k=top_k, window=window),
                    outputs=Outputs(per_trajectory=True, save=("preds",)),
                    runtime=Runtime(max_rows=max_rows, progress=False))
    return run_evaluation(scripted_model(Replayed(logits, breadth), S, V), [(batch, P)], plan)


def scores_at(run, depth: int) -> torch.Tensor:
    return torch.tensor(run.per_trajectory[depth]["convergence_score"])


# ---------------------------------------------------------------- golden fixture


@pytest.fixture(scope="module")
def golden_run(breadth_golden):
    """The fixture's 48 trajectories in 5 slots: a refilled slot starts its convergence window afresh."""
    g = breadth_golden
    return replay(g["logit_trajectory"], g["labels"], g["B"], g["window"], g["top_k"], max_rows=5)


def test_golden_scores_match_reference(breadth_golden, golden_run):
    N, B = breadth_golden["scores"].shape
    T = breadth_golden["logit_trajectory"].shape[0]
    torch.testing.assert_close(scores_at(golden_run, T).view(N, B), breadth_golden["scores"], rtol=1e-5, atol=0.0)


def test_golden_preds_are_the_last_segments_argmax(breadth_golden, golden_run):
    T = breadth_golden["logit_trajectory"].shape[0]
    preds = golden_run.outputs[T]["preds"]
    assert preds.shape == breadth_golden["preds"].shape
    assert torch.equal(preds.long(), breadth_golden["preds"])


def test_golden_metrics_match_reference(breadth_golden):
    g = breadth_golden
    metrics = breadth_metrics(g["preds"], g["labels"], g["B"], g["scores"], g["top_k"])
    expected = breadth_golden["metrics"]
    assert list(metrics) == list(expected)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-6), key


def test_golden_metrics_from_the_evaluation(breadth_golden, golden_run):
    T = breadth_golden["logit_trajectory"].shape[0]
    metrics = golden_run.metrics[T]
    for key, value in breadth_golden["metrics"].items():
        assert metrics[key] == pytest.approx(value, rel=1e-6), key


def test_golden_scores_of_the_golden_checker(breadth_golden):
    """analysis/golden.py scores the fixture with `convergence_scores`: it agrees with the reference too."""
    scores = convergence_scores(breadth_golden["logit_trajectory"], breadth_golden["window"])
    N, B = breadth_golden["scores"].shape
    torch.testing.assert_close(scores.view(N, B), breadth_golden["scores"], rtol=1e-5, atol=0.0)


def test_golden_without_scores_has_no_convergence_keys(breadth_golden):
    metrics = breadth_metrics(breadth_golden["preds"], breadth_golden["labels"], breadth_golden["B"])
    expected = {k: v for k, v in breadth_golden["metrics"].items() if not k.startswith("convergence_top_k/")}
    assert metrics.keys() == expected.keys()
    assert metrics["different_init/pass@2"] == pytest.approx(0.738095238095238, rel=1e-6)


# ---------------------------------------------------------------- convergence scores by hand


def _two_restarts(first: torch.Tensor) -> torch.Tensor:
    """[T, S, V] logits of restart 0, and a restart 1 that never moves: [T, 2, S, V]."""
    return torch.stack((first, torch.zeros_like(first)), dim=1)


@pytest.mark.parametrize("window,expected", [(1, {2: 5.0, 3: 1.0, 4: 3.0}), (2, {2: 5.0, 3: 3.0, 4: 2.0}),
                                             (3, {2: 5.0, 3: 3.0, 4: 3.0}), (50, {2: 5.0, 3: 3.0, 4: 3.0})])
def test_convergence_score_hand_case(window, expected):
    # One token, vocab 2: steps of norm 5, 1, 3 between 4 segments; the mean of the last `window` at each depth.
    logits = _two_restarts(torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0], [3.0, 8.0]]).view(4, 1, 2))
    run = replay(logits, torch.zeros(1, 1), 2, window, 1, depths=[1, 2, 3, 4], max_rows=1)  # restart 1 after 0
    assert scores_at(run, 1).isnan().all()  # no change seen before the second segment
    for depth, score in expected.items():
        assert scores_at(run, depth).tolist() == pytest.approx([score, 0.0]), depth


def test_convergence_score_averages_tokens():
    # Two tokens moving by norm 2 and 4: token average 3 (not the norm over both, sqrt(20)).
    first = torch.zeros(2, 2, 3)
    first[1, 0, 0] = 2.0
    first[1, 1, 2] = 4.0
    run = replay(_two_restarts(first), torch.zeros(1, 2), 2, 3, 1)
    assert scores_at(run, 2).tolist() == pytest.approx([3.0, 0.0])


def test_convergence_errors():
    with pytest.raises(ValueError, match="at least 2 segments"):
        convergence_scores(torch.zeros(1, 2, 3, 4), window=3)
    with pytest.raises(ValueError, match="window"):
        convergence_scores(torch.zeros(3, 2, 3, 4), window=0)
