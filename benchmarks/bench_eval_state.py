"""The cost of saving a stopped evaluation pass (evaluation/resume.py) at the paper's shape: bytes and seconds.

    python benchmarks/bench_eval_state.py [--seq-lens 81,900] [--depth 64] [--breadth 128] [--batch 768]

A state holds the sums of the batches already counted and the results of the finished trajectories of
the batches not yet counted: at most about one batch's trajectories per rank (batch x B / ranks). This
runs a short pass of a small random EqR at depth D with convergence top-1 selection (a trajectory's
result depends on the sequence length and the depth, not on the model), takes the state it saves
after some trajectories finished, and builds from it states holding the paper's number of finished
trajectories (a batch of 768 puzzles x B = 128, on 1 and 8 ranks) by copying one trajectory's result.
For each it measures what `eval_checkpoint_minutes` costs once per interval: one save (building the
state's columns, `torch.save` to a temporary file, fsync, rename), the file size, and loading it back.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.machine import describe_machine  # noqa: E402
from evaluation.engine import run_evaluation  # noqa: E402
from evaluation.pass_state import PassState  # noqa: E402
from evaluation.plan import Breadth, EvalPlan, Runtime, Selection  # noqa: E402
from evaluation.resume import PassFile  # noqa: E402
from models.registry import build_model  # noqa: E402

PAPER_BATCH = 768  # puzzles per evaluation batch (the reference's training batch)
PAPER_RANKS = (1, 8)


def _model(seq_len: int, depth: int) -> torch.nn.Module:
    torch.manual_seed(0)
    arch = {"name": "eqr@EqRModel", "seq_len": seq_len, "vocab_size": 11, "H_cycles": 1, "L_cycles": 1,
            "H_layers": 0, "L_layers": 1, "hidden_size": 32, "expansion": 2, "num_heads": 2, "pos_encodings": "rope",
            "halt_max_steps": depth, "halt_exploration_prob": 0.0, "forward_dtype": "float32", "noise_scale": 0.0}
    return build_model(arch).model.eval()


class _Taken(Exception):
    """Stops the short pass once it has a state with a finished trajectory."""


def sample_state(seq_len: int, depth: int) -> PassState:
    """The state of a real pass (D = `depth`, B = 4, top-1 selection) once a trajectory has finished."""
    taken: list[PassState] = []

    def hook(state) -> None:
        built = state()
        if built.finished:
            taken.append(built)
            raise _Taken

    plan = EvalPlan([depth], breadth=Breadth(restarts=4), selection=Selection(top_k=1),
                    runtime=Runtime(max_rows=2, progress=False))
    inputs = torch.randint(1, 11, (1, seq_len), dtype=torch.int32)
    batch = {"inputs": inputs, "labels": inputs.clone(), "puzzle_identifiers": torch.zeros(1, dtype=torch.int32)}
    with contextlib.suppress(_Taken):
        run_evaluation(_model(seq_len, depth), [(batch, 1)], replace(plan, runtime=replace(plan.runtime,
                                                                                       checkpoint=hook)))
    return taken[0]


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.clone()
    return list(value) if isinstance(value, list) else value


def measure(seq_len: int, ranks: int, trajectories: int, sample: PassState, folder: Path) -> str:
    """One save and one load of a state with `trajectories` finished trajectories: a table row."""
    one = next(iter(sample.finished.values()))
    state = PassState(sample.counted, sample.tallies,
                      {(0, i, 0): _copy(one) for i in range(trajectories)}, sample.elapsed_s)
    file = PassFile(folder / "state.pt")
    start = time.perf_counter()
    file.save(state)  # the columns, torch.save to a temporary file, fsync, rename
    saved = time.perf_counter()
    loaded = file.load()
    done = time.perf_counter()
    assert loaded is not None and len(loaded.finished) == trajectories
    assert loaded.finished[(0, 0, 0)]["snapshots"].keys() == one["snapshots"].keys()
    save_s = saved - start
    return (f"| {seq_len} | {ranks} | {trajectories:,} | {file.path.stat().st_size / 1e6:,.1f} | {save_s:.2f} | "
            f"{done - saved:.2f} | {save_s / 600 * 100:.2f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-lens", default="81,900", help="81: Sudoku; 900: Maze 30x30")
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--breadth", type=int, default=128)
    parser.add_argument("--batch", type=int, default=PAPER_BATCH, help="puzzles per evaluation batch")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    print(describe_machine())
    print(f"D = {args.depth}, B = {args.breadth}, a batch of {args.batch} puzzles on {PAPER_RANKS} ranks\n")
    print("| S | ranks | finished trajectories per rank | MB | save s | load s | save / 10 min |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for seq_len in (int(s) for s in args.seq_lens.split(",")):
            sample = sample_state(seq_len, args.depth)
            for ranks in PAPER_RANKS:
                print(measure(seq_len, ranks, args.batch * args.breadth // ranks, sample, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
