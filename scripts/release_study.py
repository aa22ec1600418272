"""Release a study's final checkpoints small: `python scripts/release_study.py OUT DEST`.

For every `OUT/<arm>/seed<s>/step_<N>.pth` (the latest of each run) writes `DEST/<arm>/seed<s>.pth`
holding the EMA weights as the model, the training config and the step: what evaluation needs,
without optimizer moments, carry or RNG states (a tenth of the size). `evaluate.py` loads it as any
checkpoint and reports that it holds no separate EMA (its model weights are the EMA's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils import checkpoint, cli  # noqa: E402


def release(out: Path, dest: Path) -> list[Path]:
    written = []
    for run in sorted(p for p in out.glob("*/seed*") if p.is_dir()):
        found = checkpoint.step_checkpoints(run)
        if not found:
            continue
        contents = checkpoint.read_checkpoint(found[-1])
        if contents.ema_state is None:
            raise checkpoint.CheckpointError(f"{found[-1]}: holds no EMA weights to release")
        weights = {**contents.model_state, **contents.ema_state}
        target = dest / run.parent.name / f"{run.name}.pth"
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = {"model": weights, "config": contents.config, "step": contents.step}
        written.append(checkpoint.save_checkpoint_atomic(payload, target))
    if not written:
        raise FileNotFoundError(f"{out}: no <arm>/seed<s>/step_<N>.pth to release")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the study folder (scripts/study.sh's OUT)")
    parser.add_argument("dest", type=Path, help="where <arm>/seed<s>.pth go (checkpoints/study)")
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)

    def work() -> None:
        for path in release(args.out, args.dest):
            print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")

    return cli.run_main(work, errors=(FileNotFoundError, checkpoint.CheckpointError), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
