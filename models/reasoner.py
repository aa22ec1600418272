"""The reasoner contract: what the ACT wrapper, the trainer and the evaluation engine call on a model's
inner network, and nothing else.

One segment of deep supervision is `forward(z_H, z_L, batch)`: it returns the next latents
(detached, so the carry holds no graph) and the segment's outputs. Between segments the caller
keeps (z_H, z_L) in the carry; rows that halted get a fresh state from `reset` before their next
segment. The evaluation engine may replace the fresh state of its restarts by its own draws with
the stds `random_init_std` declares, and may hand a recurrence that injects noise its own noise
source through `drawing_noise_from`, so every trajectory's randomness is its own. A new
architecture subclasses `models.blocks.ReasonerIO` (embeddings and heads) and implements `reset`
and `recur`; docs/extending.md walks through one.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

NoiseSource = Callable[[torch.Tensor], torch.Tensor]  # like -> standard-normal noise of like's shape


class Reasoner(nn.Module):
    """The hooks a reasoner provides; the defaults are those of a model with a fixed initial state and
    no noise."""

    def reset(self, halted: torch.Tensor, z_H: torch.Tensor, z_L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_H, z_L) with the rows where `halted` is true replaced by a fresh initial state."""
        raise NotImplementedError

    def forward(self, z_H: torch.Tensor, z_L: torch.Tensor, batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One segment: (z_H, z_L detached, token logits, q_halt logits, q_continue logits)."""
        raise NotImplementedError

    def random_init_std(self) -> tuple[float, float] | None:
        """The stds of z_H and z_L when `reset` draws them at random (EqR); None: a fixed initial state.
        Evaluation restarts (B > 1) draw with these stds (SPEC 5.1)."""
        return None

    def drawing_noise_from(self, source: NoiseSource) -> AbstractContextManager[None]:
        """Within the block, the recurrence's noise comes from `source` (a model without noise ignores it)."""
        return nullcontext()
