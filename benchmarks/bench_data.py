"""Time the dataset builders: `python -m benchmarks.bench_data [--workdir DIR]`.

1. Default Maze-Unique: 30x30, 1000 train + 1000 test, path lengths uniform in [100, 140].
2. Sudoku from a local CSV: first generate 1000 training (+ 100 test) puzzles offline and
   write them as CSVs (timed separately), then build 1000 x (1 + 1000) augmentations.
Goal for each build: under 60 s on a 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset
from dataset.build_sudoku_dataset import SudokuBuildConfig, build_sudoku_dataset
from dataset.sudoku.generate import write_generated_csvs

GOAL_SECONDS = 60.0


def timed(label: str, fn, *args) -> float:
    begin = time.perf_counter()
    fn(*args)
    seconds = time.perf_counter() - begin
    print(f"{label}: {seconds:.1f} s")
    return seconds


def run(workdir: Path) -> dict[str, float]:
    """Run the three timed steps inside `workdir` and return their seconds."""
    maze = MazeBuildConfig(output_dir=workdir / "maze-30x30-unique-1k")
    csv_dir = workdir / "sudoku-csv"
    sudoku = SudokuBuildConfig(
        output_dir=workdir / "sudoku-extreme-1k-aug-1000", source="dir", source_dir=csv_dir, subsample_size=1000,
        num_aug=1000,
    )
    return {
        "maze_build_s": timed("maze 30x30, 1000 + 1000, lengths 100-140", build_maze_dataset, maze),
        "sudoku_generate_csv_s": timed(
            "sudoku: generate 1000 + 100 puzzles to CSV", write_generated_csvs, csv_dir, 1000, 100, 0, 0
        ),
        "sudoku_build_s": timed(
            "sudoku: build 1000 x (1 + 1000) from local CSV", build_sudoku_dataset, sudoku
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="keep outputs here (default: a temp dir)")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"
    )
    if args.workdir is None:
        with tempfile.TemporaryDirectory() as tmp:
            results = run(Path(tmp))
    else:
        results = run(args.workdir)
    results["goal_s"] = GOAL_SECONDS
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
