"""The Maze-Hard builder against HRM's output (golden), its row checks, its Hub path, and its recipes."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
from huggingface_hub.errors import LocalEntryNotFoundError

from config.compose import compose_pretrain_config
from dataset.build_maze_dataset import DIHEDRAL, read_maze_csv
from dataset.build_maze_dataset import main as build_main
from dataset.format import FIELDS
from dataset.sudoku.csv_source import InvalidRowError
from tests.test_download import FakeHub, endpoint  # noqa: F401  (endpoint: a fixture used below)

GOLDEN = Path(__file__).parent / "fixtures" / "maze_hard_build"
GOLDEN_ARGS = ["--subsample-size", "40", "--aug", "--seed", "0"]  # as recorded (its README)
REPO = "sapientinc/maze-30x30-hard-1k"


def assert_equals_golden(out: Path) -> None:
    """Every array value for value (dtypes may differ) and every dataset.json field HRM writes."""
    expected = GOLDEN / "expected"
    assert json.loads((out / "identifiers.json").read_text()) == json.loads(
        (expected / "identifiers.json").read_text())
    for split in ("train", "test"):
        for field in FIELDS:
            want = np.load(expected / split / f"all__{field}.npy")
            got = np.load(out / split / f"all__{field}.npy")
            assert got.shape == want.shape and np.array_equal(got, want), (split, field)
        want = json.loads((expected / split / "dataset.json").read_text())
        got = json.loads((out / split / "dataset.json").read_text())
        assert {k: got[k] for k in want} == want, split
        assert {k: got[k] for k in set(got) - set(want)} == {"total_samples": len(np.load(
            out / split / "all__inputs.npy")), "task": "maze"}


def test_build_equals_hrm_builder_output(tmp_path):
    out = tmp_path / "out"
    assert build_main(["--source-dir", str(GOLDEN / "src"), "--output-dir", str(out), *GOLDEN_ARGS]) == 0
    assert_equals_golden(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # written atomically, nothing left beside it


def test_augmented_groups_follow_the_reference_order_and_test_is_untouched(tmp_path):
    out = tmp_path / "out"
    assert build_main(["--source-dir", str(GOLDEN / "src"), "--output-dir", str(out), "--aug"]) == 0
    train = np.load(out / "train" / "all__inputs.npy").reshape(-1, 8, 12, 12)
    questions, _ = read_maze_csv(GOLDEN / "src" / "train.csv")
    assert np.array_equal(train[:, 0].reshape(len(questions), -1), questions)  # no subsample: file order
    grid = train[0, 0]
    expected = [grid, np.rot90(grid), np.rot90(grid, 2), np.rot90(grid, 3), np.fliplr(grid), np.flipud(grid),
                grid.T, np.fliplr(np.rot90(grid))]
    assert len(DIHEDRAL) == 8 and all(np.array_equal(a, b) for a, b in zip(train[0], expected, strict=True))
    assert np.array_equal(np.load(out / "test" / "all__inputs.npy"), read_maze_csv(GOLDEN / "src" / "test.csv")[0])


def test_seed_chooses_the_subsample(tmp_path):
    src = ["--source-dir", str(GOLDEN / "src"), "--subsample-size", "40"]
    draws = []
    for seed in ("0", "1"):
        out = tmp_path / seed
        assert build_main([*src, "--output-dir", str(out), "--seed", seed]) == 0
        draws.append(np.load(out / "train" / "all__inputs.npy"))
    assert draws[0].shape == (40, 144) and not np.array_equal(*draws)


def golden_rows(split: str) -> list[list[str]]:
    with open(GOLDEN / "src" / f"{split}.csv", newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def with_bad_row(source: Path, row: list[str]) -> Path:
    """train.csv of the golden with `row` as its third maze (line 4)."""
    source.mkdir()
    rows = golden_rows("train")
    with open(source / "train.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([*rows[:3], row, *rows[3:]])
    shutil.copy(GOLDEN / "src" / "test.csv", source / "test.csv")
    return source / "train.csv"


def edit(text: str, pos: int, char: str) -> str:
    return text[:pos] + char + text[pos + 1:]


_, QUESTION, ANSWER, _ = golden_rows("train")[1]
WALL_AT = QUESTION.index("#", 13)  # a wall cell inside the grid
BAD_ROWS = [
    (["x", QUESTION, ANSWER], "expected 4 fields (source,question,answer,rating), found 3"),
    (["x", QUESTION[:-1], ANSWER, "1"], "question has 143 characters, expected 144 (12x12 like the first maze)"),
    (["x", edit(QUESTION, 5, "x"), ANSWER, "1"], "question has invalid character 'x' at position 6"),
    (["x", QUESTION, edit(ANSWER, 7, "é"), "1"], "answer has invalid character 'é' at position 8"),
    (["x", QUESTION, edit(ANSWER, WALL_AT, "o"), "1"],
     f"answer changes the question at row {WALL_AT // 12 + 1}, column {WALL_AT % 12 + 1}"),
]


@pytest.mark.parametrize(("row", "reason"), BAD_ROWS)
def test_bad_row_stops_the_build_naming_file_and_line(tmp_path, capsys, row, reason):
    train = with_bad_row(tmp_path / "src", row)
    with pytest.raises(InvalidRowError) as err:
        read_maze_csv(train)
    assert str(err.value).startswith(f"{train}:4: {reason}")
    out = tmp_path / "out"
    assert build_main(["--source-dir", str(tmp_path / "src"), "--output-dir", str(out)]) == 1
    stderr = capsys.readouterr().err
    assert f"{train}:4: {reason}" in stderr and stderr.count("\n") == 1 and not out.exists()


def test_first_row_sets_the_grid_and_the_header_is_checked(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("source,question,answer,rating\nx,###,###,1\n")
    with pytest.raises(InvalidRowError, match=r"train\.csv:2: question has 3 characters, not a square grid"):
        read_maze_csv(path)
    path.write_text("q,a\n")
    with pytest.raises(InvalidRowError, match=r"train\.csv:1: expected header source,question,answer,rating"):
        read_maze_csv(path)


@pytest.mark.usefixtures("endpoint")  # a local listener: the reachability probe connects
def test_build_from_the_hub_replacing_only_the_download(tmp_path, monkeypatch):
    remote = tmp_path / "remote"
    shutil.copytree(GOLDEN / "src", remote / REPO)
    hub = FakeHub(remote, tmp_path / "hf-cache")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub.hf_hub_download)
    out = tmp_path / "out"
    assert build_main(["--output-dir", str(out), *GOLDEN_ARGS]) == 0
    assert [(repo, name, kw["repo_type"]) for repo, name, kw in hub.calls] == [
        (REPO, "train.csv", "dataset"), (REPO, "test.csv", "dataset")]
    assert_equals_golden(out)


def test_offline_without_a_cache_is_one_line(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("cannot reach the Hub and no cached file")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    assert build_main(["--output-dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"could not fetch {REPO}" in err and "--source-dir" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("name", "expected"), [
    ("hrm_maze_hard", {"epochs": 20000, "eval_interval_steps": 2000, "checkpoint_interval_steps": 2000,
                       "ema": False}),
    ("trm_maze_hard", {"epochs": 50000, "eval_interval_steps": 5000, "ema": True}),
])
def test_maze_hard_recipes_are_the_published_commands(name, expected):
    config = compose_pretrain_config(f"train/{name}", [])
    published = {"lr": 1e-4, "puzzle_emb_lr": 1e-4, "weight_decay": 1.0, "puzzle_emb_weight_decay": 1.0,
                 "global_batch_size": 768, "run_name": name}
    assert {k: getattr(config, k) for k in {**published, **expected}} == {**published, **expected}
    assert config.dataset.data_paths == ["data/maze-30x30-hard-1k"]
    arch = {k: config.arch[k] for k in ("name", "H_cycles", "L_cycles", "L_layers", "hidden_size", "pos_encodings")}
    if name == "trm_maze_hard":
        assert arch == {"name": "trm@TRMModel", "H_cycles": 3, "L_cycles": 4, "L_layers": 2, "hidden_size": 512,
                        "pos_encodings": "rope"} and config.arch["mlp_t"] is False
    else:  # HRM's default arch
        assert arch == {"name": "hrm@HRMModel", "H_cycles": 2, "L_cycles": 2, "L_layers": 4, "hidden_size": 512,
                        "pos_encodings": "rope"} and config.arch["H_layers"] == 4
