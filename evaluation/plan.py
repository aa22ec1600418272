"""What one evaluation pass runs, in typed sections, validated once here: the depths, the breadth
(restarts, their initial state, augmentation copies, adaptive breadth), the stop rule, the
selection of answers, the counting, the outputs kept and the runtime settings.

The engine (evaluation/engine.py) takes a plan and nothing else; this module imports nothing from
it. The command line's flat keys (`different_init`, `convergence_top_k`, ...) become a plan in one
place, `EvalConfig.to_plan` (evaluation/config.py), which also builds the plan of every swept breadth
when the options are read, so a bad combination is refused before a checkpoint is loaded. Errors
name the command line's keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

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


@dataclass(frozen=True)
class Breadth:
    """B restarts per puzzle (`different_init`), each of the `tta` transformed copies: B x tta trajectories.
    `transforms`: the copies' transforms (identity first; the pass builds them from the dataset's task);
    `tta` None: as many as `transforms` has, 1 without. `restart_std`: how restarts start
    (evaluation/randomness.py `restart_stds`); `agree` = k: adaptive breadth, no more restarts of a
    puzzle once k finished ones agree (`breadth_agree`)."""

    restarts: int = 1
    restart_std: RestartStd = 1.0
    tta: int | None = None
    transforms: TransformSet | None = None
    agree: int | None = None

    def __post_init__(self) -> None:
        if self.restarts < 1:
            raise ValueError(f"different_init: must be >= 1, got {self.restarts}")
        size = self.transforms.size if self.transforms is not None else None
        if self.tta is None:
            object.__setattr__(self, "tta", size or 1)
        elif self.tta < 1 or (size is not None and size != self.tta):
            raise ValueError(f"tta: {self.tta} copies" + (f" but {size} transforms" if size else ", must be >= 1"))

    @property
    def copies(self) -> int:
        return self.restarts * self.tta


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
        unknown = sorted(set(self.outputs.save) - set(OUTPUT_FIELDS))
        if unknown:
            raise ValueError(f"save_outputs: unknown {unknown}; known: {list(OUTPUT_FIELDS)}")
        if self.breadth.tta > 1 and any(
                "logits" in e.fields for e in self.outputs.evaluators.values()):
            raise ValueError("tta: a task evaluator reading logits needs tta=1 (they are not mapped back to the "
                             "puzzle's frame)")
        stray = sorted(set(self.outputs.evaluators) - set(depths))
        if stray:
            raise ValueError(f"evaluators: depths {stray} are not evaluated (depths {list(depths)})")
        if self.counting not in COUNTING_MODES:
            raise ValueError(f"counting: {self.counting!r} is not one of {', '.join(COUNTING_MODES)}")
        self._check_breadth()

    def _check_breadth(self) -> None:
        """Selection and adaptive breadth need enough trajectories per puzzle (B x tta = copies), and the
        reference's counting has no adaptive breadth."""
        copies, top_k, agree = self.breadth.copies, self.selection.top_k, self.breadth.agree
        if top_k is not None and not 1 <= top_k <= copies:
            raise ValueError(f"convergence_top_k: {top_k} is outside 1..{copies}, the trajectories per puzzle "
                             "(different_init x tta)")
        if agree is not None:
            if not 1 <= agree <= copies or copies == 1:
                raise ValueError(f"breadth_agree: must lie in 1..{copies} (trajectories per puzzle) with "
                                 f"different_init x tta > 1, got {agree}")
            if self.counting != "clean":
                raise ValueError("breadth_agree: the reference has no adaptive breadth; use reference_counting=false")

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
