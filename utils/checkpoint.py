"""Checkpoint files: the three layouts read into one `CheckpointContents`, and our own written atomically.

Three layouts are read (README, "Loading released checkpoints"):
- this project's training checkpoints and the EqR release: a dict with `model`, `ema`, `config`, ...;
- the reference trainer's `step_<N>_<run id>.pth`: the same dict with a pickled carry dataclass,
  admitted by `utils.safe_load`;
- the HRM / TRM release layout: a bare state dict (`_orig_mod.model.inner.*`, no EMA) in a file
  such as `checkpoint` or `step_<N>`, with the training config in `all_config.yaml` beside it.
Keys are canonicalised to `inner.*` whatever compile or wrapper prefixes they carry. Turning
the contents into a model is `models/loading.py`'s job; nothing here knows an architecture.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from utils.atomic import atomic_file
from utils.safe_load import CheckpointError, safe_torch_load

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


RELEASE_FILE = re.compile(r"^step_(\d+)$")  # HRM/TRM release checkpoints: step_<N>, no suffix


def resolve_checkpoint(path: str | Path) -> Path:
    """A file as it is; a folder means its latest checkpoint: the highest `step_<N>.pth`, else the
    release layout's highest `step_<N>` or its `checkpoint` file."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = step_checkpoints(path) or _numbered(path, RELEASE_FILE)
    if not found and (path / "checkpoint").is_file():
        found = [path / "checkpoint"]
    if not found:
        names = sorted(p.name for p in path.iterdir())[:6]
        raise CheckpointError(f"{path}: a folder without checkpoints (no step_<N>.pth, step_<N> or checkpoint "
                              f"file; it holds {', '.join(names) or 'nothing'})")
    log.info("%s: using its latest checkpoint, %s", path, found[-1].name)
    return found[-1]


def read_checkpoint(path: str | Path, *, need_config: bool = True) -> CheckpointContents:
    """Read any supported layout on CPU (a folder: its latest checkpoint). `need_config=False` accepts
    a bare state dict without its yaml."""
    path = resolve_checkpoint(path)
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


STEP_FILE = re.compile(r"^step_(\d+)\.pth$")


def save_checkpoint_atomic(payload: dict[str, Any], path: str | Path) -> Path:
    """`torch.save` through a temporary file and a rename (`utils.atomic.atomic_file`): a process
    killed mid-write never leaves a truncated checkpoint under the final name."""
    with atomic_file(path) as handle:
        torch.save(payload, handle)
    return Path(path)


CHECKSUM_SUFFIX = ".sha256"


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in 4 MiB blocks (a checkpoint's identity: its checksum record, a saved
    evaluation pass's key)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def checksum_path(path: Path) -> Path:
    """`step_<n>.pth.sha256` beside the checkpoint, in `sha256sum` format (`sha256sum -c` checks it)."""
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def write_checksum(path: str | Path) -> Path:
    """Record the file's SHA-256 beside it: a copy truncated or altered outside our rename (a partial
    sync, a full disk during `cp`) is then told apart from a good checkpoint before it is loaded."""
    path = Path(path)
    with atomic_file(checksum_path(path), "w") as handle:
        handle.write(f"{file_sha256(path)}  {path.name}\n")
    return checksum_path(path)


def verify_checksum(path: str | Path) -> None:
    """Raise `CheckpointError` when the recorded SHA-256 differs from the file's; a checkpoint without a
    record (written before records existed, or killed between the two renames) passes."""
    path = Path(path)
    record = checksum_path(path)
    if not record.is_file():
        return
    expected = (record.read_text().split() or [""])[0]
    actual = file_sha256(path)
    if actual != expected:
        raise CheckpointError(f"{path}: SHA-256 {actual[:12]}... differs from {record.name}'s {expected[:12]}... "
                              f"({path.stat().st_size} bytes: truncated or altered after it was written)")


def payload_bytes(obj: Any) -> int:
    """The tensor bytes a payload holds: about its size on disk, for the free-space check."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(payload_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(payload_bytes(v) for v in obj)
    return 0


def check_free_space(directory: Path, needed: int) -> None:
    """Raise `OSError` (ENOSPC) before a write that would not fit, with both sizes in the message."""
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise OSError(28, f"{free / 2**20:.1f} MiB free on {directory}, the checkpoint needs about "
                          f"{needed / 2**20:.1f} MiB")


def step_checkpoints(directory: str | Path) -> list[Path]:
    """`step_<n>.pth` files in a run directory, oldest step first."""
    directory = Path(directory)
    return _numbered(directory, STEP_FILE) if directory.is_dir() else []


def _numbered(directory: Path, pattern: re.Pattern[str]) -> list[Path]:
    """Files of `directory` whose name `pattern` matches, by the number it captures."""
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := pattern.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def prune_checkpoints(directory: str | Path, keep_last: int) -> None:
    for old in step_checkpoints(directory)[:-keep_last]:
        old.unlink()
        checksum_path(old).unlink(missing_ok=True)
