"""Cost of a depth x breadth sweep: one run per depth vs one pass vs one pass with elastic exit.

    python benchmarks/bench_eval.py [--checkpoint PATH] [--puzzles 16] [--depths 4 8 16 32] [--breadths 1 4]

For every breadth B: the reference way (a separate evaluation per depth D), one pass to the
largest D that records every D, and one pass with elastic exit. Reports trajectory-segments
run, wall time, puzzle-segments/s and the exact/token accuracy at the largest D (the one-pass
numbers equal the per-depth runs, which the table checks). Data: a generated Sudoku test set
(offline) unless --data is given. The default checkpoint is the released-layout test fixture.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.machine import describe_machine  # noqa: E402
from dataset.build_sudoku_dataset import SudokuBuildConfig, build_sudoku_dataset  # noqa: E402
from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig, read_metadata  # noqa: E402
from evaluation.engine import EvalResult, StopRule, run_evaluation  # noqa: E402
from evaluation.plan import Breadth, EvalPlan, Runtime, Selection  # noqa: E402
from models.loading import data_fields, model_for_dataset  # noqa: E402
from models.runtime import prepare_runtime  # noqa: E402
from utils import allocator  # noqa: E402
from utils.checkpoint import read_checkpoint  # noqa: E402


def _batches(data: Path, batch: int) -> list:
    config = PuzzleDatasetConfig(data_paths=[data], global_batch_size=batch, test_set_mode=True)
    return list(PuzzleDataset(config, split="test").test_batches())


def _row(label: str, breadth: int, results: list[EvalResult], depth: int, reference: EvalResult | None) -> str:
    segments = sum(r.trajectory_segments for r in results)
    wall = sum(r.wall_s for r in results)
    metrics = results[-1].metrics[depth]
    same = "" if reference is None else (" (= per-D)" if metrics == reference.metrics[depth] else " (differs!)")
    extra = ""
    if "elastic/mean_segments" in metrics:
        extra = (f"mean {metrics['elastic/mean_segments']:.1f}, max {metrics['elastic/max_segments']:.0f} "
                 f"segments, {100 * metrics['elastic/segments_saved']:.0f}% saved")
    return (f"| {label} | {breadth} | {segments} | {wall:.2f} | {segments / wall:.0f} | "
            f"{metrics['exact_accuracy']:.4f}{same} | {metrics['accuracy']:.4f} | {extra} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(ROOT / "tests" / "fixtures" / "release_format_sudoku.pth"))
    parser.add_argument("--data", type=Path, default=None, help="dataset dir (default: generate Sudoku puzzles)")
    parser.add_argument("--puzzles", type=int, default=16, help="generated test puzzles (without --data)")
    parser.add_argument("--depths", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--breadths", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--batch", type=int, default=16, help="puzzles per batch")
    parser.add_argument("--elastic-patience", type=int, default=2)
    parser.add_argument("--elastic-tol", type=float, default=0.01)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    allocator.keep_freed_memory()  # as evaluate.py does

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or build_sudoku_dataset(SudokuBuildConfig(
            output_dir=Path(tmp) / "sudoku", source="generate", subsample_size=1,
            test_subsample_size=args.puzzles, num_aug=0, seed=0))
        loaded = model_for_dataset(read_checkpoint(args.checkpoint), data_fields(read_metadata(data, "test")))
        model = prepare_runtime(loaded.act_model, torch.device("cpu"), compile=False).model.eval()  # eager, as before
        batches = _batches(data, args.batch)
        depths, top = sorted(args.depths), max(args.depths)
        elastic = StopRule(patience=args.elastic_patience, tol=args.elastic_tol)

        print(f"machine: {describe_machine()}; checkpoint {Path(args.checkpoint).name}; "
              f"{sum(n for _, n in batches)} puzzles; D in {depths}; elastic patience {elastic.patience}, "
              f"tol {elastic.tol}")
        print()
        print("| sweep | B | trajectory-segments | wall s | puzzle-segments/s | exact acc @ max D | token acc "
              "| elastic |")
        print("|---|---|---|---|---|---|---|---|")
        for breadth in args.breadths:
            plan = EvalPlan(depths, breadth=Breadth(restarts=breadth),
                            selection=Selection(top_k=1 if breadth > 1 else None), runtime=Runtime(progress=False))
            run_evaluation(model, batches[:1], dataclasses.replace(plan, depths=(2,)))  # warm-up
            per_depth = [run_evaluation(model, batches, dataclasses.replace(plan, depths=(d,))) for d in depths]
            one_pass = run_evaluation(model, batches, plan)
            fast = run_evaluation(model, batches, dataclasses.replace(plan, stopping=elastic))
            print(_row("one run per D", breadth, per_depth, top, None))
            print(_row("one pass", breadth, [one_pass], top, per_depth[-1]))
            print(_row("one pass + elastic", breadth, [fast], top, None))


if __name__ == "__main__":
    main()
