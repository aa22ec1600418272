"""PuzzleDataset: epoch coverage, rank slicing, exact resume, test padding, and format validation."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dataset.format import DatasetFormatError, SplitArrays, TokenConventions, write_identifiers, write_split
from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig, read_metadata

SEQ_LEN = 5
VOCAB = 64


def write_dataset(root: Path, num_groups: int = 24, seed: int = 0, vocab: int = VOCAB) -> Path:
    """Groups of 1-3 puzzles with 1-2 examples each. Row = [group, puzzle + 1, example + 1, k, 0]:
    the ids are recoverable from a batch; label column 3 and 4 hold the ignore id 0."""
    rng = np.random.default_rng(seed)
    rows, puzzle_indices, group_indices = [], [0], [0]
    puzzle = 0
    for group in range(num_groups):
        for _ in range(int(rng.integers(1, 4))):
            for example in range(int(rng.integers(1, 3))):
                rows.append([group, puzzle + 1, example + 1, 1 + group % 7, 0])
            puzzle_indices.append(len(rows))
            puzzle += 1
        group_indices.append(puzzle)
    inputs = np.array(rows, dtype=np.int32) % vocab
    labels = inputs.copy()
    labels[:, 3] = 0
    labels[:, 0] = np.maximum(labels[:, 0], 1)
    arrays = SplitArrays(
        inputs=inputs,
        labels=labels,
        puzzle_identifiers=(np.arange(puzzle) % 3).astype(np.int32),
        puzzle_indices=np.array(puzzle_indices, dtype=np.int32),
        group_indices=np.array(group_indices, dtype=np.int32),
    )
    for split in ("train", "test"):
        write_split(root / split, arrays, vocab_size=vocab, ids=TokenConventions(num_puzzle_identifiers=3))
    write_identifiers(root, ["<blank>", "a", "b"])
    return root


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "ds")


def make(path: Path | list[Path], batch: int, split: str = "train", **kwargs) -> PuzzleDataset:
    key = "data_paths" if isinstance(path, list) else "data_path"
    return PuzzleDataset(PuzzleDatasetConfig(**{key: path, "global_batch_size": batch, **kwargs}), split)


def groups_of(batch: dict[str, torch.Tensor]) -> list[int]:
    return batch["inputs"][:, 0].tolist()


def epoch(ds: PuzzleDataset) -> list[dict[str, torch.Tensor]]:
    """The rest of the current epoch's training batches."""
    return [ds.next_train_batch() for _ in range(ds.batches_per_epoch)]


def stream(ds: PuzzleDataset):
    while True:
        yield ds.next_train_batch()


def test_batch_layout_and_label_mapping(data_dir):
    batch = make(data_dir, 8).next_train_batch()
    assert batch["inputs"].shape == (8, SEQ_LEN) and batch["inputs"].dtype == torch.int32
    assert batch["labels"].shape == (8, SEQ_LEN) and batch["labels"].dtype == torch.int32
    assert batch["puzzle_identifiers"].shape == (8,) and batch["puzzle_identifiers"].dtype == torch.int32
    assert (batch["labels"][:, 3] == -100).all() and (batch["labels"][:, 4] == -100).all()
    assert (batch["labels"][:, 1:3] == batch["inputs"][:, 1:3]).all()
    assert (batch["puzzle_identifiers"] == (batch["inputs"][:, 1] - 1) % 3).all()


def rows_of(batch: dict[str, torch.Tensor]) -> list[tuple[int, int, int]]:
    """(group, puzzle, example) of every row."""
    return [tuple(row) for row in batch["inputs"][:, :3].tolist()]


def stream_rows(ds: PuzzleDataset, epoch_index: int) -> list[tuple[int, int, int]]:
    """(group, puzzle, example) of every position of an epoch's stream, from the stored rows."""
    stored = np.load(ds.config.data_paths[0] / "train" / "all__inputs.npy")
    return [tuple(row) for row in stored[ds.epoch_plan(epoch_index)[1], :3].tolist()]


def test_one_epoch_visits_every_group_once_with_every_example_of_one_puzzle(data_dir):
    """An epoch's stream: each group once, one of its puzzles with all that puzzle's examples; the batches
    are that stream cut into full global batches."""
    ds = make(data_dir, 8)
    rows = stream_rows(ds, 0)
    stored = [tuple(row) for row in np.load(data_dir / "train" / "all__inputs.npy")[:, :3].tolist()]
    for group in range(24):
        puzzles = {p for g, p, _ in rows if g == group}
        assert len(puzzles) == 1
        assert sorted(r for r in rows if r[0] == group) == sorted(r for r in stored if r[1] in puzzles)
    batches = epoch(ds)
    assert len(batches) == len(rows) // 8
    assert [r for b in batches for r in rows_of(b)] == rows[: 8 * len(batches)]
    assert stream_rows(ds, 1) != rows


def test_puzzle_and_example_belong_to_the_group(data_dir):
    ds = make(data_dir, 8)
    arrays_groups = np.load(data_dir / "train" / "all__group_indices.npy")
    for batch in epoch(ds):
        for group, puzzle, example in batch["inputs"][:, :3].tolist():
            assert arrays_groups[group] <= puzzle - 1 < arrays_groups[group + 1]
            assert example in (1, 2)


def test_every_example_of_a_puzzle_gets_drawn(data_dir):
    batches = stream(make(data_dir, 8, seed=2))
    drawn = {tuple(row) for _ in range(60) for row in next(batches)["inputs"][:, 1:3].tolist()}
    stored = {tuple(row) for row in np.load(data_dir / "train" / "all__inputs.npy")[:, 1:3].tolist()}
    assert drawn == stored


def test_partial_last_batch_is_dropped_and_rows_stay_distinct(tmp_path):
    ds = make(write_dataset(tmp_path / "ds", num_groups=23), 8)
    rows = stream_rows(ds, 0)
    visited = [r for b in epoch(ds) for r in rows_of(b)]
    assert len(rows) % 8 and len(visited) == 8 * (len(rows) // 8) == len(set(visited))
    assert visited == rows[: len(visited)]


def test_two_ranks_split_the_global_batch(data_dir):
    whole = epoch(make(data_dir, 8, seed=7))
    rank0 = epoch(make(data_dir, 8, seed=7, rank=0, world_size=2))
    rank1 = epoch(make(data_dir, 8, seed=7, rank=1, world_size=2))
    for full, a, b in zip(whole, rank0, rank1, strict=True):
        assert a["inputs"].shape == (4, SEQ_LEN)
        assert not set(rows_of(a)) & set(rows_of(b))
        for key in full:
            assert torch.equal(torch.cat([a[key], b[key]]), full[key])


def test_resume_mid_epoch_gives_identical_batches(data_dir):
    ds = make(data_dir, 4, seed=3)
    batches = stream(ds)
    for _ in range(4):
        next(batches)
    state = ds.state_dict()
    expected = [next(batches) for _ in range(6)]
    resumed = make(data_dir, 4, seed=3)
    resumed.load_state_dict(json.loads(json.dumps(state)))
    again = stream(resumed)
    for want in expected:
        got = next(again)
        for key in want:
            assert torch.equal(got[key], want[key])


def test_resume_rejects_a_different_setup(data_dir):
    state = make(data_dir, 4, seed=3).state_dict()
    with pytest.raises(ValueError, match="seed=3"):
        make(data_dir, 4, seed=4).load_state_dict(state)


def test_stream_rolls_over_epochs_with_new_orders(data_dir):
    ds = make(data_dir, 8, seed=1)
    batches = stream(ds)
    counts = [ds.batches_in_epoch(e) for e in range(3)]
    epochs = [[r for _ in range(n) for r in rows_of(next(batches))] for n in counts]
    assert all(e == stream_rows(ds, i)[: len(e)] for i, e in enumerate(epochs))
    assert all(sorted({g for g, _, _ in stream_rows(ds, i)}) == list(range(24)) for i in range(3))
    assert epochs[0] != epochs[1] != epochs[2]
    assert ds.state_dict()["epoch"] == 2
    same = stream(make(data_dir, 8, seed=1))
    assert rows_of(next(same)) == epochs[0][:8]


def test_test_iterator_is_sequential_and_padded(data_dir):
    total = len(np.load(data_dir / "test" / "all__inputs.npy"))
    ds = make(data_dir, 16, split="test", test_set_mode=True)
    pairs = list(ds.test_batches())
    assert len(pairs) == -(-total // 16)
    assert [n for _, n in pairs] == [16] * (len(pairs) - 1) + [total - 16 * (len(pairs) - 1)]
    inputs = torch.cat([b["inputs"] for b, _ in pairs])
    stored = torch.from_numpy(np.load(data_dir / "test" / "all__inputs.npy"))
    assert torch.equal(inputs[:total], stored)
    last, valid = pairs[-1]
    assert (last["inputs"][valid:] == 0).all() and (last["labels"][valid:] == -100).all()
    assert (last["puzzle_identifiers"][valid:] == 0).all()


def test_test_iterator_with_two_ranks(data_dir):
    whole = list(make(data_dir, 16, split="test", test_set_mode=True).test_batches())
    parts = [
        list(make(data_dir, 16, "test", test_set_mode=True, rank=r, world_size=2).test_batches())
        for r in (0, 1)
    ]
    for (full, n), (a, na), (b, nb) in zip(whole, *parts, strict=True):
        assert na + nb == n
        assert torch.equal(torch.cat([a["inputs"], b["inputs"]]), full["inputs"])


def test_metadata_and_multiple_paths(tmp_path):
    first = write_dataset(tmp_path / "a", num_groups=8)
    second = write_dataset(tmp_path / "b", num_groups=16, seed=1)
    meta = read_metadata(first)
    assert (meta.seq_len, meta.vocab_size, meta.num_puzzle_identifiers, meta.total_groups) == (
        SEQ_LEN,
        VOCAB,
        3,
        8,
    )
    ds = make([first, second], 8)
    assert ds.metadata.total_groups == 24
    rows = torch.cat([b["inputs"] for b in epoch(ds)])
    assert len(rows) == 8 * (len(ds.epoch_plan(0)[1]) // 8) and len(ds.epoch_plan(0)[1]) >= 24
    with pytest.raises(DatasetFormatError, match="vocab_size"):
        make([first, write_dataset(tmp_path / "c", vocab=100)], 8)


def test_config_validation(data_dir):
    with pytest.raises(ValueError, match="not divisible"):
        PuzzleDatasetConfig(data_path=data_dir, global_batch_size=7, world_size=2)
    with pytest.raises(ValueError, match="rank 2"):
        PuzzleDatasetConfig(data_path=data_dir, global_batch_size=8, rank=2, world_size=2)
    fewest = sum(min(np.diff(np.load(data_dir / "train" / "all__puzzle_indices.npy"))[a:b])
                 for a, b in itertools.pairwise(np.load(data_dir / "train" / "all__group_indices.npy")))
    with pytest.raises(ValueError, match=f"global_batch_size {fewest + 1} exceeds the {fewest} examples of the "):
        make(data_dir, fewest + 1)
    make(data_dir, fewest)


def rewrite(path: Path, array: np.ndarray) -> None:
    np.save(path, array)


@pytest.mark.parametrize(
    ("corrupt", "file", "message"),
    [
        (
            lambda d: (d / "all__inputs.npy").write_bytes((d / "all__inputs.npy").read_bytes()[:-7]),
            "all__inputs.npy",
            "truncated file",
        ),
        (lambda d: (d / "all__labels.npy").write_bytes(b"\x93NUM"), "all__labels.npy", "not a readable .npy"),
        (lambda d: (d / "all__group_indices.npy").unlink(), "all__group_indices.npy", "missing file"),
        (
            lambda d: rewrite(d / "all__inputs.npy", np.load(d / "all__inputs.npy") + VOCAB - 1),
            "all__inputs.npy",
            "token id",
        ),
        (
            lambda d: rewrite(d / "all__inputs.npy", np.load(d / "all__inputs.npy")[:, :4]),
            "all__inputs.npy",
            "does not match seq_len 5",
        ),
        (
            lambda d: rewrite(
                d / "all__group_indices.npy", np.load(d / "all__group_indices.npy")[[0, 2, 1, *range(3, 25)]]
            ),
            "all__group_indices.npy",
            "not strictly increasing",
        ),
        (
            lambda d: rewrite(d / "all__puzzle_indices.npy", np.load(d / "all__puzzle_indices.npy")[1:]),
            "all__puzzle_indices.npy",
            "offsets must run from 0",
        ),
        (
            lambda d: rewrite(
                d / "all__puzzle_identifiers.npy", np.load(d / "all__puzzle_identifiers.npy") + 3
            ),
            "all__puzzle_identifiers.npy",
            "identifier",
        ),
        (lambda d: (d / "dataset.json").write_text("{}"), "dataset.json", "invalid dataset.json"),
    ],
)
def test_corrupted_files_give_a_named_error(data_dir, corrupt, file, message):
    corrupt(data_dir / "train")
    with pytest.raises(DatasetFormatError) as err:
        make(data_dir, 8)
    assert str(data_dir / "train" / file) in str(err.value)
    assert message in str(err.value)


def test_wrong_seq_len_in_metadata(data_dir):
    path = data_dir / "train" / "dataset.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "seq_len": 81}))
    with pytest.raises(
        DatasetFormatError, match=r"all__inputs\.npy: shape \(\d+, 5\) does not match seq_len 81"
    ):
        make(data_dir, 8)
