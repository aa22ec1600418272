"""Tables and plots of scripts/mini_study.sh: `python -m scripts.mini_study_report OUT --report DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import load_study, write_report  # noqa: E402
from utils import cli  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="the study folder (<arm>/seed<s>/eval_*)")
    parser.add_argument("--report", type=Path, help="where tables.md and the plots go (default OUT/report)")
    parser.add_argument("--trained-depth", type=int, default=2, help="the runs' halt_max_steps")
    parser.add_argument("--breadth-depth", type=int, default=8, help="depth of the breadth result (c)")
    parser.add_argument("--residual-depth", type=int, default=32, help="depth of the residual result (d)")
    args = parser.parse_args(argv)

    def work() -> None:
        files = write_report(load_study(args.out), args.report or args.out / "report", args.trained_depth,
                             args.breadth_depth, args.residual_depth)
        print(files[0].read_text())
        print("wrote " + ", ".join(str(f) for f in files))

    # A study folder without records, or with records of an earlier format, is the user's input.
    return cli.run_main(work, errors=(FileNotFoundError, ValueError), describe=cli.plain_error_line)


if __name__ == "__main__":
    sys.exit(main())
