"""Breadth restarts for every architecture, and the reference's way of counting (SPEC 5.1) by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from evaluation.engine import run_evaluation
from evaluation.plan import Breadth, EvalPlan, Outputs, Runtime, Selection
from models.registry import build_model
from tests.conftest import ScriptedInner, scripted_model, tiny_arch

# ---------------------------------------------------------------- restarts for every architecture

ARCHS = {
    "trm": tiny_arch("trm@TRMModel", seq_len=2, vocab_size=3, hidden_size=8, num_heads=1),
    "hrm": tiny_arch("hrm@HRMModel", seq_len=2, vocab_size=3, hidden_size=8, num_heads=1, puzzle_emb_ndim=8),
}


def _puzzles(count: int, seed: int = 0) -> list[tuple[dict[str, torch.Tensor], int]]:
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(1, 3, (count, 2), generator=g, dtype=torch.int32)
    labels = torch.randint(0, 3, (count, 2), generator=g, dtype=torch.int32)
    return [({"inputs": inputs, "labels": labels, "puzzle_identifiers": torch.zeros(count, dtype=torch.int32)},
             count)]


@pytest.mark.parametrize("kind", sorted(ARCHS))
def test_fixed_init_models_get_distinct_restarts(kind):
    torch.manual_seed(3)
    model = build_model(ARCHS[kind]).model.eval()
    batches = _puzzles(16)
    restarts = run_evaluation(model, batches, EvalPlan([3], breadth=Breadth(restarts=4),
                                                       outputs=Outputs(per_trajectory=True),
                                                       runtime=Runtime(progress=False)))
    plan = EvalPlan([3], breadth=Breadth(restarts=4, restart_std=None), outputs=Outputs(per_trajectory=True),
                    runtime=Runtime(progress=False))
    same = run_evaluation(model, batches, plan)
    residual = torch.tensor(restarts.per_trajectory[3]["final_residual"]).view(16, 4)
    assert all(len(set(row.tolist())) == 4 for row in residual), "the 4 restarts of a puzzle must differ"
    fixed = torch.tensor(same.per_trajectory[3]["final_residual"]).view(16, 4)
    assert all(len(set(row.tolist())) == 1 for row in fixed)  # the model's own reset: 4 identical copies

    m, s = restarts.metrics[3], same.metrics[3]
    assert s["different_init/any_correct"] == s["different_init/pass@1"] == s["different_init/avg_pass_rate"]
    assert m["different_init/any_correct"] > m["different_init/pass@2"] > m["different_init/pass@1"] > 0
    assert m["different_init/pass@1"] == pytest.approx(m["different_init/avg_pass_rate"])
    assert m["different_init/any_correct"] >= m["majority_vote/exact_accuracy"]


@pytest.mark.parametrize("kind", sorted(ARCHS))
def test_breadth_one_keeps_the_models_own_reset(kind):
    torch.manual_seed(3)
    model = build_model(ARCHS[kind]).model.eval()
    batches = _puzzles(8)
    a = run_evaluation(model, batches, EvalPlan([2], breadth=Breadth(restarts=1, restart_std=0.5),
                                                runtime=Runtime(progress=False))).metrics
    b = run_evaluation(model, batches, EvalPlan([2], breadth=Breadth(restarts=1, restart_std=None),
                                                runtime=Runtime(progress=False))).metrics
    assert a == b


def test_eqr_restarts_equal_its_own_random_initialisation():
    """For EqR at std 1 the breadth draw is RI itself, draw for draw."""
    torch.manual_seed(0)
    eqr = build_model(tiny_arch(noise_scale=0.05)).model.eval()
    batches = [({"inputs": torch.randint(1, 7, (3, 16), dtype=torch.int32),
                 "labels": torch.randint(1, 7, (3, 16), dtype=torch.int32),
                 "puzzle_identifiers": torch.zeros(3, dtype=torch.int32)}, 3)]
    drawn = run_evaluation(eqr, batches, EvalPlan([2, 4], breadth=Breadth(restarts=3, restart_std=1.0),
                                                  runtime=Runtime(progress=False))).metrics
    own = run_evaluation(eqr, batches, EvalPlan([2, 4], breadth=Breadth(restarts=3, restart_std=None),
                                                runtime=Runtime(progress=False))).metrics
    assert drawn == own


def test_eqr_restarts_use_its_own_init_stds():
    """SPEC 5.1: at B > 1 EqR restarts draw z_H with H_init_std, z_L with L_init_std, whatever
    different_init_reset_std says; restart_std={z_H: h, z_L: l} forces the stds for every architecture."""
    torch.manual_seed(0)
    eqr = build_model(tiny_arch(H_init_std=0.5)).model.eval()
    batches = [({"inputs": torch.randint(1, 7, (3, 16), dtype=torch.int32),
                 "labels": torch.randint(1, 7, (3, 16), dtype=torch.int32),
                 "puzzle_identifiers": torch.zeros(3, dtype=torch.int32)}, 3)]

    def final_residuals(restart_std):
        run = run_evaluation(eqr, batches, EvalPlan([3], breadth=Breadth(restarts=4, restart_std=restart_std),
                                                    outputs=Outputs(per_trajectory=True),
                                                    runtime=Runtime(progress=False)))
        return torch.tensor(run.per_trajectory[3]["final_residual"])

    reference_rule = final_residuals(1.0)
    assert torch.equal(reference_rule, final_residuals(7.0))  # different_init_reset_std has no effect on EqR
    # the draws of std 0.5 (z_H), 1.0 (z_L)
    assert torch.equal(reference_rule, final_residuals({"z_H": 0.5, "z_L": 1.0}))
    assert not torch.equal(reference_rule, final_residuals({"z_H": 1.0, "z_L": 1.0}))
    assert len(set(reference_rule.view(3, 4)[0].tolist())) == 4  # four distinct restarts


# ---------------------------------------------------------------- the reference's counting, by hand

S, V, H, B = 3, 12, 8, 2
# Puzzle p (1..10) has label [p % 4, 1, 2]; copy c predicts it right when CORRECT[p][c].
CORRECT = {1: (1, 1), 2: (1, 0), 3: (0, 1), 4: (0, 0), 5: (1, 1), 6: (0, 0), 7: (1, 0), 8: (0, 0), 9: (0, 1),
           10: (1, 1)}
SPEED = {0: 2.0, 1: 1.0}  # copy 1's logits move less: convergence picks copy 1


class HandInner(ScriptedInner):
    """q_halt is +1 for copy 0 and exactly 0 for copy 1; correct answers per CORRECT, drift per SPEED."""

    def outputs(self, step, batch):
        copy = batch["copy"].long()
        puzzle = batch["inputs"][:, 0].long()
        label = torch.stack([puzzle % 4, torch.ones_like(puzzle), torch.full_like(puzzle, 2)], dim=1)
        right = torch.tensor([CORRECT.get(p, (0, 0))[c] for p, c in zip(puzzle.tolist(), copy.tolist(),
                                                                            strict=True)], dtype=torch.bool)
        preds = torch.where(right.view(-1, 1), label, (label + 1) % V)
        speed = torch.tensor([SPEED[c] for c in copy.tolist()])
        logits = 10 * nn.functional.one_hot(preds, V).float() + (speed * step).view(-1, 1, 1)
        return logits, torch.where(copy == 0, 1.0, 0.0)


def _hand_model():
    return scripted_model(HandInner(), S, V, hidden_size=H)


def _hand_batches():
    """10 puzzles at evaluation batch 8: the second batch holds 2 puzzles and 6 padding rows."""
    out = []
    for ids in ([1, 2, 3, 4, 5, 6, 7, 8], [9, 10]):
        pad = 8 - len(ids)
        inputs = torch.tensor([[p, 0, 0] for p in ids] + [[0, 0, 0]] * pad, dtype=torch.int32)
        labels = torch.tensor([[p % 4, 1, 2] for p in ids] + [[-100] * S] * pad, dtype=torch.int32)
        out.append(({"inputs": inputs, "labels": labels, "puzzle_identifiers": torch.zeros(8, dtype=torch.int32)},
                    len(ids)))
    return out


def test_reference_counting_by_hand():
    depth = 3
    run = run_evaluation(_hand_model(), _hand_batches(), EvalPlan([depth],
                                                                  breadth=Breadth(restarts=B, restart_std=None),
                                                                  selection=Selection(top_k=1, window=2),
                                                                  counting="both", runtime=Runtime(progress=False)))
    m = run.metrics[depth]
    per_copy = [CORRECT[p] for p in range(1, 11)]
    any_correct = sum(max(c) for c in per_copy)  # 7 puzzles
    rights = sum(sum(c) for c in per_copy)  # 10 of 20 trajectories
    majority = sum(c[0] for c in per_copy)  # a 1:1 tie goes to copy 0
    converged = sum(c[1] for c in per_copy)  # copy 1 moves least
    clean = {"different_init/any_correct": any_correct / 10, "different_init/avg_pass_rate": rights / 20,
             "majority_vote/exact_accuracy": majority / 10, "convergence_top_k/exact_accuracy": converged / 10,
             "different_init/total_samples": 10, "convergence_top_k/total_samples": 10}
    # Padding rows (labels all ignored) count as solved puzzles: (correct + 6) / 16.
    ref = {"different_init/any_correct": (any_correct + 6) / 16,
           "different_init/avg_pass_rate": (rights / 2 + 6) / 16,
           "majority_vote/exact_accuracy": (majority + 6) / 16,
           "convergence_top_k/exact_accuracy": (converged + 6) / 16,
           "different_init/total_samples": 16, "convergence_top_k/total_samples": 16}
    for key, value in clean.items():
        assert m[key] == pytest.approx(value), key
        assert m[f"ref/{key}"] == pytest.approx(ref[key]), key
    assert m["majority_vote/accuracy"] == m["ref/majority_vote/accuracy"]  # padding has no scored token

    # Per-trajectory metrics count real rows either way, except q_halt's threshold: copy 1 has q_halt = 0,
    # a "halt" for the clean `>= 0` and not for the reference's `> 0`.
    assert m["count"] == m["ref/count"] == 20 and m["exact_accuracy"] == m["ref/exact_accuracy"] == 0.5
    assert m["q_halt_accuracy"] == pytest.approx(rights / 20)  # every row predicts halt
    assert m["ref/q_halt_accuracy"] == pytest.approx(
        (sum(c[0] for c in per_copy) + sum(1 - c[1] for c in per_copy)) / 20)
    # Clean precision pools the counts of real rows. The reference takes each batch's ratio over all 16
    # of its rows (the 6 padding puzzles' rows are correct; copy 0 halts with q = 1, copy 1 has q = 0,
    # which its `>= 0` denominator counts) and weights it by the batch's 16 and 4 valid rows.
    assert m["q_halt_precision"] == pytest.approx(rights / 20)
    first, second = range(1, 9), range(9, 11)
    halted_right = [sum(CORRECT[p][0] for p in first), sum(CORRECT[p][0] for p in second) + 6]
    right = [sum(sum(CORRECT[p]) for p in first), sum(sum(CORRECT[p]) for p in second) + 12]
    assert m["ref/q_halt_precision"] == pytest.approx((halted_right[0] / 16 * 16 + halted_right[1] / 16 * 4) / 20)
    assert m["ref/q_halt_recall"] == pytest.approx((halted_right[0] / right[0] * 16 + halted_right[1] / right[1] * 4)
                                                   / 20)

    # Residuals: every segment after the first moves z_H by 1 in each of S x H entries. The reference sums
    # over all 32 rows (padding included) and divides by the 20 real ones.
    step = math.sqrt(S * H)
    assert m["residual_of_2_steps"] == pytest.approx(step)
    assert m["ref/residual_of_2_steps"] == pytest.approx(step * 32 / 20)
    # Segment 1 in the reference is measured from the state before the reset: the 16 slots (8 rows x 2
    # copies) start from zeros (z_H 0 -> 1), and the second batch's 16 trajectories from the state the
    # first left in their slots (z_H = depth -> 1).
    first = 16 * step
    second = 16 * (depth - 1) * step
    assert m["ref/residual_of_1_steps"] == pytest.approx((first + second) / 20)


class AlwaysHalts(ScriptedInner):
    """q_halt = +1 on every row; puzzle p is answered right when p is odd."""

    def outputs(self, step, batch):
        puzzle = batch["inputs"][:, 0].long()
        label = torch.stack([puzzle % 4, torch.ones_like(puzzle), torch.full_like(puzzle, 2)], dim=1)
        preds = torch.where((puzzle % 2 == 1).view(-1, 1), label, (label + 1) % V)
        return 10 * nn.functional.one_hot(preds, V).float(), torch.ones(puzzle.shape[0])


def test_reference_q_halt_precision_and_recall_count_padding_rows():
    """10 puzzles at batch 8, q_halt > 0 everywhere: batch 2 holds 2 puzzles and 6 padding rows, which the
    reference's per-batch ratios count as halted and correct (SPEC 5.1 "q_halt metrics")."""
    model = scripted_model(AlwaysHalts(), S, V, hidden_size=H)
    plan = EvalPlan([2], counting="both", runtime=Runtime(progress=False))
    m = run_evaluation(model, _hand_batches(), plan).metrics[2]
    odd = [sum(p % 2 for p in range(1, 9)), sum(p % 2 for p in (9, 10))]  # 4 and 1 answered right
    assert m["q_halt_precision"] == pytest.approx(5 / 10) and m["q_halt_recall"] == 1.0
    precision = [odd[0] / 8, (odd[1] + 6) / 8]
    assert m["ref/q_halt_precision"] == pytest.approx((precision[0] * 8 + precision[1] * 2) / 10)
    assert m["ref/q_halt_recall"] == 1.0
    assert m["ref/q_halt_accuracy"] == m["q_halt_accuracy"] == pytest.approx(5 / 10)


def test_reference_counting_alone_uses_the_plain_names():
    plan = EvalPlan([2], breadth=Breadth(restarts=B, restart_std=None), counting="reference",
                    runtime=Runtime(progress=False))
    run = run_evaluation(_hand_model(), _hand_batches(), plan)
    m = run.metrics[2]
    assert not any(k.startswith("ref/") for k in m)
    assert m["different_init/any_correct"] == pytest.approx((7 + 6) / 16)


BF16_LOGITS = torch.randn(3, 4, 3, 5, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)


class BFloat16Logits(ScriptedInner):
    """Restart c of puzzle p emits BF16_LOGITS[t - 1, 2 p + c] at its segment t, in bfloat16 as a GPU forward does."""

    def outputs(self, step, batch):
        row = batch["puzzle_identifiers"].long() * 2 + batch["copy"].long()
        return BF16_LOGITS[step.long() - 1, row], torch.zeros(len(row))


def test_convergence_score_in_the_forward_dtype():
    """The reference scores in bfloat16 on GPU; its scores are those of the rounded logits, in bfloat16."""
    batch = {"inputs": torch.zeros(2, 3, dtype=torch.int32), "labels": torch.zeros(2, 3, dtype=torch.int32),
             "puzzle_identifiers": torch.arange(2, dtype=torch.int32)}
    plan = EvalPlan([3], breadth=Breadth(restarts=2, restart_std=None), selection=Selection(top_k=2, window=2),
                    counting="both", runtime=Runtime(progress=False))
    run = run_evaluation(scripted_model(BFloat16Logits(), 3, 5), [(batch, 2)], plan)
    # top_k = B keeps every restart: the average score is the mean of all four trajectories' scores, each the
    # mean of the 2 changes of a trajectory's logits.
    pairs = list(zip(BF16_LOGITS, BF16_LOGITS[1:], strict=False))
    native = [torch.linalg.vector_norm(b - a, dim=-1).mean(-1) for a, b in pairs]  # in bfloat16
    wide = [torch.linalg.vector_norm(b.float() - a.float(), dim=-1).mean(-1) for a, b in pairs]
    m = run.metrics[3]
    reference, clean = m["ref/convergence_top_k/avg_convergence_score"], m["convergence_top_k/avg_convergence_score"]
    assert reference == pytest.approx(((native[0] + native[1]) / 2).double().mean().item(), rel=1e-12)
    assert clean == pytest.approx(((wide[0] + wide[1]) / 2).double().mean().item(), rel=1e-6)
    assert reference != pytest.approx(clean, rel=1e-4)  # the rounding shows
