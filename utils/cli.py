"""What every command does around its work: one line for a bad input, exit 130 on Ctrl-C, `--debug`.

`run_main` is the wrapper every entry point runs its work in (argparse commands call it directly);
`run_command` adds what the `key=value` commands share (`--help`, `--debug`, logging), and
`parse_key_values` reads their arguments.

A user's mistake (a misspelled key, a missing file) ends in one line on stderr, not a traceback;
`--debug` or HYDRA_FULL_ERROR=1 shows the traceback instead. Ctrl-C and SIGTERM end a command with
one line and exit status 130; SIGTERM is turned into the same interrupt, so the atomic writers
(`utils.atomic`) remove their temporary output before the process ends. Under torchrun every rank
raises the same error; only each node's first process (LOCAL_RANK 0) prints it, so the line
appears once per node instead of once per rank.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from utils.validation import ConfigError

USER_ERROR_EXIT = 2  # the input was wrong: nothing ran
FAILURE_EXIT = 1  # the input was fine but the work could not be done (an existing output, an unreachable Hub)
INTERRUPT_EXIT = 130  # Ctrl-C or SIGTERM, as a shell reports SIGINT

PACKAGES = ("analysis", "config", "dataset", "evaluation", "models", "training", "utils")


class Interrupted(Exception):
    """Work that stopped cleanly on a signal; the message is the one line to print (e.g. how to resume)."""


def debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("HYDRA_FULL_ERROR") == "1"


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    """`--debug` of an argparse command, spelled and explained the same in every command's `--help`."""
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")


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


def run_command(argv: list[str] | None, usage: str | None, work: Callable[[list[str]], int | None], *,
                errors: tuple[type[BaseException], ...], failures: tuple[type[BaseException], ...] = (),
                timestamps: bool = False, cleanup: Callable[[], None] | None = None) -> int:
    """A `key=value` command: `-h`/`--help` prints `usage`; `--debug` (taken out of the arguments `work`
    gets) or HYDRA_FULL_ERROR=1 logs DEBUG lines and shows tracebacks; otherwise as `run_main`.
    `cleanup` runs however the work ends (a torchrun rank's process group), kept out of this module
    so the dataset tools start without torch."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    debug = debug_requested(argv)
    setup_logging(debug, timestamps)
    args = [a for a in argv if a != "--debug"]
    try:
        return run_main(lambda: work(args), errors=errors, failures=failures, debug=debug)
    finally:
        if cleanup is not None:
            cleanup()


def parse_key_values(argv: list[str]) -> dict[str, Any]:
    """`key=value` arguments (OmegaConf dotlist syntax: `a.b=1`, lists in brackets) as a nested dict;
    a malformed argument is a ConfigError naming it, so it ends in one line."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ConfigError(f"{bad[0]}: expected key=value")
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(argv))
    except (OmegaConfBaseException, yaml.YAMLError) as err:
        bad = _unreadable(argv)
        raise ConfigError(f"command line: {bad + ': ' if bad else ''}{_problem(err)}") from None


def _problem(err: Exception) -> str:
    """What YAML or OmegaConf found wrong, in one line (`while parsing a flow sequence: expected ',' or ']'...`)."""
    if isinstance(err, yaml.MarkedYAMLError):
        return ": ".join(part for part in (err.context, err.problem) if part)
    return str(err).splitlines()[0]


def _unreadable(argv: list[str]) -> str | None:
    """The first argument that does not read on its own (an unclosed `[1,2`), to name it in the error."""
    for arg in argv:
        try:
            OmegaConf.from_dotlist([arg])
        except (OmegaConfBaseException, yaml.YAMLError):
            return arg
    return None
