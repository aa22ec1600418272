"""Check golden fixtures: `python scripts/check_golden.py tests/fixtures/*`.

Prints the relative error of every recorded tensor and exits non-zero if any exceeds
--tol (default 1e-4). See utils/golden.py for the formats and the error definition.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.golden import FixtureError, check_file  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--tol", type=float, default=1e-4, help="largest acceptable relative error")
    args = parser.parse_args(argv)

    worst_overall = 0.0
    failed: list[str] = []
    for path in args.files:
        try:
            results = check_file(path)
        except FixtureError as err:
            print(f"{err}  <-- FAIL")
            failed.append(str(path))
            continue
        if results is None:
            print(f"{path}: companion file, checked with its .pth")
            continue
        worst = max(r.error for r in results)
        worst_overall = max(worst_overall, worst)
        print(f"{path}: {len(results)} tensors, max relative error {worst:.3e}")
        for r in results:
            flag = "" if r.passed(args.tol) else "   <-- FAIL"
            print(f"    {r.name:<48} {r.error:.3e}{flag}")
            if not r.passed(args.tol):
                failed.append(f"{path}:{r.name}")
    print(f"max relative error over all files: {worst_overall:.3e} (tolerance {args.tol:.0e})")
    if failed:
        print(f"{len(failed)} failures (tensors above tolerance or unreadable files)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
