"""Training: the deep-supervision loop, its checkpoint state, optimizers and LR schedule, tracking.
Entry points use this package's API."""

from config.compose import compose_pretrain_config
from config.schema import PretrainConfig, load_pretrain_config
from dataset.format import DatasetFormatError
from training.plan import preflight
from training.trainer import NonFiniteLossError, Trainer
from utils.safe_load import CheckpointError
from utils.validation import ConfigError

# What a user's bad input (or a diverging run) raises: entry points print these as one line. Training
# reads the same config, checkpoint and dataset as evaluation does, and adds its own error.
USER_ERRORS = (ConfigError, CheckpointError, DatasetFormatError, NonFiniteLossError)

__all__ = ["USER_ERRORS", "ConfigError", "NonFiniteLossError", "PretrainConfig", "Trainer", "compose_pretrain_config",
           "load_pretrain_config", "preflight"]
