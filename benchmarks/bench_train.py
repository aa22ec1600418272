"""Training throughput of the full training step (segment, backward, AdamATan2, EMA).

    python benchmarks/bench_train.py [--steps 3] [--batch-sudoku 16] [--batch-maze 4] [--compile]

Runs `training.trainer.Trainer` on small generated datasets with the paper's Sudoku and Maze
architectures (config/train/eqr_*.yaml) at a reduced global batch, in float32 (CPU) or the
configs' bfloat16 (CUDA). Reports steps/s and samples/s, and the time per step that the
reference recipe's global batch (768) would take at the measured per-sample rate.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.schema import load_pretrain_config  # noqa: E402
from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset  # noqa: E402
from dataset.build_sudoku_dataset import SudokuBuildConfig, build_sudoku_dataset  # noqa: E402
from training.trainer import Trainer  # noqa: E402
from utils.distributed import setup  # noqa: E402

REFERENCE_BATCH = 768


def build_data(workdir: Path) -> dict[str, Path]:
    sudoku, maze = workdir / "sudoku", workdir / "maze"
    build_sudoku_dataset(SudokuBuildConfig(source="generate", output_dir=sudoku, subsample_size=16,
                                           test_subsample_size=4, num_aug=15, seed=0))
    build_maze_dataset(MazeBuildConfig(output_dir=maze, train_samples=64, test_samples=8, seed=0))
    return {"eqr_sudoku": sudoku, "eqr_maze_unique": maze}


def measure(name: str, data: Path, batch: int, steps: int, compiled: bool, run_dir: Path) -> dict[str, float]:
    info = setup("auto")
    dtype = "bfloat16" if info.device.type == "cuda" else "float32"
    overrides = [f"dataset.data_path={data}", f"global_batch_size={batch}", f"max_steps={steps + 1}",
                 f"arch.forward_dtype={dtype}", "wandb_mode=disabled", "eval_interval_steps=null",
                 "checkpoint_interval_steps=null", f"compile={str(compiled).lower()}", f"checkpoint_path={run_dir}"]
    with initialize_config_dir(config_dir=str(ROOT / "config"), version_base=None):
        cfg = compose(config_name=f"train/{name}", overrides=overrides)
    trainer = Trainer(load_pretrain_config(OmegaConf.to_container(cfg, resolve=True)), info)
    start = time.perf_counter()
    trainer.train_step()  # warm-up (and compilation)
    first = time.perf_counter() - start
    if info.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    if info.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return {"first_step_s": first, "step_s": seconds, "steps_per_s": 1 / seconds, "samples_per_s": batch / seconds,
            "reference_step_s": REFERENCE_BATCH * seconds / batch, "dtype": dtype, "device": str(info.device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-sudoku", type=int, default=16)
    parser.add_argument("--batch-maze", type=int, default=4)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    args = parser.parse_args()
    os.environ.setdefault("DISABLE_COMPILE", "0")

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| config | mode | dtype | batch | first step s | s/step | steps/s | samples/s | est. s/step at batch 768 |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        datasets = build_data(Path(tmp))
        for name, batch in (("eqr_sudoku", args.batch_sudoku), ("eqr_maze_unique", args.batch_maze)):
            for compiled in (False, True) if args.compile else (False,):
                r = measure(name, datasets[name], batch, args.steps, compiled, Path(tmp) / "runs" / name)
                mode = "compiled" if compiled else "eager"
                print(f"| {name} | {mode} | {r['dtype']} | {batch} | {r['first_step_s']:.1f} | {r['step_s']:.2f} | "
                      f"{r['steps_per_s']:.3f} | {r['samples_per_s']:.2f} | {r['reference_step_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
