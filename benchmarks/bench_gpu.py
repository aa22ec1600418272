"""Compiled training and evaluation segments at the paper's shapes: the fast and reference kernel paths.

    python benchmarks/bench_gpu.py [--batch 768] [--dtype bfloat16] [--shapes sudoku maze] [--repeats 20]
    python benchmarks/bench_gpu.py --device cpu --batch 2 --dtype float32 --repeats 2   # a smoke run

For each shape (benchmarks/bench_model.py: Sudoku mlp_t hidden 512, Maze attention hidden 128 over
900 tokens) and each path (`kernels=reference`, `kernels=fast`, docs/kernels.md), with the same
weights and state: the training segment (the loss head's forward and backward through
`torch.compile`, as the trainer runs it) and the evaluation segment (the compiled inner network
under inference mode). Prints ms per segment, TFLOP/s (matrix multiplies of the logical shapes,
the same count for both paths), the percent of a dense matmul peak measured in the same run, peak
memory, and the fast path's speed-up.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_model import SHAPES, segment_flops  # noqa: E402

from analysis.machine import describe_machine  # noqa: E402
from models.registry import build_model  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> tuple[float, float | None]:
    """(seconds per call after two warm-up calls, peak memory in GiB on CUDA)."""
    for _ in range(2):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    seconds = (time.perf_counter() - start) / repeats
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return seconds, peak


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int) -> float:
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    seconds, _ = timed(lambda: torch.nn.functional.linear(a, b), 10, device)
    return 2 * n**3 / seconds


def bench(shape: str, kernels: str, batch: int, dtype: str, device: torch.device, repeats: int,
          compiled: bool) -> dict:
    torch.manual_seed(0)
    head = build_model({**SHAPES[shape], "forward_dtype": dtype, "noise_scale": 0.01}).to(device).train()
    changes = head.model.use_kernels(kernels)
    cfg = head.model.config
    generator = torch.Generator().manual_seed(1)
    data = {key: torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), generator=generator, dtype=torch.int32)
            for key in ("inputs", "labels")}
    data["puzzle_identifiers"] = torch.zeros(batch, dtype=torch.int32)
    data = {k: v.to(device) for k, v in data.items()}
    carry = head.initial_carry(data)
    step = torch.compile(head) if compiled else head
    inner = torch.compile(head.model.inner, dynamic=False) if compiled else head.model.inner
    latents = head.model.inner.reset(carry.halted, carry.latents)

    def train() -> None:
        _, loss, *_ = step(carry, data)
        loss.backward()
        head.zero_grad(set_to_none=True)

    def evaluate() -> None:
        with torch.inference_mode():
            inner(latents, data)

    result = {"changes": changes}
    for name, fn, backward in (("train", train, True), ("eval", evaluate, False)):
        seconds, memory = timed(fn, repeats, device)
        result[name] = {"ms": 1e3 * seconds, "tflops": segment_flops(cfg, batch, backward) / seconds / 1e12,
                        "memory": memory}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=768)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--peak-n", type=int, default=8192, help="size of the matmul that measures the peak")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    peak = matmul_peak(getattr(torch, args.dtype), device, args.peak_n)
    print(f"machine: {describe_machine(device.type)}; {args.dtype}, batch {args.batch}, "
          f"{'eager' if args.no_compile else 'compiled'}; matmul peak {peak / 1e12:.1f} TFLOP/s ({args.peak_n}^3)")
    print()
    print("| shape | kernels | train ms | train TFLOP/s | of peak | eval ms | eval TFLOP/s | of peak "
          "| peak GiB (train, eval) |")
    print("|---|---|---|---|---|---|---|---|---|")
    ratios, changes = [], {}
    for shape in args.shapes:
        results = {}
        for kernels in ("reference", "fast"):
            r = results[kernels] = bench(shape, kernels, args.batch, args.dtype, device, args.repeats,
                                         not args.no_compile)
            changes[shape] = r["changes"]
            memory = ", ".join("-" if r[p]["memory"] is None else f"{r[p]['memory']:.1f}" for p in ("train", "eval"))
            print(f"| {shape} | {kernels} | " + " | ".join(
                f"{r[p]['ms']:.1f} | {r[p]['tflops']:.1f} | {100 * r[p]['tflops'] * 1e12 / peak:.0f}%"
                for p in ("train", "eval")) + f" | {memory} |")
        ratios.append((shape, *(results["reference"][p]["ms"] / results["fast"][p]["ms"] for p in ("train", "eval"))))
    print()
    for shape, train, evaluation in ratios:
        print(f"{shape}: fast path {train:.2f}x the reference path's speed in training, {evaluation:.2f}x in "
              f"evaluation ({'; '.join(changes[shape]) or 'nothing changed'})")


if __name__ == "__main__":
    main()
