"""Train a recurrent reasoner: `python pretrain.py --config-name train/eqr_sudoku key=value ...`.

Runs as one process or under `torchrun --standalone --nproc-per-node N pretrain.py ...`.
The loop lives in utils/trainer.py; this file only composes, validates and launches.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from config.schema import load_pretrain_config
from utils import distributed
from utils.trainer import Trainer
from utils.validation import ConfigError


@hydra.main(config_path="config", config_name="cfg_pretrain", version_base=None)
def main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_pretrain_config(OmegaConf.to_container(cfg, resolve=True))
    except ConfigError as err:
        sys.exit(f"config error: {err}")
    info = distributed.setup(config.device)
    try:
        Trainer(config, info).run()
    except ConfigError as err:
        sys.exit(f"config error: {err}")
    finally:
        distributed.teardown()


if __name__ == "__main__":
    main()
