"""Render one puzzle's prediction across segments: `python scripts/visualize.py CHECKPOINT DATA_DIR --index I`.

Writes frame_XXX.png per segment, trajectory.gif and residuals.png (latent residual per
segment) into --out (default: <checkpoint dir>/visualize/<split>_<index>). The dataset's task
draws the frames (dataset/tasks.py): Sudoku frames highlight changed cells and rule violations,
maze frames show the predicted path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import USER_ERRORS, visualize  # noqa: E402
from utils import cli  # noqa: E402


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

    def work() -> None:
        traj, files = visualize(args.checkpoint, args.data_dir, args.split, args.index, args.segments, args.seed,
                                use_ema=not args.no_ema, out=args.out)
        print(f"wrote {len(traj.preds)} frames, {files['gif'].name} and {files['residuals'].name} to "
              f"{files['frames']}")

    return cli.run_main(work, errors=USER_ERRORS, debug=args.debug, describe=cli.plain_error_line)


if __name__ == "__main__":
    sys.exit(main())
