"""Read `evaluate.py key=value ...` over an eval YAML into one EvalConfig, as the reference reads its own.

The YAML (`eval_yaml=`, alias `eval_config=`; default config/eval/depth_breadth.yaml) is merged
under the command line first and its interpolations resolved afterwards, so the reference's
`param_iter: {arch.halt_max_steps: ${halt_max_steps}}` and `suffix: D${halt_max_steps}_...` follow
a `halt_max_steps=64` given on the command line. `depths` and `halt_max_steps` are one key (each
source may use either, not both). Keys of the reference's eval config that this evaluation does not
implement are accepted; one warning names those whose value asks for something other than what
happens here. Any other unknown key is one error line with the nearest known key.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from evaluation.config import EvalConfig, parse_eval_config
from utils import cli
from utils.validation import ConfigError

log = logging.getLogger(__name__)

DEFAULT_EVAL_YAML = Path(__file__).resolve().parents[1] / "config" / "eval" / "depth_breadth.yaml"

# Reference keys without an effect here: (the value that matches what happens here, what happens here).
REFERENCE_ONLY: dict[str, tuple[Any, str]] = {
    "force_rerun": (True, "every evaluation runs and rewrites its files"),
    "report_conv_acc_stats": (False, "no convergence-accuracy statistics are reported"),
    "enable_different_init_core_metrics": (True, "the breadth metrics are always reported"),
    "convergence_vis_plots": (False, "plots=true draws this evaluation's own figures"),
    "loss_head_name": ("losses@InferenceLossHead", "the inference loss head is used"),
    "load_strict": (True, "weights always load strictly"),
    "wandb_run_name": (None, "evaluation does not log to W&B"),
    "wandb_tags": (None, "evaluation does not log to W&B"),
    "description": (None, "evaluation does not log to W&B"),
}
ENTRY_ONLY = ("description", "wandb_tags", "wandb_run_name")  # accepted in checkpoint_list entries, unused


def _with_halt_max_steps(values: dict[str, Any], where: str) -> dict[str, Any]:
    """`depths` spelled as the reference's `halt_max_steps` (the name its interpolations use)."""
    if "depths" not in values:
        return values
    if "halt_max_steps" in values:
        raise ConfigError(f"halt_max_steps: an alias of depths; {where} gives both")
    values = dict(values)
    values["halt_max_steps"] = values.pop("depths")
    return values


def _differing(values: dict[str, Any], where: str) -> list[str]:
    """Pop the reference-only keys of `values`; name those that ask for something that does not happen here."""
    named = []
    for key, (matching, happens) in REFERENCE_ONLY.items():
        if key in values and values.pop(key) != matching:
            named.append(f"{where}{key} ({happens})")
    return named


def drop_reference_only(values: dict[str, Any]) -> dict[str, Any]:
    """`values` without the reference-only keys (top level and checkpoint_list entries); one warning
    names every such key whose value differs from what this evaluation does."""
    values = dict(values)
    named = _differing(values, "")
    entries = values.get("checkpoint_list")
    if isinstance(entries, list):
        values["checkpoint_list"] = [dict(e) if isinstance(e, dict) else e for e in entries]
        for i, entry in enumerate(values["checkpoint_list"]):
            if isinstance(entry, dict):
                named += [f"checkpoint_list.{i}.{k} ({REFERENCE_ONLY[k][1]})" for k in ENTRY_ONLY
                          if entry.get(k) not in (None, [], "")]
    if named:
        log.warning("accepted from the reference's eval config, without effect here: %s", "; ".join(named))
    return values


def _command_line(argv: list[str]) -> dict[str, Any]:
    """The command line's keys, `eval_config` renamed to the `eval_yaml` it is an alias of."""
    given = cli.parse_key_values(argv)
    if "eval_config" in given:
        if "eval_yaml" in given:
            raise ConfigError("eval_config: an alias of eval_yaml; the command line gives both")
        given["eval_yaml"] = given.pop("eval_config")
    return given


def load_options(argv: list[str]) -> EvalConfig:
    """`key=value` arguments merged over the YAML named by `eval_yaml=` (default depth_breadth.yaml),
    interpolations resolved after the merge."""
    given = _command_line(argv)
    names = {"depths": "halt_max_steps"} if "halt_max_steps" in given else None  # errors say what was typed
    given = _with_halt_max_steps(given, "the command line")
    yaml_path = Path(str(given.get("eval_yaml") or DEFAULT_EVAL_YAML))
    if not yaml_path.is_file():
        raise ConfigError(f"eval_yaml: no such file {yaml_path}")
    try:
        defaults = OmegaConf.to_container(OmegaConf.load(yaml_path))
        if not isinstance(defaults, dict):
            raise ConfigError(f"{yaml_path}: expected a mapping of eval keys")
        defaults = _with_halt_max_steps(defaults, str(yaml_path))
        merged: Any = OmegaConf.to_container(OmegaConf.merge(defaults, given), resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{yaml_path}: {str(err).splitlines()[0]}") from None
    merged["eval_yaml"] = str(yaml_path)
    merged.pop("eval_config", None)
    if "halt_max_steps" in merged:
        merged["depths"] = merged.pop("halt_max_steps")
    return parse_eval_config(drop_reference_only(merged), names, also_known=tuple(REFERENCE_ONLY))
