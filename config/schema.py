"""Validation of the composed training config: a wrong key or value fails before any work.

Every key is checked, `arch` included: an unknown key is an error that names it and suggests
the nearest known one. Keys that only the reference's trainer uses (its configs and so its
checkpoints' `config` carry them) are dropped with one warning, so its command lines and
configs keep working. `arch` is an `ArchSection`: the registered architecture's keys in the
reference's layout, each key and value checked at load; `ArchSection.resolve` completes it with
the dataset's fields (seq_len, vocab_size, ...) into the architecture's own config, once, before
the dataset's arrays are opened (training/plan.py).
"""

from __future__ import annotations

import logging
from collections.abc import ItemsView
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

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


class ArchSection(BaseModel):
    """`arch`: a registered architecture's keys in the reference's layout (`name`, `short_name`, `loss` and
    the network's keys), dumped as written, so a checkpoint's `config.arch` stays the reference's dict.

    What can be checked without the dataset is checked when the config is read (`check`): the name
    resolves (an unregistered `module@Class` is imported), every key is the architecture's, every value
    fits its field, the loss head resolves. `resolve` adds the dataset's fields and builds the
    architecture's own config, where the checks between keys run."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str

    @property
    def values(self) -> dict[str, Any]:
        """The keys as written (the reference's dict)."""
        return self.model_dump()

    # read as the reference's dict is read (`config.arch["hidden_size"]`)
    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def items(self) -> ItemsView[str, Any]:
        return self.values.items()

    def check(self) -> None:
        """ValueError naming every unknown key and every value its field refuses."""
        values, config_cls = self.values, resolve_architecture(self.name).config_cls
        problems = [unknown_key(f"arch.{k}", config_cls.model_fields, f" for {self.name}")
                    for k in unknown_arch_keys(values)]
        loss = values.get("loss") or {}
        if isinstance(loss, dict):  # the loss head's name is the registry's to check; values are the schema's
            problems += [unknown_key(f"arch.loss.{k}", LossConfig.model_fields) for k in loss
                         if k not in LossConfig.model_fields]
        if problems:
            raise ValueError("; ".join(problems))
        resolve_loss_head(loss.get("name", LossConfig().name) if isinstance(loss, dict) else LossConfig().name)
        given = {k: (f.annotation, f) for k, f in config_cls.model_fields.items() if k in values}
        try:  # each value against its own field; the checks between keys wait for the dataset's fields
            create_model(f"{config_cls.__name__}Values", **given).model_validate({k: values[k] for k in given})
        except ValidationError as err:
            raise ValueError(format_validation_error(err, prefix="arch")) from None

    def resolve(self, data_fields: dict[str, Any]) -> ArchConfig:
        """The architecture's config for a dataset (`data_fields`: seq_len, vocab_size, ... and the batch)."""
        return parse_config(resolve_architecture(self.name).config_cls, {**self.values, **data_fields}, prefix="arch")


class DatasetSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    data_path: str | list[str]

    @property
    def data_paths(self) -> list[str]:
        return [self.data_path] if isinstance(self.data_path, str) else list(self.data_path)


class PretrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arch: ArchSection
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
    def _arch_fits(self) -> PretrainConfig:
        """The arch's keys against its architecture, here so that its errors name `arch.<key>` themselves."""
        self.arch.check()
        return self

    @model_validator(mode="after")
    def _defaults(self) -> PretrainConfig:
        if self.run_name is None:
            short = self.arch.get("short_name") or self.arch.name.split("@")[-1]
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
    return config
