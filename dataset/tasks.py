"""The task registry: one entry per puzzle type, holding everything that depends on what tokens mean.

Datasets record their task in dataset.json (`"task": "maze"`); tools that need to know it (test-
time augmentation, `dataset.show`, `scripts/visualize.py`, baselines, builders) ask `task_of`
instead of guessing from shapes. A dataset written before the field existed is identified once,
by the one registered task whose `matches(seq_len, vocab_size)` accepts it, with a warning; one
that no task claims is shown as plain tokens. Adding a puzzle type is `register_task(Task(...))` in a
module of your own, named with `plugins=[...]` (docs/extending.md).

A task's symmetries are a `Symmetry`: the one implementation of its group's action, which its
builder's augmentation uses too, drawn as gather maps that dataset/symmetries.py turns into an
invertible `TransformSet` for test-time augmentation.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataset import maze, sudoku
from dataset.arc import grid as arc_grid
from dataset.arc import render as arc_render
from dataset.arc.evaluator import arc_evaluator
from dataset.format import DatasetFormatError, DatasetMetadata
from dataset.symmetries import Maps
from dataset.task_evaluator import EvaluatorFactory, SummaryColumn, TaskEvaluator
from utils.validation import ConfigError

log = logging.getLogger(__name__)

Examples = tuple[np.ndarray, np.ndarray]  # inputs, labels: [N, seq_len] token ids


@dataclass(frozen=True)
class Symmetry:
    """A group of validity-preserving transforms; `maps(count, seq_len, vocab_size, seed)` draws `count` of them
    (identity first) for test-time augmentation from the same action the task's builder augments with."""

    name: str  # what `tta_kind` calls it
    maps: Callable[[int, int, int, int], Maps]


def _sudoku_maps(count: int, seq_len: int, vocab_size: int, seed: int) -> Maps:
    if (seq_len, vocab_size) != (sudoku.SEQ_LEN, sudoku.VOCAB_SIZE):
        raise ConfigError(f"tta: sudoku symmetries need seq_len {sudoku.SEQ_LEN} and vocab {sudoku.VOCAB_SIZE}, "
                          f"got {seq_len} and {vocab_size}")
    return sudoku.tta_symmetries(count, seed)


def _dihedral_maps(count: int, seq_len: int, vocab_size: int, seed: int) -> Maps:
    """The first `count` of the 8 (no randomness: `seed` unused)."""
    side = math.isqrt(seq_len)
    if side * side != seq_len:
        raise ConfigError(f"tta: dihedral symmetries need a square grid, seq_len {seq_len} is not a square")
    if not 1 <= count <= 8:
        raise ConfigError(f"tta: a square grid has 8 symmetries, asked for {count}")
    cells = np.stack([maze.dihedral_cells(side, element) for element in range(count)])
    return cells, np.tile(np.arange(vocab_size), (count, 1))


SYMMETRIES = {group.name: group for group in (Symmetry("sudoku", _sudoku_maps), Symmetry("dihedral", _dihedral_maps))}


def _token_lines(tokens: np.ndarray) -> list[str]:
    return [" ".join(str(int(t)) for t in tokens)]


def _draw_tokens(ax: Any, inputs: np.ndarray, labels: np.ndarray, pred: np.ndarray,
                 previous: np.ndarray | None) -> None:
    """Predicted token ids as a heat map (a square grid when seq_len is a square), wrong cells crossed; below
    the grid a colour bar of the ids and a legend of the cross."""
    import matplotlib
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator
    from mpl_toolkits.axes_grid1.inset_locator import inset_axes

    side = math.isqrt(len(pred))
    shape = (side, side) if side * side == len(pred) else (1, len(pred))
    top = max(int(inputs.max()), int(labels.max()), int(pred.max()), 1)  # one colour per id 0..top
    image = ax.imshow(pred.reshape(shape), cmap=matplotlib.colormaps["viridis"].resampled(top + 1),
                      vmin=-0.5, vmax=top + 0.5)
    rows, cols = np.divmod(np.flatnonzero((pred != labels) & (labels >= 0)), shape[1])
    ax.scatter(cols, rows, marker="x", color="red", s=30)
    bar = inset_axes(ax, width="70%", height=0.12, loc="upper center", bbox_to_anchor=(0, 0, 1, 0),
                     bbox_transform=ax.transAxes, borderpad=0.6)
    colours = ax.get_figure().colorbar(image, cax=bar, orientation="horizontal")
    colours.set_ticks(range(top + 1) if top < 16 else MaxNLocator(integer=True))
    colours.ax.tick_params(labelsize=7)
    colours.set_label("predicted token id", fontsize=8, labelpad=1)
    cross = Line2D([], [], linestyle="none", marker="x", color="red", markersize=6, label="differs from the label")
    ax.legend(handles=[cross], loc="upper center", bbox_to_anchor=(0.5, 0), borderaxespad=5.2, fontsize=8,
              frameon=False, handlelength=1.2)


@dataclass(frozen=True)
class Task:
    """One puzzle type. Only `name` and `vocab_size` are required; the rest have neutral defaults."""

    name: str
    vocab_size: int
    ignore_label_id: int | None = 0  # label id that is not scored (the pad token by default)
    matches: Callable[[int, int], bool] = lambda seq_len, vocab_size: False  # (seq_len, vocab) of an untagged set
    symmetry: Symmetry | None = None  # its transforms (builder augmentation and `tta=N`); None: identity only
    tta_note: str = ""  # why a task without symmetries has none, for `tta=N`'s error
    text_lines: Callable[[np.ndarray], list[str]] = _token_lines  # one example as text (`dataset.show`)
    draw_frame: Callable[..., None] = _draw_tokens  # (ax, inputs, labels, pred, previous) for visualize
    follows_rules: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # (inputs, preds) -> bool [N]
    baseline: Callable[[np.ndarray, np.ndarray], dict[str, float]] | None = None  # (inputs, labels) -> metrics
    baseline_name: str = ""
    generate: Callable[[int, np.random.Generator], Examples] | None = None  # for `dataset.build_task`
    evaluator: EvaluatorFactory | None = None  # dataset dir -> its own scorer (dataset/task_evaluator.py), as TRM's
    # `evaluators`: fed every finished row, its metrics follow the generic ones
    summary_columns: tuple[SummaryColumn, ...] = ()  # its evaluator's metrics in the evaluation's summary table
    # (dataset dir, the evaluator's files, folder, count) -> pictures of the first `count` results (`arc_plots`)
    draw_results: Callable[[Path, Mapping[str, Any], Path, int], list[Path]] | None = None

    def evaluators(self, data_paths: Sequence[Path | str], depths: Sequence[int]) -> dict[int, TaskEvaluator]:
        """A fresh evaluator of the task's own per depth, begun; none for a task without one."""
        if self.evaluator is None:
            return {}
        if len(data_paths) != 1:
            raise ConfigError(f"dataset_data_path: the {self.name} evaluator scores one dataset at a time, "
                              f"got {len(data_paths)}: {', '.join(map(str, data_paths))}")
        evaluators = {depth: self.evaluator(Path(data_paths[0])) for depth in depths}
        for evaluator in evaluators.values():
            evaluator.begin()
        return evaluators


TASKS: dict[str, Task] = {}
TOKENS = Task(name="tokens", vocab_size=0)  # what an unidentified dataset is shown as


def register_symmetry(symmetry: Symmetry) -> Symmetry:
    """Make `tta_kind=<name>` draw this symmetry on any dataset; returns it."""
    SYMMETRIES[symmetry.name] = symmetry
    return symmetry


def register_task(task: Task) -> Task:
    """Make `task` known by name (dataset.json's `task`, the builders, the tools); its symmetry too."""
    TASKS[task.name] = task
    if task.symmetry is not None:
        register_symmetry(task.symmetry)
    return task


register_task(Task(
    name="sudoku", vocab_size=sudoku.VOCAB_SIZE, symmetry=SYMMETRIES["sudoku"],
    matches=lambda seq_len, vocab: (seq_len, vocab) == (sudoku.SEQ_LEN, sudoku.VOCAB_SIZE),
    text_lines=sudoku.text_lines, draw_frame=sudoku.draw_frame, follows_rules=sudoku.follows_rules,
))
register_task(Task(
    name="arc", vocab_size=arc_grid.VOCAB_SIZE,
    matches=lambda seq_len, vocab: (seq_len, vocab) == (arc_grid.SEQ_LEN, arc_grid.VOCAB_SIZE),
    text_lines=arc_render.text_lines, draw_frame=arc_render.draw_frame,
    evaluator=arc_evaluator, draw_results=arc_render.draw_submission,
    summary_columns=(SummaryColumn("ARC/pass@1", "ARC pass@1 %"), SummaryColumn("ARC/pass@2", "ARC pass@2 %"),
                     SummaryColumn("ARC/official_pass@2", "ARC official pass@2 %")),
    tta_note="ARC's augmentations are built into its test split (--num-aug) and all of them vote",
))
register_task(Task(
    name="maze", vocab_size=maze.VOCAB_SIZE, symmetry=SYMMETRIES["dihedral"],
    matches=lambda seq_len, vocab: vocab == maze.VOCAB_SIZE and math.isqrt(seq_len) ** 2 == seq_len,
    text_lines=maze.text_lines, draw_frame=maze.draw_frame, follows_rules=maze.follows_rules,
    baseline=maze.mark_every_open_cell, baseline_name="mark every open cell as path",
))


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise DatasetFormatError(f"task {name!r} is not registered; known: {', '.join(sorted(TASKS))} "
                                 "(a plug-in's task: name its module with plugins=[...])")
    return TASKS[name]


_identified: set[str] = set()


def task_of(metadata: DatasetMetadata, source: Path | str) -> Task:
    """The dataset's task: as recorded, else identified from its shape (warning once per dataset)."""
    if metadata.task is not None:
        return get_task(metadata.task)
    claims = [t for t in TASKS.values() if t.matches(metadata.seq_len, metadata.vocab_size)]
    task = claims[0] if len(claims) == 1 else TOKENS
    if str(source) not in _identified:
        _identified.add(str(source))
        how = f"identified as {task.name} from seq_len {metadata.seq_len} and vocab {metadata.vocab_size}" \
            if task is not TOKENS else "shown as plain tokens"
        log.warning("%s: dataset.json names no task; %s (rebuild the dataset to record it)", source, how)
    return task
