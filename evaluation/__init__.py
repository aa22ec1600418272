"""Depth x breadth evaluation: the one-pass engine, its counting rules, the sweep over checkpoints,
reports. Entry points use this package's API."""

from dataset.format import DatasetFormatError
from evaluation.command import run_command
from evaluation.config import EvalConfig, option_default, parse_eval_config
from evaluation.engine import EvalResult, run_evaluation
from evaluation.naming import run_label
from evaluation.options import load_options
from evaluation.plan import EvalPlan
from evaluation.randomness import restart_argument
from evaluation.stopping import StopRule
from evaluation.sweep import SweepResult, run_sweep
from utils.safe_load import CheckpointError
from utils.validation import ConfigError

# What a user's bad input raises: entry points print these as one line; training and analysis add theirs.
USER_ERRORS = (ConfigError, CheckpointError, DatasetFormatError)

__all__ = ["USER_ERRORS", "EvalConfig", "EvalPlan", "EvalResult", "StopRule", "SweepResult",
           "load_options", "option_default", "parse_eval_config", "restart_argument", "run_command",
           "run_evaluation", "run_label", "run_sweep"]
