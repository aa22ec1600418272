"""ARC-AGI as a task of the registry: what the evaluation does with a scored submission beyond its metrics.

The parts live beside this module: the token layout and augmentations (dataset/arc_grid.py), the builder
(dataset/build_arc_dataset.py), the voting evaluator (dataset/arc_evaluator.py) and the pictures
(dataset/arc_render.py). Here: one PNG per task (test input, first attempt, expected output) for the first
`arc_plots` tasks of a submission, drawn in the task's original frame from test_puzzles.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dataset import arc_render
from dataset.format import DatasetFormatError


def _grid(rows: Any) -> np.ndarray:
    grid = np.asarray(rows, dtype=np.uint8)
    return grid.reshape(0, 0) if grid.size == 0 else grid


def draw_submission(data_dir: Path, files: Mapping[str, Any], folder: Path, count: int) -> list[Path]:
    """`<folder>/<task>.png` for the first `count` tasks of `files["submission.json"]` (test_puzzles.json order)."""
    submission = files.get("submission.json")
    if not count or not submission:
        return []
    source = Path(data_dir) / "test_puzzles.json"
    if not source.is_file():
        raise DatasetFormatError(f"{source}: missing; arc_plots draws the test inputs and outputs it holds")
    puzzles = json.loads(source.read_text())
    written = []
    for task_id in list(submission)[:count]:
        tests = puzzles[task_id]["test"]
        pairs = [(_grid(test["input"]), _grid(attempts["attempt_1"]), _grid(test["output"]))
                 for test, attempts in zip(tests, submission[task_id], strict=False)]
        written.append(arc_render.draw_task(folder / f"{task_id}.png", f"ARC task {task_id}", pairs))
    return written
