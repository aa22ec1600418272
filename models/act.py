"""The segment contract every reasoner shares: carry, reset of halted rows, adaptive halting.

A *segment* is one call of `ACTModel.forward`. Rows that halted in the previous segment
are reset (fresh latent state, step counter zeroed, data replaced by the new batch's
row); every other row continues from its carry. Subclasses provide the `inner` network,
which maps a latent state and a batch to a new latent state and the output heads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import nn

from models.blocks import KERNELS, ReasoningBlock, ReasoningStack
from models.config import ArchConfig, parse_config
from models.reasoner import Latents, Reasoner

Batch = dict[str, torch.Tensor]


@dataclass
class Carry:
    """State passed between segments. Latents are detached: no gradient crosses segments."""

    latents: Latents  # the reasoner's named latent state
    steps: torch.Tensor  # int32 [batch]: segments run since the row's last reset
    halted: torch.Tensor  # bool [batch]: the row finished in the last segment
    current_data: Batch

    def to_dict(self) -> dict[str, Any]:
        """Plain tensors only, so checkpoints stay loadable with weights_only=True; each latent under its
        own name beside the rest (TRM's `z_H`, `z_L`: the layout checkpoints have always had)."""
        return {**self.latents, "steps": self.steps, "halted": self.halted, "current_data": dict(self.current_data)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Carry:
        latents = {k: v for k, v in state.items() if k not in CARRY_FIELDS}
        return cls(latents, state["steps"], state["halted"], state["current_data"])

    def to(self, device: torch.device | str) -> Carry:
        return replace(
            self,
            latents={k: v.to(device) for k, v in self.latents.items()},
            steps=self.steps.to(device),
            halted=self.halted.to(device),
            current_data={k: v.to(device) for k, v in self.current_data.items()},
        )


CARRY_FIELDS = ("steps", "halted", "current_data")  # a saved carry's entries that are not latents


def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view((-1,) + (1,) * (like.ndim - 1))


class ACTModel(nn.Module):
    """Adaptive-computation wrapper around an `inner` network.

    Halting: a row halts at `halt_max_steps`; in training (and with
    halt_max_steps > 1) also when its halt signal fires, but never before an exploration
    minimum drawn per row. The halt signal is `q_halt > 0` when `no_ACT_continue`, else
    `q_halt > q_continue`, and then a Q-learning target for q_continue is computed from one
    extra no-grad segment.

    Subclasses return their network from `build_inner`: a `models.reasoner.Reasoner` (fresh state
    for halted rows, one segment per call). `continue_head = False` declares a model without a
    q_continue output (EqR): it halts on q_halt > 0 alone and reports no q_continue logits.
    """

    config_cls: ClassVar[type[ArchConfig]]
    continue_head: ClassVar[bool] = True

    def __init__(self, config: dict[str, Any] | ArchConfig) -> None:
        super().__init__()
        self.config = config if isinstance(config, ArchConfig) else parse_config(self.config_cls, config)
        self.inner = self.build_inner(self.config)

    def build_inner(self, cfg: ArchConfig) -> Reasoner:
        raise NotImplementedError

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute every block's activations in the backward pass instead of storing them
        (the segment's last recursion, the only one with gradients): less memory, more compute."""
        for module in self.inner.modules():
            if isinstance(module, ReasoningStack):
                module.gradient_checkpointing = enabled

    def use_kernels(self, kernels: str) -> list[str]:
        """Select the kernel path of every block: `reference` (the reference's ops) or `fast`
        (docs/kernels.md). Returns what the fast path changed, for the log; weights are untouched."""
        if kernels not in KERNELS:
            raise ValueError(f"kernels: unknown {kernels!r}; known: {', '.join(KERNELS)}")
        changes = {c for m in self.inner.modules() if isinstance(m, ReasoningBlock) and (c := m.use_kernels(kernels))}
        return sorted(changes)

    def summary(self) -> str:
        """One line for the training log: what was built, how big, at which shape and precision."""
        cfg = self.config
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        layers = f"H_layers {cfg.H_layers}, L_layers {cfg.L_layers}" if cfg.H_layers else f"L_layers {cfg.L_layers}"
        mixer = "mlp_t" if cfg.mlp_t else f"attention ({cfg.num_heads} heads, pos {cfg.pos_encodings})"
        positions = f"{cfg.total_positions} positions" + (
            f" ({cfg.seq_len} tokens + {cfg.puzzle_positions} puzzle embedding)" if cfg.puzzle_positions else "")
        return (f"model: {cfg.name or type(self).__name__}, {total / 1e6:.3f}M parameters ({trainable:,} trainable); "
                f"hidden {cfg.hidden_size}, {mixer}, {layers}, H_cycles {cfg.H_cycles} x L_cycles {cfg.L_cycles}; "
                f"{positions}, vocab {cfg.vocab_size}; {cfg.forward_dtype} forward; "
                f"halt_max_steps {cfg.halt_max_steps}")

    @property
    def no_ACT_continue(self) -> bool:
        """Halt on q_halt > 0 alone (no Q-learning target): always without a continue head, else the
        config's `no_ACT_continue` (TRM: true, HRM: false)."""
        return not self.continue_head or self.config.no_ACT_continue

    def initial_carry(self, batch: Batch) -> Carry:
        """A carry with every row halted, so the first segment resets all of them."""
        inputs = batch["inputs"]
        size = inputs.shape[0]
        return Carry(
            latents=self.inner.empty_latents(size, inputs.device),
            steps=torch.zeros(size, dtype=torch.int32, device=inputs.device),
            halted=torch.ones(size, dtype=torch.bool, device=inputs.device),
            current_data={k: torch.zeros_like(v) for k, v in batch.items()},
        )

    def forward(self, carry: Carry, batch: Batch) -> tuple[Carry, dict[str, torch.Tensor]]:
        halted = carry.halted
        latents = self.inner.reset(halted, carry.latents)
        steps = torch.where(halted, 0, carry.steps)
        data = {k: torch.where(_rows(halted, batch[k]), batch[k], v) for k, v in carry.current_data.items()}

        segment = self.inner(latents, data)
        q_halt, q_continue = segment.q_halt, segment.q_continue
        outputs = {"logits": segment.logits, "q_halt_logits": q_halt}
        if self.continue_head:
            outputs["q_continue_logits"] = q_continue

        with torch.no_grad():
            steps = steps + 1
            is_last = steps >= self.config.halt_max_steps
            new_halted = is_last
            if self.training and self.config.halt_max_steps > 1:
                signal = q_halt > 0 if self.no_ACT_continue else q_halt > q_continue
                explore = torch.rand_like(q_halt) < self.config.halt_exploration_prob
                min_steps = explore * torch.randint_like(steps, low=2, high=self.config.halt_max_steps + 1)
                new_halted = (is_last | signal) & (steps >= min_steps)
                if not self.no_ACT_continue:
                    following = self.inner(segment.latents, data)
                    target = torch.where(is_last, following.q_halt, torch.maximum(following.q_halt,
                                                                                  following.q_continue))
                    outputs["target_q_continue"] = torch.sigmoid(target)

        return Carry(segment.latents, steps, new_halted, data), outputs
