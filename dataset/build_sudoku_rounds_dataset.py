"""Build the study task: Sudoku puzzles spread over rounds of singles, with a harder held-out split.

`python -m dataset.build_sudoku_rounds_dataset --output-dir DIR` writes, offline, five splits of
uniquely solvable 9x9 puzzles (`dataset.sudoku.rounds` rates them):
  train      puzzles of --train-rounds LOW HIGH rounds, each with --num-aug symmetric copies;
  val        more of the same distribution, for choosing settings (never the test split);
  test       more of the same distribution;
  hard_val   puzzles of --hard-rounds LOW HIGH rounds, above every training puzzle's rating, for
             choosing settings;
  hard_test  more of those: the harder held-out test split.
Every split holds `difficulty.npy` (the rounds of each puzzle, in puzzle order; a training copy
shares its original's rating, symmetries keep it). Puzzles are distinct across splits. `--seed`
and `--test-samples` draw a fresh test split of the same distribution.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator
from tqdm import tqdm

if __package__ in (None, ""):  # run as `python dataset/<name>.py`, not -m: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.format import SplitArrays, write_identifiers, write_split  # noqa: E402
from dataset.sudoku import VOCAB_SIZE, encode_tokens  # noqa: E402
from dataset.sudoku.augment import augment  # noqa: E402
from dataset.sudoku.generate import GenerationError  # noqa: E402
from dataset.sudoku.rounds import draw_puzzle  # noqa: E402
from utils import cli  # noqa: E402
from utils.atomic import atomic_output_dir, check_target  # noqa: E402
from utils.validation import ConfigError, format_validation_error  # noqa: E402

DIFFICULTY_FILE = "difficulty.npy"
ATTEMPTS_PER_PUZZLE = 50  # a hard draw succeeds about one time in four


class RoundsBuildConfig(BaseModel):
    """Options of the study-task builder (CLI flags of the same names)."""

    output_dir: Path = Path("data/sudoku-rounds")
    train_samples: int = Field(default=1000, ge=1)
    val_samples: int = Field(default=300, ge=1)
    test_samples: int = Field(default=300, ge=1)
    hard_val_samples: int = Field(default=300, ge=1)
    hard_test_samples: int = Field(default=300, ge=1)
    train_rounds: tuple[int, int] = (2, 8)
    hard_rounds: tuple[int, int] = (10, 16)
    num_aug: int = Field(default=100, ge=0)
    seed: int = Field(default=0, ge=0, lt=2**32)
    overwrite: bool = False

    @model_validator(mode="after")
    def _ranges(self) -> RoundsBuildConfig:
        for name, (low, high) in (("train_rounds", self.train_rounds), ("hard_rounds", self.hard_rounds)):
            if not 1 <= low <= high:
                raise ValueError(f"--{name.replace('_', '-')} needs 1 <= LOW <= HIGH, got {low} {high}")
        if self.hard_rounds[0] <= self.train_rounds[1]:
            raise ValueError(f"--hard-rounds {self.hard_rounds[0]} must be above every training puzzle's "
                             f"rating (--train-rounds up to {self.train_rounds[1]})")
        return self


@dataclass(frozen=True)
class DrawnSplit:
    """One split's boards [n, 81] (digits, 0 = empty) and the rounds of each puzzle."""

    puzzles: np.ndarray
    solutions: np.ndarray
    ratings: np.ndarray


def draw_split(count: int, rounds: tuple[int, int], rng: np.random.Generator, seen: set[bytes],
               label: str) -> DrawnSplit:
    """`count` distinct puzzles rated within `rounds` (not in `seen`, which is updated)."""
    puzzles, solutions, ratings = [], [], []
    attempts = 0
    with tqdm(total=count, desc=label, unit="puzzle", mininterval=1.0, leave=False) as bar:
        while len(puzzles) < count:
            if attempts >= ATTEMPTS_PER_PUZZLE * count:
                raise GenerationError(f"{label}: drew only {len(puzzles)} of {count} puzzles rated "
                                      f"{rounds[0]}-{rounds[1]} rounds in {attempts} attempts; widen the range")
            attempts += 1
            drawn = draw_puzzle(rng, *rounds)
            if drawn is None or (key := bytes(drawn.puzzle)) in seen:
                continue
            seen.add(key)
            puzzles.append(drawn.puzzle)
            solutions.append(drawn.solution)
            ratings.append(drawn.rounds)
            bar.update(1)
    return DrawnSplit(np.array(puzzles, dtype=np.uint8), np.array(solutions, dtype=np.uint8),
                      np.array(ratings, dtype=np.int64))


def build_rounds_dataset(config: RoundsBuildConfig) -> Path:
    """Draw every split (in SPLITS order, from one seeded stream) and write them."""
    check_target(config.output_dir, config.overwrite)
    rng = np.random.default_rng(config.seed)
    augment_stream = np.random.RandomState(config.seed)
    seen: set[bytes] = set()
    plan = {"train": (config.train_samples, config.train_rounds), "val": (config.val_samples, config.train_rounds),
            "test": (config.test_samples, config.train_rounds),
            "hard_val": (config.hard_val_samples, config.hard_rounds),
            "hard_test": (config.hard_test_samples, config.hard_rounds)}
    drawn = {split: draw_split(count, rounds, rng, seen, label=f"drawing {split}")
             for split, (count, rounds) in plan.items()}
    with atomic_output_dir(config.output_dir, config.overwrite) as tmp:
        for split, split_draw in drawn.items():
            copies = config.num_aug if split == "train" else 0
            boards, answers = augment(split_draw.puzzles, split_draw.solutions, copies, augment_stream)
            arrays = SplitArrays.one_example_per_puzzle(encode_tokens(boards), encode_tokens(answers), 1 + copies)
            write_split(tmp / split, arrays, vocab_size=VOCAB_SIZE, task="sudoku")
            np.save(tmp / split / DIFFICULTY_FILE, np.repeat(split_draw.ratings, 1 + copies))
        write_identifiers(tmp)
    summary = ", ".join(f"{split} {len(d.ratings)} ({d.ratings.min()}-{d.ratings.max()} rounds)"
                        for split, d in drawn.items())
    print(f"wrote {config.output_dir}: {summary}; train x {1 + config.num_aug} with symmetric copies")
    return config.output_dir


def load_difficulty(split_dir: Path | str) -> np.ndarray:
    """The rounds of each puzzle of a split this builder wrote, in puzzle order."""
    path = Path(split_dir) / DIFFICULTY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (build the split with dataset.build_sudoku_rounds_dataset)")
    return np.load(path)


def parse_args(argv: list[str] | None = None) -> RoundsBuildConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = RoundsBuildConfig()
    for name, value in defaults.model_dump().items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true")
        elif isinstance(value, tuple):
            parser.add_argument(flag, type=int, nargs=2, metavar=("LOW", "HIGH"), default=value,
                                help=f"default {value[0]} {value[1]}")
        else:
            parser.add_argument(flag, type=type(value), default=value, help=f"default {value}")
    cli.add_debug_option(parser)
    args = vars(parser.parse_args(argv))
    del args["debug"]
    try:
        return RoundsBuildConfig(**args)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv

    def work() -> None:
        build_rounds_dataset(parse_args(argv))

    return cli.run_main(work, errors=(ConfigError,), failures=(FileExistsError, GenerationError),
                        debug=cli.debug_requested(argv))


if __name__ == "__main__":
    sys.exit(main())
