"""Trivial answers a trained model has to beat, so reported accuracies can be read against them.

    python -m dataset.baselines DATA_DIR [--split test]

The dataset's task supplies its baseline (dataset/tasks.py); mazes: mark every open cell as path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as `python dataset/<name>.py`, not -m: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.format import DatasetFormatError, load_metadata, load_set  # noqa: E402
from dataset.tasks import task_of  # noqa: E402
from utils import cli  # noqa: E402


class NoBaselineError(ValueError):
    """The dataset's task defines no trivial baseline to report."""


def report(data_dir: Path, split: str) -> str:
    """One line: the task's trivial baseline scored on `data_dir`'s split."""
    split_dir = data_dir / split
    metadata = load_metadata(split_dir)
    arrays = load_set(split_dir, "all", metadata)
    task = task_of(metadata, data_dir)
    if task.baseline is None:
        raise NoBaselineError(f"{data_dir}: the {task.name} task defines no trivial baseline")
    result = task.baseline(np.asarray(arrays.inputs), np.asarray(arrays.labels))
    return (f"trivial baseline ({task.baseline_name}) on {data_dir} [{split}]: "
            f"exact_accuracy {result['exact_accuracy']:.4f}, accuracy {result['accuracy']:.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--split", default="test")
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    return cli.run_main(lambda: print(report(args.data_dir, args.split)),
                        errors=(DatasetFormatError, NoBaselineError), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
