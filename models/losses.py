"""Token cross-entropies and the loss heads that wrap a reasoner (`model.inner...` key scheme).

Metrics are summed counts over the rows that halted in this segment (and have at least one
supervised token); dividing by `count` after a cross-rank sum gives the averages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.act import ACTModel, Batch, Carry
from utils.labels import IGNORE_LABEL_ID


def stablemax(x: torch.Tensor, epsilon: float = 1e-30) -> torch.Tensor:
    """s(x) = x + 1 for x >= 0 and 1 / (1 - x) below: positive, without exp's overflow.

    `epsilon` keeps the unselected branch finite at x = 1 (common for bf16 logits), where
    torch.where would otherwise turn its infinite gradient into NaN.
    """
    return torch.where(x < 0, 1 / (1 - x + epsilon), x + 1)


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    s = stablemax(x)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL_ID
) -> torch.Tensor:
    """Per-token loss in float64 (the reference's precision); 0 where the label is ignored."""
    logprobs = log_stablemax(logits.to(torch.float64), dim=-1)
    valid = labels != ignore_index
    index = torch.where(valid, labels, 0).to(torch.long).unsqueeze(-1)
    picked = torch.gather(logprobs, dim=-1, index=index).squeeze(-1)
    return -torch.where(valid, picked, 0)


def softmax_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_LABEL_ID
) -> torch.Tensor:
    """Per-token softmax cross-entropy in float32; 0 where the label is ignored."""
    flat = F.cross_entropy(
        logits.to(torch.float32).reshape(-1, logits.shape[-1]),
        labels.to(torch.long).reshape(-1),
        ignore_index=ignore_index,
        reduction="none",
    )
    return flat.view(labels.shape)


LOSS_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "stablemax_cross_entropy": stablemax_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
}


def _correctness(logits: torch.Tensor, labels: torch.Tensor):
    mask = labels != IGNORE_LABEL_ID
    counts = mask.sum(-1)
    preds = logits.argmax(-1)
    is_correct = mask & (preds == labels)
    seq_correct = is_correct.sum(-1) == counts
    return mask, counts, preds, is_correct, seq_correct


def _metric_counts(carry: Carry, outputs: dict[str, torch.Tensor], counts, is_correct, seq_correct):
    valid = carry.halted & (counts > 0)
    divisor = counts.clamp_min(1)
    halt_pred = outputs["q_halt_logits"] >= 0
    return {
        "count": valid.sum(),
        "accuracy": torch.where(valid, is_correct.float().sum(-1) / divisor, 0).sum(),
        "exact_accuracy": (valid & seq_correct).sum(),
        "q_halt_accuracy": (valid & (halt_pred == seq_correct)).sum(),
        "steps": torch.where(valid, carry.steps, 0).sum(),
    }


class TrainingStep(NamedTuple):
    """What the training head returns for one segment."""

    carry: Carry
    loss: torch.Tensor  # summed over rows; the caller divides by the global batch size
    metrics: dict[str, torch.Tensor]  # metric counts (sums over rows)
    outputs: dict[str, torch.Tensor]  # the outputs asked for by `return_keys`, detached
    all_halted: torch.Tensor  # bool: every row halted in this segment


class InferenceStep(NamedTuple):
    """What the evaluation head returns for one segment."""

    carry: Carry
    metrics: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]
    all_halted: torch.Tensor


class ACTLossHead(nn.Module):
    """Training loss: sum_rows(token CE / valid tokens) + 0.5 * (q_halt BCE + q_continue BCE).

    The caller divides by the global batch size before backward, as the reference does.
    """

    def __init__(self, model: ACTModel, loss_type: str = "stablemax_cross_entropy") -> None:
        super().__init__()
        if loss_type not in LOSS_FUNCTIONS:
            raise ValueError(f"arch.loss.loss_type: unknown {loss_type!r}; known: {sorted(LOSS_FUNCTIONS)}")
        self.model = model
        self.loss_fn = LOSS_FUNCTIONS[loss_type]

    def initial_carry(self, batch: Batch) -> Carry:
        return self.model.initial_carry(batch)

    def forward(
        self, carry: Carry, batch: Batch, return_keys: Sequence[str] = ()
    ) -> TrainingStep:
        carry, outputs = self.model(carry, batch)
        labels = carry.current_data["labels"]
        logits = outputs["logits"]
        with torch.no_grad():
            _, counts, preds, is_correct, seq_correct = _correctness(logits, labels)
            metrics = _metric_counts(carry, outputs, counts, is_correct, seq_correct)
            outputs["preds"] = preds

        divisor = counts.clamp_min(1).unsqueeze(-1)
        lm_loss = (self.loss_fn(logits, labels, ignore_index=IGNORE_LABEL_ID) / divisor).sum()
        q_halt = outputs["q_halt_logits"]
        q_halt_loss = F.binary_cross_entropy_with_logits(q_halt, seq_correct.to(q_halt.dtype), reduction="sum")
        metrics["lm_loss"] = lm_loss.detach()
        metrics["q_halt_loss"] = q_halt_loss.detach()
        loss = lm_loss + 0.5 * q_halt_loss
        if "target_q_continue" in outputs:
            q_continue_loss = F.binary_cross_entropy_with_logits(
                outputs["q_continue_logits"], outputs["target_q_continue"], reduction="sum"
            )
            metrics["q_continue_loss"] = q_continue_loss.detach()
            loss = lm_loss + 0.5 * (q_halt_loss + q_continue_loss)
        returned = {k: outputs[k].detach() for k in return_keys if k in outputs}
        return TrainingStep(carry, loss, metrics, returned, carry.halted.all())


class InferenceLossHead(nn.Module):
    """Evaluation head: the same metric counts (plus q_halt precision/recall counts), no losses."""

    def __init__(self, model: ACTModel) -> None:
        super().__init__()
        self.model = model

    def initial_carry(self, batch: Batch) -> Carry:
        return self.model.initial_carry(batch)

    @torch.no_grad()
    def forward(
        self, carry: Carry, batch: Batch, return_keys: Sequence[str] = ()
    ) -> InferenceStep:
        carry, outputs = self.model(carry, batch)
        _, counts, preds, is_correct, seq_correct = _correctness(outputs["logits"], carry.current_data["labels"])
        metrics = _metric_counts(carry, outputs, counts, is_correct, seq_correct)
        valid = carry.halted & (counts > 0)
        halt_pred = outputs["q_halt_logits"] >= 0
        metrics["q_halt_true_positive"] = (valid & halt_pred & seq_correct).sum()
        metrics["q_halt_predicted_positive"] = (valid & halt_pred).sum()
        metrics["q_halt_actual_positive"] = (valid & seq_correct).sum()
        outputs["preds"] = preds
        returned = {k: outputs[k] for k in return_keys if k in outputs}
        return InferenceStep(carry, metrics, returned, carry.halted.all())
