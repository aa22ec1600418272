"""Build the Sudoku-Extreme dataset: `python -m dataset.build_sudoku_dataset`.

Sources: the Hugging Face dataset repo (default `sapientinc/sudoku-extreme`, cached by
huggingface_hub), a local directory with `train.csv`/`test.csv` in the same format, or
offline generation. Training puzzles are subsampled and augmented (one group per
original puzzle), the test set is kept as is. Output is written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

import huggingface_hub
import numpy as np
from huggingface_hub.errors import LocalEntryNotFoundError
from pydantic import BaseModel, Field, ValidationError, model_validator

if __package__ in (None, ""):  # run as `python dataset/<name>.py`, not -m: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.download import (  # noqa: E402
    HUB_ERRORS,
    HubUnreachable,
    check_hub_reachable,
    hub_error_message,
    quiet_retries,
)
from dataset.format import SplitArrays, write_identifiers, write_split  # noqa: E402
from dataset.sudoku import VOCAB_SIZE, augment, encode_tokens  # noqa: E402
from dataset.sudoku_csv import InvalidRowError, SudokuRows, read_sudoku_csv  # noqa: E402
from dataset.sudoku_generate import GenerationError, generate_rows  # noqa: E402
from utils import cli  # noqa: E402
from utils.atomic import atomic_output_dir, check_target  # noqa: E402
from utils.validation import ConfigError, format_validation_error  # noqa: E402

GENERATED_DEFAULT_SIZE = 1000
OFFLINE_HINT = "To build offline instead, rerun with --source-dir DIR (train.csv/test.csv) or --source generate"


class EmptySplitError(ValueError):
    """Filtering left a split without puzzles."""


class SudokuBuildConfig(BaseModel):
    """Options of the Sudoku builder (CLI flags of the same names)."""

    output_dir: Path = Path("data/sudoku-extreme-1k-aug-1000")
    source: Literal["hub", "dir", "generate"] = "hub"
    source_repo: str = "sapientinc/sudoku-extreme"
    source_dir: Path | None = None
    subsample_size: int | None = Field(default=1000, ge=1)
    test_subsample_size: int | None = Field(default=None, ge=1)
    min_difficulty: int | None = Field(default=None, ge=0)
    num_aug: int = Field(default=1000, ge=0)
    seed: int = 0
    skip_invalid: bool = False
    overwrite: bool = False

    @model_validator(mode="after")
    def _source_consistent(self) -> SudokuBuildConfig:
        if self.source == "dir" and self.source_dir is None:
            raise ValueError("source 'dir' needs --source-dir")
        if self.source != "dir" and self.source_dir is not None:
            raise ValueError(f"--source-dir conflicts with --source {self.source}")
        return self


def _csv_path(config: SudokuBuildConfig, split: str) -> Path:
    """The split's CSV; offline the cached copy, or at once an error naming the unreachable address."""
    if config.source == "dir":
        return config.source_dir / f"{split}.csv"
    print(f"fetching {split}.csv from {config.source_repo} (cached after the first time)")
    try:
        check_hub_reachable()
    except HubUnreachable as offline:
        try:
            return _hub_csv(config.source_repo, split, local_only=True)
        except LocalEntryNotFoundError:
            raise HubUnreachable(f"{offline}; {split}.csv is not cached") from None
    return _hub_csv(config.source_repo, split, local_only=False)


def _hub_csv(repo: str, split: str, local_only: bool) -> Path:
    with quiet_retries():  # an outage ends in one message, not the client's retry warnings
        return Path(huggingface_hub.hf_hub_download(repo, f"{split}.csv", repo_type="dataset",
                                                    local_files_only=local_only))


def _load_split(
    config: SudokuBuildConfig, split: str, rng: np.random.Generator, seen: set[bytes]
) -> SudokuRows:
    """Rows of one split after the difficulty filter and subsampling."""
    size = config.subsample_size if split == "train" else config.test_subsample_size
    if config.source == "generate":
        return generate_rows(size or GENERATED_DEFAULT_SIZE, config.min_difficulty or 0, rng, seen,
                             label=f"generating {split}")
    rows = read_sudoku_csv(_csv_path(config, split), skip_invalid=config.skip_invalid)
    if rows.skipped:
        print(f"{split}: skipped {len(rows.skipped)} invalid rows (first: {rows.skipped[0]})")
    if config.min_difficulty is not None:
        rows = rows.select(np.flatnonzero(rows.ratings >= config.min_difficulty))
    if size is not None and size < len(rows):
        rows = rows.select(np.sort(rng.choice(len(rows), size=size, replace=False)))
    elif size is not None and size > len(rows):
        flag = "--subsample-size" if split == "train" else "--test-subsample-size"
        print(f"{split}: {flag} {size} exceeds the {len(rows)} puzzles available; kept all {len(rows)}")
    return rows


def _split_arrays(rows: SudokuRows, num_aug: int, rng: np.random.Generator) -> SplitArrays:
    puzzles, solutions = augment(rows.questions, rows.answers, num_aug, rng)
    return SplitArrays.one_example_per_puzzle(
        encode_tokens(puzzles.reshape(-1, 81)), encode_tokens(solutions.reshape(-1, 81)), 1 + num_aug
    )


def build_sudoku_dataset(config: SudokuBuildConfig) -> Path:
    """Build both splits and return the output directory."""
    check_target(config.output_dir, config.overwrite)
    rng = np.random.default_rng(config.seed)
    seen: set[bytes] = set()
    train = _load_split(config, "train", rng, seen)
    test = _load_split(config, "test", rng, seen)
    if len(train) == 0 or len(test) == 0:
        raise EmptySplitError(f"no puzzles left (train {len(train)}, test {len(test)}) after filtering")
    with atomic_output_dir(config.output_dir, config.overwrite) as tmp:
        for name, rows, num_aug in (("train", train, config.num_aug), ("test", test, 0)):
            write_split(tmp / name, _split_arrays(rows, num_aug, rng), vocab_size=VOCAB_SIZE, task="sudoku")
        write_identifiers(tmp)
    per = 1 + config.num_aug
    print(f"wrote {config.output_dir}: train {len(train)} puzzles x {per}, test {len(test)} puzzles")
    return config.output_dir


def _size(text: str) -> int | None:
    return None if text == "all" else int(text)


def parse_args(argv: list[str] | None = None) -> SudokuBuildConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = SudokuBuildConfig()
    parser.add_argument("--output-dir", type=Path, default=defaults.output_dir)
    parser.add_argument(
        "--source",
        choices=["hub", "generate"],
        default=None,
        help="hub (default) or generate (offline); --source-dir implies a local source",
    )
    parser.add_argument("--source-repo", default=defaults.source_repo)
    parser.add_argument("--source-dir", type=Path, default=None, help="directory with train.csv and test.csv")
    parser.add_argument(
        "--subsample-size",
        type=_size,
        default=defaults.subsample_size,
        help="training puzzles to keep ('all' keeps every one)",
    )
    parser.add_argument(
        "--test-subsample-size",
        type=_size,
        default=None,
        help="test puzzles to keep (default all; 1000 when generating)",
    )
    parser.add_argument("--min-difficulty", type=int, default=None)
    parser.add_argument("--num-aug", type=int, default=defaults.num_aug)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--skip-invalid", action="store_true", help="drop and count invalid CSV rows")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = vars(parser.parse_args(argv))
    del args["debug"]
    args["source"] = args["source"] or ("dir" if args["source_dir"] is not None else "hub")
    try:
        return SudokuBuildConfig(**args)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config = SudokuBuildConfig()

    def work() -> None:
        nonlocal config
        config = parse_args(argv)
        build_sudoku_dataset(config)

    def describe(err: BaseException) -> str:
        if isinstance(err, HUB_ERRORS):
            return hub_error_message(config.source_repo, err, OFFLINE_HINT)
        return cli.plain_error_line(err)

    failures = (*HUB_ERRORS, InvalidRowError, EmptySplitError, FileExistsError, FileNotFoundError, GenerationError)
    return cli.run_main(work, errors=(ConfigError,), failures=failures, debug=cli.debug_requested(argv),
                        describe=describe)


if __name__ == "__main__":
    sys.exit(main())
