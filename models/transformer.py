"""Feed-forward transformer baseline ("direct prediction"): L_layers distinct blocks, no recurrence.

It keeps the segment contract so the same training and evaluation code runs it; the carry
is ignored, so extra segments (halt_max_steps > 1) recompute the same answer.
"""

from __future__ import annotations

import torch

from models.act import ACTModel
from models.blocks import ReasonerIO, ReasoningStack
from models.config import ArchConfig, TransformerConfig
from models.layers import CosSin
from models.reasoner import Latents


class TransformerInner(ReasonerIO):
    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__(cfg)
        self.L_level = ReasoningStack(cfg, cfg.L_layers)

    def reset(self, halted: torch.Tensor, latents: Latents) -> Latents:
        return latents

    def recur(self, latents: Latents, x: torch.Tensor, cos_sin: CosSin | None) -> Latents:
        x = self.L_level.blocks(x, cos_sin)
        return {"z_H": x, "z_L": x}


class TransformerModel(ACTModel):
    config_cls = TransformerConfig

    def build_inner(self, cfg: ArchConfig) -> TransformerInner:
        return TransformerInner(cfg)
