"""Segment throughput for the paper's Sudoku and Maze shapes, against this machine's matmul peak.

    python benchmarks/bench_model.py [--dtypes float32 bfloat16]

Batches default to 16 (Sudoku) and 2 (Maze) in float32 and 1 in bfloat16: CPUs without
native bf16 matrix units run bf16 matmuls ~8x slower than fp32 (measured here).

For each shape and dtype: one segment forward (no grad, as in evaluation) and forward +
backward (training), in tokens/s and as a fraction of the dense matmul peak measured in
the same run. FLOPs count the matrix multiplies only (what the peak measures).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.config import EqRConfig  # noqa: E402
from models.layers import _find_multiple  # noqa: E402
from models.registry import build_model  # noqa: E402

SHAPES = {
    "sudoku": dict(name="eqr@EqRModel", seq_len=81, vocab_size=11, H_cycles=3, L_cycles=6, L_layers=2,
                   hidden_size=512, num_heads=8, expansion=4, mlp_t=True, pos_encodings="rope",
                   halt_max_steps=16, halt_exploration_prob=0.1),
    "maze": dict(name="eqr@EqRModel", seq_len=900, vocab_size=6, H_cycles=3, L_cycles=4, L_layers=1,
                 hidden_size=128, num_heads=8, expansion=4, mlp_t=False, pos_encodings="rope",
                 halt_max_steps=16, halt_exploration_prob=0.1),
}


def block_matmul_flops(cfg: EqRConfig, batch: int) -> float:
    """Multiply-add FLOPs of one block application (forward)."""
    s, h = cfg.total_positions, cfg.hidden_size
    inter = _find_multiple(round(cfg.expansion * h * 2 / 3), 256)
    flops = 2 * batch * s * (h * 2 * inter + inter * h)
    if cfg.mlp_t:
        inter_t = _find_multiple(round(cfg.expansion * s * 2 / 3), 256)
        flops += 2 * batch * h * (s * 2 * inter_t + inter_t * s)
    else:
        flops += 2 * batch * s * (3 * h * h + h * h) + 2 * 2 * batch * s * s * h
    return flops


def segment_flops(cfg: EqRConfig, batch: int, backward: bool) -> float:
    per_recursion = (cfg.L_cycles + 1) * cfg.L_layers * block_matmul_flops(cfg, batch)
    # H_cycles - 1 recursions without grad; the last one costs ~3x with its backward.
    return per_recursion * (cfg.H_cycles - 1 + (3 if backward else 1))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def matmul_peak(dtype: torch.dtype, n: int) -> float:
    """Dense n^3 matmul through F.linear, the op CastedLinear uses (bf16 mm takes a slower path on CPU)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    seconds = timed(lambda: torch.nn.functional.linear(a, b), 5)
    return 2 * n**3 / seconds


def bench_shape(name: str, batch: int, dtype_name: str, repeats: int) -> dict:
    arch = {**SHAPES[name], "forward_dtype": dtype_name, "noise_scale": 0.01}
    head = build_model(arch).train()
    cfg = head.model.config
    data = {
        "inputs": torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), dtype=torch.int32),
        "labels": torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), dtype=torch.int32),
        "puzzle_identifiers": torch.zeros(batch, dtype=torch.int32),
    }
    carry = head.initial_carry(data)
    latents = head.model.inner.reset(carry.halted, carry.latents)

    def forward():
        with torch.no_grad():
            head.model.inner(latents, data)

    def forward_backward():
        _, loss, *_ = head(carry, data)
        loss.backward()

    tokens = batch * cfg.seq_len
    result = {"shape": name, "dtype": dtype_name, "batch": batch}
    for label, fn, backward in (("fwd", forward, False), ("fwd+bwd", forward_backward, True)):
        seconds = timed(fn, repeats)
        result[label] = {"seconds": seconds, "tokens_per_s": tokens / seconds,
                         "tflops": segment_flops(cfg, batch, backward) / seconds / 1e12}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sudoku", type=int, nargs=2, default=[16, 1], metavar=("FP32", "BF16"))
    parser.add_argument("--batch-maze", type=int, nargs=2, default=[2, 1], metavar=("FP32", "BF16"))
    parser.add_argument("--peak-n", type=int, nargs=2, default=[2048, 1024], metavar=("FP32", "BF16"))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    rows = []
    for dtype_name in args.dtypes:
        i = 0 if dtype_name == "float32" else 1
        n = args.peak_n[i]
        peak = matmul_peak(getattr(torch, dtype_name), n)
        print(f"matmul peak {dtype_name}: {peak / 1e12:.4f} TFLOP/s ({n}^3 F.linear)")
        for name, batch in (("sudoku", args.batch_sudoku[i]), ("maze", args.batch_maze[i])):
            r = bench_shape(name, batch, dtype_name, args.repeats)
            for label in ("fwd", "fwd+bwd"):
                m = r[label]
                rows.append(f"| {name} | {dtype_name} | {batch} | {label} | {m['seconds'] * 1e3:.0f} | "
                            f"{m['tokens_per_s']:.0f} | {m['tflops']:.4f} | {100 * m['tflops'] * 1e12 / peak:.0f}% |")
    print("| shape | dtype | batch | pass | ms/segment | tokens/s | TFLOP/s | of peak |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
