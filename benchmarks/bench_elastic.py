"""Elastic exit against fixed depth: segments, wall time and accuracy side by side, in one run.

    python benchmarks/bench_elastic.py [--checkpoint PATH] [--data DIR] [--breadth 1] [key=value ...]

Evaluates the checkpoint's test split at fixed depths D in {1, 2, 4, ..., 32} and under elastic
stop rules with D_max = 32 (analysis/frontier.py: each its own pass), then prints the frontier
table plus throughput in trajectory-segments per second, which shows whether the segments an
elastic rule saves turn into saved wall time (continuous batching refills a finished slot at
once). Defaults: the quickstart checkpoint and data. Extra key=value arguments are frontier or
evaluate.py keys (e.g. elastic=[stable:2] max_rows=64 device=cuda).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis import frontier_table, parse_frontier_options, run_frontier  # noqa: E402
from analysis.machine import describe_machine  # noqa: E402
from utils import allocator, cli  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/EqR/eqr_quickstart/step_1500.pth"))
    parser.add_argument("--data", default=str(ROOT / "data/maze-9x9-quickstart"))
    parser.add_argument("--breadth", type=int, default=1)
    args, rest = parser.parse_known_args()
    torch.set_flush_denormal(True)
    allocator.keep_freed_memory()
    options = {"checkpoint": args.checkpoint, "dataset_data_path": args.data, "different_init": args.breadth,
               "progress": False, **cli.parse_key_values(rest)}
    if args.breadth > 1:
        options.setdefault("convergence_top_k", 1)
    frontier, evaluation = parse_frontier_options(options)
    points = run_frontier(frontier, evaluation)
    print(f"machine: {describe_machine()}; {args.checkpoint}; B={args.breadth}; options {rest}")
    print()
    print(frontier_table(points))
    print("| setting | trajectory-segments/s |")
    print("|---|---|")
    for p in points:
        print(f"| {p.label} | {p.segments_per_puzzle * len(p.puzzle_segments) / p.wall_s:.0f} |")


if __name__ == "__main__":
    main()
