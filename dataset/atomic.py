"""Atomic dataset output: build into a temporary sibling directory, rename at the end.

An interrupted build (error, Ctrl-C) leaves neither a half-written dataset nor its
temporary directory, and an existing dataset is only replaced when asked to.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse an existing target up front, before any expensive work."""
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass --overwrite to replace it")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output_dir(target: Path | str, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary directory that becomes `target` when the block succeeds."""
    target = Path(target)
    check_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o777 & ~_umask())
    committed = False
    try:
        yield tmp
        check_target(target, overwrite)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            target.rename(old / target.name)
            tmp.rename(target)
            shutil.rmtree(old)
        else:
            tmp.rename(target)
        committed = True
    finally:
        if not committed:
            shutil.rmtree(tmp, ignore_errors=True)
