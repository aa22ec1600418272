"""Cross-entropies, the ACT loss formula and the metric counts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.losses import IGNORE_LABEL_ID, stablemax_cross_entropy
from models.registry import build_model
from tests.conftest import tiny_arch
from tests.test_models import make_batch


def test_stablemax_matches_its_definition():
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    expected = -math.log(3.0 / (3.0 + 0.5 + 1.0))
    assert stablemax_cross_entropy(logits, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-12)
    assert stablemax_cross_entropy(logits, torch.tensor([IGNORE_LABEL_ID])).item() == 0.0
    assert stablemax_cross_entropy(logits, torch.tensor([0])).dtype == torch.float64


def test_act_loss_equals_hand_computation():
    torch.manual_seed(0)
    arch = tiny_arch("trm@TRMModel", no_ACT_continue=False, halt_max_steps=3)
    head = build_model(arch).train()
    with torch.no_grad():
        torch.nn.init.normal_(head.model.inner.q_head.weight, std=0.3)
    batch = make_batch(arch)
    batch["labels"][0, :5] = IGNORE_LABEL_ID
    batch["labels"][3] = IGNORE_LABEL_ID  # a row with nothing to supervise
    carry = head.initial_carry(batch)
    torch.manual_seed(1)
    carry, loss, metrics, outputs, _ = head(carry, batch, return_keys=("logits", "q_halt_logits",
                                                                         "q_continue_logits", "target_q_continue"))
    labels = batch["labels"]
    logits = outputs["logits"].double()
    mask = labels != IGNORE_LABEL_ID
    n = mask.sum(-1).clamp_min(1)
    s = torch.where(logits < 0, 1 / (1 - logits), logits + 1)
    logp = (s / s.sum(-1, keepdim=True)).log()
    token = -torch.where(mask, logp.gather(-1, labels.clamp_min(0).long().unsqueeze(-1)).squeeze(-1), 0)
    lm = (token.sum(-1) / n).sum()
    correct = ((logits.argmax(-1) == labels) | ~mask).all(-1)
    q_halt = F.binary_cross_entropy_with_logits(outputs["q_halt_logits"], correct.float(), reduction="sum")
    q_cont = F.binary_cross_entropy_with_logits(outputs["q_continue_logits"], outputs["target_q_continue"],
                                                reduction="sum")
    assert loss.item() == pytest.approx((lm + 0.5 * (q_halt + q_cont)).item(), rel=1e-6)
    assert metrics["lm_loss"].item() == pytest.approx(lm.item(), rel=1e-9)
    assert set(metrics) >= {"count", "accuracy", "exact_accuracy", "q_halt_accuracy", "steps", "q_continue_loss"}


def test_metrics_count_halted_rows_only():
    arch = tiny_arch(halt_max_steps=2)
    head = build_model(arch).eval()
    batch = make_batch(arch)
    batch["labels"] = torch.zeros_like(batch["labels"])
    with torch.no_grad():
        head.model.inner.lm_head.weight.zero_()
        head.model.inner.lm_head.weight[0].fill_(1.0)  # predicts token 0 wherever the state's sum is positive
    carry = head.initial_carry(batch)
    carry, loss, metrics, _, _ = head(carry, batch)
    assert metrics["count"].item() == 0 and metrics["exact_accuracy"].item() == 0  # nobody halted yet
    carry, loss, metrics, outputs, all_halted = head(carry, batch, return_keys=("preds",))
    assert all_halted and metrics["count"].item() == 4
    exact = (outputs["preds"] == 0).all(-1).sum().item()
    assert metrics["exact_accuracy"].item() == exact
    assert metrics["steps"].item() == 8
    assert metrics["accuracy"].item() == pytest.approx((outputs["preds"] == 0).float().mean(-1).sum().item())


def test_inference_head_reports_precision_recall_counts():
    arch = tiny_arch(halt_max_steps=1)
    head = build_model(arch, loss_head="losses@InferenceLossHead").eval()
    batch = make_batch(arch)
    carry, metrics, outputs, all_halted = head(head.initial_carry(batch), batch, return_keys=("preds", "logits"))
    assert all_halted and metrics["count"].item() == 4
    assert outputs["preds"].shape == (4, 16) and outputs["logits"].shape == (4, 16, 7)
    assert metrics["q_halt_predicted_positive"].item() == 0  # q_head bias -5 at init: never predicts halt
    assert "lm_loss" not in metrics
