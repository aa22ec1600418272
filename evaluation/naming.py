"""What evaluation results are called, so that no evaluation overwrites another.

A result file's stem names everything that can change its numbers: the run (architecture, run
folder, checkpoint), the dataset (and split), D, B, and every option that differs from its
default, as a short tag (`_top1`, `_seed3`, `_live`, `lambda_=0.9`, ...). Two evaluations that
differ in anything that moves a metric therefore write different files, and one repeated with
the same settings rewrites its own. A sweep's summary, tidy table and plots go into a folder
named the same way for the whole sweep (its runs, dataset, depths and breadths).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evaluation.config import option_default
from models.registry import canonical_name
from utils.validation import ConfigError

MAX_LABEL = 80  # longer sweep labels are shortened to a count and a hash
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-") or "x"


def arch_group(arch_name: str | None) -> str:
    """`eqr` for `eqr@EqRModel` (and `hrm` for HRM's upstream name); `model` when unknown."""
    return canonical_name(arch_name).split("@")[0] if arch_name else "model"


def run_label(checkpoint: str | Path, arch_name: str | None, folders: int = 1) -> str:
    """`trm_step_10` for runs/trm/step_10.pth, `eqr_quickstart_step_1500` for
    checkpoints/EqR/eqr_quickstart/step_1500.pth: the architecture (unless the run folder already
    names it), `folders` parent folders, the file's stem."""
    path = Path(checkpoint)
    parents = [p.name for p in path.parents][:folders][::-1]
    parents = [p for p in parents if p not in ("", ".", "..")]
    group = arch_group(arch_name)
    prefix = [] if any(group in p.lower() for p in parents) else [group]
    return _safe("_".join([*prefix, *parents, path.stem]))


def run_labels(checkpoints: Sequence[str], arch_names: Sequence[str | None]) -> list[str]:
    """Distinct labels for the checkpoints of one sweep: more parent folders until no two agree."""
    resolved = [str(Path(c).resolve()) for c in checkpoints]
    repeated = next((c for c, r in zip(checkpoints, resolved, strict=True) if resolved.count(r) > 1), None)
    if repeated is not None:
        raise ConfigError(f"checkpoint_list: {repeated} is given twice")
    for folders in range(1, max(len(Path(r).parents) for r in resolved) + 1):
        labels = [run_label(r, a, folders) for r, a in zip(resolved, arch_names, strict=True)]
        if len(set(labels)) == len(labels):
            break
    return labels


def dataset_label(data_paths: Sequence[str], split: str = "test") -> str:
    name = "+".join(Path(p).name for p in data_paths)
    return _safe(name + ("" if split == "test" else f"-{split}"))


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _default(name: str) -> Any:
    return option_default(name)


def _set(cfg: dict[str, Any], name: str) -> bool:
    """Whether `cfg` gives `name` a value other than EvalConfig's default."""
    value = cfg.get(name, _default(name))
    return (list(value) if isinstance(value, tuple) else value) != _default(name)


def _elastic_tag(cfg: dict[str, Any]) -> str:
    if not cfg.get("elastic"):
        return ""
    if isinstance(cfg["elastic"], str):  # the rule's text: stable:2&q -> elastic-stable2+q
        rule = cfg["elastic"].replace(":", "").replace(".", "p").replace("&", "+").replace("|", "_or_")
        return "-".join(["elastic", rule] + ([f"min{cfg['elastic_min_steps']}"] if _set(cfg, "elastic_min_steps")
                                             else []))
    parts = ["elastic"]
    parts += ["+".join(cfg["elastic_rules"])] if _set(cfg, "elastic_rules") else []
    parts += [cfg["elastic_combine"]] if _set(cfg, "elastic_combine") else []
    parts += [f"p{cfg['elastic_patience']}"] if _set(cfg, "elastic_patience") else []
    parts += [f"tol{_number(cfg['elastic_tol'])}"] if _set(cfg, "elastic_tol") else []
    parts += [f"min{cfg['elastic_min_steps']}"] if _set(cfg, "elastic_min_steps") else []
    parts += ["q"] if cfg.get("elastic_use_q") else []
    return "-".join(parts)


# Options that can move a metric, each as a tag when it differs from EvalConfig's default (in this order).
_TAGS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("tta", lambda c: f"tta{c['tta']}" + (c["tta_kind"] if _set(c, "tta_kind") else "")
     if c.get("tta", 1) > 1 else ""),
    ("convergence_top_k", lambda c: f"top{c['convergence_top_k']}" if c.get("convergence_top_k") else ""),
    ("convergence_window", lambda c: f"win{c['convergence_window']}" if _set(c, "convergence_window") else ""),
    ("breadth_agree", lambda c: f"agree{c['breadth_agree']}" if c.get("breadth_agree") else ""),
    ("elastic", _elastic_tag),
    ("seed", lambda c: f"seed{c['seed']}" if c.get("seed", 0) else ""),
    ("use_ema", lambda c: "live" if _set(c, "use_ema") else ""),
    ("max_eval_steps", lambda c: f"first{c['max_eval_steps']}" if c.get("max_eval_steps") else ""),
    ("reference_counting", lambda c: {True: "refcount", "both": "refboth"}.get(c.get("reference_counting"), "")),
    ("global_batch_size", lambda c: f"batch{c['global_batch_size']}"
     if c.get("reference_counting") and c.get("global_batch_size") else ""),
    ("different_init_reset_std", lambda c: f"std{_number(c['different_init_reset_std'])}"
     if _set(c, "different_init_reset_std") else ""),
    ("restart_std", lambda c: "resetstd" if _set(c, "restart_std") else ""),
    ("forward_dtype", lambda c: c.get("forward_dtype") or ""),
    ("kernels", lambda c: c["kernels"] if _set(c, "kernels") else ""),
    ("puzzle_id_ablation", lambda c: f"ids{c['puzzle_id_ablation']}" if _set(c, "puzzle_id_ablation") else ""),
]


def option_tags(settings: dict[str, Any]) -> list[str]:
    """The tags of every option in `settings` that differs from its default."""
    return [tag for _, make in _TAGS if (tag := make(settings))]


def overrides_label(overrides: dict[str, Any] | None) -> str:
    """`lambda_=0.9_noise_scale=0.0` (sorted keys), empty without overrides."""
    return "_".join(f"{k}={v}" for k, v in sorted((overrides or {}).items()))


def record_stem(settings: dict[str, Any]) -> str:
    """`eval_<run>_<dataset>_D<d>_B<b>[_<tag>...][_<key>=<value>...]` of one record's settings."""
    parts = [f"eval_{settings['run']}", settings["dataset_name"], f"D{settings['halt_max_steps']}",
             f"B{settings['different_init']}", *option_tags(settings)]
    label = overrides_label(settings.get("overrides"))
    return _safe("_".join(parts + ([label] if label else [])))


def sweep_label(runs: Sequence[str], dataset: str, depths: Sequence[int], breadths: Sequence[int],
                settings: dict[str, Any], overrides: Sequence[dict[str, Any]]) -> str:
    """`<runs>_<dataset>_D1-2-4_B1-4[_<tag>...]`; shortened with a hash when it grows past MAX_LABEL."""
    who = "+".join(runs)
    if len(who) > MAX_LABEL // 2:
        who = f"{len(runs)}runs-" + hashlib.sha1("\n".join(runs).encode()).hexdigest()[:8]
    parts = [who, dataset, "D" + "-".join(map(str, depths)), "B" + "-".join(map(str, breadths)),
             *option_tags(settings)]
    points = [overrides_label(o) for o in overrides if o]
    if points:
        parts.append("+".join(points) if len("+".join(points)) <= MAX_LABEL // 2 else
                     f"{len(points)}points-" + hashlib.sha1("\n".join(points).encode()).hexdigest()[:8])
    return _safe("_".join(parts))
