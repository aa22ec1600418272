"""Turn pydantic validation errors into one line per problem that starts with the key."""

from __future__ import annotations

from pydantic import ValidationError


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message starts with the key."""


def format_validation_error(err: ValidationError, prefix: str = "", names: dict[str, str] | None = None) -> str:
    """`arch.pos_encodings: Input should be ... (got 'foo')`; model-level checks name their key first.

    `names` renames top-level fields as the user wrote them (an alias such as `halt_max_steps`)."""
    lines = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        if not e["loc"]:
            lines.append(f"{prefix}.{msg}" if prefix else msg)
            continue
        loc = [(names or {}).get(str(e["loc"][0]), e["loc"][0]), *e["loc"][1:]]
        key = ".".join(str(p) for p in (prefix, *loc) if p != "")
        got = f" (got {e['input']!r})" if e["type"] != "missing" else ""
        lines.append(f"{key}: {msg}{got}")
    return "; ".join(lines)
