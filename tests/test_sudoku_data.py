"""Sudoku builder: augmentation validity, generator uniqueness, CSV validation, round trip, atomic output."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataset.build_sudoku_dataset import main as build_main
from dataset.show import main as show_main
from dataset.sudoku import augment
from dataset.sudoku_csv import InvalidRowError, read_sudoku_csv
from dataset.sudoku_generate import generate_rows, write_generated_csvs
from dataset.sudoku_solver import generate_puzzle
from utils.atomic import atomic_output_dir

FIXTURE = Path(__file__).parent / "data" / "sudoku_hard.csv"


def fixture_rows() -> list[dict[str, str]]:
    with open(FIXTURE, newline="") as f:
        return list(csv.DictReader(f))


def digits(text: str) -> list[int]:
    return [0 if ch == "." else int(ch) for ch in text]


def valid_grid(board: list[int]) -> bool:
    """Independent check: every row, column and box is exactly {1..9}."""
    units = [[r * 9 + c for c in range(9)] for r in range(9)]
    units += [[r * 9 + c for r in range(9)] for c in range(9)]
    units += [
        [(br + r) * 9 + bc + c for r in range(3) for c in range(3)] for br in (0, 3, 6) for bc in (0, 3, 6)
    ]
    return all(sorted(board[i] for i in unit) == list(range(1, 10)) for unit in units)


def count_solutions(board: list[int], limit: int = 2) -> int:
    """Independent counter: plain backtracking on the cell with the fewest legal digits."""
    board = list(board)
    found = 0

    def legal(i: int) -> list[int]:
        r, c = divmod(i, 9)
        br, bc = r // 3 * 3, c // 3 * 3
        used = set(board[r * 9 : r * 9 + 9]) | set(board[c::9])
        used |= {board[(br + x) * 9 + bc + y] for x in range(3) for y in range(3)}
        return [d for d in range(1, 10) if d not in used]

    def search() -> None:
        nonlocal found
        best: tuple[int, list[int]] | None = None
        for i in range(81):
            if board[i] == 0:
                options = legal(i)
                if not options:
                    return
                if best is None or len(options) < len(best[1]):
                    best = (i, options)
        if best is None:
            found += 1
            return
        cell, options = best
        for d in options:
            board[cell] = d
            search()
            board[cell] = 0
            if found >= limit:
                return

    search()
    return found


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["source", "question", "answer", "rating"], *rows])
    return path


def test_fixture_solutions_are_valid_and_agree_with_givens():
    rows = fixture_rows()
    assert len(rows) == 6
    for row in rows:
        q, a = digits(row["question"]), digits(row["answer"])
        assert valid_grid(a), row["source"]
        assert all(g in (0, s) for g, s in zip(q, a, strict=True)), row["source"]
        assert sum(1 for g in q if g) <= 23


@settings(max_examples=30, deadline=None)
@given(index=st.integers(0, 5), seed=st.integers(0, 2**32 - 1), num_aug=st.integers(1, 12))
def test_every_augmentation_is_a_valid_consistent_pair(index, seed, num_aug):
    row = fixture_rows()[index]
    puzzle = np.array([digits(row["question"])], dtype=np.uint8)
    solution = np.array([digits(row["answer"])], dtype=np.uint8)
    puzzles, solutions = augment(puzzle, solution, num_aug, np.random.default_rng(seed))
    assert puzzles.shape == solutions.shape == (1, 1 + num_aug, 81)
    assert (puzzles[0, 0] == puzzle[0]).all() and (solutions[0, 0] == solution[0]).all()
    givens = int((puzzle > 0).sum())
    for p, s in zip(puzzles[0].tolist(), solutions[0].tolist(), strict=True):
        assert valid_grid(s)
        assert all(g in (0, d) for g, d in zip(p, s, strict=True))
        assert sum(1 for g in p if g) == givens


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_generated_puzzles_have_exactly_one_solution(seed):
    puzzle, solution = generate_puzzle(np.random.default_rng(seed))
    assert valid_grid(solution)
    assert all(g in (0, s) for g, s in zip(puzzle, solution, strict=True))
    assert count_solutions(puzzle) == 1


def test_generated_rows_respect_min_difficulty_and_are_distinct():
    rows = generate_rows(5, 2, np.random.default_rng(1))
    assert len(rows) == 5 and (rows.ratings >= 2).all()
    assert len({r.tobytes() for r in rows.questions}) == 5


def build(tmp_path: Path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "out"
    return build_main(["--output-dir", str(out), *args]), out


def load(out: Path, split: str, field: str) -> np.ndarray:
    return np.load(out / split / f"all__{field}.npy")


def decode(tokens: np.ndarray) -> list[str]:
    return ["".join("." if t == 1 else str(t - 1) for t in row) for row in tokens.tolist()]


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
