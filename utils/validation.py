"""Turn pydantic validation errors into one line per problem that starts with the key."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from pydantic import ValidationError


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message starts with the key."""


def unknown_key(key: str, known: Iterable[str], where: str = "") -> str:
    """`arch.hiden_size: unknown key; did you mean hidden_size?` (the hint when one is close)."""
    match = difflib.get_close_matches(key.rsplit(".", 1)[-1], sorted(known), n=1)
    hint = f"; did you mean {match[0]}?" if match else ""
    return f"{key}: unknown key{where}{hint}"


def format_validation_error(err: ValidationError, prefix: str = "", names: dict[str, str] | None = None,
                            known: Iterable[str] | None = None, sections: set[str] | None = None) -> str:
    """`arch.pos_encodings: Input should be ... (got 'foo')`; model-level checks name their key first.

    `names` renames top-level fields as the user wrote them (an alias such as `halt_max_steps`);
    with `known` (the top-level keys), an unknown top-level key gets the nearest known one as a hint.
    `sections` are groupings the user does not write: a key inside one is named without it."""
    lines = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        raw = list(e["loc"])
        if sections and len(raw) > 1 and raw[0] in sections:
            raw = raw[1:]
        if not raw:
            lines.append(f"{prefix}.{msg}" if prefix else msg)
            continue
        loc = [(names or {}).get(str(raw[0]), raw[0]), *raw[1:]]
        key = ".".join(str(p) for p in (prefix, *loc) if p != "")
        if e["type"] == "extra_forbidden" and known is not None and len(loc) == 1:
            lines.append(unknown_key(key, known))
            continue
        got = f" (got {e['input']!r})" if e["type"] != "missing" else ""
        lines.append(f"{key}: {msg}{got}")
    return "; ".join(lines)
