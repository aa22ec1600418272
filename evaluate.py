"""Evaluate checkpoints over a depth x breadth sweep.

    python evaluate.py checkpoint=PATH [eval_yaml=config/eval/depth_breadth.yaml] depths=[16,64]
        different_init=[1,8] convergence_top_k=1 dataset_data_path=DIR ...

Options are `key=value` (OmegaConf syntax, lists in brackets) merged over `eval_yaml`; see
docs/evaluation.md (`halt_max_steps` is accepted for `depths`, as the reference names it). Under
`torchrun` every rank evaluates its slice and the metrics are summed. A bad option, checkpoint
or dataset stops with one line on stderr and exit status 2 (`--debug` or HYDRA_FULL_ERROR=1
shows the traceback instead).
"""

from __future__ import annotations

import logging
import os
import sys

import torch

from evaluation import USER_ERRORS, load_options, run_sweep
from utils import distributed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    debug = "--debug" in argv or os.environ.get("HYDRA_FULL_ERROR") == "1"
    argv = [a for a in argv if a != "--debug"]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Recurrent latents drift into subnormal floats, which x86 CPUs process up to 100x slower.
    torch.set_flush_denormal(True)
    try:
        result = run_sweep(load_options(argv))
    except USER_ERRORS as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.teardown()
    if result.files:
        print(result.summary)
        print(f"wrote {len(result.files)} files to {result.files[0].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
