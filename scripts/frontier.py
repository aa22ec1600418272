"""Accuracy against compute for one checkpoint: fixed depths vs elastic stop rules.

    python scripts/frontier.py checkpoint=PATH [dataset_data_path=DIR] [depths=[1,2,4,8,16,32]]
        [elastic=[stable:1,stable:2,q,stable:1|q]] [elastic_depth=32] [elastic_min_steps=1]
        [output_dir=DIR] [any evaluate.py key, e.g. global_batch_size=200 different_init=4 convergence_top_k=1]

Writes frontier.md (command, machine, table), frontier.json, frontier.png (exact accuracy vs
segments per puzzle and vs wall time) and frontier_steps.png (segments per puzzle of each elastic
setting) to output_dir (default <checkpoint dir>/frontier). Rule syntax: analysis/frontier.py.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import USER_ERRORS, frontier_table, parse_frontier_options, run_frontier, write_frontier  # noqa: E402
from evaluation import run_command, run_label  # noqa: E402
from utils import checkpoint, cli  # noqa: E402


def _frontier(argv: list[str]) -> int:
    frontier, evaluation = parse_frontier_options(cli.parse_key_values(argv))
    points = run_frontier(frontier, evaluation)
    first = evaluation.source.checkpoints[0]
    out = Path(frontier.output_dir) if frontier.output_dir else Path(first).parent / "frontier"
    contents = checkpoint.read_checkpoint(first)
    arch = contents.arch.get("name")
    dataset = ", ".join(Path(p).name for p in (evaluation.source.dataset_data_path or contents.data_paths))
    options = evaluation.flat()
    settings = {"checkpoint": str(contents.path), "run": run_label(contents.path, arch), "arch": arch,
                "dataset": dataset, "different_init": options["different_init"][0],
                **{k: options[k] for k in ("global_batch_size", "convergence_top_k", "seed")},
                "elastic_min_steps": frontier.elastic_min_steps, "device": options["device"]}
    files = write_frontier(points, out, "python scripts/frontier.py " + shlex.join(argv), settings)
    print(frontier_table(points))
    print(f"wrote {', '.join(f.name for f in files)} to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(argv, __doc__, _frontier, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
