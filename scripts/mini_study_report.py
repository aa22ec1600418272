"""Tables and plots of scripts/mini_study.sh: `python -m scripts.mini_study_report OUT --report DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import load_study, write_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="the study folder (<arm>/seed<s>/eval_*)")
    parser.add_argument("--report", type=Path, help="where tables.md and the plots go (default OUT/report)")
    parser.add_argument("--trained-depth", type=int, default=2, help="the runs' halt_max_steps")
    parser.add_argument("--breadth-depth", type=int, default=8, help="depth of the breadth result (c)")
    parser.add_argument("--residual-depth", type=int, default=32, help="depth of the residual result (d)")
    args = parser.parse_args(argv)
    try:
        study = load_study(args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    files = write_report(study, args.report or args.out / "report", args.trained_depth, args.breadth_depth,
                         args.residual_depth)
    print(files[0].read_text())
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
