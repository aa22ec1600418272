"""Validated evaluation options (`evaluate.py key=value ...` over `config/eval/*.yaml`).

A scalar or a list is accepted for `depths` (alias `halt_max_steps`, the reference's name) and
`different_init`; lists sweep the product. Every error names its key, so a bad command line
gives one clear line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evaluation.counting import Counting
from evaluation.engine import ElasticExit
from evaluation.outputs import OUTPUT_FIELDS
from evaluation.tta import TTAKind
from utils.validation import ConfigError, format_validation_error

DEFAULT_EVAL_YAML = Path(__file__).resolve().parents[1] / "config" / "eval" / "depth_breadth.yaml"


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
    elastic_patience: int = Field(default=2, ge=1)
    elastic_tol: float = Field(default=1e-2, ge=0)
    elastic_use_q: bool = False
    elastic_rules: list[Literal["stable", "residual", "q"]] = Field(default_factory=lambda: ["stable", "residual"],
                                                                    min_length=1)
    elastic_combine: Literal["all", "any"] = "all"
    elastic_min_steps: int = Field(default=2, ge=1)
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

    @field_validator("depths", "different_init", mode="before")
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
            if key in ("depths", "halt_max_steps", "different_init"):
                raise ValueError(f"{key}: sweep it with {key}=[...] (its values share one pass)")
            if isinstance(values, (list, tuple)) and not values:
                raise ValueError(f"{key}: needs at least one value")
        return {k: _as_list(v) for k, v in value.items()}

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
    def checkpoints(self) -> list[str]:
        return ([self.checkpoint] if self.checkpoint else []) + self.checkpoint_list

    @property
    def counting(self) -> Counting:
        return {False: "clean", True: "reference", "both": "both"}[self.reference_counting]

    @property
    def elastic_exit(self) -> ElasticExit | None:
        if not self.elastic:
            return None
        return ElasticExit(patience=self.elastic_patience, tol=self.elastic_tol, use_q=self.elastic_use_q,
                           rules=tuple(self.elastic_rules), combine=self.elastic_combine,
                           min_steps=self.elastic_min_steps)

    def output_dir_for(self, checkpoint: str) -> Path:
        """`output_dir` when given, else the checkpoint's own directory."""
        return Path(self.output_dir) if self.output_dir else Path(checkpoint).parent


def parse_eval_config(values: dict[str, Any], names: dict[str, str] | None = None) -> EvalConfig:
    """Validate a merged option dict; raise ConfigError with `key: message` lines (keys as in `names`)."""
    try:
        return EvalConfig.model_validate(values)
    except ValidationError as err:
        known = [*EvalConfig.model_fields, "halt_max_steps"]
        raise ConfigError(format_validation_error(err, names=names, known=known)) from None


def with_depth_alias(values: dict[str, Any], where: str) -> dict[str, Any]:
    """`halt_max_steps` (the reference's name) read as `depths`; both in one source is an error."""
    if "halt_max_steps" not in values:
        return values
    if "depths" in values:
        raise ConfigError(f"halt_max_steps: an alias of depths; {where} gives both")
    values = dict(values)
    values["depths"] = values.pop("halt_max_steps")
    return values


def load_options(argv: list[str]) -> EvalConfig:
    """`key=value` arguments merged over the YAML named by `eval_yaml=` (default depth_breadth.yaml)."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ConfigError(f"{bad[0]}: expected key=value")
    try:
        given = OmegaConf.to_container(OmegaConf.from_dotlist(argv))
    except OmegaConfBaseException as err:
        raise ConfigError(f"command line: {str(err).splitlines()[0]}") from None
    overrides = with_depth_alias(given, "the command line")
    yaml_path = Path(str(overrides.get("eval_yaml") or DEFAULT_EVAL_YAML))
    if not yaml_path.is_file():
        raise ConfigError(f"eval_yaml: no such file {yaml_path}")
    try:
        defaults = with_depth_alias(OmegaConf.to_container(OmegaConf.load(yaml_path), resolve=True), str(yaml_path))
        merged: Any = OmegaConf.to_container(OmegaConf.merge(defaults, overrides), resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{yaml_path}: {str(err).splitlines()[0]}") from None
    merged["eval_yaml"] = str(yaml_path)
    return parse_eval_config(merged, {"depths": "halt_max_steps"} if "halt_max_steps" in given else None)
