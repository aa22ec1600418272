"""Build Maze-Hard (`sapientinc/maze-30x30-hard-1k`): `python -m dataset.build_maze_dataset`.

HRM's and TRM's builder of the same name, value for value: every grid of `"# SGo"` characters
becomes character index + 1; the training split is optionally subsampled from numpy's legacy
stream as np.random.seed(seed) starts it (HRM draws from that global stream unseeded, so the seed
is ours) and optionally expanded into the 8 dihedral transforms of each maze, one group per
original maze; the test split is kept as is. Rows are validated (`file:line: reason`) and the
output is written atomically.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, ValidationError

if __package__ in (None, ""):  # run as `python dataset/<name>.py`, not -m: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.format import SplitArrays, write_identifiers, write_split  # noqa: E402
from dataset.hub_csv import run_build, split_csv  # noqa: E402
from dataset.maze import CHARSET, OPEN, PATH, VOCAB_SIZE, dihedral_cells  # noqa: E402
from dataset.sudoku.csv_source import HEADER, InvalidRowError  # noqa: E402
from utils import cli  # noqa: E402
from utils.atomic import atomic_output_dir, check_target  # noqa: E402
from utils.validation import ConfigError, format_validation_error  # noqa: E402

OFFLINE_HINT = "To build offline instead, rerun with --source-dir DIR holding train.csv and test.csv"
_INVALID = 255
_TOKENS = np.full(256, _INVALID, dtype=np.uint8)  # byte -> token id (index in CHARSET + 1)
_TOKENS[np.frombuffer(CHARSET.encode(), dtype=np.uint8)] = np.arange(1, len(CHARSET) + 1)

# The reference's augmentation order as elements of `dihedral_cells`' group: identity, rotations by 90, 180 and
# 270 degrees counter-clockwise, mirror left-right, mirror up-down, transpose, rot90 then mirror left-right
# (the anti-diagonal reflection).
DIHEDRAL = (0, 1, 2, 3, 7, 5, 4, 6)


class MazeHardBuildConfig(BaseModel):
    """Options of the Maze-Hard builder (CLI flags of the same names)."""

    output_dir: Path = Path("data/maze-30x30-hard-1k")
    source_repo: str = "sapientinc/maze-30x30-hard-1k"
    source_dir: Path | None = None
    subsample_size: int | None = Field(default=None, ge=1)
    aug: bool = False
    seed: int = Field(default=0, ge=0, lt=2**32)  # np.random.seed's range
    overwrite: bool = False


def _grid_reason(name: str, text: str, tokens: np.ndarray, cells: int) -> str | None:
    if len(text) != cells:
        side = math.isqrt(cells)
        return f"{name} has {len(text)} characters, expected {cells} ({side}x{side} like the first maze)"
    if (tokens == _INVALID).any():
        pos = int(np.argmax(tokens == _INVALID))
        return f"{name} has invalid character {text[pos]!r} at position {pos + 1} (expected one of {CHARSET!r})"
    return None


def _parse_row(row: list[str], cells: int | None) -> tuple[np.ndarray, np.ndarray] | str:
    """Token ids of (question, answer), or why the row is bad. `cells`: grid size set by the first row."""
    if len(row) != len(HEADER):
        return f"expected {len(HEADER)} fields ({','.join(HEADER)}), found {len(row)}"
    if cells is None and (not row[1] or math.isqrt(len(row[1])) ** 2 != len(row[1])):
        return f"question has {len(row[1])} characters, not a square grid"
    cells = cells or len(row[1])
    question, answer = (_TOKENS[np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8)]
                        for text in row[1:3])
    reason = _grid_reason("question", row[1], question, cells) or _grid_reason("answer", row[2], answer, cells)
    if reason:
        return reason
    changed = (question != answer) & ~((question == OPEN) & (answer == PATH))
    if changed.any():
        r, c = divmod(int(np.argmax(changed)), math.isqrt(cells))
        return f"answer changes the question at row {r + 1}, column {c + 1} (only open cells may become 'o')"
    return question, answer


def read_maze_csv(path: Path, cells: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Questions and answers as token ids [N, cells], rows in file order; `cells` None: the first row's size.

    The first bad row stops reading with InvalidRowError `file:line: reason`."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CSV file")
    questions, answers = [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != HEADER:
            raise InvalidRowError(f"{path}:1: expected header {','.join(HEADER)}, found {header}")
        for row in filter(None, reader):
            parsed = _parse_row(row, cells)
            if isinstance(parsed, str):
                raise InvalidRowError(f"{path}:{reader.line_num}: {parsed}")
            questions.append(parsed[0])
            answers.append(parsed[1])
            cells = len(parsed[0])
    if not questions:
        raise InvalidRowError(f"{path}: no mazes after the header")
    return np.stack(questions), np.stack(answers)


def dihedral_copies(tokens: np.ndarray) -> np.ndarray:
    """[N, n*n] -> [N*8, n*n]: each maze followed by its transforms 1..7 in the reference's order."""
    side = math.isqrt(tokens.shape[1])
    cells = np.stack([dihedral_cells(side, element) for element in DIHEDRAL])  # [8, n*n]
    return tokens[:, cells].reshape(-1, side * side)


def build_maze_hard_dataset(config: MazeHardBuildConfig) -> Path:
    """Convert both splits and write the dataset; returns the output directory."""
    check_target(config.output_dir, config.overwrite)
    train = read_maze_csv(split_csv(config.source_dir, config.source_repo, "train"))
    test = read_maze_csv(split_csv(config.source_dir, config.source_repo, "test"), cells=train[0].shape[1])
    legacy = np.random.RandomState(config.seed)  # the stream np.random.seed(seed) starts, which the reference uses
    if config.subsample_size is not None and config.subsample_size < len(train[0]):
        index = legacy.choice(len(train[0]), size=config.subsample_size, replace=False)  # in drawn order
        train = (train[0][index], train[1][index])
    per = 8 if config.aug else 1
    if config.aug:
        train = (dihedral_copies(train[0]), dihedral_copies(train[1]))
    with atomic_output_dir(config.output_dir, config.overwrite) as tmp:
        for name, (inputs, labels), group in (("train", train, per), ("test", test, 1)):
            write_split(tmp / name, SplitArrays.one_example_per_puzzle(inputs, labels, group), vocab_size=VOCAB_SIZE,
                        task="maze")
        write_identifiers(tmp)
    print(f"wrote {config.output_dir}: train {len(train[0]) // per} mazes x {per}, test {len(test[0])} mazes")
    return config.output_dir


def parse_args(argv: list[str] | None = None) -> MazeHardBuildConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = MazeHardBuildConfig()
    parser.add_argument("--output-dir", type=Path, default=defaults.output_dir)
    parser.add_argument("--source-repo", default=defaults.source_repo, help="Hub dataset repo with the CSVs")
    parser.add_argument("--source-dir", type=Path, default=None,
                        help="directory with train.csv and test.csv (instead of the Hub)")
    parser.add_argument("--subsample-size", type=int, default=None, help="training mazes to keep (default all)")
    parser.add_argument("--aug", action="store_true", help="each training maze as its 8 dihedral transforms")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="of the subsample (np.random.seed's stream)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    cli.add_debug_option(parser)
    args = vars(parser.parse_args(argv))
    del args["debug"]
    try:
        return MazeHardBuildConfig(**args)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_build(argv, parse_args, build_maze_hard_dataset, OFFLINE_HINT, (InvalidRowError,))


if __name__ == "__main__":
    sys.exit(main())
