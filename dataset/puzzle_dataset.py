"""PuzzleDataset: memory-mapped loader of the puzzle format for training and evaluation.

Training: every epoch visits the groups in a fresh random order, draws one puzzle per
group and puts all of that puzzle's examples, in a random order, into the epoch's stream
(an ARC puzzle holds its demonstrations and test pairs; a Sudoku or maze puzzle holds one
example, and its stream is then the draw of the one-example-per-puzzle loader, bit for bit).
The stream is cut into full global batches (a puzzle may straddle two), the partial last
one dropped, so training batches are never padded and the blank identifier never trains;
each rank takes its slice of every global batch. An epoch's batch count is floor(stream
length / global batch), which varies between epochs when a group's puzzles differ in size.
The order is a pure function of (seed, epoch), so the position (epoch, batch) is the whole
sampler state.
Evaluation (test_set_mode): examples in stored order, the last batch padded with pad
inputs, -100 labels and the blank identifier.
Batches are dicts of int32 tensors `inputs` [B, seq_len], `labels` [B, seq_len] (-100 =
ignored, including labels equal to ignore_label_id) and `puzzle_identifiers` [B].
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataset.format import DatasetFormatError, DatasetMetadata, load_metadata, load_split
from utils.labels import IGNORE_LABEL_ID

log = logging.getLogger(__name__)

_SHARED_FIELDS = ("pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size", "seq_len")

Batch = dict[str, torch.Tensor]


class PuzzleDatasetConfig(BaseModel):
    """Loader options; `data_path` is accepted for a single dataset directory."""

    model_config = ConfigDict(extra="forbid")

    data_paths: list[Path] = Field(min_length=1)
    global_batch_size: int = Field(gt=0)
    rank: int = Field(default=0, ge=0)
    world_size: int = Field(default=1, ge=1)
    seed: int = Field(default=0, ge=0)
    test_set_mode: bool = False

    @model_validator(mode="before")
    @classmethod
    def _single_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and "data_path" in data:
            data = dict(data)
            data.setdefault("data_paths", [data.pop("data_path")])
        return data

    @model_validator(mode="after")
    def _ranks(self) -> PuzzleDatasetConfig:
        if self.rank >= self.world_size:
            raise ValueError(f"rank {self.rank} must be below world_size {self.world_size}")
        if self.global_batch_size % self.world_size:
            raise ValueError(f"global_batch_size {self.global_batch_size} not divisible by {self.world_size}")
        return self

    @property
    def local_batch_size(self) -> int:
        return self.global_batch_size // self.world_size


def merge_metadata(metadatas: list[DatasetMetadata], sources: list[Path]) -> DatasetMetadata:
    """One metadata for several datasets read together; token layout must agree."""
    first = metadatas[0]
    for meta, source in zip(metadatas[1:], sources[1:], strict=True):
        for name in _SHARED_FIELDS:
            mine, theirs = getattr(meta, name), getattr(first, name)
            if mine != theirs:
                raise DatasetFormatError(f"{source}: {name} {mine} differs from {theirs} in {sources[0]}")
    if len(metadatas) == 1:
        return first
    update: dict[str, Any] = {
        "num_puzzle_identifiers": max(m.num_puzzle_identifiers for m in metadatas),
        "total_groups": sum(m.total_groups for m in metadatas),
        "sets": [s for m in metadatas for s in m.sets],
        "total_samples": None,
    }
    samples = [m.total_samples for m in metadatas]
    if None not in samples:
        puzzles = sum(n / m.mean_puzzle_examples for n, m in zip(samples, metadatas, strict=True))
        update["total_samples"] = sum(samples)
        update["mean_puzzle_examples"] = sum(samples) / puzzles
    return first.model_copy(update=update)


def read_metadata(data_paths: list[Path | str] | Path | str, split: str = "train") -> DatasetMetadata:
    """Metadata (seq_len, vocab_size, num_puzzle_identifiers, ...) without loading arrays."""
    paths = [Path(p) for p in ([data_paths] if isinstance(data_paths, (str, Path)) else data_paths)]
    return merge_metadata([load_metadata(p / split) for p in paths], paths)


def _concat_offsets(offsets: list[np.ndarray], bases: np.ndarray) -> np.ndarray:
    """Concatenate CSR offset arrays of consecutive parts into one global offset array."""
    pieces = [np.asarray(o[:-1], dtype=np.int64) + base for o, base in zip(offsets, bases[:-1], strict=True)]
    return np.concatenate([*pieces, [bases[-1]]])


def _shuffled_offsets(rng: np.random.Generator, sizes: np.ndarray) -> np.ndarray:
    """For consecutive segments of the given sizes, each segment's offsets 0..size-1 in a random order."""
    owner = np.repeat(np.arange(len(sizes)), sizes)
    order = np.lexsort((rng.random(len(owner)), owner))  # by segment, then by a random key within it
    return order - (np.cumsum(sizes) - sizes)[owner]


class PuzzleDataset:
    """Batches of one split of one or more dataset directories (see the module docstring)."""

    def __init__(self, config: PuzzleDatasetConfig, split: str = "train"):
        self.config = config
        self.split = split
        metadatas, parts, sources = [], [], []
        for path in config.data_paths:
            metadata, sets = load_split(Path(path) / split)
            metadatas.append(metadata)
            parts.extend(sets)
            sources.append(Path(path))
        self.metadata = merge_metadata(metadatas, sources)
        self._inputs = [p.inputs for p in parts]
        self._labels = [p.labels for p in parts]
        example_bases = np.cumsum([0] + [len(p.inputs) for p in parts])
        puzzle_bases = np.cumsum([0] + [len(p.puzzle_identifiers) for p in parts])
        self._example_bases = example_bases
        self._puzzle_indices = _concat_offsets([p.puzzle_indices for p in parts], example_bases)
        self._group_indices = _concat_offsets([p.group_indices for p in parts], puzzle_bases)
        self._identifiers = np.concatenate([np.asarray(p.puzzle_identifiers, dtype=np.int32) for p in parts])
        self._epoch = 0
        self._batch = 0
        self._plan: tuple[int, np.ndarray, np.ndarray] | None = None
        if not config.test_set_mode:
            self._check_batch_fits()

    @property
    def num_groups(self) -> int:
        return len(self._group_indices) - 1

    @property
    def num_examples(self) -> int:
        return int(self._example_bases[-1])

    def _check_batch_fits(self) -> None:
        """Every epoch must hold a full global batch: refuse a batch above the smallest epoch's examples."""
        sizes = np.diff(self._puzzle_indices)
        starts = self._group_indices[:-1]
        fewest = int(np.minimum.reduceat(sizes, starts).sum())
        most = int(np.maximum.reduceat(sizes, starts).sum())
        if self.config.global_batch_size <= fewest:
            return
        epoch = "an epoch" if fewest == most else f"the smallest epoch (epochs hold {fewest} to {most})"
        raise ValueError(f"{self.split}: global_batch_size {self.config.global_batch_size} exceeds the {fewest} "
                         f"examples of {epoch}: all examples of one puzzle from each of the {self.num_groups} "
                         "groups; no full batch fits")

    def batches_in_epoch(self, epoch: int) -> int:
        """Full global batches of one training epoch (its stream's leftover examples are skipped)."""
        return len(self.epoch_plan(epoch)[1]) // self.config.global_batch_size

    @property
    def batches_per_epoch(self) -> int:
        """Full global batches of the epoch the next training batch comes from (the same for every epoch
        when each group's puzzles hold equally many examples, as in every one-example dataset)."""
        epoch = self._epoch + int(self._batch >= self.batches_in_epoch(self._epoch))
        return self.batches_in_epoch(epoch)

    def _gather(self, examples: np.ndarray, puzzles: np.ndarray, size: int) -> Batch:
        """Rows of the given global examples, padded to `size` rows."""
        seq_len = self.metadata.seq_len
        inputs = np.full((size, seq_len), self.metadata.pad_id, dtype=np.int32)
        labels = np.full((size, seq_len), IGNORE_LABEL_ID, dtype=np.int32)
        identifiers = np.full(size, self.metadata.blank_identifier_id, dtype=np.int32)
        part = np.searchsorted(self._example_bases, examples, side="right") - 1
        for k in np.unique(part):
            rows = np.flatnonzero(part == k)
            local = examples[rows] - self._example_bases[k]
            inputs[rows] = self._inputs[k][local]
            labels[rows] = self._labels[k][local]
        n = len(examples)
        if self.metadata.ignore_label_id is not None:
            labels[:n][labels[:n] == self.metadata.ignore_label_id] = IGNORE_LABEL_ID
        identifiers[:n] = self._identifiers[puzzles]
        return {
            "inputs": torch.from_numpy(inputs),
            "labels": torch.from_numpy(labels),
            "puzzle_identifiers": torch.from_numpy(identifiers),
        }

    def epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(puzzle, example) of every position of one epoch's stream: the groups in a random order, one
        random puzzle each, all its examples in a random order. The within-puzzle order is drawn last, so
        with one example per puzzle the stream is exactly the one-example-per-puzzle draw."""
        if self._plan is not None and self._plan[0] == epoch:
            return self._plan[1], self._plan[2]
        rng = np.random.default_rng([self.config.seed, epoch])
        groups = rng.permutation(self.num_groups)
        first_puzzle = self._group_indices[groups]
        drawn = first_puzzle + rng.integers(0, self._group_indices[groups + 1] - first_puzzle)
        sizes = self._puzzle_indices[drawn + 1] - self._puzzle_indices[drawn]
        puzzles = np.repeat(drawn, sizes)
        examples = self._puzzle_indices[puzzles] + _shuffled_offsets(rng, sizes)
        self._plan = (epoch, puzzles, examples)
        return puzzles, examples

    def next_train_batch(self) -> Batch:
        """This rank's slice of the next global training batch; rolls into a new epoch as needed."""
        puzzles, examples = self.epoch_plan(self._epoch)
        if self._batch >= len(examples) // self.config.global_batch_size:
            self._epoch, self._batch = self._epoch + 1, 0
            puzzles, examples = self.epoch_plan(self._epoch)
        local = self.config.local_batch_size
        start = self._batch * self.config.global_batch_size + self.config.rank * local
        self._batch += 1
        return self._gather(examples[start : start + local], puzzles[start : start + local], local)

    def test_batches(self) -> Iterator[tuple[Batch, int]]:
        """Sequential batches over all examples with the number of real (unpadded) rows."""
        total, global_size, local = (
            self.num_examples,
            self.config.global_batch_size,
            self.config.local_batch_size,
        )
        for start in range(0, total, global_size):
            lo = min(start + self.config.rank * local, total)
            examples = np.arange(lo, min(lo + local, total))
            puzzles = np.searchsorted(self._puzzle_indices, examples, side="right") - 1
            yield self._gather(examples, puzzles, local), len(examples)

    def state_dict(self) -> dict[str, int]:
        """Sampler position; with the same data, seed and global batch it resumes exactly."""
        return {
            "epoch": self._epoch,
            "batch": self._batch,
            "seed": self.config.seed,
            "num_groups": self.num_groups,
            "global_batch_size": self.config.global_batch_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at the stored position. The reference loader's state (a numpy Philox stream,
        under `train_state`) has no counterpart here: its epoch is kept, its order is not."""
        if "train_state" in state:
            self._epoch, self._batch = int(state["train_state"].get("epoch_idx", 0)), 0
            log.warning("sampler: the checkpoint holds the reference loader's state, which this loader cannot "
                        "continue; data order goes on from epoch %d in this loader's own order", self._epoch)
            return
        for key in ("seed", "num_groups", "global_batch_size"):
            mine = self.state_dict()[key]
            if int(state[key]) != mine:
                where = "this dataset has" if key == "num_groups" else "this run has"
                raise ValueError(f"the checkpoint's sampler has {key}={state[key]}, {where} {key}={mine}; "
                                 f"resume needs the same {key} (load_weights_only=true loads its weights only)")
        self._epoch, self._batch = int(state["epoch"]), int(state["batch"])
