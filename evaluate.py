"""Evaluate checkpoints over a depth x breadth sweep.

    python evaluate.py checkpoint=PATH [eval_yaml=config/eval/depth_breadth.yaml] depths=[16,64]
        different_init=[1,8] convergence_top_k=1 dataset_data_path=DIR ...

Options are `key=value` (OmegaConf syntax, lists in brackets) merged over `eval_yaml`; see
docs/evaluation.md (`halt_max_steps` is accepted for `depths`, as the reference names it). Under
`torchrun` every rank evaluates its slice and the metrics are summed. A bad option, checkpoint
or dataset stops with one line on stderr and exit status 2 (`--debug` or HYDRA_FULL_ERROR=1
shows the traceback instead). SIGTERM or Ctrl-C saves the pass in progress and exits 130; the same
command run again reuses the finished points and continues the pass (docs/evaluation.md,
"Stopping and continuing").
"""

from __future__ import annotations

import sys
from pathlib import Path

from evaluation import USER_ERRORS, load_options, run_command, run_sweep
from utils import distributed


def _sweep(argv: list[str]) -> int:
    result = run_sweep(load_options(argv))
    distributed.finish()  # every rank done: wait for the others before the group goes
    if result.folder is not None:
        print(result.summary)
        folders = sorted({str(f.parent) for f in result.files if f.parent != result.folder and "eval_preds" not in
                          f.parts})
        reference = sorted({str(Path(*f.parts[:f.parts.index("eval_preds") + 1])) for f in result.files
                            if "eval_preds" in f.parts})
        print(f"wrote {len(result.files)} files: results of each point in {', '.join(folders)}; "
              f"summary, points.csv and plots in {result.folder}"
              + (f"; the reference's layout in {', '.join(reference)}" if reference else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(argv, __doc__, _sweep, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
