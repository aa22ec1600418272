"""Trivial answers a trained model has to beat, so reported accuracies can be read against them.

    python -m dataset.baselines DATA_DIR [--split test]

The dataset's task supplies its baseline (dataset/tasks.py); mazes: mark every open cell as path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dataset.format import DatasetFormatError, load_metadata, load_set
from dataset.tasks import task_of


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    split_dir = args.data_dir / args.split
    try:
        metadata = load_metadata(split_dir)
        arrays = load_set(split_dir, "all", metadata)
    except DatasetFormatError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    task = task_of(metadata, args.data_dir)
    if task.baseline is None:
        print(f"error: {args.data_dir}: the {task.name} task defines no trivial baseline", file=sys.stderr)
        return 2
    result = task.baseline(np.asarray(arrays.inputs), np.asarray(arrays.labels))
    print(f"trivial baseline ({task.baseline_name}) on {args.data_dir} [{args.split}]: "
          f"exact_accuracy {result['exact_accuracy']:.4f}, accuracy {result['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
