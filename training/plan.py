"""What a training run will do, decided from the config and dataset.json before anything is built:
the architecture for this dataset and the number of steps (whether to compile: `models.runtime`).

`pretrain.py --check` runs only `preflight`, in one process, so a bad input is one line before
torchrun starts its ranks.
"""

from __future__ import annotations

from typing import NamedTuple

from config.schema import PretrainConfig
from dataset.puzzle_dataset import read_metadata
from models.config import ArchConfig
from models.loading import data_fields
from utils.validation import ConfigError


def steps_for(config: PretrainConfig, total_groups: int, mean_puzzle_examples: float) -> int:
    """Total optimizer steps: epochs x floor(groups x examples per puzzle / global batch), capped by
    `max_steps` as the reference caps it (the smaller of the two; `max_steps` never adds steps)."""
    per_epoch = int(total_groups * mean_puzzle_examples / config.global_batch_size)
    if per_epoch == 0:
        examples = (f"{total_groups} groups of the training set" if mean_puzzle_examples == 1 else
                    f"about {round(total_groups * mean_puzzle_examples)} examples of an epoch ({total_groups} groups "
                    f"x {mean_puzzle_examples:g} examples per puzzle)")
        raise ConfigError(f"global_batch_size: {config.global_batch_size} exceeds the {examples}; lower it (an epoch "
                          "visits each group once, with every example of one of its puzzles)")
    steps = config.epochs * per_epoch
    return steps if config.max_steps is None else min(steps, config.max_steps)


class TrainingPlan(NamedTuple):
    arch: ArchConfig  # the architecture for this dataset (seq_len, vocab_size, ... filled in)
    total_steps: int


def preflight(config: PretrainConfig, world_size: int) -> TrainingPlan:
    """The architecture for this dataset and the step count, checked against dataset.json before any array
    is opened or model built (`pretrain.py --check` runs only this, in one process, before torchrun)."""
    meta = read_metadata(config.dataset.data_paths, "train")
    if config.global_batch_size % world_size:
        raise ConfigError(f"global_batch_size: {config.global_batch_size} is not divisible by {world_size} ranks")
    arch = config.arch.resolve({**data_fields(meta), "batch_size": config.global_batch_size // world_size})
    return TrainingPlan(arch, steps_for(config, meta.total_groups, meta.mean_puzzle_examples))
