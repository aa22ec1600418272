"""Adaptive breadth against full breadth: selected accuracy, restarts, segments and wall time, in one run.

    python benchmarks/bench_adaptive_breadth.py [--checkpoint PATH] [--data DIR] [--depth 16]
        [--breadths 1,2,4,8] [--agree 2,3] [key=value ...]

Evaluates the checkpoint's test split at depth D with every full breadth B (convergence top-1
selects each puzzle's answer) and with adaptive breadth `breadth_agree=k` at the largest B
(evaluation/adaptive_breadth.py), each its own pass, and prints one table. Defaults: the
quickstart checkpoint and data. Extra key=value arguments are evaluate.py keys (e.g. max_rows=64).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.machine import describe_machine  # noqa: E402
from evaluation import parse_eval_config  # noqa: E402
from evaluation.sweep import evaluate_checkpoint  # noqa: E402
from utils import allocator, cli, distributed  # noqa: E402


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/EqR/eqr_quickstart/step_1500.pth"))
    parser.add_argument("--data", default=str(ROOT / "data/maze-9x9-quickstart"))
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--breadths", type=_ints, default=[1, 2, 4, 8])
    parser.add_argument("--agree", type=_ints, default=[2, 3])
    args, rest = parser.parse_known_args()
    torch.set_flush_denormal(True)
    allocator.keep_freed_memory()
    extra = cli.parse_key_values(rest)
    base = {"checkpoint": args.checkpoint, "dataset_data_path": [args.data], "depths": [args.depth],
            "progress": False, "plots": False, "reference_files": False, **extra}
    largest = max(args.breadths)
    settings = [(f"B={b}", {"different_init": [b], "convergence_top_k": 1 if b > 1 else None})
                for b in args.breadths]
    settings += [(f"B={largest}, breadth_agree={k}", {"different_init": [largest], "convergence_top_k": 1,
                                                       "breadth_agree": k}) for k in args.agree]
    info = distributed.setup(str(extra.get("device", "auto")))
    rows = []
    for label, options in settings:
        cfg = parse_eval_config({**base, **options})
        (done,) = evaluate_checkpoint(cfg, args.checkpoint, info)
        metrics = done.run.metrics[args.depth]
        puzzles = metrics["num_puzzles"]
        accuracy = metrics.get("adaptive_breadth/exact_accuracy",
                               metrics.get("convergence_top_k/exact_accuracy", metrics["exact_accuracy"]))
        restarts = metrics.get("adaptive_breadth/mean_restarts", float(options["different_init"][0]))
        rows.append((label, accuracy, restarts, done.run.trajectory_segments / puzzles, done.run.wall_s))
    full = next(r for r in rows if r[0] == f"B={largest}")
    print(f"machine: {describe_machine(info.device.type)}; {args.checkpoint}; D={args.depth}; options {rest}")
    print()
    print(f"| setting | selected exact acc | restarts per puzzle | segments per puzzle | wall s | "
          f"segments vs B={largest} | wall vs B={largest} |")
    print("|---|---|---|---|---|---|---|")
    for label, accuracy, restarts, segments, wall in rows:
        print(f"| {label} | {100 * accuracy:.1f}% | {restarts:.2f} | {segments:.1f} | {wall:.1f} | "
              f"{segments / full[3]:.2f} | {wall / full[4]:.2f} |")


if __name__ == "__main__":
    main()
