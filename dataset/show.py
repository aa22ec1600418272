"""Print one dataset example as a readable grid: `python -m dataset.show DIR --split test --index 3`.

The dataset's task (dataset/tasks.py) draws it: Sudoku with box lines and '.' for blanks, mazes
with the `# SGo` charset, a dataset no task claims as raw token ids.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as `python dataset/<name>.py`, not -m: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.format import DatasetFormatError, load_split  # noqa: E402
from dataset.tasks import task_of  # noqa: E402
from utils import cli, plugins  # noqa: E402
from utils.validation import ConfigError  # noqa: E402


def describe(data_dir: Path, split: str, index: int) -> str:
    """Text block: metadata, the example's puzzle/group, its input and label grids."""
    metadata, sets = load_split(data_dir / split)
    if index < 0:
        raise IndexError(f"{data_dir / split}: index {index} is negative")
    ends = np.cumsum([len(a.inputs) for a in sets])
    k = int(np.searchsorted(ends, index, side="right"))
    if k == len(sets):
        raise IndexError(f"{data_dir / split}: index {index} out of range (0..{int(ends[-1]) - 1})")
    set_name, arrays = metadata.sets[k], sets[k]
    offset = index - (int(ends[k - 1]) if k else 0)
    puzzle = int(np.searchsorted(arrays.puzzle_indices, offset, side="right") - 1)
    group = int(np.searchsorted(arrays.group_indices, puzzle, side="right") - 1)
    header = [
        f"{data_dir} [{split}] set {set_name!r} example {offset} (puzzle {puzzle}, group {group}, "
        f"identifier {int(arrays.puzzle_identifiers[puzzle])})",
        "metadata: " + ", ".join(f"{k}={v}" for k, v in metadata.model_dump().items()),
    ]
    task = task_of(metadata, data_dir)
    body = ["input:", *task.text_lines(np.asarray(arrays.inputs[offset], dtype=np.int64)), "", "label:"]
    body += task.text_lines(np.asarray(arrays.labels[offset], dtype=np.int64))
    return "\n".join(header + [""] + body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--index", type=int, default=0)
    cli.add_debug_option(parser)
    args = plugins.parse_arguments(parser, argv)

    def work() -> None:
        plugins.import_plugin_arguments(args.plugin_arguments)
        print(describe(args.data_dir, args.split, args.index))

    return cli.run_main(work, errors=(ConfigError,), failures=(DatasetFormatError, IndexError), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
