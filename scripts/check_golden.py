"""Check golden fixtures: `python scripts/check_golden.py tests/fixtures/*`.

Takes fixture files and folders (a folder is searched; an HRM/TRM release-layout folder is one
fixture). Prints, per fixture, the mode it ran in on this machine and the relative error of every
recorded tensor, flags what is above its tolerance, and exits 1 if anything is. The criterion
(analysis/golden.py) is portable: one segment from a recorded carry is asserted everywhere; a
free-running trajectory only where segment 0 is bit-exact, and reported otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import USER_ERRORS, check_file, companion_of, fixture_paths  # noqa: E402
from utils import cli  # noqa: E402


def _check(paths: list[Path]) -> int:
    """Report every fixture; an unreadable one is a failure of its own line, not the end of the run."""
    failed: list[str] = []
    for path in fixture_paths(paths):
        try:
            report = check_file(path)
        except USER_ERRORS as err:
            print(f"{err}  <-- FAIL")
            failed.append(str(path))
            continue
        if report is None:
            print(f"{path}: support file, checked with {companion_of(path).name}")
            continue
        verdict = "ok" if report.passed else "FAIL"
        print(f"{path}: {verdict}, {len(report.comparisons)} comparisons; {report.mode}")
        print(f"    max asserted error {report.worst():.3e}"
              + (f", max reported-only error {report.worst(asserted=False):.3e}"
                 if any(c.tol is None for c in report.comparisons) else ""))
        for c in report.comparisons:
            tol = "reported" if c.tol is None else f"tol {c.tol:.0e}"
            flag = "" if c.passed else "   <-- FAIL"
            print(f"    {c.name:<56} {c.error:.3e}  ({tol}){flag}")
        failed += [f"{path}:{name}" for name in report.failures]
    if failed:
        print(f"{len(failed)} failures (comparisons above tolerance or unreadable files)", file=sys.stderr)
        return 1
    print("all fixtures within tolerance")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="fixture files or folders")
    args = parser.parse_args(argv)
    return cli.run_main(lambda: _check(args.paths))


if __name__ == "__main__":
    sys.exit(main())
