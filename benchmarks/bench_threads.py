"""CPU threads alone and beside a competing job: torch's fixed thread count vs `utils.threads`.

    python benchmarks/bench_threads.py [--steps 40] [--puzzles 64] [--depth 8] [--breadth 4] [--repeats 2]

Measures, in fresh processes, the quickstart's training step (config/train/eqr_quickstart.yaml, batch 64,
on freshly built 9x9 mazes) and an evaluation of that model (`run_evaluation`, D x B trajectories over
the test mazes, all in flight at once), each

- `before`: every CPU as a thread whatever else runs (torch's default) and the allocator as the code
  had it before (see BEFORE_ALLOCATOR),
- `fixed`: every CPU as a thread (OMP_NUM_THREADS=<CPUs>, which the governor leaves alone), today's
  allocator setting (`utils.allocator`: large blocks from the heap, freed ones kept),
- `1 thread`: OMP_NUM_THREADS=1, today's allocator,
- `governor`: what pretrain.py and evaluate.py do now: `utils.threads` starts at every CPU and lowers
  the count while other jobs need CPUs, today's allocator,

once on an otherwise idle machine and once beside a competing job (a Python busy loop on one CPU).
Reports steps/s and segments/s with the process's user and system CPU seconds. The machine must be
idle apart from what this script starts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUSY_LOOP = "while True: pass"


def _trainer(data: Path, run_dir: Path, steps: int):
    from config.compose import compose_pretrain_config
    from training.trainer import Trainer
    from utils import distributed

    config = compose_pretrain_config("train/eqr_quickstart", [
        f"dataset.data_path={data}", f"max_steps={steps}", "wandb_mode=disabled", "checkpoint_interval_steps=null",
        f"checkpoint_path={run_dir}"])
    return Trainer(config, distributed.setup("cpu"))


def _cpu_seconds() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def worker(kind: str, data: Path, args: argparse.Namespace) -> dict[str, float]:
    """One measurement in this process: training steps/s or evaluation segments/s."""
    import torch

    from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig
    from evaluation.engine import run_evaluation
    from evaluation.plan import Breadth, EvalPlan, Runtime
    from utils import allocator, threads

    if not args.before:
        allocator.keep_freed_memory()  # as pretrain.py and evaluate.py do
    if kind == "eval":
        torch.set_flush_denormal(True)  # as evaluate.py does
    with tempfile.TemporaryDirectory() as tmp:
        trainer = _trainer(data, Path(tmp), args.steps + 3)
        for _ in range(3):  # warm-up
            trainer.train_step()
        user0, sys0 = _cpu_seconds()
        start = time.perf_counter()
        if kind == "train":
            for _ in range(args.steps):
                trainer.train_step()
                threads.adapt()  # as Trainer.run does between steps
            units = args.steps
        else:
            test = PuzzleDataset(PuzzleDatasetConfig(data_paths=[str(data)], global_batch_size=args.puzzles,
                                                     test_set_mode=True), split="test")
            model = trainer.head.model.eval()
            plan = EvalPlan([args.depth], breadth=Breadth(restarts=args.breadth), runtime=Runtime(progress=False))
            run = run_evaluation(model, list(test.test_batches())[:1], plan)
            units = run.trajectory_segments
        wall = time.perf_counter() - start
        user1, sys1 = _cpu_seconds()
    return {"per_s": units / wall, "wall_s": wall, "user_s": user1 - user0, "sys_s": sys1 - sys0,
            "threads_end": torch.get_num_threads()}


@contextmanager
def competing_job(on: bool):
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if on else None
    try:
        time.sleep(1.0 if on else 0.0)
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


# What the code did before the thread policy and the no-mmap allocator setting: evaluate.py raised glibc's
# thresholds only (large blocks still mapped afresh), pretrain.py left glibc's defaults untouched (no
# MALLOC_* variable either: setting any threshold stops glibc's own sliding mmap threshold).
BEFORE_ALLOCATOR = {"eval": {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)},
                    "train": {}}
SETTINGS = ("before", "fixed", "1 thread", "governor")


def measure(kind: str, setting: str, data: Path, args: argparse.Namespace) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS" and not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(ROOT)
    if setting != "governor":
        env["OMP_NUM_THREADS"] = "1" if setting == "1 thread" else str(len(os.sched_getaffinity(0)))
    if setting == "before":
        env.update(BEFORE_ALLOCATOR[kind])
    command = [sys.executable, __file__, "--worker", kind, "--data", str(data), "--steps", str(args.steps),
               "--puzzles", str(args.puzzles), "--depth", str(args.depth), "--breadth", str(args.breadth),
               *(["--before"] if setting == "before" else [])]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="timed training steps")
    parser.add_argument("--puzzles", type=int, default=128, help="test mazes evaluated")
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--breadth", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="runs per cell; the median is shown")
    parser.add_argument("--work", nargs="+", choices=["train", "eval"], default=["train", "eval"])
    parser.add_argument("--worker", choices=["train", "eval"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--before", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args)))
        return

    from analysis.machine import cpu_name
    from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset

    pick = "the faster of 2 runs" if args.repeats == 2 else f"the median of {args.repeats} runs"
    print(f"machine: {cpu_name()}, {len(os.sched_getaffinity(0))} CPUs; steps {args.steps}, eval "
          f"{args.puzzles} mazes x B={args.breadth} x D={args.depth}; {pick}")
    print()
    print("| work | setting | load | per s | wall s | user CPU s | system CPU s | threads at end |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        data = build_maze_dataset(MazeBuildConfig(output_dir=Path(tmp) / "maze", grid_size=9, train_samples=256,
                                                  test_samples=args.puzzles, min_path_length=8,
                                                  max_path_length=30, seed=0))
        for kind, unit in (("train", "steps"), ("eval", "segments")):
            if kind not in args.work:
                continue
            for load in (False, True):
                for setting in SETTINGS:
                    with competing_job(load):
                        runs = sorted((measure(kind, setting, data, args) for _ in range(args.repeats)),
                                      key=lambda r: r["per_s"])
                    r = runs[len(runs) // 2]
                    print(f"| {kind} ({unit}) | {setting} | {'1 competing job' if load else 'idle'} | "
                          f"{r['per_s']:.2f} | {r['wall_s']:.1f} | {r['user_s']:.1f} | {r['sys_s']:.2f} | "
                          f"{r['threads_end']} |", flush=True)


if __name__ == "__main__":
    main()
