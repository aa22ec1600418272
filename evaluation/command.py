"""What an evaluation command does around its work: `--help`, `--debug`, one-line errors, CPU settings."""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch

from utils import allocator, cli, distributed


def run_command(argv: list[str] | None, doc: str | None, work: Callable[[list[str]], int],
                errors: tuple[type[Exception], ...]) -> int:
    """Run `work(argv)`; a user error in `errors` becomes one line on stderr and exit status 2
    (`--debug` or HYDRA_FULL_ERROR=1 shows the traceback instead), Ctrl-C one line and 130."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(doc)
        return 0
    debug = cli.debug_requested(argv)
    argv = [a for a in argv if a != "--debug"]
    cli.setup_logging(debug)

    def prepared_work() -> int:
        # Recurrent latents drift into subnormal floats, which x86 CPUs process up to 100x slower.
        torch.set_flush_denormal(True)
        allocator.keep_freed_memory()
        return work(argv)

    try:
        return cli.run_main(prepared_work, errors=errors, debug=debug)
    finally:
        distributed.teardown()
