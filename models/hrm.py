"""HRM baseline: separate high- and low-level stacks with a one-step gradient approximation."""

from __future__ import annotations

import torch

from models.act import ACTModel
from models.blocks import ReasoningStack
from models.config import ArchConfig, HRMConfig
from models.layers import CosSin
from models.reasoner import Latents
from models.trm import FixedInitReasoner


class HRMInner(FixedInitReasoner):
    """For each of H_cycles: L_cycles updates of z_L, then one of z_H; only the last pair has grad."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__(cfg)
        self.L_level = ReasoningStack(cfg, cfg.L_layers)
        self.init_state()
        self.H_level = ReasoningStack(cfg, cfg.H_layers)

    def recur(self, latents: Latents, x: torch.Tensor, cos_sin: CosSin | None) -> Latents:
        z_H, z_L = latents["z_H"], latents["z_L"]
        H, L = self.cfg.H_cycles, self.cfg.L_cycles
        with torch.no_grad():
            for h_step in range(H):
                for l_step in range(L):
                    if not (h_step == H - 1 and l_step == L - 1):
                        z_L = self.L_level(z_L, z_H + x, cos_sin)
                if h_step != H - 1:
                    z_H = self.H_level(z_H, z_L, cos_sin)
        z_L = self.L_level(z_L, z_H + x, cos_sin)
        z_H = self.H_level(z_H, z_L, cos_sin)
        return {"z_H": z_H, "z_L": z_L}


class HRMModel(ACTModel):
    config_cls = HRMConfig

    def build_inner(self, cfg: ArchConfig) -> HRMInner:
        return HRMInner(cfg)
