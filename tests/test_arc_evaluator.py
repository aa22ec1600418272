"""The ARC evaluator against TRM's recorded results (tests/fixtures/arc/eval), the official all-or-nothing
rule on hand-made tasks, two gloo ranks against one process, and scripts/arc_score.py."""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from dataset.arc.evaluator import ArcEvaluator, arc_evaluator
from dataset.arc.grid import augment, augmentation_name, encode
from dataset.format import DatasetFormatError
from evaluation.outputs import write_outputs
from scripts import arc_score
from tests.conftest import FIXTURES, ROOT, free_port, gloo_rank

DATA = FIXTURES / "arc" / "build" / "output"
EVAL = FIXTURES / "arc" / "eval"
FIELDS = ("inputs", "puzzle_identifiers", "preds", "q_halt_logits")
NUM_REAL = 54  # rows 54..63 are blank padding


def fixture_rows(round2: bool = False) -> dict[str, np.ndarray]:
    prefix = {"preds": "round2_", "q_halt_logits": "round2_"} if round2 else {}
    return {f: np.load(EVAL / f"{prefix.get(f, '')}{f}.npy") for f in FIELDS}


def expected(name: str) -> object:
    return json.loads((EVAL / name).read_text())


def feed(evaluator: ArcEvaluator, rows: dict[str, np.ndarray], batch: int = 16) -> None:
    evaluator.begin()
    for start in range(0, len(rows["inputs"]), batch):
        evaluator.update({f: a[start:start + batch] for f, a in rows.items()})


def assert_metrics(got: dict[str, float], want: dict[str, float]) -> None:
    """TRM's metrics exactly, plus ours."""
    assert set(got) == {*want, "ARC/official_pass@2"}
    for name, value in want.items():
        assert abs(got[name] - value) <= 1e-12, name


def official_from_ranking(ranking: dict) -> float:
    """The all-or-nothing rule, worked out by hand from TRM's recorded ranking."""
    solved = [all(any(c["correct"] for c in cands[:2]) for cands in pairs) for pairs in ranking.values()]
    return sum(solved) / len(solved)


def test_one_round_reproduces_trm():
    evaluator = arc_evaluator(DATA)
    assert evaluator.fields == FIELDS and not evaluator.aggregated_voting
    feed(evaluator, fixture_rows())
    result = evaluator.result()
    assert_metrics(result.metrics, expected("metrics.json"))
    assert result.metrics["ARC/official_pass@2"] == official_from_ranking(expected("ranking.json")) == 0.75
    assert set(result.files) == {"submission.json"}
    assert result.files["submission.json"] == expected("submission.json")
    assert list(result.files["submission.json"]) == list(json.loads((DATA / "test_puzzles.json").read_text()))


def test_ranking_matches_trm_state():
    evaluator = arc_evaluator(DATA)
    feed(evaluator, fixture_rows())
    ranked = evaluator.ranking()
    want = expected("ranking.json")
    assert list(ranked) == list(want)
    for task, pairs in want.items():
        assert len(ranked[task]) == len(pairs)
        for got, candidates in zip(ranked[task], pairs, strict=True):
            assert [(c.grid.tolist(), c.count, c.correct) for c in got] == \
                   [(c["grid"], c["count"], c["correct"]) for c in candidates], task
            assert all(abs(c.mean_q - w["mean_q"]) <= 1e-12 for c, w in zip(got, candidates, strict=True)), task


def test_votes_saved_halfway_continue_to_the_same_result(tmp_path):
    """A stopped evaluation saves the evaluator's votes (evaluation/pass_state.py) and a fresh one goes on."""
    rows = fixture_rows()
    half = {f: a[: len(a) // 2] for f, a in rows.items()}
    rest = {f: a[len(a) // 2 :] for f, a in rows.items()}
    first = arc_evaluator(DATA)
    first.begin()
    first.update(half)
    torch.save(first.state_dict(), tmp_path / "votes.pt")
    second = arc_evaluator(DATA)
    second.begin()
    second.load_state_dict(torch.load(tmp_path / "votes.pt", weights_only=True))
    second.update(rest)
    result = second.result()
    assert_metrics(result.metrics, expected("metrics.json"))
    assert result.files["submission.json"] == expected("submission.json")


def test_round2_accumulated_keeps_round1_votes():
    evaluator = ArcEvaluator(DATA, aggregated_voting=True)
    feed(evaluator, fixture_rows())
    feed(evaluator, fixture_rows(round2=True))
    result = evaluator.result()
    assert_metrics(result.metrics, expected("round2_accumulated_metrics.json"))
    assert result.files["submission.json"] == expected("round2_accumulated_submission.json")


def test_round2_fresh_forgets_round1():
    """A fresh evaluator fed round 2 only, and the default evaluator reused after round 1, agree with TRM's."""
    for rounds in ([fixture_rows(round2=True)], [fixture_rows(), fixture_rows(round2=True)]):
        evaluator = ArcEvaluator(DATA)
        for rows in rounds:
            feed(evaluator, rows)
        result = evaluator.result()
        assert_metrics(result.metrics, expected("round2_fresh_metrics.json"))
        assert result.files["submission.json"] == expected("round2_fresh_submission.json")
    assert expected("round2_fresh_metrics.json") != expected("round2_accumulated_metrics.json")


def test_batch_size_and_blank_rows_do_not_matter():
    rows = fixture_rows()
    results = []
    for batch in (1, 5, 16, 64):
        evaluator = arc_evaluator(DATA)
        feed(evaluator, rows, batch)
        results.append(evaluator.result())
    real = arc_evaluator(DATA)
    feed(real, {f: a[:NUM_REAL] for f, a in rows.items()})
    results.append(real.result())
    assert all(r.metrics == results[0].metrics and r.files == results[0].files for r in results)
    assert (rows["puzzle_identifiers"][NUM_REAL:] == 0).all() and (rows["q_halt_logits"][NUM_REAL:] == 9.0).all()


def test_gathered_votes_stay_small():
    """What crosses ranks is keys, floats and distinct grids: far below the 7,200 bytes of a row's tokens."""
    rows = {f: np.concatenate([a[:NUM_REAL]] * 20) for f, a in fixture_rows().items()}
    evaluator = arc_evaluator(DATA)
    feed(evaluator, rows, 768)
    grids, votes = evaluator.local_votes()
    ranked = expected("ranking.json").values()
    assert len(grids) == len({json.dumps(c["grid"]) for pairs in ranked for cands in pairs for c in cands})
    assert sum(len(v) for by_input in votes.values() for v in by_input.values()) == 20 * NUM_REAL
    assert len(pickle.dumps((grids, votes))) < 30 * len(rows["inputs"])


# Hand-made tasks: one task with two test inputs, scored through an augmented version.
X0, Y0 = np.array([[1, 2], [3, 4]], np.uint8), np.array([[4, 3], [2, 1]], np.uint8)
X1, Y1 = np.array([[5, 0, 6]], np.uint8), np.array([[6], [0], [5]], np.uint8)
MAPPING = np.array([0, 2, 1, 3, 4, 5, 6, 7, 8, 9], np.uint8)
NAMES = ["<blank>", "abcd0001", augmentation_name("abcd0001", 1, MAPPING), "abcd0001|||t0|||0123456789"]


def hand_dataset(root: Path, blank_id: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "identifiers.json").write_text(json.dumps(NAMES))
    test = [{"input": X0.tolist(), "output": Y0.tolist()}, {"input": X1.tolist(), "output": Y1.tolist()}]
    (root / "test_puzzles.json").write_text(json.dumps({"abcd0001": {"train": [], "test": test}}))
    (root / "test").mkdir(exist_ok=True)
    (root / "test" / "dataset.json").write_text(json.dumps({
        "pad_id": 0, "ignore_label_id": 0, "blank_identifier_id": blank_id, "vocab_size": 12, "seq_len": 900,
        "num_puzzle_identifiers": len(NAMES), "total_groups": 1, "mean_puzzle_examples": 2.0,
        "total_puzzles": 2, "sets": ["all"]}))
    return root


def hand_rows(votes: list[tuple[int, np.ndarray, np.ndarray, float]]) -> dict[str, np.ndarray]:
    """(identifier, input, prediction, q logit) in the original frame; each row sees its name's version."""
    inputs, preds = [], []
    for ident, x, y, _ in votes:
        tid, mapping = (1, MAPPING) if ident == 2 else (0, np.arange(10, dtype=np.uint8))
        inputs.append(encode(augment(x, tid, mapping)))
        preds.append(encode(augment(y, tid, mapping)))
    return {"inputs": np.stack(inputs).astype(np.int32), "preds": np.stack(preds).astype(np.int32),
            "puzzle_identifiers": np.array([v[0] for v in votes], np.int32),
            "q_halt_logits": np.array([v[3] for v in votes], np.float32)}


def score(data: Path, votes: list, **options) -> tuple[dict[str, float], dict]:
    evaluator = ArcEvaluator(data, **options)
    feed(evaluator, hand_rows(votes))
    result = evaluator.result()
    return result.metrics, result.files["submission.json"]["abcd0001"]


def test_official_rule_is_all_or_nothing(tmp_path):
    data = hand_dataset(tmp_path)
    wrong = np.array([[9]], np.uint8)
    once, _ = score(data, [(1, X0, Y0, 0.0), (2, X0, Y0, 0.0), (2, X1, wrong, 0.0)])
    assert once["ARC/pass@1"] == once["ARC/pass@2"] == 0.5
    assert once["ARC/official_pass@2"] == 0.0
    twice, entries = score(data, [(2, X0, Y0, 0.0), (1, X1, wrong, 2.0), (2, X1, Y1, 0.0), (3, X1, Y1, -1.0)])
    assert twice["ARC/pass@2"] == twice["ARC/official_pass@2"] == 1.0
    assert twice["ARC/pass@1"] == 1.0  # Y1 has two votes (the augmented one mapped back) against one
    assert entries == [{"attempt_1": Y0.tolist(), "attempt_2": Y0.tolist()},
                       {"attempt_1": Y1.tolist(), "attempt_2": wrong.tolist()}]
    second, _ = score(data, [(1, X0, Y0, 0.0), (1, X1, wrong, 2.0), (3, X1, Y1, -1.0)])
    assert (second["ARC/pass@1"], second["ARC/pass@2"], second["ARC/official_pass@2"]) == (0.5, 1.0, 1.0)
    _, three = score(data, [(1, X0, Y0, 0.0), (1, X1, wrong, 2.0), (3, X1, Y1, -1.0)], submission_k=3)
    assert three[1] == {"attempt_1": wrong.tolist(), "attempt_2": Y1.tolist(), "attempt_3": wrong.tolist()}


def test_test_input_without_candidates_keeps_its_entry(tmp_path, caplog):
    data = hand_dataset(tmp_path)
    with caplog.at_level(logging.WARNING, logger="dataset.arc.evaluator"):
        metrics, entries = score(data, [(2, X1, Y1, 0.0)])
    assert len(entries) == 2
    assert entries[0] == {"attempt_1": [[0, 0], [0, 0]], "attempt_2": [[0, 0], [0, 0]]}
    assert entries[1] == {"attempt_1": Y1.tolist(), "attempt_2": Y1.tolist()}
    assert [r.getMessage() for r in caplog.records] == [
        "ARC task abcd0001 test input 0 has no predictions; submitting [[0, 0], [0, 0]]"]
    assert metrics["ARC/pass@1"] == 0.5 and metrics["ARC/official_pass@2"] == 0.0


def test_blank_id_comes_from_the_test_split(tmp_path):
    """Rows carrying the blank identifier are dropped even when that identifier names a puzzle."""
    votes = [(1, X0, Y0, 0.0), (3, X1, Y1, 0.0)]
    plain, _ = score(hand_dataset(tmp_path / "plain"), votes)
    assert plain["ARC/pass@1"] == 1.0
    blank3, entries = score(hand_dataset(tmp_path / "blank3", blank_id=3), votes)
    assert blank3["ARC/pass@1"] == 0.5 and entries[1]["attempt_1"] == [[0, 0], [0, 0]]


def test_bad_datasets_name_the_file(tmp_path):
    data = hand_dataset(tmp_path / "ok")
    (data / "identifiers.json").write_text(json.dumps(["<blank>"]))
    with pytest.raises(DatasetFormatError, match=re.escape(f"{data / 'identifiers.json'}: no puzzle names")):
        arc_evaluator(data)
    data = hand_dataset(tmp_path / "no_test_puzzles")
    (data / "test_puzzles.json").unlink()
    with pytest.raises(DatasetFormatError, match=re.escape(f"{data / 'test_puzzles.json'}: missing")):
        arc_evaluator(data)
    data = hand_dataset(tmp_path / "no_names")
    (data / "identifiers.json").unlink()
    with pytest.raises(DatasetFormatError, match=re.escape(f"{data / 'identifiers.json'}: missing")):
        arc_evaluator(data)
    with pytest.raises(DatasetFormatError, match="no such dataset directory"):
        arc_evaluator(tmp_path / "nowhere")
    evaluator = arc_evaluator(hand_dataset(tmp_path / "ids"))
    rows = hand_rows([(1, X0, Y0, 0.0)])
    rows["puzzle_identifiers"][:] = len(NAMES)
    names = tmp_path / "ids" / "identifiers.json"
    with pytest.raises(ValueError, match=re.escape(f"puzzle_identifiers: 4 is outside {names} (4 names)")):
        evaluator.update(rows)


def _rank_worker(rank: int, port: int, out: Path) -> None:
    rows = fixture_rows()
    half = slice(0, 32) if rank == 0 else slice(32, None)  # contiguous: rank order is row order
    with gloo_rank(rank, port):
        evaluator = ArcEvaluator(DATA, aggregated_voting=True)
        feed(evaluator, {f: a[half] for f, a in rows.items()})
        result = evaluator.result()
        (out / f"rank{rank}.json").write_text(json.dumps(None if result is None else
                                                         {"metrics": result.metrics, "files": result.files}))


def test_two_gloo_ranks_equal_one_process(tmp_path):
    single = arc_evaluator(DATA)
    feed(single, fixture_rows())
    want = single.result()
    mp.spawn(_rank_worker, args=(free_port(), tmp_path), nprocs=2, join=True)
    assert json.loads((tmp_path / "rank1.json").read_text()) is None
    got = json.loads((tmp_path / "rank0.json").read_text())
    assert got == json.loads(json.dumps({"metrics": want.metrics, "files": want.files}))
    assert got["files"]["submission.json"] == expected("submission.json")


# scripts/arc_score.py

def run_score(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "arc_score.py"), *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def assert_one_line(proc: subprocess.CompletedProcess, *expected_text: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], proc.stderr
    for text in expected_text:
        assert text in errors[0], (text, errors[0])


def printed(stdout: str) -> dict[str, float]:
    return {name: float(value) for name, value in (line.split() for line in stdout.splitlines()[:-1])}


def check_scored(stdout: str, out: Path, golden: str) -> None:
    assert_metrics(printed(stdout), expected(f"{golden}metrics.json"))
    assert stdout.splitlines()[-1] == f"wrote metrics.json, submission.json to {out}"
    assert_metrics(json.loads((out / "metrics.json").read_text()), expected(f"{golden}metrics.json"))
    assert json.loads((out / "submission.json").read_text()) == expected(f"{golden}submission.json")
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "submission.json"]


def test_score_script_reproduces_trm(tmp_path):
    out = tmp_path / "scored"
    proc = run_score(str(DATA), str(EVAL), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_scored(proc.stdout, out, "")


@pytest.mark.parametrize(("args", "golden"), [
    (["--round2", str(EVAL), "--round2-prefix", "round2_", "--aggregated-voting"], "round2_accumulated_"),
    (["--prefix", "round2_"], "round2_fresh_"),
])
def test_score_script_second_rounds(tmp_path, capsys, args, golden):
    """The fixture's round-2 files, read through the prefixes (in-process: the subprocess path is tested above)."""
    out = tmp_path / "scored"
    assert arc_score.main([str(DATA), str(EVAL), *args, "--out", str(out)]) == 0
    check_scored(capsys.readouterr().out, out, golden)


def test_score_script_reads_evaluate_outputs(tmp_path, capsys):
    """evaluate.py's `_outputs.pt` (written by its own writer), rows in any batch size; default --out beside it."""
    rows = {f: torch.from_numpy(a[:NUM_REAL]) for f, a in fixture_rows().items()}
    order = {"puzzle": torch.arange(NUM_REAL), "restart": torch.zeros(NUM_REAL, dtype=torch.long)}
    saved = write_outputs({**rows, **order}, tmp_path / "run_D16_outputs.pt")
    assert arc_score.main([str(DATA), str(saved), "--batch-size", "1"]) == 0
    out = tmp_path / "run_D16_outputs_arc_score"
    assert_metrics(printed(capsys.readouterr().out), expected("metrics.json"))
    assert json.loads((out / "submission.json").read_text()) == expected("submission.json")


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    """Copies of the fixture's outputs, each broken in one way."""
    root = tmp_path_factory.mktemp("broken")
    rows = fixture_rows()
    cases = {"missing": {"preds": None}, "short": {"q_halt_logits": rows["q_halt_logits"][:63]},
             "shape": {"preds": rows["preds"][:, :899]}, "ids": {"puzzle_identifiers": np.full(64, 91, np.int32)}}
    for case, changes in cases.items():
        (root / case).mkdir()
        for f, array in {**rows, **changes}.items():
            if array is not None:
                np.save(root / case / f"{f}.npy", array)
    (root / "garbage").mkdir()
    for f, array in rows.items():
        np.save(root / "garbage" / f"{f}.npy", array)
    (root / "garbage" / "preds.npy").write_text("not numpy")
    torch.save({f: torch.from_numpy(a) for f, a in rows.items() if f != "q_halt_logits"}, root / "partial_outputs.pt")
    return root


@pytest.mark.parametrize(("args", "expected_text"), [
    (["missing"], ["missing/preds.npy: missing file"]),
    (["short"], ["short/q_halt_logits.npy: 63 rows, but", "short/inputs.npy has 64"]),
    (["shape"], ["shape/preds.npy: expected integer token ids of shape [N, 900]", "(64, 899)"]),
    (["ids"], ["ids/puzzle_identifiers.npy: identifier 91 at row 0 is outside", "identifiers.json (91 names)"]),
    (["garbage"], ["garbage/preds.npy: not a readable .npy file"]),
    (["partial_outputs.pt"], ["partial_outputs.pt: no q_halt_logits tensor"]),
    (["nowhere"], ["nowhere: no such directory of outputs"]),
    (["missing", "--round2", "missing"], ["--round2: without --aggregated-voting"]),
])
def test_score_script_bad_outputs(broken, tmp_path, args, expected_text):
    source, *rest = args
    assert_one_line(run_score(str(DATA), str(broken / source), *rest, cwd=tmp_path), *expected_text)
    assert not any(broken.glob("*/arc_score"))


def test_score_script_bad_dataset(tmp_path):
    data = hand_dataset(tmp_path / "data")
    (data / "test_puzzles.json").unlink()
    assert_one_line(run_score(str(data), str(EVAL), cwd=tmp_path), f"{data / 'test_puzzles.json'}: missing")
