"""The one-pass depth x breadth evaluation core (`evaluation/engine.py`)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from evaluation.engine import run_evaluation
from evaluation.plan import Breadth, EvalPlan, Outputs, Runtime, Selection
from evaluation.randomness import TrajectoryNoise, initial_state, trajectory_keys
from evaluation.stopping import StopRule
from models.act import Carry
from models.reasoner import Reasoner, Segment
from models.registry import build_model
from tests.conftest import ScriptedInner, dihedral_transforms, latent_shape, scripted_model, tiny_arch

S, V, B = 3, 4, 4
OWN = Breadth(restarts=B, restart_std=None)  # scripted models keep their own reset: it tags each copy


class DriftingInner(ScriptedInner):
    """Outputs chosen per (puzzle id = inputs[:, 0], copy = row % B): fixed argmax, logits drifting
    at a per-copy speed (score = 2 x speed with V = 4), q_halt positive for copy 0 only."""

    def __init__(self, preds: dict[int, list[list[int]]], speeds: dict[int, list[float]]) -> None:
        super().__init__()
        self.preds, self.speeds = preds, speeds

    def outputs(self, step, batch):
        copy = batch["copy"].long()
        puzzle = batch["inputs"][:, 0].tolist()
        preds = torch.tensor([self.preds[p][c] for p, c in zip(puzzle, copy.tolist(), strict=True)])
        speed = torch.tensor([self.speeds[p][c] for p, c in zip(puzzle, copy.tolist(), strict=True)])
        logits = 10 * nn.functional.one_hot(preds, V).float() + (speed * step).view(-1, 1, 1)
        return logits, torch.where(copy == 0, 1.0, -1.0)


def drifting_model(preds, speeds):
    return scripted_model(DriftingInner(preds, speeds), S, V)


def batch(puzzles: list[int], labels: list[list[int]], pad: int = 0):
    inputs = torch.tensor([[p, 0, 0] for p in puzzles] + [[0, 0, 0]] * pad, dtype=torch.int32)
    lab = torch.tensor(labels + [[-100] * S] * pad, dtype=torch.int32)
    return {"inputs": inputs, "labels": lab, "puzzle_identifiers": torch.zeros(len(inputs), dtype=torch.int32)}


HAND_PREDS = {
    # puzzle 1 (label 1 2 3): answers A=[1,2,3] (correct) and W=[1,2,0] tie 2:2 -> first (A) wins
    1: [[1, 2, 3], [1, 2, 0], [1, 2, 0], [1, 2, 3]],
    # puzzle 2 (label 0 1 -): [3,3,3] (wrong) and [0,1,2] (correct) tie 2:2 -> first ([3,3,3]) wins
    2: [[3, 3, 3], [0, 1, 2], [0, 1, 2], [3, 3, 3]],
}
HAND_SPEEDS = {1: [3.0, 1.0, 2.0, 1.0], 2: [1.0, 5.0, 0.5, 4.0]}


def test_hand_computed_breadth_metrics_across_batches_and_padding():
    model = drifting_model(HAND_PREDS, HAND_SPEEDS)
    batches = [(batch([1], [[1, 2, 3]], pad=1), 1), (batch([2], [[0, 1, -100]], pad=1), 1)]
    m = run_evaluation(model, batches, EvalPlan([3], breadth=OWN, selection=Selection(top_k=2, window=2))).metrics[3]
    expected = {
        "count": 8, "num_puzzles": 2, "steps": 3.0,
        "exact_accuracy": 0.5,
        "accuracy": (1 + 2 / 3 + 2 / 3 + 1 + 0 + 1 + 1 + 0) / 8,
        "q_halt_accuracy": 4 / 8, "q_halt_precision": 1 / 2, "q_halt_recall": 1 / 4,
        "different_init/avg_pass_rate": 0.5, "different_init/any_correct": 1.0,
        "different_init/pass@1": 0.5, "different_init/pass@2": 5 / 6,
        "different_init/n": 4, "different_init/total_samples": 2,
        "majority_vote/exact_accuracy": 0.5, "different_init/majority_vote_acc": 0.5,
        "majority_vote/accuracy": 3 / 5,  # pooled over the 5 scored tokens
        # puzzle 1 picks copies 1 (wrong), 3 (right); puzzle 2 picks copies 2 (right), 0 (wrong)
        "convergence_top_k/exact_accuracy": 0.5, "convergence_top_k/any_correct": 1.0,
        "convergence_top_k/cumulative_exact_acc_top1": 0.5, "convergence_top_k/cumulative_exact_acc_top2": 0.5,
        "convergence_top_k/pass@1": 0.5,
        "convergence_top_k/avg_convergence_score": (2.0 + 1.5) / 2, "convergence_top_k/k": 2,
    }
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, abs=1e-5), key
    assert m["residual_of_1_steps"] == pytest.approx(m["residual_of_3_steps"])


def test_convergence_keys_absent_at_depth_one_and_without_top_k():
    model = drifting_model(HAND_PREDS, HAND_SPEEDS)
    batches = [(batch([1, 2], [[1, 2, 3], [0, 1, -100]]), 2)]
    out = run_evaluation(model, batches, EvalPlan([1, 2], breadth=OWN, selection=Selection(top_k=1))).metrics
    assert not any(k.startswith("convergence_top_k/") for k in out[1])
    assert out[2]["convergence_top_k/k"] == 1
    plain = run_evaluation(model, batches, EvalPlan([2], breadth=OWN)).metrics[2]
    assert "different_init/pass@1" in plain and not any(k.startswith("convergence") for k in plain)


def _random_batches(count: int, size: int, seq_len: int = 16, vocab: int = 7, pad_last: int = 0):
    g = torch.Generator().manual_seed(123)
    out = []
    for i in range(count):
        x = torch.randint(1, vocab, (size, seq_len), generator=g, dtype=torch.int32)
        labels = torch.where(torch.rand(size, seq_len, generator=g) < 0.2, -100, x)
        valid = size - (pad_last if i == count - 1 else 0)
        labels[valid:] = -100
        out.append(({"inputs": x, "labels": labels, "puzzle_identifiers": torch.zeros(size, dtype=torch.int32)},
                    valid))
    return out


@pytest.fixture(scope="module")
def eqr():
    torch.manual_seed(0)
    return build_model(tiny_arch(noise_scale=0.05)).model.eval()


def test_one_pass_equals_separate_runs(eqr):
    batches = _random_batches(3, 3, pad_last=1)
    def at(depths: list[int], seed: int = 5) -> dict[int, dict[str, float]]:
        plan = EvalPlan(depths, breadth=Breadth(restarts=3), selection=Selection(top_k=2, window=2),
                        runtime=Runtime(seed=seed))
        return run_evaluation(eqr, batches, plan).metrics

    together = at([1, 3, 5])
    for depth in (1, 3, 5):
        assert at([depth])[depth] == together[depth]
    assert together[3] != together[5]
    assert at([3], seed=6)[3] != together[3]


def test_one_pass_equals_separate_runs_with_elastic(eqr):
    batches = _random_batches(2, 3)
    elastic = StopRule(patience=1, tol=1e9)  # exits as soon as the prediction repeats
    plan = EvalPlan([2, 6], breadth=Breadth(restarts=2), stopping=elastic, selection=Selection(top_k=1))
    together = run_evaluation(eqr, batches, plan)
    alone = run_evaluation(eqr, batches, dataclasses.replace(plan, depths=(6,)))
    assert alone.metrics[6] == together.metrics[6]
    assert run_evaluation(eqr, batches, dataclasses.replace(plan, depths=(2,))).metrics[2] == together.metrics[2]


def test_breadth_one_equals_plain_evaluation():
    """The plain ACT loop (inference loss head, halting at halt_max_steps, metrics of the final segment),
    fed the same per-trajectory random streams: its initial state and the noise of every update."""
    torch.manual_seed(1)
    depth, seed = 3, 9
    head = build_model(tiny_arch(noise_scale=0.05, halt_max_steps=depth), loss_head="losses@InferenceLossHead").eval()
    batches = _random_batches(2, 4)
    totals: dict[str, float] = {}
    for index, (data, _) in enumerate(batches):
        rows = data["inputs"].shape[0]
        keys = trajectory_keys(seed, index * rows + torch.arange(rows), torch.zeros(rows, dtype=torch.long))
        shape = latent_shape(head.model, rows)[1:]
        latents = initial_state(keys, {"z_H": 1.0, "z_L": 1.0}, {"z_H": shape, "z_L": shape}, torch.float32)
        carry = Carry(latents, torch.zeros(rows, dtype=torch.int32), torch.zeros(rows, dtype=torch.bool), data)
        noise = TrajectoryNoise(keys)
        with torch.no_grad(), head.model.inner.drawing_noise_from(noise):
            for step in range(1, depth + 1):
                noise.start_segment(keys, torch.full((rows,), step))
                carry, metrics, _, done = head(carry, data)
        assert done
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0) + float(v)
    plan = EvalPlan([depth], runtime=Runtime(seed=seed, progress=False))
    ours = run_evaluation(head.model, batches, plan).metrics[depth]
    count = totals["count"]
    assert ours["count"] == count
    for key in ("exact_accuracy", "accuracy", "q_halt_accuracy", "steps"):
        assert ours[key] == pytest.approx(totals[key] / count, abs=1e-6), key
    assert ours["q_halt_precision"] == pytest.approx(
        totals["q_halt_true_positive"] / max(totals["q_halt_predicted_positive"], 1))


def test_padding_rows_do_not_count():
    torch.manual_seed(2)
    trm = build_model(tiny_arch("trm@TRMModel")).model.eval()  # deterministic: batch shape cannot matter
    full = _random_batches(1, 5)
    data, _ = full[0]
    padded = dict(data, labels=data["labels"].clone())
    padded["inputs"] = torch.cat([data["inputs"][:3], torch.ones(2, 16, dtype=torch.int32)])
    plan = EvalPlan([2], breadth=Breadth(restarts=2, restart_std=None))
    a = run_evaluation(trm, [({k: v[:3] for k, v in data.items()}, 3)], plan).metrics[2]
    b = run_evaluation(trm, [(padded, 3)], plan).metrics[2]
    assert a == pytest.approx(b)
    assert a["num_puzzles"] == 3 and a["count"] == 6


def test_elastic_exit_accounting():
    # copy speeds 0 -> logits stop moving, prediction stable from segment 2
    model = drifting_model(HAND_PREDS, {1: [0.0] * 4, 2: [0.0] * 4})
    batches = [(batch([1, 2], [[1, 2, 3], [0, 1, -100]]), 2)]
    run = run_evaluation(model, batches, EvalPlan([2, 8], breadth=OWN, stopping=StopRule(patience=1, tol=1e9)))
    m = run.metrics[8]
    assert m["elastic/max_segments"] == 2 and m["elastic/mean_segments"] == 2
    assert m["elastic/segments_saved"] == pytest.approx(1 - 2 / 8)
    assert m["elastic/exit_rate"] == 1.0
    assert run.trajectory_segments == 8 * 2  # 8 trajectories stopped after 2 segments each
    assert m["exact_accuracy"] == 0.5
    assert "residual_of_3_steps" not in m
    q = run_evaluation(model, batches, EvalPlan([8], breadth=OWN, stopping=StopRule(rules=("q",)))).metrics[8]
    assert q["elastic/exit_rate"] == pytest.approx(0.25)  # only copy 0 has q_halt > 0
    assert q["steps"] == pytest.approx((2 * 2 + 6 * 8) / 8)


class CopyInner(Reasoner):
    """Predicts its input: equivariant under any transform, so inverted TTA answers stay exact."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def empty_latents(self, batch_size, device):
        return {name: torch.zeros(batch_size, 1, 1, device=device) for name in self.latent_names}

    def reset(self, halted, latents):
        return latents

    def forward(self, latents, batch):
        logits = nn.functional.one_hot(batch["inputs"].long(), 6).float()
        q = torch.zeros(batch["inputs"].shape[0])
        return Segment(latents, logits, q, q)


def test_tta_predictions_are_mapped_back():
    model = build_model(tiny_arch("trm@TRMModel", seq_len=9, vocab_size=6, hidden_size=8, num_heads=1)).model
    model.inner = CopyInner()
    model.eval()
    x = torch.randint(1, 6, (2, 9), generator=torch.Generator().manual_seed(0), dtype=torch.int32)
    data = {"inputs": x, "labels": x.clone(), "puzzle_identifiers": torch.zeros(2, dtype=torch.int32)}
    plan = EvalPlan([2], breadth=Breadth(restarts=2, transforms=dihedral_transforms(3, 6, 8)),
                    selection=Selection(top_k=3))
    m = run_evaluation(model, [(data, 2)], plan).metrics[2]
    assert m["exact_accuracy"] == 1.0 and m["different_init/n"] == 16
    assert m["majority_vote/exact_accuracy"] == 1.0 and m["convergence_top_k/exact_accuracy"] == 1.0


def test_bad_arguments(eqr):
    batches = _random_batches(1, 2)
    with pytest.raises(ValueError, match="halt_max_steps"):
        EvalPlan([0, 2])
    with pytest.raises(ValueError, match="convergence_top_k"):
        EvalPlan([2], breadth=Breadth(restarts=2), selection=Selection(top_k=3))
    eqr.train()
    try:
        with pytest.raises(ValueError, match="eval"):
            run_evaluation(eqr, batches, EvalPlan([2]))
    finally:
        eqr.eval()


def test_global_rng_state_is_restored(eqr):
    state = torch.random.get_rng_state()
    run_evaluation(eqr, _random_batches(1, 2), EvalPlan([2]))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_per_trajectory_rows_on_the_hand_case():
    model = drifting_model(HAND_PREDS, HAND_SPEEDS)
    batches = [(batch([1], [[1, 2, 3]], pad=1), 1), (batch([2], [[0, 1, -100]], pad=1), 1)]
    result = run_evaluation(model, batches, EvalPlan([1, 3], breadth=OWN, selection=Selection(top_k=2, window=2),
                                                     outputs=Outputs(per_trajectory=True)))
    rows = result.per_trajectory[3]
    # puzzle: the index in the split; each batch of 2 rows holds 1 puzzle and 1 padding row
    assert rows["puzzle"] == [0] * 4 + [2] * 4 and rows["restart"] == [0, 1, 2, 3] * 2 and rows["rank"] == [0] * 8
    assert rows["exact"] == [1, 0, 0, 1, 0, 1, 1, 0]
    assert rows["convergence_score"] == pytest.approx([2 * s for s in HAND_SPEEDS[1] + HAND_SPEEDS[2]])
    assert rows["steps"] == [3] * 8
    assert all(score != score for score in result.per_trajectory[1]["convergence_score"])  # NaN at depth 1
    assert run_evaluation(model, batches, EvalPlan([3], breadth=OWN)).per_trajectory is None


def test_per_trajectory_rows_average_to_the_metrics(eqr):
    batches = _random_batches(3, 4, pad_last=2)
    plan = EvalPlan([2, 4], breadth=Breadth(restarts=2), runtime=Runtime(seed=3))
    result = run_evaluation(eqr, batches, dataclasses.replace(plan, outputs=Outputs(per_trajectory=True)))
    for depth in (2, 4):
        rows, metrics = result.per_trajectory[depth], result.metrics[depth]
        assert len(rows["exact"]) == metrics["count"] == 2 * 10
        assert sum(rows["accuracy"]) / len(rows["accuracy"]) == pytest.approx(metrics["accuracy"])
        assert sum(rows["exact"]) / len(rows["exact"]) == pytest.approx(metrics["exact_accuracy"])
        assert sum(rows["final_residual"]) / 20 == pytest.approx(metrics["final_residual"], rel=1e-5)
    assert result.per_trajectory[2]["final_residual"] != result.per_trajectory[4]["final_residual"]
    assert result.metrics == run_evaluation(eqr, batches, plan).metrics
