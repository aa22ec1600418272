"""What one evaluation pass runs, in typed sections, validated once here: the depths, the breadth
(restarts, their initial state, augmentation copies, adaptive breadth), the stop rule, the
selection of answers, the counting, the outputs kept and the runtime settings.

The engine (evaluation/engine.py) takes a plan and nothing else; this module imports nothing from
it. `EvalPlan.build(depths, **options)` reads the flat option names of `run_evaluation`'s callers
and of the command line (`different_init`, `convergence_top_k`, `breadth_agree`, ...), so every
caller maps its own options onto the sections in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dataset.symmetries import TransformSet
from dataset.task_evaluator import TaskEvaluator
from evaluation.pass_state import PassState
from evaluation.randomness import RestartStd
from evaluation.stopping import StopRule

Counting = Literal["clean", "reference", "both"]
TTAKind = str  # the symmetry TTA draws: "auto" (the task's own) or a registered one's name (dataset.tasks)
OUTPUT_FIELDS = ("preds", "logits", "inputs", "labels", "puzzle_identifiers", "q_halt_logits")  # `save_outputs`
COUNTING_MODES: dict[str, tuple[str, ...]] = {"clean": ("clean",), "reference": ("reference",),
                                              "both": ("clean", "reference")}


def check_breadth(copies: int, top_k: int | None, agree: int | None, counting: str) -> None:
    """Selection and adaptive breadth need enough trajectories per puzzle (B x tta = `copies`), and the
    reference's counting has no adaptive breadth; ValueError naming the key otherwise."""
    if top_k is not None and not 1 <= top_k <= copies:
        raise ValueError(f"convergence_top_k: {top_k} is outside 1..{copies}, the trajectories per puzzle "
                         "(different_init x tta)")
    if agree is not None:
        if not 1 <= agree <= copies or copies == 1:
            raise ValueError(f"breadth_agree: must lie in 1..{copies} (trajectories per puzzle) with "
                             f"different_init x tta > 1, got {agree}")
        if counting != "clean":
            raise ValueError("breadth_agree: the reference has no adaptive breadth; use reference_counting=false")


@dataclass(frozen=True)
class Breadth:
    """B restarts per puzzle (`different_init`), each of the `tta` transformed copies: B x tta trajectories.
    `restart_std`: how restarts start (evaluation/randomness.py `restart_stds`); `agree` = k: adaptive
    breadth, no more restarts of a puzzle once k finished ones agree (`breadth_agree`)."""

    restarts: int = 1
    restart_std: RestartStd = 1.0
    tta: TransformSet | None = None
    agree: int | None = None

    @property
    def copies(self) -> int:
        return self.restarts * (self.tta.size if self.tta is not None else 1)


@dataclass(frozen=True)
class Selection:
    """Convergence selection: the `top_k` trajectories whose logits moved least over the last `window`
    segment-to-segment differences (`convergence_top_k`, `convergence_window`)."""

    top_k: int | None = None
    window: int = 3


@dataclass(frozen=True)
class Outputs:
    """What is kept beyond the metrics: one row per trajectory, the named tensors per depth, and the task's
    own evaluator per depth (dataset/task_evaluator.py), fed every finished real row at its depth."""

    per_trajectory: bool = False
    save: tuple[str, ...] = ()
    evaluators: Mapping[int, TaskEvaluator] = field(default_factory=dict)


@dataclass(frozen=True)
class Runtime:
    """How the pass runs: the seed of every trajectory's random stream, the slots in flight (`max_rows`),
    the progress bar (and its length in batches), the segment function (a compiled one), where it starts
    (`resume`: the state a stopped pass saved) and `checkpoint`, called between segments with a function
    that returns the pass's state (evaluation/pass_state.py): it decides whether to build and save it,
    and may stop the pass by raising."""

    seed: int = 0
    max_rows: int | None = None
    progress: bool = True
    total_batches: int | None = None
    segment: Callable[..., tuple] | None = None
    resume: PassState | None = None
    checkpoint: Callable[[Callable[[], PassState]], None] | None = None


@dataclass(frozen=True)
class EvalPlan:
    """One pass: every depth in `depths` (sorted, distinct) from the same trajectories."""

    depths: tuple[int, ...]
    breadth: Breadth = field(default_factory=Breadth)
    stopping: StopRule | None = None  # the elastic exit; None: every trajectory runs to the largest depth
    selection: Selection = field(default_factory=Selection)
    counting: Counting = "clean"
    outputs: Outputs = field(default_factory=Outputs)
    runtime: Runtime = field(default_factory=Runtime)

    def __post_init__(self) -> None:
        depths = tuple(sorted(set(self.depths)))
        if not depths or depths[0] < 1:
            raise ValueError(f"depths (halt_max_steps): every depth must be >= 1, got {list(self.depths)}")
        object.__setattr__(self, "depths", depths)
        if self.breadth.restarts < 1:
            raise ValueError(f"different_init: must be >= 1, got {self.breadth.restarts}")
        unknown = sorted(set(self.outputs.save) - set(OUTPUT_FIELDS))
        if unknown:
            raise ValueError(f"save_outputs: unknown {unknown}; known: {list(OUTPUT_FIELDS)}")
        if self.breadth.tta is not None and self.breadth.tta.size > 1 and any(
                "logits" in e.fields for e in self.outputs.evaluators.values()):
            raise ValueError("tta: a task evaluator reading logits needs tta=1 (they are not mapped back to the "
                             "puzzle's frame)")
        stray = sorted(set(self.outputs.evaluators) - set(depths))
        if stray:
            raise ValueError(f"evaluators: depths {stray} are not evaluated (depths {list(depths)})")
        if self.counting not in COUNTING_MODES:
            raise ValueError(f"counting: {self.counting!r} is not one of {', '.join(COUNTING_MODES)}")
        check_breadth(self.breadth.copies, self.selection.top_k, self.breadth.agree, self.counting)

    @property
    def modes(self) -> tuple[str, ...]:
        """The countings run: clean, reference or both."""
        return COUNTING_MODES[self.counting]

    @property
    def reference_counting(self) -> bool:
        """The reference's counting is among the modes: padding rows are run, its residuals measured."""
        return "reference" in self.modes

    @property
    def window(self) -> int | None:
        """The convergence window when scores are kept (top-k selection over more than one copy), else None."""
        return self.selection.window if self.selection.top_k is not None and self.breadth.copies > 1 else None

    @classmethod
    def build(cls, depths: Sequence[int], **options: Any) -> EvalPlan:
        """A plan from the flat option names (`different_init=8, convergence_top_k=1, elastic=rule, ...`)."""
        unknown = sorted(set(options) - set(FLAT_OPTIONS))
        if unknown:
            raise TypeError(f"unknown evaluation option(s): {', '.join(unknown)}; known: {', '.join(FLAT_OPTIONS)}")
        sections: dict[str, dict[str, Any]] = {}
        for name, value in options.items():
            section, key = FLAT_OPTIONS[name]
            sections.setdefault(section, {})[key] = tuple(value) if key == "save" else value
        made = {name: SECTIONS[name](**values) for name, values in sections.items() if name in SECTIONS}
        plain = {name: values["value"] for name, values in sections.items() if name not in SECTIONS}
        return cls(tuple(depths), **made, **plain)


SECTIONS: dict[str, type] = {"breadth": Breadth, "selection": Selection, "outputs": Outputs, "runtime": Runtime}

# flat option name -> (section, field); `stopping` and `counting` are values of their own
FLAT_OPTIONS: dict[str, tuple[str, str]] = {
    "different_init": ("breadth", "restarts"), "restart_std": ("breadth", "restart_std"),
    "tta": ("breadth", "tta"), "breadth_agree": ("breadth", "agree"),
    "elastic": ("stopping", "value"),
    "convergence_top_k": ("selection", "top_k"), "convergence_window": ("selection", "window"),
    "counting": ("counting", "value"),
    "per_trajectory": ("outputs", "per_trajectory"), "save_outputs": ("outputs", "save"),
    "evaluators": ("outputs", "evaluators"),
    "seed": ("runtime", "seed"), "max_rows": ("runtime", "max_rows"), "progress": ("runtime", "progress"),
    "total_batches": ("runtime", "total_batches"), "segment": ("runtime", "segment"),
}

