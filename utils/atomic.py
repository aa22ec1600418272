"""Atomic output: a file or a directory is written under a temporary sibling name and renamed.

An interrupted write (error, Ctrl-C, a killed process) never leaves a half-written checkpoint,
result file or dataset under its final name; an existing dataset is only replaced when asked to.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


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


@contextmanager
def atomic_file(path: Path | str, mode: str = "wb") -> Iterator[IO[Any]]:
    """Yield a handle on `.<name>.<pid>.tmp` beside `path`; on success fsync it and rename it over
    `path`. On an exception the temporary file is removed; a killed process leaves at most it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
