"""The interface of a task's own evaluator (TRM's `evaluators`): fed rows as they finish, scored once.

An evaluation makes one evaluator per reported depth from the task's factory (`Task.evaluator`, called
with the evaluated dataset's directory), calls `begin()` (start afresh: earlier votes are forgotten unless
the evaluator was made to aggregate them; a caller that keeps one evaluator over several evaluations
without calling it again accumulates them too), then `update(rows)` on
every rank with that rank's finished rows (numpy arrays of the fields it names; with test-time
augmentation `inputs`, `labels` and `preds` mapped back to the puzzle's own frame), then `result()` on every
rank: the evaluator gathers what it needs across ranks itself and returns its metrics and files on rank 0
(None elsewhere). Files are written by the caller into the evaluation's folder. An evaluator that also has
`state_dict()` and `load_state_dict(state)` (containers, numbers, strings, bytes, tensors) can be saved
with a stopped evaluation pass and continued (evaluation/pass_state.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np


class SummaryColumn(NamedTuple):
    """A metric of the task's evaluator as a column of the evaluation's summary table."""

    metric: str  # its key in the records (`ARC/pass@2`)
    title: str  # the column's title
    percent: bool = True  # shown x 100 with one decimal, else to 4 significant digits


@dataclass
class TaskResult:
    """Metrics (name -> value, logged beside the generic ones) and files (name -> JSON-able object)."""

    metrics: dict[str, float]
    files: dict[str, Any] = field(default_factory=dict)


class TaskEvaluator(Protocol):
    fields: tuple[str, ...]  # what `update` reads: inputs, labels, puzzle_identifiers, preds, q_halt_logits

    def begin(self) -> None: ...

    def update(self, rows: Mapping[str, np.ndarray]) -> None: ...

    def result(self) -> TaskResult | None: ...


EvaluatorFactory = Callable[[Path], TaskEvaluator]  # the evaluated dataset's directory -> a fresh evaluator
