"""Replay a recorded training trajectory with this project's trainer (SPEC 7.2).

A trajectory file holds the arch and optimiser settings, the initial weights and, per optimizer
step, the summed loss, its parts, the learning rate and the number of rows halted, then the final
weights and EMA shadow. Its dataset sits beside it in `<stem>_data/`. The replay runs the real
`Trainer` (data loader, loss head, AdamATan2, LR schedule, EMA) from the recorded weights, passed
in through `load_checkpoint=` as a bare state dict, and returns what each step produced.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from config.schema import PretrainConfig, load_pretrain_config
from training.trainer import Trainer
from utils.distributed import DistInfo

# Keys of a trajectory file that are training-config keys of the same name.
CONFIG_KEYS = ("global_batch_size", "max_steps", "lr", "lr_warmup_steps", "lr_min_ratio", "beta1", "beta2",
               "weight_decay", "ema_rate", "seed", "puzzle_emb_lr", "puzzle_emb_weight_decay", "grad_clip_norm")


@dataclass
class Replay:
    """Per step: `loss` (summed, before the 1/global_batch_size scaling), `lm_loss`, `q_halt_loss`,
    `lr`, `halted`; then the final weights and EMA shadow (keys `model.inner.*`)."""

    steps: dict[str, list[float]]
    final_state_dict: dict[str, torch.Tensor]
    final_ema_shadow: dict[str, torch.Tensor] | None


def data_dir_for(trajectory: Path) -> Path:
    return trajectory.with_name(f"{trajectory.stem}_data")


def replay_config(recorded: dict[str, Any], data_dir: Path, run_dir: Path, initial: Path, ema: bool) -> PretrainConfig:
    """The training config a trajectory was recorded under, for a single CPU process, from the weights in
    `initial` (a bare state dict)."""
    values = {key: recorded[key] for key in CONFIG_KEYS if key in recorded}
    return load_pretrain_config({
        **values,
        "arch": dict(recorded["arch"]),
        "dataset": {"name": data_dir.name, "data_path": str(data_dir)},
        "epochs": int(recorded["max_steps"]),  # an epoch is >= 1 step, so max_steps (the cap) sets the count
        "ema": ema,
        "load_checkpoint": str(initial),
        "checkpoint_path": str(run_dir),
        "checkpoint_interval_steps": None,
        "eval_interval_steps": None,
        "wandb_mode": "disabled",
        "device": "cpu",
        "compile": False,
    })


def cpu_trainer(config: PretrainConfig) -> Trainer:
    """A single-process CPU trainer: the golden criterion holds on any CPU (SPEC 7.1)."""
    return Trainer(config, DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu")))


def record_steps(trainer: Trainer, count: int) -> Replay:
    """Run `count` optimizer steps (`Trainer.train_step`) and record what each produced."""
    steps: dict[str, list[float]] = {"loss": [], "lm_loss": [], "q_halt_loss": [], "lr": [], "halted": []}
    for _ in range(count):
        metrics = trainer.train_step()
        for key in ("loss", "lm_loss", "q_halt_loss"):
            steps[key].append(metrics[key].item())
        steps["lr"].append(trainer.current_lr)
        steps["halted"].append(int(trainer.halted_rows))
    state = {k: v.detach().clone() for k, v in trainer.head.state_dict().items()}
    shadow = trainer.ema.state_dict()["shadow"] if trainer.ema is not None else None
    return Replay(steps=steps, final_state_dict=state, final_ema_shadow=shadow)


def replay(recorded: dict[str, Any], data_dir: Path) -> Replay:
    """Run `max_steps` optimizer steps from `initial_state_dict` and record every step."""
    with tempfile.TemporaryDirectory(prefix="replay_") as tmp:
        initial = Path(tmp) / "initial_state_dict"
        torch.save(recorded["initial_state_dict"], initial)
        config = replay_config(recorded, data_dir, Path(tmp) / "run", initial, ema="final_ema_shadow" in recorded)
        return record_steps(cpu_trainer(config), int(recorded["max_steps"]))
