"""Turn pydantic validation errors into one line per problem that starts with the key."""

from __future__ import annotations

from pydantic import ValidationError


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message starts with the key."""


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """`arch.pos_encodings: Input should be ... (got 'foo')`; model-level checks name their key first."""
    lines = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        if not e["loc"]:
            lines.append(f"{prefix}.{msg}" if prefix else msg)
            continue
        key = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        got = f" (got {e['input']!r})" if e["type"] != "missing" else ""
        lines.append(f"{key}: {msg}{got}")
    return "; ".join(lines)
