"""What a sweep runs for one checkpoint entry: its points (one model build each), each point's options,
depths and breadths, and the reference's name of every combination.

The reference sweeps the cartesian product of `shared_param_iter` x `param_iter` x the entry's
`param_iter` (a key given twice takes the later values) over config paths, and applies
`init_override` (the top-level one, then the entry's) before the model is built (SPEC 5.1). Here
every key moves one axis:
- `arch.halt_max_steps`, `halt_max_steps`, `depths`: the depths, all run in one pass;
- `different_init`: the breadths, one pass each;
- `arch.<key>` or an architecture key by itself (`lambda_`): the model, built once per value;
- any other evaluation key (`convergence_top_k`, `seed`, ...): the options of a point.
In `init_override`, `global_batch_size` stands for the checkpoint's training batch (the evaluation
batch when `global_batch_size` is unset), as the reference applies it to the checkpoint's config.
Every key and value is checked here, before any model is built.
"""

from __future__ import annotations

import difflib
import itertools
from dataclasses import dataclass
from typing import Any

from evaluation.config import SECTION_OF, CheckpointEntry, EvalConfig
from models.config import parse_config
from models.loading import DATA_FIELDS
from models.registry import resolve_architecture
from utils.validation import ConfigError

DEPTH_KEYS = ("arch.halt_max_steps", "halt_max_steps", "depths")
BREADTH_KEY = "different_init"
UNSWEPT = {"checkpoint", "checkpoint_list", "eval_yaml", "param_iter", "shared_param_iter", "init_override",
           "suffix", "dataset_data_path", "split", "device", "output_dir", "reference_files"}


@dataclass(frozen=True)
class Point:
    """One model build of a checkpoint entry, with the options, depths and breadths it runs at."""

    cfg: EvalConfig  # the evaluation options of this point (its depths and breadths included)
    arch: dict[str, Any]  # architecture overrides by field name: init_override, then the swept values
    training_batch: int | None  # init_override's global_batch_size, the stand-in for the checkpoint's
    keys: tuple[str, ...]  # the swept keys as given, in order, then our own list axes
    values: dict[str, Any]  # the value of every swept key but the depth's and the breadth's
    suffix: str
    index: int

    def combination(self, depth: int, breadth: int) -> dict[str, Any]:
        """The swept keys' values at (depth, breadth), keys as given."""
        return {key: depth if key in DEPTH_KEYS else breadth if key == BREADTH_KEY else self.values[key]
                for key in self.keys}

    def reference_label(self, depth: int, breadth: int) -> str:
        """`arch_halt_max_steps-16` (keys with dots as underscores, joined by `_`); `iter_00` when none."""
        parts = [f"{key.replace('.', '_')}-{value}" for key, value in self.combination(depth, breadth).items()]
        return "_".join(parts) or f"iter_{self.index:02d}"


def architecture_keys(arch_name: str) -> list[str]:
    """The keys an evaluation may override for this architecture (not the dataset's, not the depth)."""
    fields = resolve_architecture(arch_name).config_cls.model_fields
    return sorted(set(fields) - set(DATA_FIELDS) - {"halt_max_steps", "name"})


def _axis(key: str, allowed: list[str], arch_name: str, section: str) -> tuple[str, str]:
    """(axis, field) a sweep key moves: depth, breadth, arch (field name) or option (EvalConfig field)."""
    if key in DEPTH_KEYS:
        return "depth", key
    if key == BREADTH_KEY:
        return "breadth", key
    name = key.removeprefix("arch.")
    if name in allowed and (key.startswith("arch.") or key not in SECTION_OF):
        return "arch", name
    if not key.startswith("arch.") and key in SECTION_OF:
        if key in UNSWEPT:
            raise ConfigError(f"{section}.{key}: cannot be swept")
        return "option", key
    known = [*allowed, *(f for f in SECTION_OF if f not in UNSWEPT)]
    match = difflib.get_close_matches(name, known, n=1)
    raise ConfigError(f"{section}.{key}: not an architecture key of {arch_name} nor an evaluation key"
                      + (f"; did you mean {match[0]}?" if match else f"; architecture keys: {', '.join(allowed)}"))


def _initial(overrides: dict[str, Any], allowed: list[str], arch_name: str,
             section: str) -> tuple[dict[str, Any], int | None]:
    """(architecture overrides, training batch) of an `init_override`."""
    arch: dict[str, Any] = {}
    batch = None
    for key, value in overrides.items():
        name = key.removeprefix("arch.")
        if key == "global_batch_size":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{section}.global_batch_size: expected a positive integer (got {value!r})")
            batch = value
        elif key in DEPTH_KEYS:
            raise ConfigError(f"{section}.{key}: the depth is the evaluation's own axis; set halt_max_steps=...")
        elif name in allowed:
            arch[name] = value
        else:
            raise ConfigError(f"{section}.{key}: not an architecture key of {arch_name} (nor global_batch_size); "
                              f"known: {', '.join(allowed)}")
    return arch, batch


def _one_per_axis(axes: dict[str, tuple[str, str]], section: str) -> None:
    """Two keys for one axis (`depths` and `arch.halt_max_steps`, `lambda_` and `arch.lambda_`) are an error."""
    seen: dict[tuple[str, str], str] = {}
    for key, (axis, name) in axes.items():
        slot = (axis, "" if axis in ("depth", "breadth") else name)
        if slot in seen:
            raise ConfigError(f"{section}: {seen[slot]} and {key} sweep the same value; give one")
        seen[slot] = key


def plan_points(cfg: EvalConfig, entry: CheckpointEntry, arch: dict[str, Any],
                data_fields: dict[str, int]) -> list[Point]:
    """Every point of `entry` for a checkpoint with architecture config `arch`, checked against the
    architecture's schema and the evaluation's options before any model is built."""
    name = arch["name"]
    allowed = architecture_keys(name)
    fixed, fixed_batch = _initial(cfg.source.init_override, allowed, name, "init_override")
    own, own_batch = _initial(entry.init_override, allowed, name, f"{entry.checkpoint}: init_override")
    fixed, batch = {**fixed, **own}, own_batch or fixed_batch
    sweep = {**cfg.source.shared_param_iter, **cfg.source.param_iter, **entry.param_iter}
    axes = {key: _axis(key, allowed, name, "param_iter") for key in sweep}
    _one_per_axis(axes, "param_iter")
    depths = next((sweep[k] for k, (a, _) in axes.items() if a == "depth"), cfg.depth.depths)
    breadths = next((sweep[k] for k, (a, _) in axes.items() if a == "breadth"), cfg.breadth.different_init)
    keys = list(sweep)
    keys += ["halt_max_steps"] if len(depths) > 1 and not any(a == "depth" for a, _ in axes.values()) else []
    keys += [BREADTH_KEY] if len(breadths) > 1 and BREADTH_KEY not in sweep else []
    swept = [k for k in sweep if axes[k][0] in ("arch", "option")]
    suffix = entry.suffix or cfg.outputs.suffix or "eval"
    points = []
    for index, values in enumerate(itertools.product(*(sweep[k] for k in swept))):
        combo = dict(zip(swept, values, strict=True))
        overrides = {**fixed, **{axes[k][1]: v for k, v in combo.items() if axes[k][0] == "arch"}}
        options = {axes[k][1]: v for k, v in combo.items() if axes[k][0] == "option"}
        where = ("param_iter" + (f" {combo}" if combo else "")) if sweep else "init_override"
        try:
            parse_config(resolve_architecture(name).config_cls, {**arch, **data_fields, **overrides})
            point_cfg = cfg.with_options(**options, depths=depths, different_init=breadths)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        points.append(Point(point_cfg, overrides, batch, tuple(keys), combo, suffix, index))
    return points
