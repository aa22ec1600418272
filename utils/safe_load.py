"""Load checkpoint files without running any of their code.

`torch.load(weights_only=True)` rebuilds tensors and plain containers only. Real checkpoints
hold a little more, and each extra global is admitted here by its exact pickled name:
- numpy's and Python's RNG state: `np.random.get_state()` pickles numpy arrays and dtypes, and
  the reference's data sampler pickles a numpy Philox state with uint64 arrays;
- the reference trainer's carry dataclasses (`models.eqr.ModelCarry`, `models.eqr.LatentCarry`
  and the `models.trm` pair), rebuilt as the local data-only stand-ins below. Nothing is imported
  from the reference and no code in the file runs; any other global, including a look-alike such
  as `models.eqr.Evil`, is refused.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, malformed, unsafe, or does not fit the model."""


class _DataOnly:
    """Pickle state restore for a stand-in: exactly the declared fields, nothing else."""

    optional_fields: ClassVar[frozenset[str]] = frozenset()

    def __setstate__(self, state: Any) -> None:
        names = {f.name for f in fields(self)}  # type: ignore[arg-type]
        if not isinstance(state, dict) or set(state) - names or names - self.optional_fields - set(state):
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise pickle.UnpicklingError(
                f"{type(self).__name__}: fields {found} differ from the reference's {sorted(names)}"
            )
        self.__dict__.update({name: state.get(name) for name in names})


@dataclass
class ReferenceLatentCarry(_DataOnly):
    """Stand-in for the reference's `models.{eqr,trm}.LatentCarry`."""

    z_H: torch.Tensor
    z_L: torch.Tensor


@dataclass
class ReferenceModelCarry(_DataOnly):
    """Stand-in for the reference's `models.{eqr,trm}.ModelCarry` (SPEC 6.1).

    `global_step` and TRM's `halt_counter` have no counterpart in this project's carry; they are
    kept for inspection and dropped by `carry_state`.
    """

    optional_fields: ClassVar[frozenset[str]] = frozenset({"global_step", "halt_counter"})

    inner_carry: ReferenceLatentCarry
    steps: torch.Tensor
    halted: torch.Tensor
    current_data: dict[str, torch.Tensor]
    global_step: int | None = None
    halt_counter: torch.Tensor | None = None

    def carry_state(self) -> dict[str, Any]:
        """The carry in this project's checkpoint form (`models.act.Carry.to_dict`)."""
        return {"z_H": self.inner_carry.z_H, "z_L": self.inner_carry.z_L, "steps": self.steps,
                "halted": self.halted, "current_data": dict(self.current_data)}


REFERENCE_CARRY_GLOBALS: list[tuple[type, str]] = [
    (cls, f"models.{module}.{name}")
    for module in ("eqr", "trm")
    for cls, name in ((ReferenceModelCarry, "ModelCarry"), (ReferenceLatentCarry, "LatentCarry"))
]

# What np.random.get_state() and a numpy Philox state pickle, under numpy 2's and numpy 1's names.
RNG_STATE_GLOBALS: list[Any] = [
    np._core.multiarray._reconstruct,
    (np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    np.ndarray,
    np.dtype,
    np.dtypes.UInt32DType,
    np.dtypes.UInt64DType,
]

ALLOWED_GLOBALS: list[Any] = [*RNG_STATE_GLOBALS, *REFERENCE_CARRY_GLOBALS]

_BOILERPLATE = ("Weights only load failed", "Check the documentation", "Please file an issue")
_REFUSAL = re.compile(r"unsupported global|allowlisted|is blocked|differ from the reference", re.I)


def _unpickling_detail(err: Exception) -> str:
    """The one informative sentence of torch's multi-paragraph weights_only error."""
    text = str(err)
    match = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\s*Please use|\n\s*\n|$)", text, re.S)
    if match:
        return " ".join(match.group(1).split())
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    kept = [p for p in paragraphs if p and not p.startswith(_BOILERPLATE)]
    return " ".join(kept) or " ".join(text.split())


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since 1.6
PICKLE_PROTOCOL = 0x80  # the first byte of torch's legacy format (a pickle of protocol 2 or later)


def _check_format(path: Path) -> None:
    """Refuse a file that is neither of torch.save's formats before the unpickler misreads it."""
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(ZIP_MAGIC) or head[0] == PICKLE_PROTOCOL:
        return
    kind = "a text file" if all(32 <= b < 127 or b in b"\t\r\n" for b in head) else "another format"
    raise CheckpointError(f"{path}: not a PyTorch checkpoint ({kind}, starting {head[:12]!r})")


def safe_torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(weights_only=True)` admitting only `ALLOWED_GLOBALS`; every failure names the file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a PyTorch checkpoint")
    _check_format(path)
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        detail = _unpickling_detail(err)
        if _REFUSAL.search(detail):
            raise CheckpointError(
                f"{path}: refused to load: it references a Python object outside the allowed set "
                f"(tensors, containers, numpy/python RNG state, the reference's carry): {detail}"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({detail})") from None
    # torch's readers raise these for truncated or corrupt files
    except (RuntimeError, EOFError, KeyError, IndexError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({first})") from None
