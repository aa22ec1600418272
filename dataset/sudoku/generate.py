"""Offline Sudoku puzzles with unique solutions, and a CLI that writes them as CSVs.

`python -m dataset.sudoku.generate --output-dir DIR` writes `train.csv` and `test.csv` in
the `source,question,answer,rating` format, so a build can run from `--source-dir DIR`
without network access. The rating is the number of guesses the propagation solver
needs; `--min-difficulty` keeps only puzzles rated at least that.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

if __package__ in (None, ""):  # run as `python dataset/<name>.py`, not -m: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dataset.sudoku.csv_source import SudokuRows, write_sudoku_csv  # noqa: E402
from dataset.sudoku.solver import generate_puzzle, rate  # noqa: E402
from utils import cli  # noqa: E402
from utils.atomic import atomic_output_dir, check_target  # noqa: E402

SOURCE_NAME = "generated"
ATTEMPTS_PER_PUZZLE = 200


class GenerationError(RuntimeError):
    """Too few puzzles reached the requested difficulty within the attempt budget."""


def generate_rows(
    count: int, min_difficulty: int, rng: np.random.Generator, seen: set[bytes] | None = None,
    label: str = "generating puzzles",
) -> SudokuRows:
    """`count` distinct puzzles rated >= min_difficulty; `seen` (updated) excludes earlier ones.

    A progress bar (stderr) counts the puzzles kept: a default build takes about a minute.
    """
    seen = set() if seen is None else seen
    questions, answers, ratings = [], [], []
    attempts = 0
    # closed on an error or Ctrl-C too, so the bar is cleared before the one-line message
    with tqdm(total=count, desc=label, unit="puzzle", mininterval=1.0, leave=False) as bar:
        while len(questions) < count:
            if attempts >= ATTEMPTS_PER_PUZZLE * count:
                raise GenerationError(
                    f"generated only {len(questions)} of {count} puzzles rated >= {min_difficulty} in "
                    f"{attempts} attempts; lower --min-difficulty"
                )
            attempts += 1
            puzzle, solution = generate_puzzle(rng)
            rating = rate(puzzle)
            key = bytes(puzzle)
            if rating < min_difficulty or key in seen:
                continue
            seen.add(key)
            questions.append(puzzle)
            answers.append(solution)
            ratings.append(rating)
            bar.update(1)
    shape = (len(questions), 81)
    return SudokuRows(
        questions=np.array(questions, dtype=np.uint8).reshape(shape),
        answers=np.array(answers, dtype=np.uint8).reshape(shape),
        ratings=np.array(ratings, dtype=np.int64),
        lines=np.zeros(len(questions), dtype=np.int64),
    )


def write_generated_csvs(
    output_dir: Path, train_size: int, test_size: int, min_difficulty: int, seed: int, overwrite: bool = False
) -> None:
    """Generate disjoint train/test puzzle sets and write them as CSVs (atomically)."""
    check_target(output_dir, overwrite)  # before minutes of generation, not after
    rng = np.random.default_rng(seed)
    seen: set[bytes] = set()
    splits = {"train": generate_rows(train_size, min_difficulty, rng, seen, label="generating train")}
    splits["test"] = generate_rows(test_size, min_difficulty, rng, seen, label="generating test")
    with atomic_output_dir(output_dir, overwrite) as tmp:
        for name, rows in splits.items():
            write_sudoku_csv(tmp / f"{name}.csv", rows.questions, rows.answers, rows.ratings, SOURCE_NAME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--min-difficulty", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)

    def work() -> None:
        write_generated_csvs(
            args.output_dir, args.train_size, args.test_size, args.min_difficulty, args.seed, args.overwrite
        )

    return cli.run_main(work, failures=(FileExistsError, GenerationError), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
