"""The on-disk puzzle dataset format shared with the HRM/TRM/EqR releases: write and validated read.

Layout: `<dir>/identifiers.json` and `<dir>/<split>/dataset.json` plus, for every set
name in `sets`, `<set>__inputs.npy`, `<set>__labels.npy`, `<set>__puzzle_identifiers.npy`,
`<set>__puzzle_indices.npy`, `<set>__group_indices.npy`. The two index arrays are CSR
offsets: examples of puzzle p are rows puzzle_indices[p]:puzzle_indices[p+1], puzzles of
group g are group_indices[g]:group_indices[g+1].
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError

from utils.labels import IGNORE_LABEL_ID  # what loaded labels equal to a dataset's ignore_label_id become
from utils.validation import format_validation_error

FIELDS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")


class DatasetFormatError(ValueError):
    """A dataset file is missing, truncated or inconsistent; the message names the file."""


class DatasetMetadata(BaseModel):
    """Contents of `<split>/dataset.json`."""

    model_config = ConfigDict(extra="ignore")

    pad_id: int
    ignore_label_id: int | None
    blank_identifier_id: int
    vocab_size: int
    seq_len: int
    num_puzzle_identifiers: int
    total_groups: int
    mean_puzzle_examples: float
    sets: list[str]
    total_samples: int | None = None
    task: str | None = None  # the puzzle type (dataset/tasks.py); absent in datasets written before it existed


@dataclass
class SplitArrays:
    """The five arrays of one set of one split."""

    inputs: np.ndarray
    labels: np.ndarray
    puzzle_identifiers: np.ndarray
    puzzle_indices: np.ndarray
    group_indices: np.ndarray

    @classmethod
    def one_example_per_puzzle(
        cls, inputs: np.ndarray, labels: np.ndarray, puzzles_per_group: int = 1
    ) -> SplitArrays:
        """Every row its own puzzle (blank identifier), consecutive rows grouped in equal groups."""
        n = len(inputs)
        if n % puzzles_per_group:
            raise ValueError(f"{n} puzzles do not split into groups of {puzzles_per_group}")
        return cls(
            inputs=inputs,
            labels=labels,
            puzzle_identifiers=np.zeros(n, dtype=np.int32),
            puzzle_indices=np.arange(n + 1, dtype=np.int32),
            group_indices=np.arange(0, n + 1, puzzles_per_group, dtype=np.int32),
        )


@dataclass(frozen=True)
class TokenConventions:
    """The ids a split's dataset.json records besides its vocabulary size (the reference's defaults)."""

    pad_id: int = 0
    ignore_label_id: int | None = 0
    blank_identifier_id: int = 0
    num_puzzle_identifiers: int = 1


def write_split(split_dir: Path, arrays: SplitArrays, *, vocab_size: int, task: str | None = None,
                set_name: str = "all", ids: TokenConventions = TokenConventions()) -> DatasetMetadata:
    """Write one split with a single set and its dataset.json (recording `task`, the puzzle type)."""
    split_dir.mkdir(parents=True, exist_ok=True)
    for field in FIELDS:
        np.save(split_dir / f"{set_name}__{field}.npy", getattr(arrays, field))
    num_examples, seq_len = arrays.inputs.shape
    num_puzzles = len(arrays.puzzle_identifiers)
    metadata = DatasetMetadata(
        pad_id=ids.pad_id,
        ignore_label_id=ids.ignore_label_id,
        blank_identifier_id=ids.blank_identifier_id,
        vocab_size=vocab_size,
        seq_len=seq_len,
        num_puzzle_identifiers=ids.num_puzzle_identifiers,
        total_groups=len(arrays.group_indices) - 1,
        mean_puzzle_examples=num_examples / max(num_puzzles, 1),
        sets=[set_name],
        total_samples=num_examples,
        task=task,
    )
    (split_dir / "dataset.json").write_text(json.dumps(metadata.model_dump(), indent=2) + "\n")
    return metadata


def write_identifiers(root: Path, names: list[str] | None = None) -> None:
    """Write `identifiers.json`; index 0 is always the blank identifier."""
    (root / "identifiers.json").write_text(json.dumps(names or ["<blank>"]) + "\n")


def load_metadata(split_dir: Path | str) -> DatasetMetadata:
    """Read and validate `<split_dir>/dataset.json`."""
    split_dir = Path(split_dir)
    path = split_dir / "dataset.json"
    if not split_dir.parent.is_dir():
        raise DatasetFormatError(f"{split_dir.parent}: no such dataset directory (build one with "
                                 "python -m dataset.build_sudoku_dataset or dataset.build_maze_unique_dataset)")
    if not split_dir.is_dir():
        raise DatasetFormatError(f"{split_dir}: no such split directory in the dataset")
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing dataset.json")
    try:
        return DatasetMetadata.model_validate_json(path.read_text())
    except ValidationError as err:
        raise DatasetFormatError(f"{path}: invalid dataset.json: {format_validation_error(err)}") from None


def _open_npy(path: Path, mmap: bool) -> np.ndarray:
    """Load an integer .npy after checking its header against the file size."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing file")
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        except ValueError as err:
            raise DatasetFormatError(f"{path}: not a readable .npy file ({err})") from err
        data_offset = f.tell()
    if dtype.kind not in "iu":
        raise DatasetFormatError(f"{path}: dtype {dtype} is not an integer type")
    needed = data_offset + int(np.prod(shape)) * dtype.itemsize
    size = os.path.getsize(path)
    if size < needed:
        raise DatasetFormatError(f"{path}: truncated file ({size} bytes, header needs {needed})")
    return np.load(path, mmap_mode="r" if mmap else None)


def _check_range(path: Path, array: np.ndarray, upper: int, what: str, allowed: tuple[int, ...] = ()) -> None:
    if array.size == 0:
        return
    lo, hi = int(array.min()), int(array.max())
    if lo >= 0 and hi < upper:
        return
    bad = (np.asarray(array) < 0) | (np.asarray(array) >= upper)
    for value in allowed:
        bad &= np.asarray(array) != value
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        value = int(np.asarray(array)[bad].flat[0])
        raise DatasetFormatError(f"{path}: {what} {value} at row {row} outside [0, {upper})")


def _check_offsets(path: Path, offsets: np.ndarray, end: int, what: str) -> None:
    if offsets.ndim != 1 or len(offsets) < 1:
        raise DatasetFormatError(f"{path}: expected a 1-D offsets array, got shape {offsets.shape}")
    if offsets[0] != 0 or offsets[-1] != end:
        raise DatasetFormatError(
            f"{path}: offsets must run from 0 to {end} ({what}), found {offsets[0]}..{offsets[-1]}"
        )
    if np.any(np.diff(offsets) <= 0):
        pos = int(np.argmax(np.diff(offsets) <= 0))
        raise DatasetFormatError(f"{path}: offsets not strictly increasing at position {pos + 1}")


def load_set(split_dir: Path, set_name: str, metadata: DatasetMetadata, mmap: bool = True) -> SplitArrays:
    """Load one set (inputs/labels memory-mapped) and validate it against dataset.json."""
    paths = {field: split_dir / f"{set_name}__{field}.npy" for field in FIELDS}
    arrays = {
        field: _open_npy(path, mmap=mmap and field in ("inputs", "labels")) for field, path in paths.items()
    }
    inputs, labels = arrays["inputs"], arrays["labels"]
    if inputs.ndim != 2 or inputs.shape[1] != metadata.seq_len:
        raise DatasetFormatError(
            f"{paths['inputs']}: shape {inputs.shape} does not match seq_len {metadata.seq_len}"
        )
    if labels.shape != inputs.shape:
        raise DatasetFormatError(
            f"{paths['labels']}: shape {labels.shape} differs from inputs {inputs.shape}"
        )
    _check_range(paths["inputs"], inputs, metadata.vocab_size, "token id")
    _check_range(paths["labels"], labels, metadata.vocab_size, "label id", allowed=(IGNORE_LABEL_ID,))
    identifiers = arrays["puzzle_identifiers"]
    if identifiers.ndim != 1:
        raise DatasetFormatError(
            f"{paths['puzzle_identifiers']}: expected 1-D, got shape {identifiers.shape}"
        )
    _check_range(paths["puzzle_identifiers"], identifiers, metadata.num_puzzle_identifiers, "identifier")
    _check_offsets(paths["puzzle_indices"], arrays["puzzle_indices"], len(inputs), "examples")
    if len(arrays["puzzle_indices"]) != len(identifiers) + 1:
        raise DatasetFormatError(
            f"{paths['puzzle_indices']}: {len(arrays['puzzle_indices'])} offsets for "
            f"{len(identifiers)} puzzle identifiers"
        )
    _check_offsets(paths["group_indices"], arrays["group_indices"], len(identifiers), "puzzles")
    return SplitArrays(**arrays)


def load_split(split_dir: Path | str, mmap: bool = True) -> tuple[DatasetMetadata, list[SplitArrays]]:
    """Metadata and the validated arrays of every set of one split."""
    split_dir = Path(split_dir)
    metadata = load_metadata(split_dir)
    sets = [load_set(split_dir, name, metadata, mmap=mmap) for name in metadata.sets]
    groups = sum(len(s.group_indices) - 1 for s in sets)
    if groups != metadata.total_groups:
        raise DatasetFormatError(
            f"{split_dir / 'dataset.json'}: total_groups {metadata.total_groups} but the arrays hold {groups}"
        )
    return metadata, sets


class NpyStreamWriter:
    """A `.npy` file of known dtype and shape written block by block along its first axis, so an array larger
    than memory is never held whole; the file has the bytes `np.save` writes for the whole array."""

    def __init__(self, path: Path | str, dtype: npt.DTypeLike, shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.shape = Path(path), np.dtype(dtype), tuple(shape)
        self.rows = 0
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        self._file = open(self.path, "wb")  # noqa: SIM115 (closed by close() or __exit__)
        try:
            np.lib.format.write_array_header_1_0(self._file, header)
        except ValueError:  # too long for format 1.0: np.save's next choice
            np.lib.format.write_array_header_2_0(self._file, header)

    def write(self, block: np.ndarray) -> None:
        """Append `block` [n, *shape[1:]] of the writer's dtype."""
        if block.dtype != self.dtype or block.shape[1:] != self.shape[1:]:
            raise ValueError(f"{self.path}: block {block.dtype} {block.shape} does not fit {self.dtype} {self.shape}")
        if self.rows + len(block) > self.shape[0]:
            raise ValueError(f"{self.path}: {self.rows + len(block)} rows written, the shape holds {self.shape[0]}")
        self._file.write(np.ascontiguousarray(block).data)
        self.rows += len(block)

    def close(self) -> None:
        """Close the file; an error unless every row of the shape was written."""
        self._file.close()
        if self.rows != self.shape[0]:
            raise ValueError(f"{self.path}: {self.rows} rows written, the shape holds {self.shape[0]}")

    def __enter__(self) -> NpyStreamWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._file.close()
