"""What a training checkpoint holds (the released layout) and how a run resumes from it exactly.

Per-rank state (the carry of the rank's rows, its RNG streams) is gathered to rank 0 and
stored under `rank_states`; the top-level `carry`, `rng`, `numpy` and `python` entries are
rank 0's, as in the released layout. A checkpoint of the reference's trainer has only those
top-level entries (one rank's state, its carry a pickled dataclass) and resumes on one rank.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import OmegaConf

from config.schema import PretrainConfig
from models.act import Carry
from utils.checkpoint import CheckpointError, canonical_key, load_model_state
from utils.safe_load import ReferenceModelCarry

if TYPE_CHECKING:
    from utils.trainer import Trainer


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    return obj


def rank_state(carry: Carry | None) -> dict[str, Any]:
    """This rank's carry and RNG streams, on CPU."""
    return {
        "carry": _cpu(carry.to_dict()) if carry is not None else None,
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def checkpoint_payload(trainer: Trainer, rank_states: list[dict[str, Any]]) -> dict[str, Any]:
    own = rank_states[0]
    return {
        "model": trainer.head.state_dict(),
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "config": trainer.config.model_dump(),
        "step": trainer.step,
        "total_steps": trainer.total_steps,
        "optimizers": [opt.state_dict() for opt in trainer.optimizers],
        "optimizer_lrs": [trainer.lr_at(trainer.step, base) for base in trainer.base_lrs],
        "carry": own["carry"],
        "rng": own["rng"],
        "numpy": own["numpy"],
        "python": own["python"],
        "rank_states": rank_states,
        "train_dataset": trainer.train_data.state_dict(),
        "iteration": trainer.step,
        "wandb_run_id": trainer.wandb_run_id,
    }


def write_config_yaml(config: PretrainConfig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(config.model_dump())))
    tmp.replace(path)


def _rank_states(ckpt: dict[str, Any], source: str, world: int) -> list[dict[str, Any]]:
    states = ckpt.get("rank_states")
    if states is None:  # the reference trainer: one rank's state at top level
        states = [{key: ckpt.get(key) for key in ("carry", "rng", "numpy", "python")}]
    if len(states) != world:
        raise CheckpointError(
            f"{source}: written by {len(states)} rank(s), resuming with {world}; "
            "exact resume needs the same number of ranks (use load_checkpoint= to start from its weights)"
        )
    return states


def _check_optimizer_state(optimizer: Any, state: dict[str, Any], source: str) -> None:
    """Moment tensors must have their parameter's shape (torch checks only the group sizes)."""
    params = [p for group in getattr(optimizer, "param_groups", []) for p in group.get("params", [])]
    for index, param_state in (state.get("state") or {}).items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor) and value.ndim and index < len(params) \
                    and value.shape != params[index].shape:
                raise CheckpointError(f"{source}: optimizer state {index}.{key} has shape {tuple(value.shape)}, "
                                      f"the parameter {tuple(params[index].shape)}")


def _carry(state: Any, trainer: Trainer, source: str) -> Carry | None:
    if state is None:
        return None
    if isinstance(state, ReferenceModelCarry):
        state = state.carry_state()
    expected = trainer.head.model.carry_shape(trainer.data_fields["batch_size"])
    if tuple(state["z_H"].shape) != expected:
        raise CheckpointError(f"{source}: carry z_H has shape {tuple(state['z_H'].shape)}, this run needs "
                              f"{expected} (per-rank batch, positions, hidden)")
    return Carry.from_dict(state).to(trainer.device)


def restore(trainer: Trainer, ckpt: Any, source: str) -> None:
    """Put a trainer back exactly where the checkpoint was taken."""
    if not isinstance(ckpt, dict) or "optimizers" not in ckpt or "model" not in ckpt:
        raise CheckpointError(f"{source}: not a training checkpoint with optimizer state; resume= needs one "
                              "(use load_checkpoint= to start from its weights)")
    states = _rank_states(ckpt, source, trainer.dist.world_size)
    load_model_state(trainer.head.model, ckpt["model"], strict=True, source=source)
    if trainer.ema is not None:
        if not ckpt.get("ema"):
            raise CheckpointError(f"{source}: has no EMA state but ema=true")
        shadow = {f"model.{canonical_key(k)}": v for k, v in ckpt["ema"]["shadow"].items()}
        trainer.ema.load_state_dict({"mu": ckpt["ema"]["mu"], "shadow": shadow})
    if len(ckpt["optimizers"]) != len(trainer.optimizers):
        raise CheckpointError(f"{source}: {len(ckpt['optimizers'])} optimizer states for {len(trainer.optimizers)}")
    for optimizer, state in zip(trainer.optimizers, ckpt["optimizers"], strict=True):
        _check_optimizer_state(optimizer, state, source)
        optimizer.load_state_dict(state)
    trainer.step = int(ckpt["step"])
    try:
        trainer.train_data.load_state_dict(ckpt["train_dataset"])
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{source}: train_dataset: {err}") from None
    trainer.wandb_run_id = ckpt.get("wandb_run_id")

    own = states[trainer.dist.rank]
    trainer.carry = _carry(own["carry"], trainer, source)
    torch.set_rng_state(own["rng"]["torch"])
    if own["rng"].get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(own["rng"]["cuda"])
    np.random.set_state(own["numpy"])
    random.setstate(own["python"])
