"""Validated evaluation options (`evaluate.py key=value ...` over `config/eval/*.yaml`), in typed
sections: what is evaluated (`source`), the depths, the breadth, the stop rule, the selection of
answers, the counting, the outputs and the runtime. The command line and the YAML keep their flat
keys (`different_init=8`, `elastic_tol=0.1`); `EvalConfig` sorts each into its section, names an
unknown one with the nearest known key, and `flat()` dumps them back (the records' settings).

A scalar or a list is accepted for `depths` (alias `halt_max_steps`, the reference's name) and
`different_init`; lists sweep the product. `checkpoint_list` entries are paths or the
reference's entries (a path with its own `param_iter`, `init_override`, `suffix`). What a sweep
key moves (architecture, depth, breadth, another option) is decided per checkpoint in
evaluation/points.py. Every error names its key, so a bad command line gives one clear line.
Reading the command line and the YAML is evaluation/options.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dataset.symmetries import TransformSet
from dataset.task_evaluator import TaskEvaluator
from dataset.tasks import SYMMETRIES
from evaluation.plan import (
    OUTPUT_FIELDS,
    Breadth,
    Counting,
    EvalPlan,
    Outputs,
    Runtime,
    Selection,
    TTAKind,
)
from evaluation.randomness import restart_argument
from evaluation.stopping import CONDITIONS, DEFAULT_RULE, StopRule
from utils.plugins import KEY as PLUGINS_KEY
from utils.plugins import import_plugins
from utils.validation import ConfigError, format_validation_error, unknown_key


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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceOptions(_Section):
    """What is evaluated: the checkpoints, the data, the sweep over architecture and option values."""

    plugins: list[str] = Field(default_factory=list)  # modules imported before the rest is read (utils/plugins.py)
    checkpoint: str | None = None
    checkpoint_list: list[CheckpointEntry] = Field(default_factory=list)
    eval_yaml: str | None = None
    dataset_data_path: list[str] | None = None
    split: str = "test"
    # The memorisation check: the model sees the blank identifier, or another task's, for every puzzle
    puzzle_id_ablation: Literal["none", "blank", "shuffled"] = "none"
    init_override: dict[str, Any] = Field(default_factory=dict)
    shared_param_iter: dict[str, list[Any]] = Field(default_factory=dict)
    param_iter: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("checkpoint_list", "dataset_data_path", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return value if value is None else _as_list(value)

    @field_validator("checkpoint_list", mode="before")
    @classmethod
    def _entries(cls, value: Any) -> Any:
        return [{"checkpoint": v} if isinstance(v, (str, Path)) else v for v in _as_list(value)]

    _sweeps = field_validator("param_iter", "shared_param_iter", mode="before")(
        classmethod(lambda cls, v: _sweep_values(v)))

    @property
    def entries(self) -> list[CheckpointEntry]:
        """`checkpoint` (if given) first, then `checkpoint_list`."""
        return ([CheckpointEntry(checkpoint=self.checkpoint)] if self.checkpoint else []) + self.checkpoint_list

    @property
    def checkpoints(self) -> list[str]:
        return [entry.checkpoint for entry in self.entries]


def _int_list(value: Any) -> Any:
    """A scalar becomes a one-element list; a bad scalar is named by its key, not as element 0."""
    if not isinstance(value, (list, tuple)) and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ValueError("expected an integer or a list of integers like [16,64]")
    return _as_list(value)


def _positive(values: list[int]) -> list[int]:
    if not values:
        raise ValueError("needs at least one value")
    if any(v < 1 for v in values):
        raise ValueError("every value must be >= 1")
    return sorted(set(values))


class DepthOptions(_Section):
    """Depth D (`depths`, alias `halt_max_steps`): segments per trajectory; a list is one pass."""

    depths: list[int] = Field(default_factory=lambda: [16])

    _list = field_validator("depths", mode="before")(classmethod(lambda cls, v: _int_list(v)))
    _checked = field_validator("depths")(classmethod(lambda cls, v: _positive(v)))


class BreadthOptions(_Section):
    """Breadth: B restarts per puzzle (a list: one pass each), how they start, augmentation copies,
    adaptive breadth."""

    different_init: list[int] = Field(default_factory=lambda: [1])
    different_init_reset_std: float = Field(default=1.0, ge=0)
    restart_std: Literal["model", "reset_std"] = "model"  # B > 1: model: EqR's own init stds; reset_std: for all
    tta: int = Field(default=1, ge=1)
    tta_kind: TTAKind = "auto"
    breadth_agree: int | None = Field(default=None, ge=1)  # adaptive breadth: stop restarts once k agree

    _list = field_validator("different_init", mode="before")(classmethod(lambda cls, v: _int_list(v)))
    _checked = field_validator("different_init")(classmethod(lambda cls, v: _positive(v)))

    @field_validator("tta_kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        if kind != "auto" and kind not in SYMMETRIES:
            raise ValueError(f"{kind!r} is not auto or a registered symmetry; known: {', '.join(SYMMETRIES)}")
        return kind


class StoppingOptions(_Section):
    """The elastic exit's keys; `rule` is the one stop rule they make (evaluation/stopping.py).

    `elastic=<rule text>` (`stable:2&q`, the frontier's syntax, any registered condition) is the rule
    itself, with `elastic_min_steps`; `elastic=true` builds it from the other `elastic_*` keys."""

    elastic: bool | str = False
    elastic_patience: int = Field(default=DEFAULT_RULE.patience, ge=1)
    elastic_tol: float = Field(default=DEFAULT_RULE.tol, ge=0)
    elastic_use_q: bool = False  # the rule q alone, as elastic_rules=[q]
    elastic_rules: list[str] = Field(default_factory=lambda: list(DEFAULT_RULE.rules), min_length=1)
    elastic_combine: Literal["all", "any"] = DEFAULT_RULE.combine
    elastic_min_steps: int = Field(default=DEFAULT_RULE.min_steps, ge=1)

    @field_validator("elastic_rules")
    @classmethod
    def _registered(cls, rules: list[str]) -> list[str]:
        unknown = [name for name in rules if name not in CONDITIONS]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a registered condition; known: {', '.join(CONDITIONS)}")
        return rules

    @field_validator("elastic")
    @classmethod
    def _parses(cls, value: bool | str) -> bool | str:
        if isinstance(value, str):
            StopRule.parse(value)  # a ValueError naming the text and the known conditions
        return value

    @property
    def rule(self) -> StopRule | None:
        """None without `elastic`."""
        if isinstance(self.elastic, str):
            return StopRule.parse(self.elastic, self.elastic_min_steps)
        if not self.elastic:
            return None
        return StopRule(rules=("q",) if self.elastic_use_q else tuple(self.elastic_rules), combine=self.elastic_combine,
                        patience=self.elastic_patience, tol=self.elastic_tol, min_steps=self.elastic_min_steps)


class SelectionOptions(_Section):
    convergence_top_k: int | None = Field(default=None, ge=1)
    convergence_window: int = Field(default=3, ge=1)


class CountingOptions(_Section):
    reference_counting: Literal[False, True, "both"] = False

    @property
    def mode(self) -> Counting:
        return {False: "clean", True: "reference", "both": "both"}[self.reference_counting]


class OutputOptions(_Section):
    output_dir: str | None = None
    plots: bool = True
    per_trajectory: bool = False
    save_outputs: list[Literal[OUTPUT_FIELDS]] = Field(default_factory=list)  # type: ignore[valid-type]
    reference_files: bool = True
    arc_plots: int = Field(default=0, ge=0)  # a PNG per task for the first N tasks a task evaluator scored (ARC)
    suffix: str | None = None  # the reference folder's suffix (eval_preds/step_<N>_<suffix>_<label>)

    def directory_for(self, checkpoint: str) -> Path:
        """`output_dir` when given, else the checkpoint's own directory."""
        return Path(self.output_dir) if self.output_dir else Path(checkpoint).parent


class RuntimeOptions(_Section):
    global_batch_size: int | None = Field(default=None, gt=0)  # puzzles; None: the checkpoint's training batch
    max_rows: int | None = Field(default=None, gt=0)  # at most this many trajectories in flight per rank
    compile: bool | None = None  # compile the segment; None: on CUDA
    kernels: Literal["reference", "fast"] = "reference"  # the fast kernel path (docs/kernels.md)
    max_eval_steps: int | None = Field(default=None, gt=0)
    use_ema: bool = True
    seed: int = Field(default=0, ge=0)
    forward_dtype: Literal["bfloat16", "float16", "float32"] | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True
    # A rerun takes over finished points and a stopped pass's saved state (evaluation/resume.py); false: recompute
    resume: bool = True
    eval_checkpoint_minutes: float | None = Field(default=10, ge=0)  # a pass's state saved this often; None: never


SECTIONS: dict[str, type[_Section]] = {
    "source": SourceOptions, "depth": DepthOptions, "breadth": BreadthOptions, "stopping": StoppingOptions,
    "selection": SelectionOptions, "counting": CountingOptions, "outputs": OutputOptions, "runtime": RuntimeOptions,
}
RESULT_SECTIONS = ("depth", "breadth", "stopping", "selection", "counting", "runtime")
SECTION_OF = {key: name for name, cls in SECTIONS.items() for key in cls.model_fields}  # flat key -> its section
FLAT_KEYS = tuple(SECTION_OF)


def option_default(key: str) -> Any:
    """The default of a flat key (`different_init` -> [1])."""
    return SECTIONS[SECTION_OF[key]].model_fields[key].get_default(call_default_factory=True)


@dataclass(frozen=True)
class PassContext:
    """What a pass brings to its plan beyond the options: the TTA transforms (from the dataset's task), the
    task's evaluator per depth, the (compiled) segment function and the number of batches (progress bar)."""

    transforms: TransformSet | None = None
    evaluators: Mapping[int, TaskEvaluator] = field(default_factory=dict)
    segment: Callable[..., Any] | None = None
    total_batches: int | None = None


class EvalConfig(BaseModel):
    """Everything one `evaluate.py` invocation needs, by section; see docs/evaluation.md for each key."""

    model_config = ConfigDict(extra="forbid")

    source: SourceOptions = Field(default_factory=SourceOptions)
    depth: DepthOptions = Field(default_factory=DepthOptions)
    breadth: BreadthOptions = Field(default_factory=BreadthOptions)
    stopping: StoppingOptions = Field(default_factory=StoppingOptions)
    selection: SelectionOptions = Field(default_factory=SelectionOptions)
    counting: CountingOptions = Field(default_factory=CountingOptions)
    outputs: OutputOptions = Field(default_factory=OutputOptions)
    runtime: RuntimeOptions = Field(default_factory=RuntimeOptions)

    @model_validator(mode="before")
    @classmethod
    def _into_sections(cls, values: Any) -> Any:
        """Flat keys into their sections (over sections given whole); an unknown key stays, to be named."""
        if not isinstance(values, dict):
            return values
        typo = next((k for k in SECTIONS if k in values and not isinstance(values[k], dict)), None)
        if typo is not None:  # `depth=4`: a flat key mistyped, not a section
            raise ValueError(unknown_key(typo, [*FLAT_KEYS, "halt_max_steps"]))
        out: dict[str, Any] = {name: dict(values[name]) for name in SECTIONS if name in values}
        for key, value in values.items():
            if key in SECTION_OF:
                out.setdefault(SECTION_OF[key], {})[key] = value
            elif key not in SECTIONS:
                out[key] = value
        return out

    @model_validator(mode="after")
    def _consistent(self) -> EvalConfig:
        if not self.source.checkpoints:
            raise ValueError("checkpoint: missing; pass checkpoint=PATH or checkpoint_list=[A,B]")
        for breadth in self.breadth.different_init:  # every pass's plan, so a bad combination fails now
            self.to_plan(breadth, PassContext())
        return self

    def result_options(self) -> dict[str, Any]:
        """The keys that shape a pass's numbers, flat: not what is evaluated, not where files go, not the
        depths (each record holds its own), the progress bar nor how a stopped pass is saved and resumed.
        A record's settings start from these."""
        values = {k: v for name in RESULT_SECTIONS for k, v in getattr(self, name).model_dump().items()}
        for key in ("depths", "progress", "resume", "eval_checkpoint_minutes"):
            values.pop(key)
        values["puzzle_id_ablation"] = self.source.puzzle_id_ablation  # what the model is shown of the data
        return values

    def to_plan(self, breadth: int, run: PassContext, stop: StopRule | None = None) -> EvalPlan:
        """The engine's plan of one pass at breadth `breadth`: every depth and option of this config, with
        what the pass brings (`run`: the TTA transforms, the task's evaluators, the segment function and the
        batch count); `stop` replaces the stop rule of the `elastic*` keys (the frontier's settings)."""
        return EvalPlan(
            tuple(self.depth.depths),
            breadth=Breadth(restarts=breadth, tta=self.breadth.tta, transforms=run.transforms,
                            agree=self.breadth.breadth_agree,
                            restart_std=restart_argument(self.breadth.restart_std,
                                                         self.breadth.different_init_reset_std)),
            stopping=stop or self.stopping.rule,
            selection=Selection(top_k=self.selection.convergence_top_k, window=self.selection.convergence_window),
            counting=self.counting.mode,
            outputs=Outputs(per_trajectory=self.outputs.per_trajectory, save=tuple(self.outputs.save_outputs),
                            evaluators=run.evaluators),
            runtime=Runtime(seed=self.runtime.seed, max_rows=self.runtime.max_rows, progress=self.runtime.progress,
                            segment=run.segment, total_batches=run.total_batches),
        )

    def flat(self) -> dict[str, Any]:
        """Every key as the command line names it, with its value."""
        return {k: v for name in SECTIONS for k, v in getattr(self, name).model_dump().items()}

    def with_options(self, **options: Any) -> EvalConfig:
        """A copy with some flat keys changed, validated again."""
        return parse_eval_config({**self.flat(), **options})


def parse_eval_config(values: dict[str, Any], names: dict[str, str] | None = None,
                      also_known: tuple[str, ...] = ()) -> EvalConfig:
    """Validate a merged option dict; raise ConfigError with `key: message` lines (keys as in `names`;
    an unknown key gets the nearest of the keys, `halt_max_steps`, `eval_config` and `also_known`).
    The `plugins` modules are imported first: the tasks, rules and symmetries they register are then known."""
    import_plugins(values.get(PLUGINS_KEY))
    try:
        return EvalConfig.model_validate(values)
    except ValidationError as err:
        known = [*FLAT_KEYS, "halt_max_steps", "eval_config", *also_known]
        raise ConfigError(format_validation_error(err, names=names, known=known, sections=set(SECTIONS))) from None
