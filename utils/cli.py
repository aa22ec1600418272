"""What every command does around its work: one line for a bad input, exit 130 on Ctrl-C, `--debug`.

A user's mistake (a misspelled key, a missing file) ends in one line on stderr, not a traceback;
`--debug` or HYDRA_FULL_ERROR=1 shows the traceback instead. Ctrl-C and SIGTERM end a command with
one line and exit status 130; SIGTERM is turned into the same interrupt, so the atomic writers
(`utils.atomic`) remove their temporary output before the process ends. Under torchrun every rank
raises the same error; only each node's first process (LOCAL_RANK 0) prints it, so the line
appears once per node instead of once per rank.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from utils.validation import ConfigError

USER_ERROR_EXIT = 2  # the input was wrong: nothing ran
FAILURE_EXIT = 1  # the input was fine but the work could not be done (an existing output, an unreachable Hub)
INTERRUPT_EXIT = 130  # Ctrl-C or SIGTERM, as a shell reports SIGINT

PACKAGES = ("analysis", "config", "dataset", "evaluation", "models", "training", "utils")


class Interrupted(Exception):
    """Work that stopped cleanly on a signal; the message is the one line to print (e.g. how to resume)."""


def debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("HYDRA_FULL_ERROR") == "1"


def setup_logging(debug: bool, timestamps: bool = False) -> None:
    """INFO to stderr; with `--debug` this project's own DEBUG lines too (not the libraries')."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if timestamps else "%(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt)
    if debug:
        for name in PACKAGES:
            logging.getLogger(name).setLevel(logging.DEBUG)


def prints_errors() -> bool:
    """True on the process that speaks for its node: every process outside torchrun, LOCAL_RANK 0 under it."""
    return os.environ.get("LOCAL_RANK", "0") == "0"


def error_line(err: BaseException) -> str:
    prefix = "config error" if isinstance(err, ConfigError) else "error"
    return f"{prefix}: {' '.join(str(err).split())}"


def plain_error_line(err: BaseException) -> str:
    """`error: ...` for every error: the dataset tools' form, a bad flag included."""
    return f"error: {' '.join(str(err).split())}"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt inside the block (main thread only), so cleanup runs as for Ctrl-C."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield  # someone (a test harness, a launcher) handles it already
        return
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_main(work: Callable[[], int | None], *, errors: tuple[type[BaseException], ...] = (),
             failures: tuple[type[BaseException], ...] = (), debug: bool = False,
             describe: Callable[[BaseException], str] = error_line) -> int:
    """Run `work`; `errors` (bad input) exit 2 and `failures` exit 1, each as one line from `describe`;
    an interrupt exits 130 with one line. `debug` re-raises instead of printing."""
    try:
        with sigterm_as_interrupt():
            return work() or 0
    except Interrupted as err:
        _say(str(err))
        return INTERRUPT_EXIT
    except KeyboardInterrupt:
        _say("interrupted")
        return INTERRUPT_EXIT
    except errors + failures as err:
        if debug:
            raise
        _say(describe(err))
        return USER_ERROR_EXIT if isinstance(err, errors) else FAILURE_EXIT


def _say(line: str) -> None:
    if prints_errors():
        print(line, file=sys.stderr, flush=True)
