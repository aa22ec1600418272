"""Tables and plots of scripts/study.sh: `python scripts/study_report.py OUT [--report DIR] [--data DIR]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import load_study, write_report  # noqa: E402
from utils import cli  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the study folder (scripts/study.sh's OUT)")
    parser.add_argument("--report", type=Path, default=None, help="default OUT/report")
    parser.add_argument("--data", type=Path, default=None, help="the study data (default OUT/data/sudoku-rounds)")
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)

    def work() -> None:
        paths = write_report(load_study(args.out, args.data), args.report or args.out / "report")
        print(paths[0].read_text())
        print("wrote " + ", ".join(str(p) for p in paths))

    return cli.run_main(work, errors=(FileNotFoundError,), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
