"""What an evaluation command does around its work: `--help`, `--debug`, one-line errors, CPU settings."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

import torch

from utils import allocator, distributed


def run_command(argv: list[str] | None, doc: str | None, work: Callable[[list[str]], int],
                errors: tuple[type[Exception], ...]) -> int:
    """Run `work(argv)`; a user error in `errors` becomes one line on stderr and exit status 2
    (`--debug` or HYDRA_FULL_ERROR=1 shows the traceback instead)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(doc)
        return 0
    debug = "--debug" in argv or os.environ.get("HYDRA_FULL_ERROR") == "1"
    argv = [a for a in argv if a != "--debug"]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Recurrent latents drift into subnormal floats, which x86 CPUs process up to 100x slower.
    torch.set_flush_denormal(True)
    allocator.keep_freed_memory()
    try:
        return work(argv)
    except errors as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.teardown()
