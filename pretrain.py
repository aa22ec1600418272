"""Train a recurrent reasoner: `python pretrain.py --config-name train/eqr_sudoku key=value ...`.

Runs as one process or under `torchrun --standalone --nproc-per-node N pretrain.py ...`.
The config is composed from `config/` (Hydra syntax: `key=value`, `+key=value`, `arch=trm`) and
validated before any work; the loop lives in training/trainer.py. Bad input stops with one line on
stderr and exit status 2; `--debug` (or HYDRA_FULL_ERROR=1) shows the traceback instead. Ctrl-C (or
SIGTERM) finishes the current step, writes a checkpoint and exits 130; `resume=true` continues.
`--check` validates the config against the dataset and exits (scripts/train.sh runs it before torchrun,
so a bad input is one line instead of one per rank inside the launcher's report).
"""

from __future__ import annotations

import os
import sys

from training import USER_ERRORS, ConfigError, Trainer, compose_pretrain_config, preflight
from utils import allocator, cli, distributed

USAGE = "usage: python pretrain.py [--config-name NAME] [--debug] [--check] [key=value ...]"


def parse_args(argv: list[str]) -> tuple[str, list[str], bool]:
    """(config name, overrides, debug) from `--config-name NAME` / `-cn NAME` / `--config-name=NAME`;
    `--check` is read by `main`."""
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
        elif arg == "--check":
            continue
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
    debug = cli.debug_requested(argv)
    cli.setup_logging(debug, timestamps=True)

    def train() -> None:
        name, overrides, _ = parse_args(argv)
        config = compose_pretrain_config(name, overrides)
        if "--check" in argv:  # the config and the dataset's metadata only, for WORLD_SIZE ranks
            preflight(config, int(os.environ.get("WORLD_SIZE", "1")))
            print(f"config ok: {name}")
            return
        allocator.keep_freed_memory()  # freed activations stay in the process: no page faults per step
        Trainer(config, distributed.setup(config.device)).run()

    try:
        return cli.run_main(train, errors=USER_ERRORS, debug=debug)
    finally:
        distributed.teardown()


if __name__ == "__main__":
    sys.exit(main())
