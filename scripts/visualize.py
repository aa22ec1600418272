"""Render one puzzle's prediction across segments: `python scripts/visualize.py CHECKPOINT DATA_DIR --index I`.

Writes frame_XXX.png per segment, trajectory.gif and residuals.png (latent residual per
segment) into --out (default: <checkpoint dir>/visualize/<split>_<index>). Sudoku frames
highlight changed cells and rule violations; maze frames show the predicted path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset.format import DatasetFormatError, load_metadata, load_set  # noqa: E402
from models.losses import IGNORE_LABEL_ID  # noqa: E402
from utils.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from utils.trajectory_view import record_trajectory, render  # noqa: E402
from utils.validation import ConfigError  # noqa: E402


def load_example(data_dir: Path, split: str, index: int) -> tuple[dict[str, torch.Tensor], str, dict[str, int]]:
    split_dir = data_dir / split
    meta = load_metadata(split_dir)
    arrays = load_set(split_dir, "all", meta)
    if not 0 <= index < len(arrays.inputs):
        raise IndexError(f"--index: {index} is outside 0..{len(arrays.inputs) - 1} ({split_dir})")
    if meta.vocab_size == 6:
        kind = "maze"
    elif meta.vocab_size == 11 and meta.seq_len == 81:
        kind = "sudoku"
    else:
        raise DatasetFormatError(f"{split_dir}: neither a Sudoku nor a maze dataset (vocab {meta.vocab_size})")
    labels = np.asarray(arrays.labels[index]).astype(np.int32)
    labels = np.where(labels == meta.ignore_label_id, IGNORE_LABEL_ID, labels)
    puzzle = int(np.searchsorted(arrays.puzzle_indices, index, side="right") - 1)
    batch = {
        "inputs": torch.from_numpy(np.asarray(arrays.inputs[index]).astype(np.int32))[None],
        "labels": torch.from_numpy(labels)[None],
        "puzzle_identifiers": torch.tensor([int(arrays.puzzle_identifiers[puzzle])], dtype=torch.int32),
    }
    fields = {"seq_len": meta.seq_len, "vocab_size": meta.vocab_size,
              "num_puzzle_identifiers": meta.num_puzzle_identifiers}
    return batch, kind, fields


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--split", default="test")
    parser.add_argument("--segments", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ema", action="store_true", help="use the live weights instead of the EMA shadow")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    if args.segments < 1:
        print("error: --segments: must be >= 1", file=sys.stderr)
        return 2
    try:
        batch, kind, fields = load_example(args.data_dir, args.split, args.index)
        loaded = load_checkpoint(args.checkpoint, use_ema=not args.no_ema, data_fields=fields)
    except (DatasetFormatError, CheckpointError, ConfigError, IndexError) as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    traj = record_trajectory(loaded.act_model, batch, args.segments, seed=args.seed)
    out = args.out or args.checkpoint.parent / "visualize" / f"{args.split}_{args.index}"
    files = render(traj, kind, out, title=f"{args.split}[{args.index}] ")
    print(f"wrote {len(traj.preds)} frames, {files['gif'].name} and {files['residuals'].name} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
