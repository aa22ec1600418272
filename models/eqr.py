"""Equilibrium Reasoner: the TRM recurrence with random initialisation (RI) and noisy damping (NI).

RI: every (re)started row draws z_H, z_L i.i.d. from a truncated normal, so restarts of
the same puzzle explore different trajectories (test-time breadth). NI: each update is
`(1 - lambda_) * h + lambda_ * Blocks(h + u) + noise_scale * N(0, I)`, which trains the
recurrence to contract onto an attractor that is robust to perturbation (test-time depth).

One segment (`forward`, the contract of models/reasoner.py; the ACT loop around it is
models/act.py): x = the scaled token embeddings; H_cycles times (all but the last without
gradient): L_cycles updates `z_L <- update(z_L, z_H + x)`, then `z_H <- update(z_H, z_L)`; the
token logits and the q_halt logit are read from z_H, and (z_H, z_L) are carried to the next
segment detached. The loop is TRM's (`TRMInner.latent_recursion`), `update` is this module's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from models.act import ACTModel
from models.config import ArchConfig, EqRConfig
from models.layers import CosSin, trunc_normal_like
from models.reasoner import Latents
from models.trm import TRMInner


class EqRInner(TRMInner):
    cfg: EqRConfig

    def init_state(self) -> None:
        """Nothing to store: every reset draws a fresh state (so checkpoints hold no H_init/L_init).

        The noise comes from the global RNG unless a source is given (`drawing_noise_from`): the
        evaluation draws each trajectory's noise from its own generator."""
        self.noise_source: Callable[[torch.Tensor], torch.Tensor] | None = None

    def random_init_std(self) -> dict[str, float] | None:
        return {"z_H": self.cfg.H_init_std, "z_L": self.cfg.L_init_std}

    @contextmanager
    def drawing_noise_from(self, source: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
        """Within the block, `source(like)` returns the standard-normal noise of each update."""
        previous, self.noise_source = self.noise_source, source
        try:
            yield
        finally:
            self.noise_source = previous

    def reset(self, halted: torch.Tensor, latents: Latents) -> Latents:
        """I.i.d. truncated-normal draw per row, token and channel for the halted rows."""
        rows = halted.view(-1, 1, 1)
        z_H = torch.where(rows, trunc_normal_like(latents["z_H"], self.cfg.H_init_std), latents["z_H"])
        z_L = torch.where(rows, trunc_normal_like(latents["z_L"], self.cfg.L_init_std), latents["z_L"])
        return {"z_H": z_H, "z_L": z_L}

    def update(self, h: torch.Tensor, u: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        lam = self.cfg.lambda_
        out = (1 - lam) * h + lam * self.L_level(h, u, cos_sin)
        if self.cfg.noise_scale > 0:
            noise = torch.randn_like(out) if self.noise_source is None else self.noise_source(out)
            out = out + self.cfg.noise_scale * noise
        return out


class EqRModel(ACTModel):
    config_cls = EqRConfig
    continue_head = False

    def build_inner(self, cfg: ArchConfig) -> EqRInner:
        return EqRInner(cfg)
