"""Checkpoints in every supported layout, turned into a model; atomic writes of our own.

Three layouts are read (README, "Loading released checkpoints"):
- this project's training checkpoints and the EqR release: a dict with `model`, `ema`, `config`, ...;
- the reference trainer's `step_<N>_<run id>.pth`: the same dict with a pickled carry dataclass,
  admitted by `utils.safe_load`;
- the HRM / TRM release layout: a bare state dict (`_orig_mod.model.inner.*`, no EMA) in a file
  such as `checkpoint` or `step_<N>`, with the training config in `all_config.yaml` beside it.
Keys are canonicalised to `inner.*` whatever compile or wrapper prefixes they carry.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from models.act import ACTModel
from models.registry import build_model, unknown_arch_keys
from utils.safe_load import CheckpointError, safe_torch_load
from utils.validation import ConfigError

log = logging.getLogger(__name__)

_COMPILE_PREFIX = re.compile(r"(^|\.)_orig_mod\.")
RELEASE_CONFIG = "all_config.yaml"


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
class CheckpointContents:
    """One checkpoint file in any layout: weights and EMA under canonical keys, the training config."""

    path: Path
    model_state: dict[str, torch.Tensor]
    ema_state: dict[str, torch.Tensor] | None
    config: dict[str, Any]
    step: int | None
    raw: dict[str, Any]  # the file's own dict (a training checkpoint) or the bare state dict

    @property
    def arch(self) -> dict[str, Any]:
        return dict(self.config.get("arch") or {})

    @property
    def data_paths(self) -> list[str]:
        """The dataset the checkpoint was trained on: `dataset.data_path(s)` or the release's `data_path`."""
        data = self.config.get("dataset") or {}
        paths = data.get("data_paths") or data.get("data_path") or self.config.get("data_path") or []
        return [str(p) for p in ([paths] if isinstance(paths, str) else paths)]


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def read_release_config(checkpoint: Path) -> dict[str, Any]:
    """`all_config.yaml` beside a bare state dict; one line naming the file when missing or unreadable."""
    path = checkpoint.parent / RELEASE_CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; {checkpoint.name} is a bare state dict (HRM/TRM release layout) "
                              f"and takes its architecture from this file")
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise CheckpointError(f"{path}: unreadable ({' '.join(str(err).split())})") from None
    if not isinstance(config, dict) or not isinstance(config.get("arch"), dict) or "name" not in config["arch"]:
        raise CheckpointError(f"{path}: unreadable (expected a mapping with arch.name, as HRM/TRM write)")
    return config


def read_checkpoint(path: str | Path, *, need_config: bool = True) -> CheckpointContents:
    """Read any supported layout on CPU. `need_config=False` accepts a bare state dict without its yaml."""
    path = Path(path)
    raw = safe_torch_load(path, map_location="cpu")
    step_match = re.match(r"^step_(\d+)", path.name)
    if isinstance(raw, dict) and "model" in raw and ("config" in raw or not need_config):
        ema = raw.get("ema")
        shadow = ema.get("shadow") if isinstance(ema, dict) else None
        config = raw.get("config") or {}
        if need_config and (not isinstance(config, dict) or not config.get("arch")):
            raise CheckpointError(f"{path}: config.arch is missing")
        return CheckpointContents(path=path, model_state=canonical_state_dict(raw["model"]),
                                  ema_state=canonical_state_dict(shadow) if shadow else None, config=config,
                                  step=raw.get("step"), raw=raw)
    if _is_state_dict(raw):
        config = read_release_config(path) if need_config else {}
        return CheckpointContents(path=path, model_state=canonical_state_dict(raw), ema_state=None, config=config,
                                  step=int(step_match.group(1)) if step_match else None, raw=raw)
    found = sorted(map(str, raw))[:8] if isinstance(raw, dict) else type(raw).__name__
    raise CheckpointError(f"{path}: not a training checkpoint (needs 'model' and 'config', or a state dict with "
                          f"{RELEASE_CONFIG} beside it; found {found})")


@dataclass
class LoadedCheckpoint:
    model: nn.Module  # loss-head-wrapped
    contents: CheckpointContents
    used_ema: bool

    @property
    def act_model(self) -> ACTModel:
        return self.model.model

    @property
    def config(self) -> dict[str, Any]:
        return self.contents.config

    @property
    def step(self) -> int | None:
        return self.contents.step


def build_from_checkpoint(
    contents: CheckpointContents,
    *,
    use_ema: bool = True,
    data_fields: dict[str, Any] | None = None,
    loss_head: str | None = "losses@InferenceLossHead",
    strict: bool = True,
) -> LoadedCheckpoint:
    """Build the model a checkpoint describes and load its (EMA, when present and asked) weights."""
    path = contents.path
    arch = contents.arch
    state = dict(contents.model_state)
    used_ema = bool(use_ema and contents.ema_state)
    if used_ema:
        state.update(contents.ema_state or {})
    elif use_ema:
        log.info("%s: holds no EMA weights; using its model weights", path)
    fields = {**infer_data_fields(arch, state), **(data_fields or {})}
    try:
        unknown = unknown_arch_keys(arch) if "name" in arch else []
        if unknown:  # a checkpoint is an artifact: load it, but say what its config holds that is not used
            log.warning("%s: config.arch keys unknown to %s are ignored: %s", path, arch["name"], ", ".join(unknown))
        model = build_model(arch, fields, loss_head=loss_head)
    except ConfigError as err:
        hint = " (pass the dataset, whose dataset.json gives seq_len)" if "seq_len" in str(err) else ""
        raise CheckpointError(f"{path}: {err}{hint}") from None
    load_model_state(model.model, state, strict=strict, source=str(path))
    return LoadedCheckpoint(model=model, contents=contents, used_ema=used_ema)


def load_checkpoint(
    path: str | Path,
    *,
    use_ema: bool = True,
    data_fields: dict[str, Any] | None = None,
    loss_head: str | None = "losses@InferenceLossHead",
    strict: bool = True,
) -> LoadedCheckpoint:
    """`build_from_checkpoint(read_checkpoint(path))`: a ready model from any supported layout."""
    return build_from_checkpoint(read_checkpoint(path), use_ema=use_ema, data_fields=data_fields,
                                 loss_head=loss_head, strict=strict)


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
