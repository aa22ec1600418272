"""Hugging Face paths: only huggingface_hub's network functions are replaced by local copies."""

from __future__ import annotations

import errno
import fnmatch
import importlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, Response

from dataset import download
from dataset.build_sudoku_dataset import main as build_sudoku
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "data" / "sudoku_hard.csv"


class FakeHub:
    """Serves `<remote>/<repo_id>/...` the way the Hub would, recording every call."""

    def __init__(self, remote: Path, cache: Path):
        self.remote, self.cache = remote, cache
        self.calls: list[tuple[str, str | None, dict]] = []

    def hf_hub_download(self, repo_id: str, filename: str, **kwargs) -> str:
        self.calls.append((repo_id, filename, kwargs))
        target = Path(kwargs.get("local_dir") or self.cache / repo_id) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.remote / repo_id / filename, target)
        return str(target)

    def snapshot_download(self, repo_id: str, **kwargs) -> str:
        self.calls.append((repo_id, None, kwargs))
        source, target = self.remote / repo_id, Path(kwargs["local_dir"])
        patterns = kwargs.get("allow_patterns") or ["*"]
        for path in source.rglob("*"):
            name = path.relative_to(source).as_posix()
            if path.is_file() and any(fnmatch.fnmatch(name, p) for p in patterns):
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target / name)
        return str(target)


@pytest.fixture
def endpoint(monkeypatch):
    """A local TCP listener standing in for the Hub's endpoint, so the reachability probe connects."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield


@pytest.fixture
def hub(tmp_path, monkeypatch, endpoint) -> FakeHub:
    remote = tmp_path / "remote"
    sudoku = remote / "sapientinc/sudoku-extreme"
    sudoku.mkdir(parents=True)
    shutil.copy(FIXTURE, sudoku / "train.csv")
    shutil.copy(FIXTURE, sudoku / "test.csv")
    data = remote / "locuslab/EqR-data" / "sudoku-extreme-1k-aug-1000" / "train"
    data.mkdir(parents=True)
    (data / "dataset.json").write_text("{}")
    for name in download.CHECKPOINT_FILES:
        path = remote / "locuslab/EqR-model" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
    fake = FakeHub(remote, tmp_path / "hf-cache")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake.hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return fake


def test_sudoku_build_from_the_hub(tmp_path, hub):
    out = tmp_path / "sudoku"
    assert build_sudoku(["--output-dir", str(out), "--num-aug", "2", "--subsample-size", "4"]) == 0
    assert [(repo, name, kw["repo_type"]) for repo, name, kw in hub.calls] == [
        ("sapientinc/sudoku-extreme", "train.csv", "dataset"),
        ("sapientinc/sudoku-extreme", "test.csv", "dataset"),
    ]
    assert np.load(out / "train" / "all__inputs.npy").shape == (12, 81)
    assert np.load(out / "test" / "all__inputs.npy").shape == (6, 81)


def test_sudoku_build_offline_prints_one_clear_message(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("cannot reach the Hub and no cached file")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    assert build_sudoku(["--output-dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "could not fetch sapientinc/sudoku-extreme" in err and "unreachable" in err
    assert "--source generate" in err and "--source-dir" in err
    assert not (tmp_path / "out").exists()


def test_download_data_and_checkpoints(tmp_path, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    data, ckpt = tmp_path / "data", tmp_path / "checkpoints"
    assert download.main(["--with-ckpts", "--data-dir", str(data), "--ckpt-dir", str(ckpt)]) == 0
    assert (data / "sudoku-extreme-1k-aug-1000" / "train" / "dataset.json").is_file()
    assert (ckpt / "sudoku-extreme" / "eqr.pth").read_bytes() == b"sudoku-extreme/eqr.pth"
    assert (ckpt / "maze-unique" / "eqr.pth").read_bytes() == b"maze-unique/eqr.pth"
    repo, _, kwargs = hub.calls[0]
    assert repo == "locuslab/EqR-data" and kwargs["repo_type"] == "dataset" and kwargs["token"] == "hf_secret"
    assert [(r, kw["allow_patterns"], kw["token"]) for r, _, kw in hub.calls[1:]] == [
        ("locuslab/EqR-model", ["sudoku-extreme/eqr.pth", "maze-unique/eqr.pth"], "hf_secret"),
    ]


def test_ckpts_only_skips_the_data(tmp_path, hub):
    assert (
        download.main(
            ["--ckpts-only", "--data-dir", str(tmp_path / "data"), "--ckpt-dir", str(tmp_path / "c")]
        )
        == 0
    )
    assert {repo for repo, _, _ in hub.calls} == {"locuslab/EqR-model"}
    assert not (tmp_path / "data").exists()


def test_defaults_are_the_references_paths(tmp_path, hub, monkeypatch):
    """No options: the dataset repo into data/, the checkpoints into downloaded_checkpoints/<task>/eqr.pth."""
    monkeypatch.chdir(tmp_path)
    assert download.main([]) == 0
    assert (tmp_path / "data" / "sudoku-extreme-1k-aug-1000" / "train" / "dataset.json").is_file()
    for name in ("sudoku-extreme/eqr.pth", "maze-unique/eqr.pth"):
        assert (tmp_path / "downloaded_checkpoints" / name).read_bytes() == name.encode()
    assert [(repo, kw["local_dir"], kw["cache_dir"]) for repo, _, kw in hub.calls] == [
        ("locuslab/EqR-data", "data", None), ("locuslab/EqR-model", "downloaded_checkpoints", None)]


def test_reference_options_choose_repos_files_and_cache(tmp_path, hub, capsys):
    """--skip-data, --ckpt-repo, --ckpt-pattern (repeatable), --cache-dir; then --data-repo with --skip-ckpts."""
    model = hub.remote / "me/other-model"
    for name in ("a/eqr.pth", "b/eqr.pth", "b/notes.txt"):
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_text(name)
    data = hub.remote / "me/other-data" / "maze-x" / "train"
    data.mkdir(parents=True)
    (data / "dataset.json").write_text("{}")
    ckpt, cache = tmp_path / "ck", tmp_path / "cache"
    assert download.main(["--skip-data", "--ckpt-repo", "me/other-model", "--ckpt-pattern", "a/*.pth",
                          "--ckpt-pattern", "b/eqr.pth", "--ckpt-dir", str(ckpt), "--cache-dir", str(cache)]) == 0
    assert sorted(p.relative_to(ckpt).as_posix() for p in ckpt.rglob("*") if p.is_file()) == ["a/eqr.pth",
                                                                                              "b/eqr.pth"]
    assert capsys.readouterr().out.splitlines() == [f"checkpoint -> {ckpt / 'a/eqr.pth'}",
                                                    f"checkpoint -> {ckpt / 'b/eqr.pth'}"]
    assert [(r, kw["allow_patterns"], kw["cache_dir"]) for r, _, kw in hub.calls] == [
        ("me/other-model", ["a/*.pth", "b/eqr.pth"], str(cache))]
    assert download.main(["--skip-ckpts", "--data-repo", "me/other-data", "--data-dir", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "maze-x" / "train" / "dataset.json").is_file()
    assert [r for r, _, _ in hub.calls[1:]] == ["me/other-data"]


def test_a_pattern_that_matches_nothing_is_one_error_line(tmp_path, hub, capsys):
    assert download.main(["--skip-data", "--ckpt-pattern", "nope/*.pth", "--ckpt-dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "locuslab/EqR-model provided nothing for nope/*.pth" in err
    with pytest.raises(SystemExit):
        download.main(["--skip-data", "--skip-ckpts"])
    assert "leaves nothing to fetch" in capsys.readouterr().err


def not_found() -> Response:
    """A 404 response object of the HTTP library huggingface_hub is built on."""
    http = importlib.import_module(Response.__module__)
    return Response(404, request=http.Request("GET", "https://huggingface.co/api/datasets/x"))


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (LocalEntryNotFoundError("offline"), "unreachable"),
        (RepositoryNotFoundError("404", response=not_found()), "HF_TOKEN"),
    ],
)
def test_download_failure_is_one_message_with_the_local_alternative(
    tmp_path, monkeypatch, capsys, endpoint, error, words
):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)
    assert download.main(["--data-dir", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "locuslab/EqR-data" in err and words in err and "build_maze_unique_dataset" in err


def test_shell_wrapper_runs_the_python_entry_point():
    script = ROOT / "scripts" / "download_artifacts.sh"
    assert script.stat().st_mode & 0o111
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True, env=env)
    for option in ("--skip-data", "--data-repo", "--ckpt-repo", "--ckpt-pattern", "--cache-dir", "--ckpt-dir",
                   "--with-ckpts", "--ckpts-only"):
        assert option in result.stdout, option


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("flags", [[], ["--ckpts-only"], ["--with-ckpts"]])
def test_offline_download_says_unreachable_quickly(tmp_path, existing, flags):
    """The Hub's address refuses connections (the network call, stubbed): never success, never a wait."""
    data, ckpt = tmp_path / "data", tmp_path / "checkpoints"
    if existing:  # an earlier download or build must not pass for this one
        (data / "sudoku-extreme-1k-aug-1000" / "train").mkdir(parents=True)
        (data / "sudoku-extreme-1k-aug-1000" / "train" / "dataset.json").write_text("{}")
        ckpt.mkdir()
    env = {**os.environ, "PYTHON": sys.executable, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    env.pop("HF_HUB_OFFLINE", None)
    start = time.perf_counter()
    proc = subprocess.run([str(ROOT / "scripts" / "download_artifacts.sh"), *flags, "--data-dir", str(data),
                           "--ckpt-dir", str(ckpt)], capture_output=True, text=True, env=env, cwd=tmp_path)
    elapsed = time.perf_counter() - start
    assert proc.returncode != 0 and elapsed < 5, (proc.returncode, elapsed)
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "unreachable" in proc.stderr and "->" not in proc.stdout


def test_offline_hub_build_fails_at_once_without_a_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    start = time.perf_counter()
    assert build_sudoku(["--output-dir", str(tmp_path / "out")]) == 1
    assert time.perf_counter() - start < 5
    err = capsys.readouterr().err
    assert "unreachable" in err and "--source generate" in err and err.count("\n") == 1


def refuse(*args, **kwargs):
    raise ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))


@pytest.fixture
def hub_refuses(tmp_path, monkeypatch):
    """The Hub's own address (HF_ENDPOINT unset) on a fresh client; only the network call is refused."""
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delattr(huggingface_hub, "constants", raising=False)  # as right after `import huggingface_hub`
    monkeypatch.setattr(download.socket, "create_connection", refuse)
    monkeypatch.setattr(download.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))


@pytest.mark.parametrize("source", ["download", "sudoku"])
def test_default_endpoint_unreachable_is_one_line_naming_it(tmp_path, capsys, hub_refuses, source):
    out = tmp_path / "out"
    start = time.perf_counter()
    if source == "download":
        rc = download.main(["--with-ckpts", "--data-dir", str(out), "--ckpt-dir", str(tmp_path / "ckpt")])
    else:
        rc = build_sudoku(["--output-dir", str(out)])
    assert rc == 1 and time.perf_counter() - start < 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "the Hugging Face Hub is unreachable (huggingface.co:443: Connection refused" in err
    assert not out.exists()
