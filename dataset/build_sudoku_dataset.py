"""Build the Sudoku-Extreme dataset: `python -m dataset.build_sudoku_dataset`.

Sources: the Hugging Face dataset repo (default `sapientinc/sudoku-extreme`, cached by
huggingface_hub), a local directory with `train.csv`/`test.csv` in the same format, or
offline generation. Defaults and randomness are the reference builder's, so a CSV build with
the same options gives its arrays bit for bit (the paper's 1k set: `--subsample-size 1000
--num-aug 1000`). Output is written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator

if __package__ in (None, ""):  # run as `python dataset/<name>.py`, not -m: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.format import SplitArrays, write_identifiers, write_split  # noqa: E402
from dataset.hub_csv import run_build, split_csv  # noqa: E402
from dataset.sudoku import VOCAB_SIZE, encode_tokens  # noqa: E402
from dataset.sudoku.augment import augment  # noqa: E402
from dataset.sudoku.csv_source import InvalidRowError, SudokuRows, read_sudoku_csv  # noqa: E402
from dataset.sudoku.generate import GenerationError, generate_rows  # noqa: E402
from utils import cli  # noqa: E402
from utils.atomic import atomic_output_dir, check_target  # noqa: E402
from utils.validation import ConfigError, format_validation_error  # noqa: E402

GENERATED_DEFAULT_SIZE = 1000
OFFLINE_HINT = "To build offline instead, rerun with --source-dir DIR (train.csv/test.csv) or --source generate"


class EmptySplitError(ValueError):
    """Filtering left a split without puzzles."""


class SudokuBuildConfig(BaseModel):
    """Options of the Sudoku builder (CLI flags of the same names); the reference's defaults."""

    output_dir: Path = Path("data/sudoku-extreme-full")
    source: Literal["hub", "dir", "generate"] = "hub"
    source_repo: str = "sapientinc/sudoku-extreme"
    source_dir: Path | None = None
    subsample_size: int | None = Field(default=None, ge=1)
    test_subsample_size: int | None = Field(default=None, ge=1)
    min_difficulty: int | None = Field(default=None, ge=0)
    num_aug: int = Field(default=0, ge=0)
    seed: int = Field(default=42, ge=0, lt=2**32)  # np.random.seed's range
    skip_invalid: bool = False
    overwrite: bool = False

    @model_validator(mode="after")
    def _source_consistent(self) -> SudokuBuildConfig:
        if self.source == "dir" and self.source_dir is None:
            raise ValueError("source 'dir' needs --source-dir")
        if self.source != "dir" and self.source_dir is not None:
            raise ValueError(f"--source-dir conflicts with --source {self.source}")
        return self


class _Streams:
    """The builder's randomness: the reference's legacy stream, and the offline generator's own."""

    def __init__(self, seed: int) -> None:
        self.legacy = np.random.RandomState(seed)  # the stream np.random.seed(seed) starts
        self.generator = np.random.default_rng(seed)
        self.seen: set[bytes] = set()  # generated puzzles so far: train and test stay disjoint


def _load_split(config: SudokuBuildConfig, split: str, streams: _Streams) -> SudokuRows:
    """Rows of one split after the difficulty filter and subsampling (in drawn order, as the reference)."""
    size = config.subsample_size if split == "train" else config.test_subsample_size
    if config.source == "generate":
        return generate_rows(size or GENERATED_DEFAULT_SIZE, config.min_difficulty or 0, streams.generator,
                             streams.seen, label=f"generating {split}")
    rows = read_sudoku_csv(split_csv(config.source_dir, config.source_repo, split), skip_invalid=config.skip_invalid)
    if rows.skipped:
        print(f"{split}: skipped {len(rows.skipped)} invalid rows (first: {rows.skipped[0]})")
    if config.min_difficulty is not None:
        rows = rows.select(np.flatnonzero(rows.ratings >= config.min_difficulty))
    if size is not None and size < len(rows):
        rows = rows.select(streams.legacy.choice(len(rows), size=size, replace=False))
    elif size is not None and size > len(rows):
        flag = "--subsample-size" if split == "train" else "--test-subsample-size"
        print(f"{split}: {flag} {size} exceeds the {len(rows)} puzzles available; kept all {len(rows)}")
    return rows


def _convert_split(config: SudokuBuildConfig, split: str, streams: _Streams) -> SplitArrays:
    """One split completely (read, select, augment) before the next draws from the stream."""
    rows = _load_split(config, split, streams)
    num_aug = config.num_aug if split == "train" else 0
    puzzles, solutions = augment(rows.questions, rows.answers, num_aug, streams.legacy)
    return SplitArrays.one_example_per_puzzle(encode_tokens(puzzles), encode_tokens(solutions), 1 + num_aug)


def build_sudoku_dataset(config: SudokuBuildConfig) -> Path:
    """Build both splits, train first from the seeded stream, and return the output directory."""
    check_target(config.output_dir, config.overwrite)
    streams = _Streams(config.seed)
    splits = {split: _convert_split(config, split, streams) for split in ("train", "test")}
    groups = {split: len(arrays.group_indices) - 1 for split, arrays in splits.items()}
    if 0 in groups.values():
        raise EmptySplitError(f"no puzzles left (train {groups['train']}, test {groups['test']}) after filtering")
    with atomic_output_dir(config.output_dir, config.overwrite) as tmp:
        for split, arrays in splits.items():
            write_split(tmp / split, arrays, vocab_size=VOCAB_SIZE, task="sudoku")
        write_identifiers(tmp)
    print(f"wrote {config.output_dir}: train {groups['train']} puzzles x {1 + config.num_aug}, "
          f"test {groups['test']} puzzles")
    return config.output_dir


def _size(text: str) -> int | None:
    return None if text == "all" else int(text)


def parse_args(argv: list[str] | None = None) -> SudokuBuildConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = SudokuBuildConfig()
    parser.add_argument("--output-dir", type=Path, default=defaults.output_dir, help=f"default {defaults.output_dir}")
    parser.add_argument(
        "--source",
        choices=["hub", "generate"],
        default=None,
        help="hub (default) or generate (offline); --source-dir implies a local source",
    )
    parser.add_argument("--source-repo", default=defaults.source_repo, help=f"default {defaults.source_repo}")
    parser.add_argument("--source-dir", type=Path, default=None, help="directory with train.csv and test.csv")
    parser.add_argument(
        "--subsample-size",
        type=_size,
        default=defaults.subsample_size,
        help="training puzzles drawn at random (default all; the paper's 1k set: 1000)",
    )
    parser.add_argument(
        "--test-subsample-size",
        type=_size,
        default=None,
        help="test puzzles to keep (default all; 1000 when generating)",
    )
    parser.add_argument("--min-difficulty", type=int, default=None, help="keep puzzles rated at least this")
    parser.add_argument("--num-aug", type=int, default=defaults.num_aug,
                        help="augmented copies per training puzzle (default 0; the paper's 1k set: 1000)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help=f"default {defaults.seed}")
    parser.add_argument("--skip-invalid", action="store_true", help="drop and count invalid CSV rows")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    cli.add_debug_option(parser)
    args = vars(parser.parse_args(argv))
    del args["debug"]
    args["source"] = args["source"] or ("dir" if args["source_dir"] is not None else "hub")
    try:
        return SudokuBuildConfig(**args)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_build(argv, parse_args, build_sudoku_dataset, OFFLINE_HINT,
                     (InvalidRowError, EmptySplitError, GenerationError))


if __name__ == "__main__":
    sys.exit(main())
