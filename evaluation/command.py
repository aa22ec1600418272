"""What an evaluation command adds to `utils.cli.run_command`: CPU settings and the process group's end."""

from __future__ import annotations

from collections.abc import Callable

import torch

from utils import allocator, cli, distributed


def run_command(argv: list[str] | None, doc: str | None, work: Callable[[list[str]], int],
                errors: tuple[type[Exception], ...]) -> int:
    """Run `work(argv)` as `utils.cli.run_command` does (`--help`, `--debug`, one-line errors in `errors`
    with exit status 2, Ctrl-C 130), with the CPU prepared for evaluation; a rank whose peer is gone ends
    with one line and exit status 1 (`utils.distributed.PeerLost`)."""

    def prepared_work(args: list[str]) -> int:
        # Recurrent latents drift into subnormal floats, which x86 CPUs process up to 100x slower.
        torch.set_flush_denormal(True)
        allocator.keep_freed_memory()
        with distributed.peer_failures():
            return work(args)

    return cli.run_command(argv, doc, prepared_work, errors=errors, failures=(distributed.PeerLost,),
                           cleanup=distributed.teardown)
