"""What a training checkpoint holds beyond the components' own state dicts, and how to read it back.

The payload is the released layout (`model`, `ema`, `config`, `step`, `optimizers`, `carry`, `rng`,
`numpy`, `python`, `train_dataset`, ...). Per-rank state (the carry of the rank's rows, its RNG
streams) is gathered to rank 0 and stored under `rank_states`; the top-level `carry`, `rng`,
`numpy` and `python` entries are rank 0's. A checkpoint of the reference's trainer has only those
top-level entries (one rank's state, its carry a pickled dataclass) and resumes on one rank.
Each component (model, optimizers, EMA, sampler) saves and restores itself; this module holds
what belongs to none of them: RNG streams, the carry's conversion, consistency checks.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from models.act import Carry
from utils.atomic import atomic_file
from utils.checkpoint import canonical_key
from utils.safe_load import CheckpointError, ReferenceModelCarry


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    return obj


def rng_state() -> dict[str, Any]:
    """Every RNG stream of this process: torch (CPU and CUDA), numpy, Python."""
    return {"rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"].get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rank_state(carry: Carry | None) -> dict[str, Any]:
    """This rank's carry and RNG streams, on CPU (what rank 0 gathers into `rank_states`)."""
    return {"carry": _cpu(carry.to_dict()) if carry is not None else None, **rng_state()}


def rank_states_of(ckpt: dict[str, Any], source: str, world: int) -> list[dict[str, Any]]:
    """Every rank's state; the reference's checkpoints hold one rank's, at top level."""
    states = ckpt.get("rank_states")
    if states is None:
        states = [{key: ckpt.get(key) for key in ("carry", "rng", "numpy", "python")}]
    if len(states) != world:
        raise CheckpointError(
            f"{source}: written by {len(states)} rank(s), resuming with {world}; "
            "exact resume needs the same number of ranks (load_checkpoint=FILE load_weights_only=true starts from "
            "its weights instead)"
        )
    return states


def carry_from(state: Any, shape: tuple[int, ...], device: torch.device, source: str) -> Carry | None:
    """Our `Carry` from a checkpoint's carry (ours, or the reference's dataclass), checked against `shape`."""
    if state is None:
        return None
    if isinstance(state, ReferenceModelCarry):
        state = state.carry_state()
    if tuple(state["z_H"].shape) != tuple(shape):
        raise CheckpointError(f"{source}: carry z_H has shape {tuple(state['z_H'].shape)}, this run needs "
                              f"{tuple(shape)} (per-rank batch, positions, hidden)")
    return Carry.from_dict(state).to(device)


def ema_shadow(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's EMA state with its keys in our `model.inner.*` scheme (compile prefixes dropped)."""
    ema = ckpt["ema"]
    return {"mu": ema["mu"], "shadow": {f"model.{canonical_key(k)}": v for k, v in ema["shadow"].items()}}


def check_optimizer_state(optimizer: Any, state: dict[str, Any], source: str) -> None:
    """Moment tensors must have their parameter's shape (torch checks only the group sizes)."""
    params = [p for group in getattr(optimizer, "param_groups", []) for p in group.get("params", [])]
    for index, param_state in (state.get("state") or {}).items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor) and value.ndim and index < len(params) \
                    and value.shape != params[index].shape:
                raise CheckpointError(f"{source}: optimizer state {index}.{key} has shape {tuple(value.shape)}, "
                                      f"the parameter {tuple(params[index].shape)}")


def write_config_yaml(config: dict[str, Any], path: Path) -> None:
    """`all_config.yaml` beside the checkpoints (the layout HRM and TRM releases use)."""
    with atomic_file(path, "w") as handle:
        handle.write(OmegaConf.to_yaml(OmegaConf.create(config)))
