"""Exponential moving average of the parameters, in the reference's checkpoint layout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class EMA:
    """`shadow = mu * shadow + (1 - mu) * param` after every optimizer step.

    Shadows are keyed by parameter name in the wrapped module's key scheme
    (`model.inner....`), registered from the initial weights, and kept in float32.
    """

    def __init__(self, module: nn.Module, mu: float = 0.999) -> None:
        if not 0.0 <= mu < 1.0:
            raise ValueError(f"ema_rate: must lie in [0, 1), got {mu}")
        self.mu = mu
        self.shadow = {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for name, p in module.named_parameters():
            if name in self.shadow:
                self.shadow[name].mul_(self.mu).add_(p.detach(), alpha=1.0 - self.mu)

    def state_dict(self) -> dict[str, Any]:
        return {"mu": self.mu, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise KeyError(f"ema.shadow: missing parameters {sorted(missing)}")
        self.mu = float(state["mu"])
        for name, tensor in state["shadow"].items():
            if name in self.shadow:
                self.shadow[name].copy_(tensor)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        for name, p in module.named_parameters():
            if name in self.shadow:
                p.copy_(self.shadow[name])

    @contextmanager
    def swapped_in(self, module: nn.Module) -> Iterator[nn.Module]:
        """Run a block (evaluation) with the EMA weights, then restore the live ones."""
        backup = {name: p.detach().clone() for name, p in module.named_parameters() if name in self.shadow}
        self.copy_to(module)
        try:
            yield module
        finally:
            with torch.no_grad():
                for name, p in module.named_parameters():
                    if name in backup:
                        p.copy_(backup[name])
