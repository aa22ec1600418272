"""The Sudoku builder end to end: the reference builder's output bit for bit, CSV round trips, filters, bad
rows, offline generation, atomic output."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dataset.build_sudoku_dataset import SudokuBuildConfig, parse_args
from dataset.build_sudoku_dataset import main as build_main
from dataset.show import main as show_main
from dataset.sudoku.csv_source import InvalidRowError, read_sudoku_csv
from dataset.sudoku.generate import write_generated_csvs
from tests.test_sudoku_data import count_solutions, digits, write_csv
from utils.atomic import atomic_output_dir

FIXTURE = Path(__file__).parent / "data" / "sudoku_hard.csv"
GOLDEN = Path(__file__).parent / "fixtures" / "sudoku_build"  # the reference builder's output (see its README)


def fixture_rows() -> list[dict[str, str]]:
    with open(FIXTURE, newline="") as f:
        return list(csv.DictReader(f))


def build(tmp_path: Path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "out"
    return build_main(["--output-dir", str(out), *args]), out


def load(out: Path, split: str, field: str) -> np.ndarray:
    return np.load(out / split / f"all__{field}.npy")


def decode(tokens: np.ndarray) -> list[str]:
    return ["".join("." if t == 1 else str(t - 1) for t in row) for row in tokens.tolist()]


def test_defaults_are_the_reference_builders():
    config = parse_args([])
    assert config == SudokuBuildConfig()
    assert (config.output_dir, config.source, config.source_repo) == (
        Path("data/sudoku-extreme-full"), "hub", "sapientinc/sudoku-extreme")
    assert (config.subsample_size, config.min_difficulty, config.num_aug, config.seed) == (None, None, 0, 42)


def test_csv_build_equals_the_reference_output(tmp_path):
    """The golden's options (seed 42 is the default): every file the reference wrote, value for value."""
    rc, out = build(tmp_path, "--source-dir", str(GOLDEN / "src"), "--subsample-size", "100", "--num-aug", "3")
    assert rc == 0
    expected = GOLDEN / "expected"
    names = sorted(p.relative_to(expected) for p in expected.rglob("*") if p.is_file())
    assert len(names) == 1 + 2 * 6  # identifiers.json; per split dataset.json and five arrays
    for name in names:
        if name.suffix == ".npy":  # values, not dtypes: the reference's train arrays are int64
            want, got = np.load(expected / name), np.load(out / name)
            assert got.shape == want.shape and np.array_equal(got, want), name
        else:
            want, got = json.loads((expected / name).read_text()), json.loads((out / name).read_text())
            if name.name == "dataset.json":  # ours adds `task`
                got = {key: got.get(key) for key in want}
            assert got == want, name


def test_seed_moves_the_train_draws_only(tmp_path):
    rc, out = build(tmp_path, "--source-dir", str(GOLDEN / "src"), "--subsample-size", "100", "--num-aug", "3",
                    "--seed", "7")
    assert rc == 0
    expected = GOLDEN / "expected"
    assert not np.array_equal(load(out, "train", "inputs"), np.load(expected / "train" / "all__inputs.npy"))
    assert np.array_equal(load(out, "test", "inputs"), np.load(expected / "test" / "all__inputs.npy"))


def test_local_csv_build_round_trips_the_csv_strings(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(FIXTURE, source / "train.csv")
    shutil.copy(FIXTURE, source / "test.csv")
    rc, out = build(tmp_path, "--source-dir", str(source), "--num-aug", "3", "--subsample-size", "all")
    assert rc == 0
    rows = fixture_rows()
    test_inputs, test_labels = load(out, "test", "inputs"), load(out, "test", "labels")
    assert test_inputs.shape == (6, 81)
    assert decode(test_inputs) == [r["question"] for r in rows]
    assert decode(test_labels) == [r["answer"] for r in rows]
    train_inputs = load(out, "train", "inputs")
    assert train_inputs.shape == (24, 81)
    assert decode(train_inputs[::4]) == [r["question"] for r in rows]
    assert decode(load(out, "train", "labels")[::4]) == [r["answer"] for r in rows]
    assert load(out, "train", "group_indices").tolist() == list(range(0, 25, 4))
    assert load(out, "train", "puzzle_indices").tolist() == list(range(25))
    meta = json.loads((out / "train" / "dataset.json").read_text())
    assert meta == {
        "pad_id": 0,
        "ignore_label_id": 0,
        "blank_identifier_id": 0,
        "vocab_size": 11,
        "seq_len": 81,
        "num_puzzle_identifiers": 1,
        "total_groups": 6,
        "mean_puzzle_examples": 1.0,
        "sets": ["all"],
        "total_samples": 24,
        "task": "sudoku",
    }
    assert json.loads((out / "identifiers.json").read_text()) == ["<blank>"]


def test_min_difficulty_and_subsample(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(FIXTURE, source / "train.csv")
    shutil.copy(FIXTURE, source / "test.csv")
    rc, out = build(
        tmp_path,
        "--source-dir",
        str(source),
        "--num-aug",
        "0",
        "--min-difficulty",
        "100",
        "--subsample-size",
        "2",
        "--test-subsample-size",
        "2",
    )
    assert rc == 0
    hard = {r["question"] for r in fixture_rows() if int(r["rating"]) >= 100}
    assert len(hard) == 3
    for split in ("train", "test"):
        got = decode(load(out, split, "inputs"))
        assert len(got) == 2 and set(got) <= hard


BAD_ROWS = [
    (["x", "1" * 80, "1" * 81, "0"], "question has 80 characters, expected 81"),
    (["x", "0" + "." * 80, "1" * 81, "0"], "question has invalid character '0' at position 1"),
    (["x", "." * 81, "12345678"], "expected 4 fields"),
    (["x", "." * 81, "1" * 81, "0"], "answer is not a valid Sudoku (row 1 repeats a digit)"),
    (["x", "." * 81, "a" * 81, "0"], "answer has invalid character 'a' at position 1"),
    (["x", "9" + "." * 80, None, "0"], "answer disagrees with the given 9 at row 1, column 1"),
    (["x", None, None, "hard"], "rating 'hard' is not a non-negative integer"),
]


@pytest.mark.parametrize(("row", "reason"), BAD_ROWS)
def test_bad_row_stops_the_build_with_file_line_reason(tmp_path, capsys, row, reason):
    good = fixture_rows()[0]
    row = [
        good["question"] if v is None and i == 1 else good["answer"] if v is None else v
        for i, v in enumerate(row)
    ]
    source = tmp_path / "src"
    source.mkdir()
    good_row = [good["source"], good["question"], good["answer"], good["rating"]]
    train = write_csv(source / "train.csv", [good_row, good_row, row])
    write_csv(source / "test.csv", [good_row])
    with pytest.raises(InvalidRowError) as err:
        read_sudoku_csv(train)
    assert str(err.value).startswith(f"{train}:4: {reason}")
    rc, out = build(tmp_path, "--source-dir", str(source), "--num-aug", "1")
    assert rc == 1 and not out.exists()
    assert f"{train}:4: {reason}" in capsys.readouterr().err


def test_skip_invalid_drops_and_counts_rows(tmp_path, capsys):
    good = fixture_rows()[1]
    good_row = [good["source"], good["question"], good["answer"], good["rating"]]
    source = tmp_path / "src"
    source.mkdir()
    train = write_csv(source / "train.csv", [good_row, ["x", "1" * 80, "1" * 81, "0"], good_row, ["y", "z"]])
    write_csv(source / "test.csv", [good_row])
    rows = read_sudoku_csv(train, skip_invalid=True)
    assert len(rows) == 2 and rows.lines.tolist() == [2, 4]
    assert rows.skipped == [
        f"{train}:3: question has 80 characters, expected 81",
        f"{train}:5: expected 4 fields (source,question,answer,rating), found 2",
    ]
    rc, out = build(tmp_path, "--source-dir", str(source), "--num-aug", "1", "--skip-invalid")
    assert rc == 0
    assert "train: skipped 2 invalid rows" in capsys.readouterr().out
    assert load(out, "train", "inputs").shape == (4, 81)


def test_bad_header_is_reported_on_line_1(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("q,a\n")
    with pytest.raises(InvalidRowError, match=r"bad\.csv:1: expected header source,question,answer,rating"):
        read_sudoku_csv(path)


def test_generate_source_builds_offline_with_disjoint_unique_puzzles(tmp_path):
    rc, out = build(
        tmp_path,
        "--source",
        "generate",
        "--subsample-size",
        "4",
        "--test-subsample-size",
        "3",
        "--num-aug",
        "2",
    )
    assert rc == 0
    train, test = load(out, "train", "inputs"), load(out, "test", "inputs")
    assert train.shape == (12, 81) and test.shape == (3, 81)
    originals = decode(train[::3])
    assert not set(originals) & set(decode(test))
    for text in originals + decode(test):
        assert count_solutions(digits(text)) == 1


def test_generated_csvs_feed_a_local_build(tmp_path):
    write_generated_csvs(tmp_path / "csv", train_size=3, test_size=2, min_difficulty=0, seed=5)
    train = read_sudoku_csv(tmp_path / "csv" / "train.csv")
    assert len(train) == 3 and len(read_sudoku_csv(tmp_path / "csv" / "test.csv")) == 2
    rc, out = build(tmp_path, "--source-dir", str(tmp_path / "csv"), "--num-aug", "1")
    assert rc == 0 and load(out, "train", "inputs").shape == (6, 81)


def test_existing_output_is_kept_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(FIXTURE, source / "train.csv")
    shutil.copy(FIXTURE, source / "test.csv")
    rc, _ = build(tmp_path, "--source-dir", str(source), "--num-aug", "1")
    assert rc == 1 and "already exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    rc, _ = build(tmp_path, "--source-dir", str(source), "--num-aug", "1", "--overwrite")
    assert rc == 0 and not (out / "keep.txt").exists() and (out / "train" / "dataset.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]


def test_interrupted_build_leaves_nothing(tmp_path):
    target = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt), atomic_output_dir(target) as tmp:
        (tmp / "train").mkdir()
        (tmp / "train" / "half.npy").write_bytes(b"x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_show_prints_a_boxed_grid(tmp_path, capsys):
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(FIXTURE, source / "train.csv")
    shutil.copy(FIXTURE, source / "test.csv")
    _, out = build(tmp_path, "--source-dir", str(source), "--num-aug", "1")
    capsys.readouterr()
    assert show_main([str(out), "--split", "test", "--index", "3"]) == 0
    text = capsys.readouterr().out
    row = fixture_rows()[3]
    assert "example 3 (puzzle 3, group 3, identifier 0)" in text and "vocab_size=11" in text
    assert text.count("------+-------+------") == 4
    first_answer_line = " | ".join(" ".join(row["answer"][c : c + 3]) for c in (0, 3, 6))
    assert first_answer_line in text
    assert " ".join(row["question"][:3]) in text
    assert show_main([str(out), "--split", "test", "--index", "6"]) == 1
