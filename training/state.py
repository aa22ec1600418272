"""What a training checkpoint holds beyond the components' own state dicts, and how to read it back.

The payload is the released layout (`model`, `ema`, `config`, `step`, `optimizers`, `carry`, `rng`,
`numpy`, `python`, `train_dataset`, ...). Per-rank state (the carry of the rank's rows, its RNG
streams) is gathered to rank 0 and stored under `rank_states` (together: the global carry, rows in rank
order; the sampler's position is global too), so a run resumes on any number of ranks that divides the
global batch (`reshard`). The top-level `carry`, `rng`, `numpy` and `python` entries are rank 0's;
a checkpoint of the reference's trainer has only those (one rank's state, its carry a pickled dataclass).
Each component (model, optimizers, EMA, sampler) saves and restores itself; this module holds
what belongs to none of them: RNG streams, the carry's conversion, consistency checks.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)


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


def rank_states_of(ckpt: dict[str, Any], source: str, world: int, seed: int) -> list[dict[str, Any]]:
    """Every rank's state for `world` ranks; the reference's checkpoints hold one rank's, at top level.
    Written by another number of ranks, the global carry (the ranks' rows in rank order) is split anew
    (`reshard`)."""
    states = ckpt.get("rank_states")
    if states is None:
        states = [{key: ckpt.get(key) for key in ("carry", "rng", "numpy", "python")}]
    if len(states) == world:
        return states
    return reshard(states, world, source, seed=seed, step=int(ckpt.get("step") or 0))


def reshard(states: list[dict[str, Any]], world: int, source: str, *, seed: int, step: int) -> list[dict[str, Any]]:
    """The states of `len(states)` ranks as those of `world` ranks. The carry's rows keep their global
    order, so rank r continues rows [r * B / world, (r + 1) * B / world) of the global batch, as the
    sampler deals them. Random streams belong to a rank and cannot be split: each new rank starts its
    own from (seed, step, rank), so the continuation equals the uninterrupted run's (up to float
    reduction order) only where training draws nothing at random (no halting exploration, noise or RI)."""
    log.info("resume: %s was written by %d rank(s); its global carry is split over %d, each rank's random "
             "streams start afresh", source, len(states), world)
    carries = [s.get("carry") for s in states]
    carries = [c.carry_state() if isinstance(c, ReferenceModelCarry) else c for c in carries]
    if any(c is None for c in carries):
        if not all(c is None for c in carries):
            raise CheckpointError(f"{source}: some ranks have a carry and some have none")
        return [{"carry": None, "rng": None, "seed": _stream_seed(seed, step, r)} for r in range(world)]
    rows = int(carries[0]["steps"].shape[0]) * len(carries)
    if rows % world:
        raise CheckpointError(f"{source}: written by {len(states)} rank(s) with a global batch of {rows} rows, "
                              f"which does not divide into {world} ranks")

    def split(parts: list[torch.Tensor]) -> list[torch.Tensor]:
        return [chunk.clone() for chunk in torch.cat(parts).chunk(world)]

    pieces = {key: split([c[key] for c in carries]) for key in carries[0] if key != "current_data"}
    data = {key: split([c["current_data"][key] for c in carries]) for key in carries[0]["current_data"]}
    return [{"carry": {**{key: chunks[r] for key, chunks in pieces.items()},
                       "current_data": {key: chunks[r] for key, chunks in data.items()}},
             "rng": None, "seed": _stream_seed(seed, step, r)} for r in range(world)]


def _stream_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def restore_rng(own: dict[str, Any]) -> None:
    """The rank's random streams as saved, or (after `reshard`) fresh ones from the seed it was given."""
    if own.get("rng") is None:
        seed_everything(own["seed"])
    else:
        set_rng_state(own)


def carry_from(state: Any, shapes: dict[str, tuple[int, ...]], device: torch.device, source: str) -> Carry | None:
    """Our `Carry` from a checkpoint's carry (ours, or the reference's dataclass), its latents checked
    against `shapes` (this run's, by name)."""
    if state is None:
        return None
    if isinstance(state, ReferenceModelCarry):
        state = state.carry_state()
    carry = Carry.from_dict(state)
    if set(carry.latents) != set(shapes):
        raise CheckpointError(f"{source}: carry holds latents {', '.join(carry.latents)}, this model has "
                              f"{', '.join(shapes)}")
    for name, shape in shapes.items():
        if tuple(carry.latents[name].shape) != tuple(shape):
            raise CheckpointError(f"{source}: carry {name} has shape {tuple(carry.latents[name].shape)}, this run "
                                  f"needs {tuple(shape)} (per-rank batch, positions, hidden)")
    return carry.to(device)


def ema_shadow(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's EMA state with its keys in our `model.inner.*` scheme (compile prefixes dropped)."""
    ema = ckpt["ema"]
    return {"mu": ema["mu"], "shadow": {f"model.{canonical_key(k)}": v for k, v in ema["shadow"].items()}}


def write_config_yaml(config: dict[str, Any], path: Path) -> None:
    """`all_config.yaml` beside the checkpoints (the layout HRM and TRM releases use)."""
    with atomic_file(path, "w") as handle:
        handle.write(OmegaConf.to_yaml(OmegaConf.create(config)))
