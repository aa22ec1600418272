"""A researcher's own modules, named on the command line and imported before the command reads its config.

`plugins=[my_pkg.my_task, my_pkg.my_rule]` on `pretrain.py`, `evaluate.py`, `scripts/frontier.py`,
`scripts/visualize.py`, `python -m dataset.show` and `python -m dataset.build_task` imports those
modules first; whatever they register (a task, an architecture, a loss head, a stop-rule condition,
a symmetry) is then known by name everywhere, as this repository's own are (docs/extending.md). A
training run records its plug-ins in its config; a checkpoint only names them, never runs them, so
`evaluate.py` and the other tools are given `plugins=[...]` again. The modules are found on
`sys.path` (the repository root, PYTHONPATH) and in the current directory.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable
from types import ModuleType

from utils.cli import parse_key_values
from utils.validation import ConfigError

KEY = "plugins"
HELP = ("plugins=[my_pkg.my_task,...]: import these modules first, so that the tasks, architectures and "
        "rules they register are known by name (docs/extending.md)")


def import_module_named(name: object, key: str = KEY) -> ModuleType:
    """The module `name` (dotted path), imported; ConfigError naming `key` and the module when there is no
    such module. An import that fails inside the module itself is the module's own error and raises as is."""
    if not isinstance(name, str) or not name or not all(part.isidentifier() for part in name.split(".")):
        raise ConfigError(f"{key}: {name!r} is not a module path (e.g. my_pkg.my_task)")
    if os.getcwd() not in sys.path:  # as `python -m` does; `python pretrain.py` puts only its own folder there
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is None or not (name == err.name or name.startswith(err.name + ".")):
            raise
        raise ConfigError(f"{key}: no module named {name!r} (is its folder on PYTHONPATH?)") from None


def import_plugins(names: Iterable[object] | None, key: str = KEY) -> list[str]:
    """Import every module of `names` in order (a module already imported is not run again); their names."""
    if names is None:
        return []
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise ConfigError(f"{key}: expected a list of module paths, e.g. {key}=[my_pkg.my_task], got {names!r}")
    return [import_module_named(name, key).__name__ for name in names]


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """An argparse command's arguments, its `plugins=[...]` ones (the form every command takes) set aside
    as `plugin_arguments`, for `import_plugin_arguments` inside the command's work, where an unknown module
    prints as one line."""
    given = sys.argv[1:] if argv is None else argv
    prefix = KEY + "="
    parser.epilog = HELP
    args = parser.parse_args([a for a in given if not a.startswith(prefix)])
    args.plugin_arguments = [a for a in given if a.startswith(prefix)]
    return args


def import_plugin_arguments(arguments: list[str]) -> list[str]:
    """Import the modules that `plugins=...` arguments (from `parse_arguments`) name."""
    return import_plugins(parse_key_values(arguments).get(KEY)) if arguments else []
