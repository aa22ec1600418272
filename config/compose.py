"""Compose a training config from `config/` and command-line overrides, then validate it.

Hydra's compose API builds the config (`--config-name train/<name>`, `key=value`, `+key=value`,
`arch=trm`); no Hydra run directory is created, so a run leaves nothing behind but its
checkpoint folder. Every composition failure becomes one `ConfigError` line naming the key:
an override of a key that does not exist gets the same "unknown key; did you mean ...?" as one
added with `+`, and overrides of keys only the reference uses are dropped with one warning, so
the reference's command lines keep working.
"""

from __future__ import annotations

import difflib
import logging
import re
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from config.schema import (
    REFERENCE_ONLY_DATASET_KEYS,
    REFERENCE_ONLY_KEYS,
    PretrainConfig,
    drop_reference_keys,
    load_pretrain_config,
    unknown_key,
)
from models.registry import ARCHITECTURES, REFERENCE_ONLY_ARCH_KEYS
from utils.plugins import KEY as PLUGINS_KEY
from utils.plugins import import_plugin_arguments
from utils.validation import ConfigError

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent
_CANNOT_OVERRIDE = re.compile(r"Could not override '([^']+)'")


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _value(override: str) -> Any:
    """The value of `key=value` as YAML reads it (the text itself when YAML cannot)."""
    text = override.split("=", 1)[1] if "=" in override else ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _reference_only(key: str) -> bool:
    section, _, name = key.partition(".")
    return key in REFERENCE_ONLY_KEYS or (section == "arch" and name in REFERENCE_ONLY_ARCH_KEYS) or (
        section == "dataset" and name in REFERENCE_ONLY_DATASET_KEYS)


def _unknown_override(key: str) -> str:
    """The message for an override of a key that is not in the composed config."""
    if key.startswith("arch."):
        known = set().union(*(cls.config_cls.model_fields for cls in ARCHITECTURES.values()))
        return unknown_key(key, known)
    return unknown_key(key, PretrainConfig.model_fields)


TRAINING_CONFIGS = ("cfg_pretrain.yaml", "train/*.yaml")  # what --config-name names; arch/, dataset/ are groups


def available_configs() -> list[str]:
    return sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for pattern in TRAINING_CONFIGS
                  for p in CONFIG_DIR.glob(pattern))


def missing_config(config_name: str) -> str:
    """`--config-name eqr_sudoku: no such config; did you mean train/eqr_sudoku? available: ...`."""
    names = available_configs()
    close = difflib.get_close_matches(config_name, names, n=1) or [
        n for n in names if n.endswith("/" + config_name.removesuffix(".yaml"))]
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"--config-name {config_name}: no such config{hint}; available: {', '.join(names)}"


def compose_dict(config_name: str, overrides: list[str]) -> dict[str, Any]:
    """The composed, interpolated config as plain data (Hydra's own keys removed)."""
    # plug-ins first: an architecture's own keys are then known when an override names one
    import_plugin_arguments([o for o in overrides if _override_key(o) == PLUGINS_KEY])
    kept = [o for o in overrides if not _reference_only(_override_key(o))]
    dropped = {_override_key(o): _value(o) for o in overrides if o not in kept}
    if dropped:
        drop_reference_keys(dropped)  # refuses values that would change training
        log.warning("config: ignoring keys only the reference's trainer uses: %s", ", ".join(dropped))
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            cfg = compose(config_name=config_name, overrides=kept)
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except HydraException as err:
        match = _CANNOT_OVERRIDE.search(str(err))
        if match:
            raise ConfigError(_unknown_override(match.group(1))) from None
        if "Cannot find primary config" in str(err):
            raise ConfigError(missing_config(config_name)) from None
        text = str(err).split("Config search path")[0]
        raise ConfigError(f"--config-name {config_name}: {' '.join(text.split())}") from None
    except OmegaConfBaseException as err:
        raise ConfigError(" ".join(str(err).split())) from None


def compose_pretrain_config(config_name: str, overrides: list[str]) -> PretrainConfig:
    """Compose and validate (`config.schema.load_pretrain_config`)."""
    return load_pretrain_config(compose_dict(config_name, overrides))
