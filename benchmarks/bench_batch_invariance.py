"""Do final predictions depend on how trajectories are batched? Agreement across batchings and ranks.

    python benchmarks/bench_batch_invariance.py [--checkpoint PATH] [--data DIR] [--depth 16] [--breadth 4]

Runs `evaluate.py` (and `torchrun --nproc_per_node 2 evaluate.py` on CPU with gloo) on the same
checkpoint and test split under several batchings, saving each trajectory's final prediction
(`save_outputs=[preds]`), and compares them with the run that holds every puzzle in one batch.
Every random draw is the trajectory's own (tests/test_trajectory_draws.py checks them bit for
bit), so the predictions can differ only where float kernels give other last bits for another
batch shape, which the recurrence can amplify (SPEC 7.1). Defaults: the quickstart checkpoint.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.machine import describe_machine  # noqa: E402


def _evaluate(label: str, extra: list[str], common: list[str], out: Path, ranks: int) -> tuple[str, Path, float]:
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}"] if ranks > 1 else [
        sys.executable]
    command = [*launcher, str(ROOT / "evaluate.py"), *common, *extra, f"output_dir={out}"]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return label, out, time.perf_counter() - start


def _load(out: Path) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    outputs = torch.load(next(out.glob("*_outputs.pt")), weights_only=True)
    record = json.loads(next(p for p in out.glob("eval_*.json") if "eval_preds" not in str(p)).read_text())
    return outputs, record["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints/EqR/eqr_quickstart/step_1500.pth"))
    parser.add_argument("--data", default=str(ROOT / "data/maze-9x9-quickstart"))
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--breadth", type=int, default=4)
    args = parser.parse_args()
    puzzles = json.loads((Path(args.data) / "test" / "dataset.json").read_text())["total_groups"]
    common = [f"checkpoint={args.checkpoint}", f"dataset_data_path={args.data}", f"depths={args.depth}",
              f"different_init={args.breadth}", "save_outputs=[preds]", "plots=false", "reference_files=false",
              "progress=false", "device=cpu"]
    settings = [
        (f"every puzzle in one batch ({puzzles})", [f"global_batch_size={puzzles}"], 1),
        ("the checkpoint's training batch", [], 1),
        ("batches of 1 puzzle", ["global_batch_size=1"], 1),
        ("7 slots (max_rows=7)", ["max_rows=7"], 1),
        ("1 slot: one trajectory at a time", ["max_rows=1"], 1),
        ("2 gloo ranks, 64-puzzle batches", ["global_batch_size=64"], 2),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        runs = [_evaluate(label, extra, common, Path(tmp) / str(i), ranks)
                for i, (label, extra, ranks) in enumerate(settings)]
        reference, _ = _load(runs[0][1])
        print(f"machine: {describe_machine()}; {Path(args.checkpoint).name}, D={args.depth}, B={args.breadth}, "
              f"{puzzles} puzzles x {args.breadth} restarts")
        print()
        print("| batching | exact acc | trajectories agreeing | puzzles agreeing (all restarts) | wall s |")
        print("|---|---|---|---|---|")
        for label, out, wall in runs:
            outputs, metrics = _load(out)
            assert torch.equal(outputs["puzzle"], reference["puzzle"]) and torch.equal(outputs["restart"],
                                                                                        reference["restart"])
            same = (outputs["preds"] == reference["preds"]).all(-1)
            per_puzzle = same.view(-1, args.breadth).all(-1)
            print(f"| {label} | {100 * metrics['exact_accuracy']:.2f}% | {100 * same.double().mean():.2f}% "
                  f"({int(same.sum())}/{len(same)}) | {100 * per_puzzle.double().mean():.2f}% | {wall:.1f} |")


if __name__ == "__main__":
    main()
