"""One batch's trajectories, run segment by segment, with what the counting rules later read from them.

A `BatchRun` holds the rows of one evaluation batch (B x tta copies of each puzzle): their carry,
the last logits, q_halt and residual of every row, and the convergence trackers. With breadth
every row starts from its own truncated-normal state (`restart_std`); with an elastic exit rows
that settled leave the batch and keep their last outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from evaluation.breadth_metrics import ConvergenceTracker
from models.act import ACTModel, Batch, Carry, latent_residual
from models.layers import trunc_normal_like


@dataclass(frozen=True)
class ElasticExit:
    """Stop a trajectory early: its prediction unchanged for `patience` segments and its latent
    residual below `tol` (or, with `use_q`, its q_halt logit above 0). Never before segment 2,
    so that every trajectory has a convergence score."""

    patience: int = 2
    tol: float = 1e-2
    use_q: bool = False


class BatchRun:
    """One batch's trajectories run segment by segment; exited rows keep their last outputs.

    `restart_std` (breadth): every row starts from its own truncated-normal z_H and z_L instead of
    the model's reset. `trackers` name the convergence scores kept ("clean": float32; "reference":
    the forward dtype).
    """

    def __init__(self, model: ACTModel, data: Batch, elastic: ElasticExit | None, window: int | None,
                 trackers: Sequence[str], restart_std: float | None) -> None:
        self.model, self.elastic = model, elastic
        rows = data["inputs"].shape[0]
        device = data["inputs"].device
        self.carry = model.initial_carry(data)
        self.data = data
        self.active = torch.arange(rows, device=device)
        # Both draws replay the stream the model's first reset consumes (the RNG is restored after them),
        # so EqR's restarts at std 1 are exactly its own random initialisation.
        with torch.random.fork_rng(devices=rng_devices(device)):
            if restart_std is None:
                self.state = model.inner.reset(self.carry.halted, self.carry.z_H, self.carry.z_L)
            else:
                self.state = (trunc_normal_like(self.carry.z_H, restart_std),
                              trunc_normal_like(self.carry.z_L, restart_std))
        if restart_std is not None:  # start from the draw: nothing is halted, so the model resets no row
            self.carry = replace(self.carry, z_H=self.state[0], z_L=self.state[1],
                                 halted=torch.zeros_like(self.carry.halted), current_data=data)
        self.logits: torch.Tensor | None = None
        self.q_halt = torch.zeros(rows, device=device)
        self.exit_step = torch.full((rows,), torch.iinfo(torch.int32).max, dtype=torch.int32, device=device)
        self.last_residual = torch.zeros(rows, device=device)
        self.stable = torch.zeros(rows, dtype=torch.int32, device=device)
        self.trackers = {name: ConvergenceTracker(window, native=name == "reference")
                         for name in (trackers if window else ())}
        self.frozen_scores = {name: torch.zeros(rows, device=device) for name in self.trackers}
        self.segments = 0

    @property
    def done(self) -> bool:
        return self.active.numel() == 0

    def step(self, index: int) -> torch.Tensor:
        """Run segment `index` (1-based) on the active rows; returns their latent residuals."""
        carry, outputs = self.model(self.carry, self.carry.current_data if index > 1 else self.data)
        self.carry = replace(carry, halted=torch.zeros_like(carry.halted))  # depth is ours, not halt_max_steps
        residual = latent_residual(carry.z_H, carry.z_L, self.state)
        self.state = (carry.z_H, carry.z_L)
        self.segments += self.active.numel()
        logits, q_halt = outputs["logits"], outputs["q_halt_logits"].float()
        whole = self.active.numel() == self.exit_step.numel()
        previous = self.logits
        if whole:
            self.logits, self.q_halt, self.last_residual = logits, q_halt, residual
        else:
            self.logits = previous.index_put((self.active,), logits)
            self.q_halt = self.q_halt.index_put((self.active,), q_halt)
            self.last_residual = self.last_residual.index_put((self.active,), residual)
        for tracker in self.trackers.values():
            tracker.update(self.logits)
        if self.elastic is not None and index >= 2:
            self._exit(index, previous, logits, q_halt, residual)
        return residual

    def _exit(self, index: int, previous: torch.Tensor, logits: torch.Tensor, q_halt: torch.Tensor,
              residual: torch.Tensor) -> None:
        same = (logits.argmax(-1) == previous[self.active].argmax(-1)).all(-1)
        stable = torch.where(same, self.stable[self.active] + 1, 0)
        self.stable = self.stable.index_put((self.active,), stable)
        cfg = self.elastic
        leaving = q_halt > 0 if cfg.use_q else (stable >= cfg.patience) & (residual < cfg.tol)
        if not bool(leaving.any()):
            return
        gone = self.active[leaving]
        self.exit_step[gone] = index
        for name, tracker in self.trackers.items():
            self.frozen_scores[name][gone] = tracker.scores()[gone].float()
        keep = ~leaving
        self.active = self.active[keep]
        self.carry = Carry(
            z_H=self.carry.z_H[keep], z_L=self.carry.z_L[keep], steps=self.carry.steps[keep],
            halted=self.carry.halted[keep], current_data={k: v[keep] for k, v in self.carry.current_data.items()},
        )
        self.state = (self.state[0][keep], self.state[1][keep])

    def scores(self, depth: int) -> dict[str, torch.Tensor]:
        exited = self.exit_step <= depth
        out = {}
        for name, tracker in self.trackers.items():
            live = tracker.scores()
            out[name] = torch.where(exited, self.frozen_scores[name].to(live.dtype), live)
        return out


def rng_devices(device: torch.device) -> list[int]:
    return [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
