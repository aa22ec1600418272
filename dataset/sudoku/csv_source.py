"""Read and write Sudoku CSVs (`source,question,answer,rating`) with per-row validation.

Rows are read in chunks and checked with vectorised numpy: an 81-character question of
'1'-'9' and '.', an 81-digit answer that is a complete valid Sudoku agreeing with every
given, and an integer rating. The first bad row stops reading with `file:line: reason`
unless invalid rows are to be skipped, in which case they are counted.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dataset.sudoku import UNIT_NAMES, agrees_with_givens, board_to_string, unit_violations

HEADER = ["source", "question", "answer", "rating"]
_CHUNK = 1 << 16
_INVALID = 255
_QUESTION_LUT = np.full(256, _INVALID, dtype=np.uint8)
_QUESTION_LUT[ord(".")] = 0
_QUESTION_LUT[np.frombuffer(b"123456789", dtype=np.uint8)] = np.arange(1, 10)
_ANSWER_LUT = _QUESTION_LUT.copy()
_ANSWER_LUT[ord(".")] = _INVALID


class InvalidRowError(ValueError):
    """A CSV row failed validation; the message is `file:line: reason`."""


@dataclass
class SudokuRows:
    """Validated rows: boards as digits [N, 81] (0 = empty), ratings and CSV line numbers."""

    questions: np.ndarray
    answers: np.ndarray
    ratings: np.ndarray
    lines: np.ndarray
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.questions)

    def select(self, index: np.ndarray) -> SudokuRows:
        return SudokuRows(
            self.questions[index], self.answers[index], self.ratings[index], self.lines[index], self.skipped
        )


def _to_digits(texts: list[str], lut: np.ndarray) -> np.ndarray:
    """Strings already known to be 81 characters long -> [N, 81] via a byte lookup table."""
    raw = "".join(texts).encode("ascii", errors="replace")
    return lut[np.frombuffer(raw, dtype=np.uint8)].reshape(len(texts), 81)


def _board_reason(name: str, text: str, digits: np.ndarray, allowed: str) -> str | None:
    if len(text) != 81:
        return f"{name} has {len(text)} characters, expected 81"
    if (digits == _INVALID).any():
        pos = int(np.argmax(digits == _INVALID))
        return f"{name} has invalid character {text[pos]!r} at position {pos + 1} (expected {allowed})"
    return None


def _row_reason(row: list[str], question: np.ndarray, answer: np.ndarray) -> str:
    """Why a row failed the vectorised checks (called for bad rows only)."""
    if len(row) != 4:
        return f"expected 4 fields (source,question,answer,rating), found {len(row)}"
    reason = _board_reason("question", row[1], question, "1-9 or '.'") or _board_reason(
        "answer", row[2], answer, "1-9"
    )
    if reason:
        return reason
    violations = unit_violations(answer[None])[0]
    if violations.any():
        return f"answer is not a valid Sudoku ({UNIT_NAMES[int(np.argmax(violations))]} repeats a digit)"
    clash = (question != 0) & (question != answer)
    if clash.any():
        cell = int(np.argmax(clash))
        return (
            f"answer disagrees with the given {question[cell]} at row {cell // 9 + 1}, column {cell % 9 + 1}"
        )
    return f"rating {row[3]!r} is not a non-negative integer"


def _parse_chunk(rows: list[list[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised checks of a chunk: (valid mask, questions, answers, ratings)."""
    n = len(rows)
    shaped = np.array([len(r) == 4 and len(r[1]) == 81 and len(r[2]) == 81 for r in rows], dtype=bool)
    questions = np.full((n, 81), _INVALID, dtype=np.uint8)
    answers = np.full((n, 81), _INVALID, dtype=np.uint8)
    index = np.flatnonzero(shaped)
    if len(index):
        questions[index] = _to_digits([rows[i][1] for i in index], _QUESTION_LUT)
        answers[index] = _to_digits([rows[i][2] for i in index], _ANSWER_LUT)
    rating_text = [r[3].strip() if len(r) == 4 else "" for r in rows]
    rated = np.array([t.isascii() and t.isdigit() for t in rating_text], dtype=bool)
    ratings = np.array(
        [int(t) if ok else 0 for t, ok in zip(rating_text, rated, strict=True)], dtype=np.int64
    )
    valid = (
        shaped
        & (questions != _INVALID).all(axis=1)
        & ~unit_violations(answers).any(axis=1)
        & agrees_with_givens(questions, answers)
        & rated
    )
    return valid, questions, answers, ratings


def _read_chunks(path: Path) -> Iterator[tuple[list[list[str]], list[int]]]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != HEADER:
            raise InvalidRowError(f"{path}:1: expected header {','.join(HEADER)}, found {header}")
        rows: list[list[str]] = []
        lines: list[int] = []
        for row in reader:
            if not row:
                continue
            rows.append(row)
            lines.append(reader.line_num)
            if len(rows) == _CHUNK:
                yield rows, lines
                rows, lines = [], []
        if rows:
            yield rows, lines


def read_sudoku_csv(path: Path | str, skip_invalid: bool = False) -> SudokuRows:
    """Read and validate every row; raise InvalidRowError on the first bad row unless skipping."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CSV file")
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    skipped: list[str] = []
    for rows, lines in _read_chunks(path):
        valid, questions, answers, ratings = _parse_chunk(rows)
        for i in np.flatnonzero(~valid):
            message = f"{path}:{lines[i]}: {_row_reason(rows[i], questions[i], answers[i])}"
            if not skip_invalid:
                raise InvalidRowError(message)
            skipped.append(message)
        line_numbers = np.asarray(lines, dtype=np.int64)
        parts.append((questions[valid], answers[valid], ratings[valid], line_numbers[valid]))
    if not parts:
        empty = np.zeros((0, 81), dtype=np.uint8)
        return SudokuRows(empty, empty.copy(), np.zeros(0, np.int64), np.zeros(0, np.int64), skipped)
    return SudokuRows(*(np.concatenate(arrays) for arrays in zip(*parts, strict=True)), skipped=skipped)


def write_sudoku_csv(
    path: Path | str, questions: np.ndarray, answers: np.ndarray, ratings: np.ndarray, source: str
) -> None:
    """Write boards in the same `source,question,answer,rating` format the reader accepts."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for q, a, r in zip(questions, answers, ratings, strict=True):
            writer.writerow([source, board_to_string(q), board_to_string(a), int(r)])
