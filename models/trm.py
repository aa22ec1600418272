"""TRM baseline: one weight-tied stack updates both latents; fixed learned-free initial state."""

from __future__ import annotations

import torch

from models.act import ACTModel
from models.blocks import ReasonerIO, ReasoningStack
from models.config import ArchConfig, TRMConfig
from models.layers import CosSin, trunc_normal_init_
from models.reasoner import Latents


class FixedInitReasoner(ReasonerIO):
    """A reasoner whose reset restores one fixed initial state, `H_init` / `L_init`, shared by every row
    and token and saved in checkpoints (TRM and HRM). Subclasses call `init_state` after building their
    stacks, so the initial weights are drawn in the reference's order."""

    def init_state(self) -> None:
        size = self.cfg.hidden_size
        self.register_buffer("H_init", trunc_normal_init_(torch.empty(size), 1.0).to(self.cfg.dtype))
        self.register_buffer("L_init", trunc_normal_init_(torch.empty(size), 1.0).to(self.cfg.dtype))

    def reset(self, halted: torch.Tensor, latents: Latents) -> Latents:
        rows = halted.view(-1, 1, 1)
        return {"z_H": torch.where(rows, self.H_init, latents["z_H"]),
                "z_L": torch.where(rows, self.L_init, latents["z_L"])}


class TRMInner(FixedInitReasoner):
    """`f(h, u) = Blocks(h + u)`; H_cycles latent recursions, only the last with gradient."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__(cfg)
        self.L_level = ReasoningStack(cfg, cfg.L_layers)
        self.init_state()

    def update(self, h: torch.Tensor, u: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        return self.L_level(h, u, cos_sin)

    def latent_recursion(
        self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, cos_sin: CosSin | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for _ in range(self.cfg.L_cycles):
            z_L = self.update(z_L, z_H + x, cos_sin)
        z_H = self.update(z_H, z_L, cos_sin)
        return z_H, z_L

    def recur(self, latents: Latents, x: torch.Tensor, cos_sin: CosSin | None) -> Latents:
        z_H, z_L = latents["z_H"], latents["z_L"]
        with torch.no_grad():
            for _ in range(self.cfg.H_cycles - 1):
                z_H, z_L = self.latent_recursion(z_H, z_L, x, cos_sin)
        z_H, z_L = self.latent_recursion(z_H, z_L, x, cos_sin)
        return {"z_H": z_H, "z_L": z_L}


class TRMModel(ACTModel):
    config_cls = TRMConfig

    def build_inner(self, cfg: ArchConfig) -> TRMInner:
        return TRMInner(cfg)
