"""Trivial answers a trained model has to beat, so reported accuracies can be read against them.

    python -m dataset.baselines DATA_DIR [--split test]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dataset.format import DatasetFormatError, load_metadata, load_set
from dataset.maze import CHARSET


def maze_mark_every_open_cell(inputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Predict 'o' on every open cell: right wherever the path runs, wrong on every dead end."""
    open_id, path_id = 1 + CHARSET.index(" "), 1 + CHARSET.index("o")
    preds = np.where(inputs == open_id, path_id, inputs)
    correct = preds == labels
    return {"exact_accuracy": float(correct.all(axis=1).mean()), "accuracy": float(correct.mean())}


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
    if metadata.vocab_size != 1 + len(CHARSET):
        print(f"error: {args.data_dir}: only maze datasets (vocab {1 + len(CHARSET)}) have a baseline here",
              file=sys.stderr)
        return 2
    result = maze_mark_every_open_cell(np.asarray(arrays.inputs), np.asarray(arrays.labels))
    print(f"trivial baseline (mark every open cell as path) on {args.data_dir} [{args.split}]: "
          f"exact_accuracy {result['exact_accuracy']:.4f}, accuracy {result['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
