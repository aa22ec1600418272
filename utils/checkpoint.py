"""Safe loading of training and released checkpoints (the released layout).

`torch.load(weights_only=True)` refuses every pickled global except tensors and plain
containers; real checkpoints also carry numpy's and Python's RNG state, so exactly the
globals that `np.random.get_state()` pickles are allowed and nothing else.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.act import ACTModel
from models.registry import build_model
from utils.validation import ConfigError

log = logging.getLogger(__name__)

# What np.random.get_state() pickles, under numpy 2's and numpy 1's module names.
RNG_STATE_GLOBALS: list[Any] = [
    np._core.multiarray._reconstruct,
    (np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    np.ndarray,
    np.dtype,
    np.dtypes.UInt32DType,
]

_COMPILE_PREFIX = re.compile(r"(^|\.)_orig_mod\.")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, malformed, unsafe, or does not fit the model."""


def safe_torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load with weights_only=True, admitting only the RNG-state globals; name the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals(RNG_STATE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        match = re.search(r"WeightsUnpickler error: (.*?)\s*(?:Please use|Check the documentation|$)", str(err), re.S)
        detail = " ".join(match.group(1).split()) if match else str(err).splitlines()[0]
        if "Unsupported global" in detail or "allowlisted" in detail:
            raise CheckpointError(
                f"{path}: refused to load: it references a Python object outside the allowed set "
                f"(tensors, containers, numpy/python RNG state): {detail}"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({detail})") from None
    except RuntimeError as err:  # torch's reader raises RuntimeError for non-checkpoint files
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({str(err).splitlines()[0]})") from None


def canonical_key(key: str) -> str:
    """`_orig_mod.model.inner.x` / `model.inner.x` / `inner.x` -> `inner.x`."""
    key = _COMPILE_PREFIX.sub(r"\1", key)
    return key.removeprefix("model.")


def canonical_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {canonical_key(k): v for k, v in state.items()}


@dataclass
class LoadReport:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        groups = (("missing", self.missing), ("unexpected", self.unexpected), ("shape mismatch", self.mismatched))
        return "; ".join(f"{label}: {', '.join(names)}" for label, names in groups if names)


def load_model_state(
    model: ACTModel, state: dict[str, torch.Tensor], strict: bool = True, source: str = "state dict"
) -> LoadReport:
    """Load a state dict in any of the accepted key schemes into an ACT model, reporting by name."""
    state = canonical_state_dict(state)
    expected = model.state_dict()
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
    if "inner.puzzle_emb.weights" in state:
        fields["num_puzzle_identifiers"] = state["inner.puzzle_emb.weights"].shape[0]
    ndim = int(arch.get("puzzle_emb_ndim", 0) or 0)
    hidden = int(arch.get("hidden_size", 1))
    plen = (int(arch.get("puzzle_emb_len", 0) or 0) or -(ndim // -hidden)) if ndim else 0
    for key in ("inner.L_level.layers.0.mlp_t.down_proj.weight", "inner.embed_pos.embedding_weight",
                "inner.absolute_pos_embedding"):
        if key in state:
            fields["seq_len"] = state[key].shape[0] - plen
            break
    if "seq_len" not in fields and arch.get("board_height") and arch.get("board_width"):
        fields["seq_len"] = int(arch["board_height"]) * int(arch["board_width"])
    return fields


@dataclass
class LoadedCheckpoint:
    model: nn.Module  # loss-head-wrapped
    config: dict[str, Any]
    step: int | None
    used_ema: bool
    raw: dict[str, Any]

    @property
    def act_model(self) -> ACTModel:
        return self.model.model


def load_checkpoint(
    path: str | Path,
    *,
    use_ema: bool = True,
    data_fields: dict[str, Any] | None = None,
    loss_head: str | None = "losses@InferenceLossHead",
    strict: bool = True,
    map_location: str | torch.device = "cpu",
) -> LoadedCheckpoint:
    """Build the model a checkpoint describes and load its (EMA, when present and asked) weights."""
    ckpt = safe_torch_load(path, map_location)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not a training checkpoint (needs 'model' and 'config'; found {keys})")
    config = ckpt["config"]
    arch = dict(config.get("arch") or {})
    if not arch:
        raise CheckpointError(f"{path}: config.arch is missing")
    state = canonical_state_dict(ckpt["model"])
    used_ema = False
    ema = ckpt.get("ema")
    if use_ema and ema and ema.get("shadow"):
        state.update(canonical_state_dict(ema["shadow"]))
        used_ema = True
    fields = {**infer_data_fields(arch, state), **(data_fields or {})}
    try:
        model = build_model(arch, fields, loss_head=loss_head)
    except ConfigError as err:
        hint = " (pass the dataset, whose dataset.json gives seq_len)" if "seq_len" in str(err) else ""
        raise CheckpointError(f"{path}: {err}{hint}") from None
    load_model_state(model.model, state, strict=strict, source=str(path))
    return LoadedCheckpoint(model=model, config=config, step=ckpt.get("step"), used_ema=used_ema, raw=ckpt)


STEP_FILE = re.compile(r"^step_(\d+)\.pth$")


def save_checkpoint_atomic(payload: dict[str, Any], path: str | Path) -> Path:
    """Write to a temporary file in the same directory, fsync, then rename over `path`.

    A process killed mid-write leaves at most a stray `.tmp` file, never a truncated
    checkpoint under the final name, so the previous checkpoint stays loadable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def step_checkpoints(directory: str | Path) -> list[Path]:
    """`step_<n>.pth` files in a run directory, oldest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def prune_checkpoints(directory: str | Path, keep_last: int) -> None:
    for old in step_checkpoints(directory)[:-keep_last]:
        old.unlink()
