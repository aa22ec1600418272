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


def parse_args(argv: list[str]) -> tuple[str, list[str]]:
    """(config name, overrides) from `--config-name NAME` / `-cn NAME` / `--config-name=NAME`; `--check`
    is read by `_train`. The overrides are Hydra's syntax (`+key=value`, `arch=trm`), read by
    `compose_pretrain_config`, so only their shape is checked here."""
    name, overrides = "cfg_pretrain", []
    args = iter(argv)
    for arg in args:
        if arg in ("--config-name", "-cn"):
            name = next(args, None) or ""
            if not name:
                raise ConfigError(f"{arg}: needs a config name, e.g. train/eqr_sudoku")
        elif arg.startswith("--config-name="):
            name = arg.split("=", 1)[1]
        elif arg == "--check":
            continue
        elif arg.startswith("-") or "=" not in arg:
            raise ConfigError(f"{arg}: expected key=value or --config-name NAME ({USAGE})")
        else:
            overrides.append(arg)
    return name, overrides


def _train(argv: list[str]) -> None:
    name, overrides = parse_args(argv)
    config = compose_pretrain_config(name, overrides)
    if "--check" in argv:  # the config and the dataset's metadata only, for WORLD_SIZE ranks
        preflight(config, int(os.environ.get("WORLD_SIZE", "1")))
        print(f"config ok: {name}")
        return
    allocator.keep_freed_memory()  # freed activations stay in the process: no page faults per step
    with distributed.peer_failures():
        Trainer(config, distributed.setup(config.device)).run()
        distributed.finish()


def main(argv: list[str] | None = None) -> int:
    return cli.run_command(argv, __doc__ + "\n" + USAGE, _train, errors=USER_ERRORS,
                           failures=(distributed.PeerLost,), timestamps=True, cleanup=distributed.teardown)


if __name__ == "__main__":
    sys.exit(main())
