"""What a training checkpoint holds (the released layout) and how a run resumes from it exactly.

Per-rank state (the carry of the rank's rows, its RNG streams) is gathered to rank 0 and
stored under `rank_states`; the top-level `carry`, `rng`, `numpy` and `python` entries are
rank 0's, as in the released layout.
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
from utils.checkpoint import CheckpointError, load_model_state

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


def restore(trainer: Trainer, ckpt: dict[str, Any], source: str) -> None:
    """Put a trainer back exactly where the checkpoint was taken."""
    world = trainer.dist.world_size
    states = ckpt.get("rank_states") or []
    if len(states) != world:
        raise CheckpointError(
            f"{source}: written by {len(states) or 1} rank(s), resuming with {world}; "
            "exact resume needs the same number of ranks (use load_checkpoint= to start from its weights)"
        )
    load_model_state(trainer.head.model, ckpt["model"], strict=True, source=source)
    if trainer.ema is not None:
        if not ckpt.get("ema"):
            raise CheckpointError(f"{source}: has no EMA state but ema=true")
        trainer.ema.load_state_dict({"mu": ckpt["ema"]["mu"], "shadow": ckpt["ema"]["shadow"]})
    if len(ckpt["optimizers"]) != len(trainer.optimizers):
        raise CheckpointError(f"{source}: {len(ckpt['optimizers'])} optimizer states for {len(trainer.optimizers)}")
    for optimizer, state in zip(trainer.optimizers, ckpt["optimizers"], strict=True):
        optimizer.load_state_dict(state)
    trainer.step = int(ckpt["step"])
    trainer.train_data.load_state_dict(ckpt["train_dataset"])
    trainer.wandb_run_id = ckpt.get("wandb_run_id")

    own = states[trainer.dist.rank]
    carry = own["carry"]
    trainer.carry = Carry.from_dict(carry).to(trainer.device) if carry is not None else None
    torch.set_rng_state(own["rng"]["torch"])
    if own["rng"].get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(own["rng"]["cuda"])
    np.random.set_state(own["numpy"])
    random.setstate(own["python"])
