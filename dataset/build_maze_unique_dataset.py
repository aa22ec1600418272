"""Build the Maze-Unique dataset: `python -m dataset.build_maze_unique_dataset`.

Each sample is a maze with start 'S', goal 'G' and a unique shortest path whose length
(moves) is drawn from the chosen distribution; the label marks the path's interior 'o'.
Every input is distinct across train and test (with --dedupe). Impossible lengths are
rejected before any generation starts. Output is written atomically.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator
from tqdm import tqdm

if __package__ in (None, ""):  # run as `python dataset/<name>.py`, not -m: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.format import SplitArrays, write_identifiers, write_split  # noqa: E402
from dataset.maze import VOCAB_SIZE  # noqa: E402
from dataset.maze.generate import MazeGenerationError, MazeMode, longest_possible_path, sample_maze  # noqa: E402
from utils import cli  # noqa: E402
from utils.atomic import atomic_output_dir, check_target  # noqa: E402
from utils.validation import ConfigError, format_validation_error  # noqa: E402


class MazeBuildConfig(BaseModel):
    """Options of the maze builder (CLI flags of the same names)."""

    output_dir: Path = Path("data/maze-30x30-unique-1k")
    grid_size: int = Field(default=30, ge=2)
    train_samples: int = Field(default=1000, ge=0)
    test_samples: int = Field(default=1000, ge=0)
    maze_mode: MazeMode = "perfect"
    wall_prob: float = Field(default=0.3, ge=0.0, lt=1.0)
    length_distribution: Literal["uniform", "normal", "fixed", "list"] = "uniform"
    min_path_length: int = Field(default=100, ge=1)
    max_path_length: int = Field(default=140, ge=1)
    length_mean: float | None = None
    length_std: float | None = Field(default=None, gt=0)
    path_length: int | None = Field(default=None, ge=1)
    path_lengths: list[int] | None = None
    require_unique: bool = True
    dedupe: bool = True
    max_attempts: int = Field(default=1000, ge=1)
    seed: int = 0
    overwrite: bool = False

    def candidate_lengths(self) -> list[int]:
        """Every length the distribution can produce (checked against the grid up front)."""
        if self.length_distribution == "fixed":
            return [self.path_length]
        if self.length_distribution == "list":
            return list(self.path_lengths)
        return [self.min_path_length, self.max_path_length]

    @model_validator(mode="after")
    def _lengths_fit(self) -> MazeBuildConfig:
        if self.length_distribution == "fixed" and self.path_length is None:
            raise ValueError("--length-distribution fixed needs --path-length")
        if self.length_distribution == "list" and not self.path_lengths:
            raise ValueError("--length-distribution list needs --path-lengths")
        if self.min_path_length > self.max_path_length:
            raise ValueError(
                f"--min-path-length {self.min_path_length} > --max-path-length {self.max_path_length}"
            )
        if (
            self.length_mean is not None
            and not self.min_path_length <= self.length_mean <= self.max_path_length
        ):
            raise ValueError(f"--length-mean {self.length_mean} lies outside the min/max path lengths")
        bound = longest_possible_path(self.grid_size, self.maze_mode)
        if bound < 1:
            raise ValueError(f"--grid-size {self.grid_size}: too small for a {self.maze_mode} maze with a path "
                             "(a perfect maze needs a grid of 5 or more)")
        too_long = [n for n in self.candidate_lengths() if n > bound or n < 1]
        if too_long:
            raise ValueError(
                f"path length {too_long[0]} cannot occur in a {self.maze_mode} "
                f"{self.grid_size}x{self.grid_size} maze (possible: 1..{bound} moves)"
            )
        return self


def draw_length(config: MazeBuildConfig, rng: random.Random) -> int:
    """One path length from the configured distribution."""
    if config.length_distribution == "uniform":
        return rng.randint(config.min_path_length, config.max_path_length)
    if config.length_distribution == "fixed":
        return config.path_length
    if config.length_distribution == "list":
        return rng.choice(config.path_lengths)
    lo, hi = config.min_path_length, config.max_path_length
    mean = config.length_mean if config.length_mean is not None else (lo + hi) / 2
    std = config.length_std if config.length_std is not None else max((hi - lo) / 4, 0.5)
    while True:
        length = round(rng.gauss(mean, std))
        if lo <= length <= hi:
            return length


def generate_samples(
    config: MazeBuildConfig, count: int, rng: random.Random
) -> tuple[np.ndarray, np.ndarray]:
    """`count` (inputs, labels) rows; with dedupe no input occurs twice."""
    seen: set[bytes] = set()
    inputs, labels = [], []
    repeats = 0
    # closed on an error or Ctrl-C too, so the bar is cleared before the one-line message
    with tqdm(total=count, desc="generating mazes", unit="maze", mininterval=1.0, leave=False) as bar:
        while len(inputs) < count:
            if repeats >= config.max_attempts:
                raise MazeGenerationError(
                    f"only {len(inputs)} distinct mazes after {repeats} duplicates in a row; "
                    "the grid and lengths allow too few different mazes for the requested count"
                )
            x, y = sample_maze(
                config.grid_size,
                draw_length(config, rng),
                config.maze_mode,
                config.wall_prob,
                config.require_unique,
                rng,
                config.max_attempts,
            )
            if config.dedupe and x.tobytes() in seen:
                repeats += 1
                continue
            repeats = 0
            seen.add(x.tobytes())
            inputs.append(x)
            labels.append(y)
            bar.update(1)
    seq_len = config.grid_size**2
    return np.array(inputs, np.uint8).reshape(count, seq_len), np.array(labels, np.uint8).reshape(
        count, seq_len
    )


def build_maze_dataset(config: MazeBuildConfig) -> Path:
    """Generate train + test mazes and write the dataset; returns the output directory."""
    check_target(config.output_dir, config.overwrite)
    rng = random.Random(config.seed)
    inputs, labels = generate_samples(config, config.train_samples + config.test_samples, rng)
    cut = config.train_samples
    with atomic_output_dir(config.output_dir, config.overwrite) as tmp:
        for name, rows in (("train", slice(0, cut)), ("test", slice(cut, None))):
            arrays = SplitArrays.one_example_per_puzzle(inputs[rows], labels[rows])
            write_split(tmp / name, arrays, vocab_size=VOCAB_SIZE, task="maze")
        write_identifiers(tmp)
    print(f"wrote {config.output_dir}: train {cut}, test {config.test_samples} mazes")
    return config.output_dir


def _lengths(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> MazeBuildConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = MazeBuildConfig()
    parser.add_argument("--output-dir", type=Path, default=d.output_dir)
    parser.add_argument("--grid-size", type=int, default=d.grid_size)
    parser.add_argument("--train-samples", type=int, default=d.train_samples)
    parser.add_argument("--test-samples", type=int, default=d.test_samples)
    parser.add_argument("--maze-mode", choices=["perfect", "random"], default=d.maze_mode)
    parser.add_argument("--wall-prob", type=float, default=d.wall_prob, help="wall probability (random mode)")
    parser.add_argument(
        "--length-distribution", choices=["uniform", "normal", "fixed", "list"], default=d.length_distribution
    )
    parser.add_argument("--min-path-length", type=int, default=d.min_path_length)
    parser.add_argument("--max-path-length", type=int, default=d.max_path_length)
    parser.add_argument("--length-mean", type=float, default=None, help="normal: mean (default mid-range)")
    parser.add_argument("--length-std", type=float, default=None, help="normal: std (default range / 4)")
    parser.add_argument("--path-length", type=int, default=None, help="fixed: the length")
    parser.add_argument("--path-lengths", type=_lengths, default=None, help="list: comma-separated lengths")
    parser.add_argument("--require-unique", action=argparse.BooleanOptionalAction, default=d.require_unique)
    parser.add_argument("--dedupe", action=argparse.BooleanOptionalAction, default=d.dedupe)
    parser.add_argument("--max-attempts", type=int, default=d.max_attempts, help="mazes tried per sample")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    cli.add_debug_option(parser)
    args = vars(parser.parse_args(argv))
    del args["debug"]
    try:
        return MazeBuildConfig(**args)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv

    def work() -> None:
        build_maze_dataset(parse_args(argv))

    return cli.run_main(work, errors=(ConfigError,), failures=(FileExistsError, MazeGenerationError),
                        debug=cli.debug_requested(argv),
                        describe=cli.plain_error_line)


if __name__ == "__main__":
    sys.exit(main())
