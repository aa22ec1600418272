"""Print one dataset example as a readable grid: `python -m dataset.show DIR --split test --index 3`.

Sudoku (seq_len 81, vocab 11) is drawn with box lines and '.' for blanks, mazes (vocab 6,
square seq_len) with the `# SGo` charset; anything else as raw token ids.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from dataset import maze, sudoku
from dataset.format import DatasetFormatError, DatasetMetadata, load_split


def sudoku_lines(tokens: np.ndarray) -> list[str]:
    """9x9 grid with box separators; token 1 (blank) as '.', pad as ' '."""
    chars = [" ", "."] + [str(d) for d in range(1, 10)]
    lines = []
    for r in range(9):
        if r in (3, 6):
            lines.append("------+-------+------")
        cells = [chars[t] if 0 <= t < len(chars) else "?" for t in tokens[r * 9 : r * 9 + 9]]
        lines.append(" | ".join(" ".join(cells[c : c + 3]) for c in (0, 3, 6)))
    return lines


def grid_lines(tokens: np.ndarray, metadata: DatasetMetadata) -> list[str]:
    """Render one sequence according to what the dataset looks like."""
    tokens = np.asarray(tokens, dtype=np.int64)
    side = math.isqrt(metadata.seq_len)
    if metadata.seq_len == sudoku.SEQ_LEN and metadata.vocab_size == sudoku.VOCAB_SIZE:
        return sudoku_lines(tokens)
    if metadata.vocab_size == maze.VOCAB_SIZE and side * side == metadata.seq_len:
        return maze.decode_grid(tokens, side)
    return [" ".join(str(t) for t in tokens)]


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
    body = ["input:", *grid_lines(arrays.inputs[offset], metadata), "", "label:"]
    body += grid_lines(arrays.labels[offset], metadata)
    return "\n".join(header + [""] + body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        print(describe(args.data_dir, args.split, args.index))
    except (DatasetFormatError, IndexError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
