"""Resolve the reference's `module@Class` names and build a loss-head-wrapped model.

A name that is not registered is imported as the reference's convention reads it, widened to any
importable module: `arch.name=my_pkg.gated@GatedTRMModel` imports `my_pkg.gated` and takes its
`GatedTRMModel` (an `ACTModel` subclass), so a researcher's architecture needs no edit here.
"""

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
from utils.plugins import import_module_named
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


def register_loss_head(name: str, head_cls: type[nn.Module]) -> type[nn.Module]:
    """Make `arch.loss.name=<name>` wrap the model in `head_cls`; returns the class."""
    LOSS_HEADS[name] = head_cls
    return head_cls


def _imported(name: str, base: type, key: str) -> type | None:
    """The class `module@Class` names, imported; None for a name without a module to import it from."""
    module_name, _, class_name = name.rpartition("@")
    if not class_name.isidentifier():
        return None
    try:
        module = import_module_named(module_name, key)
    except ConfigError:
        return None  # not a module path, or no such module: the caller's "unknown name" line says what is known
    found = getattr(module, class_name, None)
    if not (isinstance(found, type) and issubclass(found, base)):
        raise ConfigError(f"{key}: {module_name} has no {base.__name__} subclass named {class_name!r}")
    return found


def _resolve(name: str, table: dict[str, type], key: str, base: type) -> type:
    if name not in table:
        found = _imported(name, base, key)
        if found is None:
            raise ConfigError(f"{key}: unknown name {name!r}; known: {', '.join(sorted(table))}, or module@Class "
                              "of an importable module")
        table[name] = found
    return table[name]


def resolve_architecture(name: str) -> type[ACTModel]:
    return _resolve(name, ARCHITECTURES, "arch.name", ACTModel)


def canonical_name(name: str) -> str:
    """This project's name of an architecture (`hrm@HRMModel` for HRM's upstream name); unknown names as given."""
    model_cls = ARCHITECTURES.get(name)
    return next((n for n, c in ARCHITECTURES.items() if c is model_cls), name) if model_cls else name


def resolve_loss_head(name: str) -> type[nn.Module]:
    return _resolve(name, LOSS_HEADS, "arch.loss.name", nn.Module)


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
