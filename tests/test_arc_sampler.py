"""The training sampler on multi-example puzzles (ARC): a group visit streams all examples of its drawn
puzzle; with one example per puzzle the order is the one-example-per-puzzle draw, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dataset.format import SplitArrays, TokenConventions, write_split
from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig

# Examples per puzzle, per group: 3 groups x 2 puzzles. An epoch's stream holds 4 to 9 examples.
SIZES = [[1, 4], [2, 3], [1, 2]]
SEQ_LEN = 4


def write_dataset(root: Path, sizes: list[list[int]]) -> Path:
    """Row = [group, puzzle, example, 1]; puzzle p has identifier p + 1, so the blank 0 never occurs."""
    rows, puzzle_indices, group_indices = [], [0], [0]
    puzzle = 0
    for group, puzzles in enumerate(sizes):
        for size in puzzles:
            rows.extend([group, puzzle, example, 1] for example in range(size))
            puzzle_indices.append(len(rows))
            puzzle += 1
        group_indices.append(puzzle)
    inputs = np.array(rows, dtype=np.int32)
    arrays = SplitArrays(inputs=inputs, labels=inputs.copy(),
                         puzzle_identifiers=np.arange(1, puzzle + 1, dtype=np.int32),
                         puzzle_indices=np.array(puzzle_indices, dtype=np.int32),
                         group_indices=np.array(group_indices, dtype=np.int32))
    conventions = TokenConventions(ignore_label_id=None, num_puzzle_identifiers=puzzle + 1)
    write_split(root / "train", arrays, vocab_size=max(16, len(rows)), ids=conventions)
    return root


def make(path: Path, batch: int, **kwargs) -> PuzzleDataset:
    return PuzzleDataset(PuzzleDatasetConfig(data_path=path, global_batch_size=batch, **kwargs))


def rows_of(batch: dict[str, torch.Tensor]) -> list[tuple[int, int, int]]:
    return [tuple(row) for row in batch["inputs"][:, :3].tolist()]


@pytest.fixture
def arc_like(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "arc", SIZES)


def test_each_epoch_streams_every_group_once_with_all_examples_of_one_puzzle(arc_like):
    ds = make(arc_like, 2)
    first_puzzle = np.cumsum([0] + [len(p) for p in SIZES])
    sizes = [s for puzzles in SIZES for s in puzzles]
    stored = np.load(arc_like / "train" / "all__inputs.npy")
    counts, drawn = set(), set()
    for epoch in range(12):
        puzzles, examples = ds.epoch_plan(epoch)
        stream = [(int(g), int(p), int(e)) for g, p, e in stored[examples, :3]]
        assert [p for _, p, _ in stream] == puzzles.tolist()
        visits = [row[:2] for k, row in enumerate(stream) if k == 0 or row[:2] != stream[k - 1][:2]]
        assert sorted(g for g, _ in visits) == [0, 1, 2]  # every group once, its puzzle's examples contiguous
        for group, puzzle in visits:
            assert first_puzzle[group] <= puzzle < first_puzzle[group + 1]
            assert sorted(e for _, p, e in stream if p == puzzle) == list(range(sizes[puzzle]))
        drawn |= set(visits)
        # The batches of this epoch: full, consecutive cuts of the stream, floor(len / 2) of them.
        assert ds.batches_per_epoch == len(stream) // 2 == ds.batches_in_epoch(epoch)
        batches = [ds.next_train_batch() for _ in range(len(stream) // 2)]
        assert ds.state_dict()["epoch"] == epoch
        assert [row for b in batches for row in rows_of(b)] == stream[: 2 * (len(stream) // 2)]
        assert all(b["inputs"].shape == (2, SEQ_LEN) and (b["puzzle_identifiers"] > 0).all() for b in batches)
        counts.add(len(batches))
    assert len(counts) > 1  # puzzles of unequal size: the batch count changes between epochs
    assert drawn == {(g, p) for g in range(3) for p in range(first_puzzle[g], first_puzzle[g + 1])}


def test_examples_of_a_puzzle_come_in_a_random_order(arc_like):
    ds = make(arc_like, 2)
    orders = set()
    for epoch in range(40):
        puzzles, examples = ds.epoch_plan(epoch)
        if 1 in puzzles:  # group 0's puzzle of 4 examples
            orders.add(tuple(examples[puzzles == 1].tolist()))
    assert len(orders) > 3 and all(sorted(o) == [1, 2, 3, 4] for o in orders)


def test_ranks_split_every_global_batch(arc_like):
    whole = make(arc_like, 4, seed=5)
    ranks = [make(arc_like, 4, seed=5, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(15):  # several epochs of 1 or 2 batches
        full = whole.next_train_batch()
        parts = [r.next_train_batch() for r in ranks]
        assert all(p["inputs"].shape == (2, SEQ_LEN) for p in parts)
        for key in full:
            assert torch.equal(torch.cat([parts[0][key], parts[1][key]]), full[key])
        assert not set(rows_of(parts[0])) & set(rows_of(parts[1]))
    assert whole.state_dict() == ranks[0].state_dict() == ranks[1].state_dict()


def test_resume_mid_epoch_continues_identically(arc_like):
    ds = make(arc_like, 2, seed=3)
    for _ in range(7):
        ds.next_train_batch()
    state = json.loads(json.dumps(ds.state_dict()))
    assert state["batch"] < ds.batches_in_epoch(state["epoch"])  # mid-epoch
    expected = [ds.next_train_batch() for _ in range(12)]
    resumed = make(arc_like, 2, seed=3)
    resumed.load_state_dict(state)
    for want in expected:
        got = resumed.next_train_batch()
        for key in want:
            assert torch.equal(got[key], want[key])


def test_a_batch_larger_than_the_smallest_epoch_is_one_line(arc_like, tmp_path):
    make(arc_like, 4)  # 1 + 2 + 1 examples at the least
    with pytest.raises(ValueError) as err:
        make(arc_like, 5)
    assert str(err.value) == ("train: global_batch_size 5 exceeds the 4 examples of the smallest epoch (epochs hold "
                              "4 to 9): all examples of one puzzle from each of the 3 groups; no full batch fits")
    even = write_dataset(tmp_path / "even", [[2, 2], [3], [1, 1]])
    assert make(even, 6).batches_per_epoch == 1
    with pytest.raises(ValueError, match=r"^train: global_batch_size 7 exceeds the 6 examples of an epoch: "):
        make(even, 7)


def old_order(ds_dir: Path, seed: int, epoch: int) -> np.ndarray:
    """The one-example-per-group draw of the loader before multi-example puzzles, written out literally."""
    groups_at = np.load(ds_dir / "train" / "all__group_indices.npy").astype(np.int64)
    puzzles_at = np.load(ds_dir / "train" / "all__puzzle_indices.npy").astype(np.int64)
    rng = np.random.default_rng([seed, epoch])
    groups = rng.permutation(len(groups_at) - 1)
    puzzles = groups_at[groups] + rng.integers(0, groups_at[groups + 1] - groups_at[groups])
    return puzzles_at[puzzles] + rng.integers(0, puzzles_at[puzzles + 1] - puzzles_at[puzzles])


def test_one_example_per_puzzle_keeps_the_old_order(tmp_path):
    sizes = [[1] * (1 + g % 3) for g in range(10)]  # Sudoku-like: augmented puzzles of one example each
    ds_dir = write_dataset(tmp_path / "one", sizes)
    stored = np.load(ds_dir / "train" / "all__inputs.npy")
    ds = make(ds_dir, 3, seed=11)
    for epoch in range(4):
        assert ds.batches_per_epoch == 3
        want = old_order(ds_dir, 11, epoch)[:9]
        got = np.concatenate([ds.next_train_batch()["inputs"].numpy() for _ in range(3)])
        assert np.array_equal(got, stored[want])
        assert np.array_equal(ds.epoch_plan(epoch)[1], old_order(ds_dir, 11, epoch))
