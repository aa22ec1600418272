"""Train a recurrent reasoner: `python pretrain.py --config-name train/eqr_sudoku key=value ...`.

Runs as one process or under `torchrun --standalone --nproc-per-node N pretrain.py ...`.
The config is composed from `config/` (Hydra syntax: `key=value`, `+key=value`, `arch=trm`) and
validated before any work; the loop lives in training/trainer.py. Bad input stops with one line on
stderr and exit status 2; `--debug` (or HYDRA_FULL_ERROR=1) shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys

from training import USER_ERRORS, ConfigError, Trainer, compose_pretrain_config
from utils import distributed

USAGE = "usage: python pretrain.py [--config-name NAME] [--debug] [key=value ...]"


def parse_args(argv: list[str]) -> tuple[str, list[str], bool]:
    """(config name, overrides, debug) from `--config-name NAME` / `-cn NAME` / `--config-name=NAME`."""
    name, overrides, debug = "cfg_pretrain", [], os.environ.get("HYDRA_FULL_ERROR") == "1"
    args = iter(argv)
    for arg in args:
        if arg in ("--config-name", "-cn"):
            name = next(args, None) or ""
            if not name:
                raise ConfigError(f"{arg}: needs a config name, e.g. train/eqr_sudoku")
        elif arg.startswith("--config-name="):
            name = arg.split("=", 1)[1]
        elif arg == "--debug":
            debug = True
        elif arg.startswith("-") or "=" not in arg:
            raise ConfigError(f"{arg}: expected key=value or --config-name NAME ({USAGE})")
        else:
            overrides.append(arg)
    return name, overrides, debug


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__ + "\n" + USAGE)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    debug = "--debug" in argv or os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        name, overrides, debug = parse_args(argv)
        config = compose_pretrain_config(name, overrides)
        Trainer(config, distributed.setup(config.device)).run()
    except USER_ERRORS as err:
        if debug:
            raise
        prefix = "config error" if isinstance(err, ConfigError) else "error"
        print(f"{prefix}: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
