"""When a trajectory stops before the largest depth (elastic exit): the one stop rule, its text form,
its defaults and the test it applies to the trajectories in flight.

A rule combines conditions on a trajectory's state after a segment:
- `stable:P`: its prediction (argmax of every token) unchanged for P consecutive segments;
- `residual:T`: its latent residual (an absolute norm over the whole state) below T;
- `q`: its q_halt logit above 0.
Written as text they are joined by `&` (all must hold) or `|` (any may): `stable:2&q`. No rule
stops a trajectory before `min_steps` segments. The evaluation's `elastic_*` keys, the frontier's
`elastic=[...]` settings, the engine and the per-trajectory `stop` column all read this object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

CONDITIONS = ("stable", "residual", "q")


@dataclass(frozen=True)
class StopRule:
    """`conditions` combined by `combine` (all / any), never before `min_steps` segments; `patience` is
    `stable`'s P and `tol` is `residual`'s T (each used only when its condition is listed)."""

    rules: tuple[str, ...] = ("stable", "residual")
    combine: Literal["all", "any"] = "all"
    patience: int = 2
    tol: float = 1e-2
    min_steps: int = 2

    def __post_init__(self) -> None:
        if not self.rules or len(set(self.rules)) != len(self.rules) or not set(self.rules) <= set(CONDITIONS):
            raise ValueError(f"rules: {list(self.rules)} must name each of {', '.join(CONDITIONS)} at most once")
        if self.combine not in ("all", "any"):
            raise ValueError(f"combine: {self.combine!r} is not all or any")
        if self.patience < 1 or self.min_steps < 1 or not self.tol >= 0:
            raise ValueError(f"patience and min_steps must be >= 1 and tol >= 0 (got {self.patience}, "
                             f"{self.min_steps}, {self.tol})")

    @classmethod
    def parse(cls, text: str, min_steps: int = 1) -> StopRule:
        """`stable:2&residual:0.5` -> rules (stable, residual), all, patience 2, tol 0.5; the defaults
        of a condition given without its number; ValueError naming the text when it does not parse."""
        if "&" in text and "|" in text:
            raise ValueError(f"{text!r}: join the rules with & or with |, not both")
        numbers: dict[str, int | float] = {}
        rules: list[str] = []
        for part in text.replace("|", "&").split("&"):
            name, _, value = part.strip().partition(":")
            if name not in CONDITIONS or name in rules or (name == "q" and value):
                raise ValueError(f"{text!r}: {part!r} is not one of stable:P, residual:T, q (each at most once)")
            if value:
                try:
                    numbers["patience" if name == "stable" else "tol"] = int(value) if name == "stable" else \
                        float(value)
                except ValueError:
                    raise ValueError(f"{text!r}: {part!r} needs a number after the colon") from None
            rules.append(name)
        return cls(rules=tuple(rules), combine="any" if "|" in text else "all", min_steps=min_steps, **numbers)

    def conditions(self, stable_segments: torch.Tensor, residual: torch.Tensor, q_halt: torch.Tensor) -> torch.Tensor:
        """[rules, rows]: which of the rule's conditions hold for each row, in the order of `rules`."""
        holds = {"stable": lambda: stable_segments >= self.patience, "residual": lambda: residual < self.tol,
                 "q": lambda: q_halt > 0}
        return torch.stack([holds[name]() for name in self.rules])

    def fires(self, held: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """[rows]: the rule stops the row now (its conditions `held` combined, and `min_steps` reached)."""
        combined = held.all(0) if self.combine == "all" else held.any(0)
        return combined & (steps >= self.min_steps)

    def reason(self, held: list[bool]) -> str:
        """The `stop` label of a row the rule stopped: the conditions that held, joined by `+`."""
        return "+".join(name for name, holds in zip(self.rules, held, strict=True) if holds)


DEFAULT_RULE = StopRule()
