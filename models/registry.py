"""Resolve the reference's `module@Class` names and build a loss-head-wrapped model."""

from __future__ import annotations

from typing import Any

from torch import nn

from models.act import ACTModel
from models.config import ArchConfig
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

# `arch` keys the reference's configs carry that this project does not use.
REFERENCE_ONLY_ARCH_KEYS = frozenset({"causal"})


def unknown_arch_keys(arch: dict[str, Any]) -> list[str]:
    """Keys of `arch` that its architecture does not know (the reference-only ones excepted)."""
    fields = resolve_architecture(arch["name"]).config_cls.model_fields
    return sorted(k for k in arch if k not in fields and k not in REFERENCE_ONLY_ARCH_KEYS)


def register_architecture(name: str, model_cls: type[ACTModel]) -> type[ACTModel]:
    """Make `arch.name=<name>` build `model_cls` (docs/extending.md); returns the class."""
    ARCHITECTURES[name] = model_cls
    return model_cls


def _resolve(name: str, table: dict[str, type], key: str) -> type:
    if name not in table:
        raise ConfigError(f"{key}: unknown name {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def resolve_architecture(name: str) -> type[ACTModel]:
    return _resolve(name, ARCHITECTURES, "arch.name")


def canonical_name(name: str) -> str:
    """This project's name of an architecture (`hrm@HRMModel` for HRM's upstream name); unknown names as given."""
    model_cls = ARCHITECTURES.get(name)
    return next((n for n, c in ARCHITECTURES.items() if c is model_cls), name) if model_cls else name


def resolve_loss_head(name: str) -> type[nn.Module]:
    return _resolve(name, LOSS_HEADS, "arch.loss.name")


def build_reasoner(arch: dict[str, Any] | ArchConfig, data_fields: dict[str, Any] | None = None) -> ACTModel:
    """The bare reasoner of an `arch` config: a parsed `ArchConfig` as it is, or a dict (the reference's
    layout) with `data_fields` (seq_len, vocab_size, num_puzzle_identifiers, batch_size) filling in
    what a checkpoint's `config.arch` leaves to the dataset."""
    name = arch.name if isinstance(arch, ArchConfig) else arch.get("name")
    if name is None:
        raise ConfigError(f"arch.name: missing; known: {', '.join(sorted(ARCHITECTURES))}")
    model_cls = resolve_architecture(name)
    return model_cls(arch if isinstance(arch, ArchConfig) else {**arch, **(data_fields or {})})


def build_model(
    arch: dict[str, Any] | ArchConfig, data_fields: dict[str, Any] | None = None, loss_head: str | None = None
) -> nn.Module:
    """`LossHead(Model(config))`; `loss_head` overrides `arch.loss.name` (evaluation's `losses@InferenceLossHead`)."""
    return with_loss_head(build_reasoner(arch, data_fields), loss_head)


def with_loss_head(model: ACTModel, loss_head: str | None = None) -> nn.Module:
    """`model` in the loss head its `arch.loss` names (or `loss_head`): what training runs."""
    loss = model.config.loss
    head_cls = resolve_loss_head(loss_head or loss.name)
    if head_cls is ACTLossHead:
        return ACTLossHead(model, loss_type=loss.loss_type)
    return head_cls(model)
