"""Validation of the composed training config: a wrong key or value fails before any work.

`arch` keeps its reference layout (a dict handed to the model registry); it is checked
against the architecture's own schema once the dataset's metadata supplies seq_len and
vocab_size (`validate_arch`), which still happens before the model is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.registry import resolve_architecture, resolve_loss_head
from utils.validation import ConfigError, format_validation_error


class DatasetSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    data_path: str | list[str]
    evaluators: list[Any] = Field(default_factory=list)

    @property
    def data_paths(self) -> list[str]:
        return [self.data_path] if isinstance(self.data_path, str) else list(self.data_path)


class PretrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arch: dict[str, Any]
    dataset: DatasetSection

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
    checkpoint_interval_steps: int | None = Field(default=None, gt=0)
    checkpoint_path: str | None = None
    checkpoint_keep_last: int | None = Field(default=None, gt=0)
    resume: bool | str = False
    load_checkpoint: str | None = None

    log_interval_steps: int = Field(default=50, gt=0)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    compile: bool | None = None
    gradient_checkpoint: bool = False

    @model_validator(mode="after")
    def _defaults(self) -> PretrainConfig:
        if self.run_name is None:
            short = self.arch.get("short_name") or str(self.arch.get("name", "model")).split("@")[-1]
            self.run_name = f"{short}_{self.dataset.name}".lower()
        if self.checkpoint_path is None:
            self.checkpoint_path = str(Path("checkpoints") / self.project_name / self.run_name)
        return self


def load_pretrain_config(data: dict[str, Any]) -> PretrainConfig:
    """Validate a composed config dict; ConfigError names every offending key."""
    try:
        config = PretrainConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None
    if "name" not in config.arch:
        raise ConfigError("arch.name: missing (e.g. eqr@EqRModel)")
    resolve_architecture(config.arch["name"])
    resolve_loss_head((config.arch.get("loss") or {}).get("name", "losses@ACTLossHead"))
    return config


def validate_arch(arch: dict[str, Any], data_fields: dict[str, Any]) -> None:
    """Check `arch` against its architecture's schema with the dataset's fields filled in."""
    from models.config import parse_config

    parse_config(resolve_architecture(arch["name"]).config_cls, {**arch, **data_fields}, prefix="arch")
