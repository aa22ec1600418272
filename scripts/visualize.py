"""Render one puzzle's prediction across segments: `python scripts/visualize.py CHECKPOINT DATA_DIR --index I`.

Writes frame_XXX.png per segment, trajectory.gif and residuals.png (latent residual per
segment) into --out (default: <checkpoint dir>/visualize/<split>_<index>). The dataset's task
draws the frames (dataset/tasks.py): Sudoku frames highlight changed cells and rule violations,
maze frames show the predicted path. The trajectory is the one evaluate.py scores for puzzle I with
the same options: --segments D (its depths), --seed, --different-init B and --restart R (which of
the B), --different-init-reset-std; its last frame is the prediction evaluate.py counts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import USER_ERRORS, Draw, visualize  # noqa: E402
from utils import cli, plugins  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--split", default="test")
    parser.add_argument("--segments", type=int, default=Draw.segments, help="depth D, as evaluate.py's depths")
    parser.add_argument("--seed", type=int, default=Draw.seed, help="evaluate.py's seed")
    parser.add_argument("--different-init", type=int, default=Draw.different_init, help="breadth B of the evaluation")
    parser.add_argument("--restart", type=int, default=Draw.restart, help="which of the B restarts (0..B-1)")
    parser.add_argument("--different-init-reset-std", type=float, default=Draw.different_init_reset_std,
                        help="evaluate.py's different_init_reset_std")
    parser.add_argument("--restart-std", choices=["model", "reset_std"], default=Draw.restart_std,
                        help="evaluate.py's restart_std")
    parser.add_argument("--no-ema", action="store_true", help="use the live weights instead of the EMA shadow")
    parser.add_argument("--out", type=Path)
    cli.add_debug_option(parser)
    args = plugins.parse_arguments(parser, argv)

    def work() -> None:
        plugins.import_plugin_arguments(args.plugin_arguments)
        draw = Draw(segments=args.segments, seed=args.seed, different_init=args.different_init, restart=args.restart,
                    different_init_reset_std=args.different_init_reset_std, restart_std=args.restart_std)
        traj, files = visualize(args.checkpoint, args.data_dir, args.split, args.index, draw, use_ema=not args.no_ema,
                                out=args.out)
        print(f"wrote {len(traj.preds)} frames, {files['gif'].name} and {files['residuals'].name} to "
              f"{files['frames']}")

    return cli.run_main(work, errors=USER_ERRORS, debug=args.debug, describe=cli.plain_error_line)


if __name__ == "__main__":
    sys.exit(main())
