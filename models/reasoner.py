"""The reasoner contract: what the ACT wrapper, the trainer and the evaluation engine call on a model's
inner network, and nothing else.

A reasoner owns its latent state: any number of named tensors (`latent_names`, TRM's and HRM's
`z_H` and `z_L`), each [batch, ...]. One segment of deep supervision is `forward(latents, batch)`:
it returns a `Segment`, the next latents (detached, so the carry holds no graph) and the segment's
outputs. Between segments the caller keeps the latents in the carry; rows that halted get a fresh
state from `reset` before their next segment. The evaluation engine may replace the fresh state of
its restarts by its own draws with the stds `random_init_std` declares, and may hand a recurrence
that injects noise its own noise source through `drawing_noise_from`, so every trajectory's
randomness is its own. A new architecture subclasses `models.blocks.ReasonerIO` (embeddings, heads
and the empty state) and implements `reset` and `recur`; docs/extending.md walks through one.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import NamedTuple

import torch
from torch import nn

NoiseSource = Callable[[torch.Tensor], torch.Tensor]  # like -> standard-normal noise of like's shape
Latents = dict[str, torch.Tensor]  # a reasoner's latent state by name, in its `latent_names` order


class Segment(NamedTuple):
    """What one segment returns: the next latents (detached) and the output heads' logits."""

    latents: Latents
    logits: torch.Tensor  # [batch, seq_len, vocab] token logits
    q_halt: torch.Tensor  # [batch] float32
    q_continue: torch.Tensor  # [batch] float32 (a model without a continue head computes it untrained)


class Reasoner(nn.Module):
    """The hooks a reasoner provides; the defaults are those of a model with a fixed initial state and
    no noise."""

    latent_names: tuple[str, ...] = ("z_H", "z_L")

    def empty_latents(self, batch_size: int, device: torch.device | str) -> Latents:
        """A placeholder state of every latent (zeros) for `batch_size` rows: what a carry starts from."""
        raise NotImplementedError

    def reset(self, halted: torch.Tensor, latents: Latents) -> Latents:
        """`latents` with the rows where `halted` is true replaced by a fresh initial state."""
        raise NotImplementedError

    def forward(self, latents: Latents, batch: dict[str, torch.Tensor]) -> Segment:
        """One segment from `latents` on `batch`."""
        raise NotImplementedError

    def random_init_std(self) -> dict[str, float] | None:
        """The std of each latent when `reset` draws it at random (EqR); None: a fixed initial state.
        Evaluation restarts (B > 1) draw with these stds (SPEC 5.1)."""
        return None

    def drawing_noise_from(self, source: NoiseSource) -> AbstractContextManager[None]:
        """Within the block, the recurrence's noise comes from `source` (a model without noise ignores it)."""
        return nullcontext()


def latent_residual(latents: Latents, previous: Latents) -> torch.Tensor:
    """[R] norm of one segment's change of the whole latent state (every latent together) per row."""
    squares = [(value.float() - previous[name].float()).flatten(1).square().sum(1) for name, value in latents.items()]
    return sum(squares[1:], start=squares[0]).sqrt()  # summed in latent order: z_H first, as the reference
