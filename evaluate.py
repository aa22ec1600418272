"""Evaluate checkpoints over a depth x breadth sweep.

    python evaluate.py checkpoint=PATH [eval_yaml=config/eval/depth_breadth.yaml] halt_max_steps=[16,64]
        different_init=[1,8] convergence_top_k=1 dataset_data_path=DIR ...

Options are `key=value` (OmegaConf syntax, lists in brackets) merged over `eval_yaml`; see
docs/evaluation.md. Under `torchrun` every rank evaluates its slice and the metrics are summed.
A bad option, checkpoint or dataset stops with one line on stderr and exit status 2 (`--debug`
or HYDRA_FULL_ERROR=1 shows the traceback instead).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dataset.format import DatasetFormatError
from utils.checkpoint import CheckpointError
from utils.eval_config import EvalConfig, parse_eval_config
from utils.eval_run import run_sweep
from utils.validation import ConfigError

DEFAULT_EVAL_YAML = Path(__file__).resolve().parent / "config" / "eval" / "depth_breadth.yaml"


def load_options(argv: list[str]) -> EvalConfig:
    """Merge `key=value` arguments over the YAML named by `eval_yaml=` (default depth_breadth.yaml)."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ConfigError(f"{bad[0]}: expected key=value")
    try:
        overrides = OmegaConf.from_dotlist(argv)
    except OmegaConfBaseException as err:
        raise ConfigError(f"command line: {str(err).splitlines()[0]}") from None
    yaml_path = Path(str(overrides.get("eval_yaml") or DEFAULT_EVAL_YAML))
    if not yaml_path.is_file():
        raise ConfigError(f"eval_yaml: no such file {yaml_path}")
    merged: Any = OmegaConf.to_container(OmegaConf.merge(OmegaConf.load(yaml_path), overrides), resolve=True)
    merged["eval_yaml"] = str(yaml_path)
    return parse_eval_config(merged)


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
    except (ConfigError, CheckpointError, DatasetFormatError) as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if result.files:
        print(result.summary)
        print(f"wrote {len(result.files)} files to {result.files[0].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
