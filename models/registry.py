"""Resolve the reference's `module@Class` names and build a loss-head-wrapped model."""

from __future__ import annotations

from typing import Any

from torch import nn

from models.act import ACTModel
from models.eqr import EqRModel
from models.hrm import HRMModel
from models.losses import ACTLossHead, InferenceLossHead
from models.transformer import TransformerModel
from models.trm import TRMModel
from utils.validation import ConfigError

ARCHITECTURES: dict[str, type[ACTModel]] = {
    "eqr@EqRModel": EqRModel,
    "trm@TRMModel": TRMModel,
    "hrm@HRMModel": HRMModel,
    "transformer@TransformerModel": TransformerModel,
    # Upstream names, so HRM and TRM release configs load as they are.
    "hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1": HRMModel,
    "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1": TRMModel,
}

LOSS_HEADS: dict[str, type[nn.Module]] = {
    "losses@ACTLossHead": ACTLossHead,
    "losses@InferenceLossHead": InferenceLossHead,
}

DEFAULT_LOSS = {"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"}

# `arch` keys that are not architecture fields: the class name, the loss head, a display name ...
ARCH_META_KEYS = frozenset({"name", "loss", "short_name"})
# ... and keys the reference's configs carry that this project does not use.
REFERENCE_ONLY_ARCH_KEYS = frozenset({"causal"})


def unknown_arch_keys(arch: dict[str, Any]) -> list[str]:
    """Keys of `arch` that its architecture does not know (the reference-only ones excepted)."""
    fields = resolve_architecture(arch["name"]).config_cls.model_fields
    return sorted(k for k in arch if k not in fields and k not in ARCH_META_KEYS and k not in REFERENCE_ONLY_ARCH_KEYS)


def _resolve(name: str, table: dict[str, type], key: str) -> type:
    if name not in table:
        raise ConfigError(f"{key}: unknown name {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def resolve_architecture(name: str) -> type[ACTModel]:
    return _resolve(name, ARCHITECTURES, "arch.name")


def resolve_loss_head(name: str) -> type[nn.Module]:
    return _resolve(name, LOSS_HEADS, "arch.loss.name")


def build_model(
    arch: dict[str, Any], data_fields: dict[str, Any] | None = None, loss_head: str | None = None
) -> nn.Module:
    """Build `LossHead(Model(config))` from an `arch` config dict.

    `data_fields` (seq_len, vocab_size, num_puzzle_identifiers, batch_size) fill in what a
    checkpoint's `config.arch` leaves to the dataset. `loss_head` overrides `arch.loss.name`
    (evaluation swaps in `losses@InferenceLossHead`).
    """
    if "name" not in arch:
        raise ConfigError(f"arch.name: missing; known: {', '.join(sorted(ARCHITECTURES))}")
    model_cls = resolve_architecture(arch["name"])
    model = model_cls({**arch, **(data_fields or {})})
    loss_cfg = {**DEFAULT_LOSS, **dict(arch.get("loss") or {})}
    head_name = loss_head or loss_cfg["name"]
    head_cls = resolve_loss_head(head_name)
    if head_cls is ACTLossHead:
        return ACTLossHead(model, loss_type=loss_cfg.get("loss_type", DEFAULT_LOSS["loss_type"]))
    return head_cls(model)
