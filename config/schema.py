"""Validation of the composed training config: a wrong key or value fails before any work.

Every key is checked, `arch` included: an unknown key is an error that names it and suggests
the nearest known one. Keys that only the reference's trainer uses (its configs and so its
checkpoints' `config` carry them) are dropped with one warning, so its command lines and
configs keep working. `arch` keeps its reference layout (a dict handed to the model registry)
and is checked against its architecture's schema twice: at load, with placeholder data fields,
and once the dataset's metadata supplies seq_len and vocab_size (`validate_arch`), before the
dataset's arrays are opened.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.config import ArchConfig, LossConfig, parse_config
from models.registry import REFERENCE_ONLY_ARCH_KEYS, resolve_architecture, resolve_loss_head, unknown_arch_keys
from utils.plugins import import_plugins
from utils.validation import ConfigError, format_validation_error, unknown_key

log = logging.getLogger(__name__)

# Top-level keys of the reference's training config that this project does not use.
REFERENCE_ONLY_KEYS = frozenset({
    "convergence_top_k", "convergence_vis_plots", "convergence_window", "debug", "debug_trace_steps",
    "eval_description", "eval_dir", "eval_save_outputs", "eval_sync_max_wait_time", "eval_sync_poll_interval",
    "eval_sync_status_log_interval", "grad_norm_log_interval_steps", "gradient_accumulation_steps",
    "heavy_metrics_log_interval", "hidden_state_log_interval_steps", "load_strict", "optimizer_kwargs",
    "retain_graph", "steps_hist_log_interval_steps", "steps_hist_plotly", "target_q_update_every",
    "train_epochs_per_iter",
})
# ... and of its `dataset` section.
REFERENCE_ONLY_DATASET_KEYS = frozenset({"evaluators"})
# Reference keys whose non-neutral value would change training: refused rather than ignored.
NEUTRAL_ONLY = {"gradient_accumulation_steps": (None, 1), "optimizer_kwargs": (None, {})}


class DatasetSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    data_path: str | list[str]

    @property
    def data_paths(self) -> list[str]:
        return [self.data_path] if isinstance(self.data_path, str) else list(self.data_path)


class PretrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arch: dict[str, Any]
    dataset: DatasetSection

    plugins: list[str] = []  # modules imported before the rest is validated (utils/plugins.py)
    project_name: str = "EqR"
    run_name: str | None = None
    entity: str | None = None
    wandb_mode: Literal["online", "offline", "disabled"] | None = None
    seed: int = 0

    global_batch_size: int = Field(gt=0)
    epochs: int = Field(gt=0)
    max_steps: int | None = Field(default=None, gt=0)

    lr: float = Field(gt=0)
    lr_min_ratio: float = Field(default=1.0, ge=0, le=1)
    lr_warmup_steps: int = Field(default=2000, ge=0)
    beta1: float = Field(default=0.9, ge=0, lt=1)
    beta2: float = Field(default=0.95, ge=0, lt=1)
    weight_decay: float = Field(default=1.0, ge=0)
    puzzle_emb_lr: float = Field(default=1e-2, ge=0)
    puzzle_emb_weight_decay: float = Field(default=0.1, ge=0)
    grad_clip_norm: float | None = Field(default=None, gt=0)

    ema: bool = True
    ema_rate: float = Field(default=0.999, ge=0, lt=1)

    eval_interval_steps: int | None = Field(default=None, gt=0)
    eval_max_batches: int | None = Field(default=None, gt=0)
    aggregated_voting: bool = False  # the task evaluator (ARC) keeps its votes over all evaluations, as TRM's
    checkpoint_interval_steps: int | None = Field(default=None, gt=0)
    checkpoint_path: str | None = None
    checkpoint_keep_last: int | None = Field(default=None, gt=0)
    resume: bool | str = False
    load_checkpoint: str | None = None
    # With load_checkpoint: true = its weights only; false = its whole trainer state (an error for a
    # weights-only file); None = the whole state when the file holds one, else its weights (training/start.py).
    load_weights_only: bool | None = None

    log_interval_steps: int = Field(default=50, gt=0)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    compile: bool | None = None
    gradient_checkpoint: bool = False
    kernels: Literal["reference", "fast"] = "reference"

    @model_validator(mode="after")
    def _defaults(self) -> PretrainConfig:
        if self.run_name is None:
            short = self.arch.get("short_name") or str(self.arch.get("name", "model")).split("@")[-1]
            self.run_name = f"{short}_{self.dataset.name}".lower()
        if self.checkpoint_path is None:
            self.checkpoint_path = str(Path("checkpoints") / self.project_name / self.run_name)
        return self


def drop_reference_keys(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The config without the reference-only keys, and their names (`arch.` prefixed inside arch)."""
    for key, neutral in NEUTRAL_ONLY.items():
        if key in data and data[key] not in neutral:
            raise ConfigError(f"{key}: {data[key]!r} is not supported here (the reference's option; "
                              f"leave it at {neutral[-1]!r})")
    ignored = sorted(k for k in data if k in REFERENCE_ONLY_KEYS)
    kept = {k: v for k, v in data.items() if k not in REFERENCE_ONLY_KEYS}
    for section, keys in (("arch", REFERENCE_ONLY_ARCH_KEYS), ("dataset", REFERENCE_ONLY_DATASET_KEYS)):
        values = kept.get(section)
        if isinstance(values, dict):
            ignored += sorted(f"{section}.{k}" for k in values if k in keys)
            kept[section] = {k: v for k, v in values.items() if k not in keys}
    return kept, ignored


def _check_keys(data: dict[str, Any]) -> None:
    known = set(PretrainConfig.model_fields)
    problems = [unknown_key(k, known) for k in data if k not in known]
    dataset = data.get("dataset")
    if isinstance(dataset, dict):
        fields = set(DatasetSection.model_fields)
        problems += [unknown_key(f"dataset.{k}", fields) for k in dataset if k not in fields]
    if problems:
        raise ConfigError("; ".join(problems))


def load_pretrain_config(data: dict[str, Any]) -> PretrainConfig:
    """Validate a composed config dict, arch included; ConfigError names every offending key."""
    data, ignored = drop_reference_keys(data)
    if ignored:
        log.warning("config: ignoring keys only the reference's trainer uses: %s", ", ".join(ignored))
    _check_keys(data)
    import_plugins(data.get("plugins"))
    try:
        config = PretrainConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None
    validate_arch(config.arch)
    return config


def _placeholders(arch: dict[str, Any]) -> dict[str, Any]:
    """Stand-ins for the dataset's fields, consistent with the arch's own board size."""
    height, width = arch.get("board_height"), arch.get("board_width")
    board = height * width if isinstance(height, int) and isinstance(width, int) else 1
    return {"seq_len": arch.get("seq_len", board), "vocab_size": arch.get("vocab_size", 2),
            "num_puzzle_identifiers": arch.get("num_puzzle_identifiers", 1)}


def validate_arch(arch: dict[str, Any], data_fields: dict[str, Any] | None = None) -> ArchConfig:
    """Check `arch` against its architecture's schema: unknown keys, every value, the loss head.

    Without `data_fields` (seq_len, vocab_size, ... from dataset.json) placeholders stand in, so
    everything but the dataset-dependent checks runs before the dataset is read.
    """
    if "name" not in arch:
        raise ConfigError("arch.name: missing (e.g. eqr@EqRModel)")
    name = arch["name"]
    config_cls = resolve_architecture(name).config_cls
    problems = [unknown_key(f"arch.{k}", config_cls.model_fields, f" for {name}") for k in unknown_arch_keys(arch)]
    loss = arch.get("loss") or {}
    if isinstance(loss, dict):  # the loss head's name is the registry's to check; values are the schema's
        fields = LossConfig.model_fields
        problems += [unknown_key(f"arch.loss.{k}", fields) for k in loss if k not in fields]
    if problems:
        raise ConfigError("; ".join(problems))
    resolve_loss_head(loss.get("name", LossConfig().name) if isinstance(loss, dict) else LossConfig().name)
    fields = data_fields if data_fields is not None else _placeholders(arch)
    return parse_config(config_cls, {**arch, **fields}, prefix="arch")
