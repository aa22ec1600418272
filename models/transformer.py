"""Feed-forward transformer baseline ("direct prediction"): L_layers distinct blocks, no recurrence.

It keeps the segment contract so the same training and evaluation code runs it; the carry
is ignored, so extra segments (halt_max_steps > 1) recompute the same answer.
"""

from __future__ import annotations

import torch

from models.act import ACTModel, Batch
from models.blocks import ReasonerIO, ReasoningStack
from models.config import ArchConfig, TransformerConfig


class TransformerInner(ReasonerIO):
    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__(cfg)
        self.L_level = ReasoningStack(cfg, cfg.L_layers)

    def reset(self, halted: torch.Tensor, z_H: torch.Tensor, z_L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return z_H, z_L

    def forward(self, z_H: torch.Tensor, z_L: torch.Tensor, batch: Batch):
        x = self.input_embeddings(batch["inputs"], batch.get("puzzle_identifiers"))
        cos_sin = self.cos_sin()
        z_H = x
        for layer in self.L_level.layers:
            z_H = layer(z_H, cos_sin)
        logits, q_halt, q_continue = self.heads(z_H)
        return z_H.detach(), z_H.detach(), logits, q_halt, q_continue


class TransformerModel(ACTModel):
    config_cls = TransformerConfig

    def build_inner(self, cfg: ArchConfig) -> TransformerInner:
        return TransformerInner(cfg)
