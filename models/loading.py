"""The model for a dataset: built from a checkpoint or an arch config, with the dataset's fields, and
its weights loaded, every mismatch reported by name.

Every caller (training, evaluation, visualization, benchmarks) gets its model from `model_for_dataset`,
so the trainer and `evaluate.py` build the same network from the same checkpoint and dataset.
Checkpoints of any layout are read through `utils.checkpoint.read_checkpoint`; the EMA shadow is
used when the file has one (unless asked otherwise). Data fields the checkpoint's `config.arch`
leaves to the dataset (seq_len, vocab_size, num_puzzle_identifiers) come from the dataset's metadata
(`data_fields`) or, where the weights pin them, from the weights.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from models.act import ACTModel
from models.config import ArchConfig, puzzle_positions
from models.registry import build_reasoner, canonical_name, unknown_arch_keys
from utils.checkpoint import CheckpointContents, canonical_state_dict, read_checkpoint
from utils.safe_load import CheckpointError
from utils.validation import ConfigError

log = logging.getLogger(__name__)

# The arch fields a run sets rather than the architecture: the dataset's shape, and the batch.
DATA_FIELDS = ("seq_len", "vocab_size", "num_puzzle_identifiers", "batch_size")


class DatasetShape(Protocol):
    """What a model needs of a dataset's metadata (`dataset.format.DatasetMetadata`)."""

    seq_len: int
    vocab_size: int
    num_puzzle_identifiers: int


def data_fields(meta: DatasetShape) -> dict[str, int]:
    """seq_len, vocab_size and num_puzzle_identifiers of a dataset: what its dataset.json fixes of the model."""
    return {"seq_len": meta.seq_len, "vocab_size": meta.vocab_size,
            "num_puzzle_identifiers": meta.num_puzzle_identifiers}


@dataclass
class LoadReport:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 4) -> str:
        """At most `limit` names per group, then how many more: a wrong checkpoint is one readable line."""
        groups = (("missing", self.missing), ("unexpected", self.unexpected), ("shape mismatch", self.mismatched))
        return "; ".join(f"{label}: {', '.join(names[:limit])}" + (f" and {len(names) - limit} more"
                                                                     if len(names) > limit else "")
                         for label, names in groups if names)


def check_architecture(checkpoint_arch: dict[str, Any], arch_name: str | None, source: str) -> None:
    """A checkpoint of another architecture ends in one line naming both, not in a list of every
    parameter that does not fit."""
    found = checkpoint_arch.get("name")
    if not found or not arch_name or canonical_name(found) == canonical_name(arch_name):
        return
    group = canonical_name(found).split("@")[0]
    raise CheckpointError(f"{source}: checkpoint is {found}, config is {arch_name}; use a config of that "
                          f"architecture (e.g. arch={group}) or another checkpoint")


PUZZLE_TABLE = "inner.puzzle_emb.weights"


def _fit_puzzle_table(state: dict[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                      source: str) -> dict[str, torch.Tensor]:
    """TRM's `load_checkpoint`: a puzzle-embedding table with another number of puzzles than the model's
    (weights trained on another dataset) is replaced by its mean row in every row, with one log line."""
    table, want = state.get(PUZZLE_TABLE), expected.get(PUZZLE_TABLE)
    if table is None or want is None or table.shape == want.shape or table.shape[1:] != want.shape[1:]:
        return state
    log.warning("%s: %s has %d puzzle rows, the model %d; every row starts from the checkpoint's mean row",
                source, PUZZLE_TABLE, table.shape[0], want.shape[0])
    return {**state, PUZZLE_TABLE: table.mean(dim=0, keepdim=True).expand(want.shape).to(want.dtype)}


def load_model_state(
    model: ACTModel, state: dict[str, torch.Tensor], strict: bool = True, source: str = "state dict"
) -> LoadReport:
    """Load a state dict in any of the accepted key schemes into an ACT model, reporting by name; a puzzle
    table of another size is resized (`_fit_puzzle_table`), every other shape mismatch is reported."""
    expected = model.state_dict()
    state = _fit_puzzle_table(canonical_state_dict(state), expected, source)
    report = LoadReport(
        missing=sorted(set(expected) - set(state)),
        unexpected=sorted(set(state) - set(expected)),
        mismatched=sorted(
            f"{k} (checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)})"
            for k, v in expected.items()
            if k in state and state[k].shape != v.shape
        ),
    )
    if not report.ok:
        if strict:
            raise CheckpointError(f"{source}: does not fit the model: {report.describe()}")
        log.warning("%s: loading non-strictly: %s", source, report.describe())
    bad = {m.split(" ")[0] for m in report.mismatched}
    model.load_state_dict({k: v for k, v in state.items() if k in expected and k not in bad}, strict=False)
    return report


def infer_data_fields(arch: dict[str, Any], state: dict[str, torch.Tensor]) -> dict[str, int]:
    """Recover vocab_size, num_puzzle_identifiers and (where the weights pin it) seq_len.

    Released configs leave these to the dataset's dataset.json; the weights determine them
    whenever a table or a token-mixing MLP has one row per token or puzzle.
    """
    state = canonical_state_dict(state)
    fields: dict[str, int] = {}
    if "inner.embed_tokens.embedding_weight" in state:
        fields["vocab_size"] = state["inner.embed_tokens.embedding_weight"].shape[0]
    if PUZZLE_TABLE in state:
        fields["num_puzzle_identifiers"] = state[PUZZLE_TABLE].shape[0]
    plen = puzzle_positions(int(arch.get("puzzle_emb_ndim", 0) or 0), int(arch.get("hidden_size", 1)),
                            int(arch.get("puzzle_emb_len", 0) or 0))
    for key in ("inner.L_level.layers.0.mlp_t.down_proj.weight", "inner.embed_pos.embedding_weight",
                "inner.absolute_pos_embedding"):
        if key in state:
            fields["seq_len"] = state[key].shape[0] - plen
            break
    if "seq_len" not in fields and arch.get("board_height") and arch.get("board_width"):
        fields["seq_len"] = int(arch["board_height"]) * int(arch["board_width"])
    return fields


@dataclass
class LoadedModel:
    """A built model and where its weights came from: what an evaluation record says about it."""

    act_model: ACTModel
    contents: CheckpointContents | None  # the checkpoint its weights came from; None: initialised here
    used_ema: bool

    @property
    def config(self) -> dict[str, Any]:
        return self.contents.config if self.contents else {}

    @property
    def step(self) -> int | None:
        return self.contents.step if self.contents else None


def _weights(contents: CheckpointContents, use_ema: bool) -> tuple[dict[str, torch.Tensor], bool]:
    """The checkpoint's model weights with its EMA shadow on top when it holds one and `use_ema` asks."""
    state = dict(contents.model_state)
    used_ema = bool(use_ema and contents.ema_state)
    if used_ema:
        state.update(contents.ema_state or {})
    elif use_ema:
        log.info("%s: holds no EMA weights; using its model weights", contents.path)
    return state, used_ema


def _checkpoint_model(contents: CheckpointContents, state: dict[str, torch.Tensor],
                      fields: dict[str, Any]) -> ACTModel:
    """The reasoner a checkpoint's `config.arch` describes; `fields` win over what its weights pin."""
    path, arch = contents.path, contents.arch
    try:
        unknown = unknown_arch_keys(arch) if "name" in arch else []
        if unknown:  # a checkpoint is an artifact: load it, but say what its config holds that is not used
            log.warning("%s: config.arch keys unknown to %s are ignored: %s", path, arch["name"], ", ".join(unknown))
        return build_reasoner(arch, {**infer_data_fields(arch, state), **fields})
    except ConfigError as err:
        hint = " (pass the dataset, whose dataset.json gives seq_len)" if "seq_len" in str(err) else ""
        raise CheckpointError(f"{path}: {err}{hint}") from None


def model_for_dataset(
    source: CheckpointContents | ArchConfig | Mapping[str, Any],
    fields: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    use_ema: bool = True,
    weights: CheckpointContents | None = None,
    strict: bool = True,
) -> LoadedModel:
    """The reasoner for a dataset, weights loaded: the one way every caller gets its model.

    `source` is a checkpoint (its `config.arch`, its weights) or an arch config, whose weights come from
    `weights` (training's `load_checkpoint=`) or, without one, a fresh init under the current RNG. The
    dataset's `fields` (`data_fields`), then `overrides`, fill in and change a dict arch; a parsed
    `ArchConfig` already holds them and is built as it is. The EMA shadow is loaded when held and `use_ema`.
    """
    from_checkpoint = isinstance(source, CheckpointContents)
    contents = source if from_checkpoint else weights
    state, used_ema = _weights(contents, use_ema) if contents is not None else ({}, False)
    given = {**(fields or {}), **(overrides or {})}
    model = _checkpoint_model(source, state, given) if from_checkpoint else build_reasoner(source, given)
    if contents is not None:
        check_architecture(contents.arch, model.config.name, str(contents.path))
        load_model_state(model, state, strict=strict, source=str(contents.path))
    return LoadedModel(act_model=model, contents=contents, used_ema=used_ema)


def load_checkpoint(
    path: str | Path,
    *,
    use_ema: bool = True,
    data_fields: dict[str, Any] | None = None,
    strict: bool = True,
) -> LoadedModel:
    """`model_for_dataset(read_checkpoint(path), data_fields)`: a ready model from any supported layout."""
    return model_for_dataset(read_checkpoint(path), data_fields, use_ema=use_ema, strict=strict)
