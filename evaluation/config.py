"""Validated evaluation options (`evaluate.py key=value ...` over `config/eval/*.yaml`).

A scalar or a list is accepted for `depths` (alias `halt_max_steps`, the reference's name) and
`different_init`; lists sweep the product. `checkpoint_list` entries are paths or the
reference's entries (a path with its own `param_iter`, `init_override`, `suffix`). What a sweep
key moves (architecture, depth, breadth, another option) is decided per checkpoint in
evaluation/points.py. Every error names its key, so a bad command line gives one clear line.
Reading the command line and the YAML is evaluation/options.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evaluation.plan import OUTPUT_FIELDS, Counting
from evaluation.stopping import CONDITIONS, DEFAULT_RULE, StopRule
from evaluation.tta import TTAKind
from utils.validation import ConfigError, format_validation_error


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _sweep_values(value: Any) -> Any:
    """`{key: value or [values]}` with every value a non-empty list (the reference iterates a scalar as one)."""
    if not isinstance(value, dict):
        return value
    for key, values in value.items():
        if isinstance(values, (list, tuple)) and not values:
            raise ValueError(f"{key}: needs at least one value")
    return {str(k): _as_list(v) for k, v in value.items()}


class CheckpointEntry(BaseModel):
    """One `checkpoint_list` entry as the reference writes it; a bare path is an entry with nothing else.
    `description`, `wandb_tags` and `wandb_run_name` are accepted and not used (no W&B logging here)."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str
    param_iter: dict[str, list[Any]] = Field(default_factory=dict)  # config path -> values, after the shared ones
    init_override: dict[str, Any] = Field(default_factory=dict)  # config path -> value, before the model is built
    suffix: str | None = None  # the reference folder's suffix for this entry
    description: Any = None
    wandb_tags: Any = None
    wandb_run_name: Any = None

    _values = field_validator("param_iter", mode="before")(classmethod(lambda cls, v: _sweep_values(v)))


class EvalConfig(BaseModel):
    """Everything one `evaluate.py` invocation needs; see docs/evaluation.md for each key."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str | None = None
    checkpoint_list: list[CheckpointEntry] = Field(default_factory=list)
    eval_yaml: str | None = None
    dataset_data_path: list[str] | None = None
    split: str = "test"
    depths: list[int] = Field(default_factory=lambda: [16])
    different_init: list[int] = Field(default_factory=lambda: [1])
    convergence_top_k: int | None = Field(default=None, ge=1)
    convergence_window: int = Field(default=3, ge=1)
    breadth_agree: int | None = Field(default=None, ge=1)  # adaptive breadth: stop restarts once k agree
    global_batch_size: int | None = Field(default=None, gt=0)  # puzzles; None: the checkpoint's training batch
    max_rows: int | None = Field(default=None, gt=0)  # at most this many trajectories in flight per rank
    compile: bool | None = None  # compile the segment; None: on CUDA
    kernels: Literal["reference", "fast"] = "reference"  # the fast kernel path (docs/kernels.md)
    max_eval_steps: int | None = Field(default=None, gt=0)
    use_ema: bool = True
    seed: int = Field(default=0, ge=0)
    elastic: bool = False
    elastic_patience: int = Field(default=DEFAULT_RULE.patience, ge=1)
    elastic_tol: float = Field(default=DEFAULT_RULE.tol, ge=0)
    elastic_use_q: bool = False  # the rule q alone, as elastic_rules=[q]
    elastic_rules: list[Literal[CONDITIONS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(DEFAULT_RULE.rules), min_length=1)
    elastic_combine: Literal["all", "any"] = DEFAULT_RULE.combine
    elastic_min_steps: int = Field(default=DEFAULT_RULE.min_steps, ge=1)
    tta: int = Field(default=1, ge=1)
    tta_kind: TTAKind = "auto"
    forward_dtype: Literal["bfloat16", "float16", "float32"] | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    output_dir: str | None = None
    plots: bool = True
    per_trajectory: bool = False
    progress: bool = True
    different_init_reset_std: float = Field(default=1.0, ge=0)
    restart_std: Literal["model", "reset_std"] = "model"  # B > 1: model: EqR's own init stds; reset_std: for all
    reference_counting: Literal[False, True, "both"] = False
    init_override: dict[str, Any] = Field(default_factory=dict)
    shared_param_iter: dict[str, list[Any]] = Field(default_factory=dict)
    param_iter: dict[str, list[Any]] = Field(default_factory=dict)
    suffix: str | None = None  # the reference folder's suffix (eval_preds/step_<N>_<suffix>_<label>)
    save_outputs: list[Literal[OUTPUT_FIELDS]] = Field(default_factory=list)  # type: ignore[valid-type]
    reference_files: bool = True

    @field_validator("checkpoint_list", "dataset_data_path", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return value if value is None else _as_list(value)

    @field_validator("checkpoint_list", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        return [{"checkpoint": v} if isinstance(v, (str, Path)) else v for v in _as_list(value)]

    @field_validator("depths", "different_init", mode="before")
    @classmethod
    def _int_list(cls, value: Any) -> Any:
        """A scalar becomes a one-element list; a bad scalar is named by its key, not as element 0."""
        if not isinstance(value, (list, tuple)) and not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError("expected an integer or a list of integers like [16,64]")
        return _as_list(value)

    _sweeps = field_validator("param_iter", "shared_param_iter", mode="before")(
        classmethod(lambda cls, v: _sweep_values(v)))

    @field_validator("depths", "different_init")
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
        if self.breadth_agree is not None:
            if self.breadth_agree > smallest or smallest == 1:
                raise ValueError(f"breadth_agree: {self.breadth_agree} needs more trajectories per puzzle "
                                 f"(different_init x tta = {smallest})")
            if self.reference_counting:
                raise ValueError("breadth_agree: the reference has no adaptive breadth; "
                                 "use it with reference_counting=false")
        return self

    @property
    def entries(self) -> list[CheckpointEntry]:
        """`checkpoint` (if given) first, then `checkpoint_list`."""
        return ([CheckpointEntry(checkpoint=self.checkpoint)] if self.checkpoint else []) + self.checkpoint_list

    @property
    def checkpoints(self) -> list[str]:
        return [entry.checkpoint for entry in self.entries]

    @property
    def counting(self) -> Counting:
        return {False: "clean", True: "reference", "both": "both"}[self.reference_counting]

    @property
    def stop_rule(self) -> StopRule | None:
        """The elastic exit's rule (evaluation/stopping.py) from the `elastic_*` keys; None without `elastic`."""
        if not self.elastic:
            return None
        return StopRule(rules=("q",) if self.elastic_use_q else tuple(self.elastic_rules), combine=self.elastic_combine,
                        patience=self.elastic_patience, tol=self.elastic_tol, min_steps=self.elastic_min_steps)

    def output_dir_for(self, checkpoint: str) -> Path:
        """`output_dir` when given, else the checkpoint's own directory."""
        return Path(self.output_dir) if self.output_dir else Path(checkpoint).parent


def parse_eval_config(values: dict[str, Any], names: dict[str, str] | None = None,
                      also_known: tuple[str, ...] = ()) -> EvalConfig:
    """Validate a merged option dict; raise ConfigError with `key: message` lines (keys as in `names`;
    an unknown key gets the nearest of the fields, `halt_max_steps`, `eval_config` and `also_known`)."""
    try:
        return EvalConfig.model_validate(values)
    except ValidationError as err:
        known = [*EvalConfig.model_fields, "halt_max_steps", "eval_config", *also_known]
        raise ConfigError(format_validation_error(err, names=names, known=known)) from None
