"""When a trajectory stops before the largest depth (elastic exit): the stop rule, its conditions, its
text form and the test it applies to the trajectories in flight.

A condition is one registered object: a name, an optional number (its parameter) and a test of the
per-row signals the engine measures after each segment (`SIGNALS`). The built-in ones:
- `stable:P`: the prediction (argmax of every token) unchanged for P consecutive segments;
- `residual:T`: the latent residual (an absolute norm over the whole state) below T;
- `q`: the q_halt logit above 0.
A plug-in registers its own with `register_condition` (docs/extending.md). A rule combines
conditions; written as text they are joined by `&` (all must hold) or `|` (any may): `stable:2&q`.
No rule stops a trajectory before `min_steps` segments. `evaluate.py elastic=<text>`, the frontier's
`elastic=[<text>, ...]`, the engine and the per-trajectory `stop` column all read this object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch

Signals = Mapping[str, torch.Tensor]
# What the engine measures for each row in flight after a segment, by name (each a tensor over rows,
# `logits` [rows, seq_len, vocab] and `preds` [rows, seq_len] excepted).
SIGNALS = {
    "stable": "segments the prediction has stayed unchanged (0 at a change and at the first segment)",
    "residual": "the latent residual of this segment (absolute norm over the whole state)",
    "q_halt": "the halting head's q_halt logit",
    "q_continue": "its q_continue logit (not trained in a model without a continue head: EqR)",
    "steps": "segments this trajectory has run, this one included",
    "logits": "the output logits [rows, seq_len, vocab]",
    "preds": "the prediction, argmax of the logits [rows, seq_len]",
}


@dataclass(frozen=True)
class Condition:
    """`holds(signals, value)` -> bool per row; `value` is the number written after the colon (`parameter`:
    its type, None when the condition takes none) or `default` when the rule gives none."""

    name: str
    holds: Callable[[Signals, float | int | None], torch.Tensor]
    parameter: type[int] | type[float] | None = None
    default: float | int | None = None
    meaning: str = ""

    def check(self, value: float | int | None) -> None:
        if self.parameter is int and not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{self.name}: needs an integer >= 1, got {value!r}")
        if self.parameter is float and not (isinstance(value, (int, float)) and value >= 0):
            raise ValueError(f"{self.name}: needs a number >= 0, got {value!r}")


CONDITIONS: dict[str, Condition] = {}


def register_condition(condition: Condition) -> Condition:
    """Make `<name>[:value]` usable in every stop rule (evaluation and frontier alike); returns it."""
    if not condition.name.isidentifier():
        raise ValueError(f"condition name {condition.name!r}: use letters, digits and underscores")
    if condition.parameter is not None:
        condition.check(condition.default)
    CONDITIONS[condition.name] = condition
    return condition


def known_conditions() -> str:
    return ", ".join(f"{c.name}:{'P' if c.parameter is int else 'T'}" if c.parameter else c.name
                     for c in CONDITIONS.values())


register_condition(Condition("stable", lambda s, p: s["stable"] >= p, int, 2,
                             "the prediction unchanged for P consecutive segments"))
register_condition(Condition("residual", lambda s, t: s["residual"] < t, float, 1e-2,
                             "the latent residual below T"))
register_condition(Condition("q", lambda s, _: s["q_halt"] > 0, meaning="the q_halt logit above 0"))


@dataclass(frozen=True)
class StopRule:
    """`rules` combined by `combine` (all / any), never before `min_steps` segments. `patience` is
    `stable`'s P and `tol` is `residual`'s T (the evaluation's `elastic_patience` and `elastic_tol`);
    `values` holds the numbers of the other conditions that take one. A number is used only when its
    condition is listed."""

    rules: tuple[str, ...] = ("stable", "residual")
    combine: Literal["all", "any"] = "all"
    patience: int = 2
    tol: float = 1e-2
    min_steps: int = 2
    values: tuple[tuple[str, float | int], ...] = ()

    def __post_init__(self) -> None:
        unknown = [name for name in self.rules if name not in CONDITIONS]
        if not self.rules or len(set(self.rules)) != len(self.rules) or unknown:
            raise ValueError(f"rules: {list(self.rules)} must name each of {', '.join(CONDITIONS)} at most once")
        if self.combine not in ("all", "any"):
            raise ValueError(f"combine: {self.combine!r} is not all or any")
        if self.min_steps < 1:
            raise ValueError(f"min_steps must be >= 1, got {self.min_steps}")
        for name in self.rules:
            condition = CONDITIONS[name]
            if condition.parameter is not None:
                condition.check(self.value(name))

    def value(self, name: str) -> float | int | None:
        """The number condition `name` is tested with."""
        if name == "stable":
            return self.patience
        if name == "residual":
            return self.tol
        return dict(self.values).get(name, CONDITIONS[name].default)

    @classmethod
    def parse(cls, text: str, min_steps: int = 1) -> StopRule:
        """`stable:2&residual:0.5` -> rules (stable, residual), all, patience 2, tol 0.5; the defaults
        of a condition given without its number; ValueError naming the text when it does not parse."""
        if "&" in text and "|" in text:
            raise ValueError(f"{text!r}: join the rules with & or with |, not both")
        numbers: dict[str, float | int] = {}
        rules: list[str] = []
        for part in text.replace("|", "&").split("&"):
            name, _, value = part.strip().partition(":")
            condition = CONDITIONS.get(name)
            where = repr(part) if part.strip() == text.strip() else f"{text!r}: {part!r}"
            if condition is None or name in rules or (condition.parameter is None and value):
                raise ValueError(f"{where} is not one of {known_conditions()} (each at most once)")
            if value:
                try:
                    numbers[name] = condition.parameter(value)  # type: ignore[misc]
                except ValueError:
                    raise ValueError(f"{where} needs a number after the colon") from None
            rules.append(name)
        named = {"patience": numbers.pop("stable")} if "stable" in numbers else {}
        named |= {"tol": numbers.pop("residual")} if "residual" in numbers else {}
        return cls(rules=tuple(rules), combine="any" if "|" in text else "all", min_steps=min_steps,
                   values=tuple(sorted(numbers.items())), **named)

    def conditions(self, signals: Signals) -> torch.Tensor:
        """[rules, rows]: which of the rule's conditions hold for each row, in the order of `rules`."""
        return torch.stack([CONDITIONS[name].holds(signals, self.value(name)) for name in self.rules])

    def fires(self, held: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """[rows]: the rule stops the row now (its conditions `held` combined, and `min_steps` reached)."""
        combined = held.all(0) if self.combine == "all" else held.any(0)
        return combined & (steps >= self.min_steps)

    def reason(self, held: list[bool]) -> str:
        """The `stop` label of a row the rule stopped: the conditions that held, joined by `+`."""
        return "+".join(name for name, holds in zip(self.rules, held, strict=True) if holds)


DEFAULT_RULE = StopRule()
