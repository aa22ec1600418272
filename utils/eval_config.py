"""Validated evaluation options (`evaluate.py key=value ...` over `config/eval/*.yaml`).

A scalar or a list is accepted for `halt_max_steps` and `different_init`; lists sweep the
product. Every error names its key, so a bad command line gives one clear line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from utils.eval_counting import Counting
from utils.eval_outputs import OUTPUT_FIELDS
from utils.evaluation import ElasticExit
from utils.tta import TTAKind
from utils.validation import ConfigError, format_validation_error


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else [value]


class EvalConfig(BaseModel):
    """Everything one `evaluate.py` invocation needs; see docs/evaluation.md for each key."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = None
    checkpoint_list: list[str] = Field(default_factory=list)
    eval_yaml: str | None = None
    dataset_data_path: list[str] | None = None
    split: str = "test"
    halt_max_steps: list[int] = Field(default_factory=lambda: [16])
    different_init: list[int] = Field(default_factory=lambda: [1])
    convergence_top_k: int | None = Field(default=None, ge=1)
    convergence_window: int = Field(default=3, ge=1)
    global_batch_size: int = Field(default=16, gt=0)
    max_eval_steps: int | None = Field(default=None, gt=0)
    use_ema: bool = True
    seed: int = Field(default=0, ge=0)
    elastic: bool = False
    elastic_patience: int = Field(default=2, ge=1)
    elastic_tol: float = Field(default=1e-2, ge=0)
    elastic_use_q: bool = False
    tta: int = Field(default=1, ge=1)
    tta_kind: TTAKind = "auto"
    forward_dtype: Literal["bfloat16", "float16", "float32"] | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    output_dir: str | None = None
    plots: bool = True
    per_trajectory: bool = False
    progress: bool = True
    different_init_reset_std: float = Field(default=1.0, ge=0)
    reference_counting: Literal[False, True, "both"] = False
    init_override: dict[str, Any] = Field(default_factory=dict)
    param_iter: dict[str, list[Any]] = Field(default_factory=dict)
    save_outputs: list[Literal[OUTPUT_FIELDS]] = Field(default_factory=list)  # type: ignore[valid-type]
    reference_files: bool = True

    @field_validator("checkpoint_list", "dataset_data_path", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return value if value is None else _as_list(value)

    @field_validator("halt_max_steps", "different_init", mode="before")
    @classmethod
    def _int_list(cls, value: Any) -> Any:
        """A scalar becomes a one-element list; a bad scalar is named by its key, not as element 0."""
        if not isinstance(value, (list, tuple)) and not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError("expected an integer or a list of integers like [16,64]")
        return _as_list(value)

    @field_validator("param_iter", mode="before")
    @classmethod
    def _sweeps(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for key, values in value.items():
            if key in ("halt_max_steps", "different_init"):
                raise ValueError(f"{key}: sweep it with {key}=[...] (its values share one pass)")
            if isinstance(values, (list, tuple)) and not values:
                raise ValueError(f"{key}: needs at least one value")
        return {k: _as_list(v) for k, v in value.items()}

    @field_validator("halt_max_steps", "different_init")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        if not values:
            raise ValueError("needs at least one value")
        if any(v < 1 for v in values):
            raise ValueError("every value must be >= 1")
        return sorted(set(values))

    @model_validator(mode="after")
    def _consistent(self) -> EvalConfig:
        if not self.checkpoints:
            raise ValueError("checkpoint: missing; pass checkpoint=PATH or checkpoint_list=[A,B]")
        smallest = min(self.different_init) * self.tta
        if self.convergence_top_k is not None and self.convergence_top_k > smallest:
            raise ValueError(
                f"convergence_top_k: {self.convergence_top_k} exceeds the trajectories per puzzle "
                f"(different_init x tta = {smallest})"
            )
        return self

    @property
    def checkpoints(self) -> list[str]:
        return ([self.checkpoint] if self.checkpoint else []) + self.checkpoint_list

    @property
    def counting(self) -> Counting:
        return {False: "clean", True: "reference", "both": "both"}[self.reference_counting]

    @property
    def elastic_exit(self) -> ElasticExit | None:
        if not self.elastic:
            return None
        return ElasticExit(patience=self.elastic_patience, tol=self.elastic_tol, use_q=self.elastic_use_q)

    def output_dir_for(self, checkpoint: str) -> Path:
        """`output_dir` when given, else the checkpoint's own directory."""
        return Path(self.output_dir) if self.output_dir else Path(checkpoint).parent


def parse_eval_config(values: dict[str, Any]) -> EvalConfig:
    """Validate a merged option dict; raise ConfigError with `key: message` lines."""
    try:
        return EvalConfig.model_validate(values)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None
