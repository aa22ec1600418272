"""Fetch the prebuilt datasets and released checkpoints from the Hugging Face Hub.

`python -m dataset.download [--skip-data | --skip-ckpts] [--data-repo R] [--ckpt-repo R] [--ckpt-pattern P ...]
[--data-dir DIR] [--ckpt-dir DIR] [--cache-dir DIR]` (or `scripts/download_artifacts.sh`), with the reference's
options and paths: the dataset repo into `data/`, the checkpoints into `downloaded_checkpoints/`
(`sudoku-extreme/eqr.pth`, `maze-unique/eqr.pth`). `--with-ckpts` (now the default) and `--ckpts-only`
(= `--skip-data`) still work. `HF_TOKEN` and `HF_ENDPOINT` are honoured. The Hub is
probed once (a TCP connection, `PROBE_TIMEOUT_S`) before anything is fetched, so an offline
machine gets one message saying the Hub is unreachable and how to build the data locally
within seconds, instead of the client's retries. Success is reported only for what was
fetched and found on disk: an existing `data/` never stands in for a download.
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub
from huggingface_hub import constants  # a submodule: `import huggingface_hub` alone does not load it
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

if __package__ in (None, ""):  # run as `python dataset/<name>.py`, not -m: put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils import cli  # noqa: E402

DATA_REPO = "locuslab/EqR-data"
MODEL_REPO = "locuslab/EqR-model"
CHECKPOINT_FILES = ("sudoku-extreme/eqr.pth", "maze-unique/eqr.pth")  # the default --ckpt-pattern
DATA_DIR, CKPT_DIR = Path("data"), Path("downloaded_checkpoints")
PROBE_TIMEOUT_S = 4.0


class HubUnreachable(ConnectionError):
    """The Hub's endpoint did not accept a connection (offline, no DNS, firewall, HF_HUB_OFFLINE)."""


HUB_ERRORS = (HubUnreachable, LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError)
BUILD_HINT = (
    "To build the data locally instead run: python -m dataset.build_sudoku_dataset --source generate "
    "--subsample-size 1000 --num-aug 1000 --output-dir data/sudoku-extreme-1k-aug-1000 (or --source-dir DIR with "
    "train.csv/test.csv) and python -m dataset.build_maze_unique_dataset"
)
TRAIN_HINT = "To get a checkpoint locally instead, train one with pretrain.py (see README.md)"


def hub_error_message(repo_id: str, err: Exception, hint: str = BUILD_HINT) -> str:
    """One readable line for a failed Hub request, with the local alternative."""
    if isinstance(err, HubUnreachable):
        cause = f"the Hugging Face Hub is unreachable ({err})"
    elif isinstance(err, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        cause = "the Hugging Face Hub is unreachable (offline or no network) and nothing is cached"
    else:
        cause = f"the Hub refused the request ({type(err).__name__}; set HF_TOKEN if the repo is gated)"
    return f"error: could not fetch {repo_id}: {cause}. {hint}"


@contextmanager
def quiet_retries() -> Iterator[None]:
    """Silence huggingface_hub's per-retry warnings so an outage ends in one message."""
    logger = logging.getLogger("huggingface_hub.utils._http")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _token() -> str | None:
    return os.environ.get("HF_TOKEN") or None


def check_hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise `HubUnreachable` unless the Hub endpoint accepts a TCP connection within `timeout`."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise HubUnreachable("HF_HUB_OFFLINE is set")
    url = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise HubUnreachable(f"{host}:{port}: {err.strerror or type(err).__name__}") from None


def download_data(data_dir: Path | str = DATA_DIR, repo_id: str = DATA_REPO,
                  cache_dir: Path | str | None = None) -> list[Path]:
    """Snapshot of the dataset repo into `data_dir`; returns the datasets it holds (folders with
    `train/dataset.json`, e.g. data/sudoku-extreme-1k-aug-1000). `cache_dir`: the Hub client's cache."""
    check_hub_reachable()
    root = Path(huggingface_hub.snapshot_download(
        repo_id, repo_type="dataset", local_dir=str(data_dir), cache_dir=_path(cache_dir), token=_token()
    ))
    datasets = sorted(p.parent.parent for p in root.glob("*/train/dataset.json"))
    if not datasets:
        raise FileNotFoundError(f"{repo_id} provided no dataset (no */train/dataset.json under {root})")
    return datasets


def download_checkpoints(ckpt_dir: Path | str = CKPT_DIR, repo_id: str = MODEL_REPO,
                         patterns: tuple[str, ...] | list[str] = CHECKPOINT_FILES,
                         cache_dir: Path | str | None = None) -> list[Path]:
    """The files of the model repo that `patterns` (Hub glob patterns) match, under `ckpt_dir`; by default the
    released EqR checkpoints, `<ckpt_dir>/sudoku-extreme/eqr.pth` and `.../maze-unique/eqr.pth`. Every pattern
    must match a file."""
    check_hub_reachable()
    root = Path(huggingface_hub.snapshot_download(
        repo_id, allow_patterns=list(patterns), local_dir=str(ckpt_dir), cache_dir=_path(cache_dir), token=_token()
    ))
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and ".cache" not in p.relative_to(root).parts)
    missing = [p for p in patterns if not fnmatch.filter(files, p)]
    if missing:
        raise FileNotFoundError(f"{repo_id} provided nothing for {', '.join(missing)} (under {root})")
    return [root / name for name in files if any(fnmatch.fnmatch(name, p) for p in patterns)]


def _path(value: Path | str | None) -> str | None:
    return None if value is None else str(value)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-data", "--ckpts-only", dest="skip_data", action="store_true",
                        help="fetch only the checkpoints (--ckpts-only: the earlier name)")
    skip = parser.add_mutually_exclusive_group()
    skip.add_argument("--skip-ckpts", action="store_true", help="fetch only the data")
    skip.add_argument("--with-ckpts", action="store_true", help="also fetch the checkpoints (the default)")
    parser.add_argument("--data-repo", default=DATA_REPO, help=f"dataset repo (default {DATA_REPO})")
    parser.add_argument("--ckpt-repo", default=MODEL_REPO, help=f"model repo (default {MODEL_REPO})")
    parser.add_argument("--ckpt-pattern", action="append", dest="ckpt_patterns", metavar="PATTERN",
                        help="files of the model repo to fetch, a glob; repeatable "
                             f"(default {' '.join(CHECKPOINT_FILES)})")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help=f"(default {DATA_DIR})")
    parser.add_argument("--ckpt-dir", type=Path, default=CKPT_DIR, help=f"(default {CKPT_DIR})")
    parser.add_argument("--cache-dir", type=Path, help="the Hugging Face cache (default: the client's, HF_HOME)")
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    if args.skip_data and args.skip_ckpts:
        parser.error("--skip-data with --skip-ckpts leaves nothing to fetch")
    args.ckpt_patterns = tuple(args.ckpt_patterns or CHECKPOINT_FILES)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repo, hint = args.data_repo, BUILD_HINT

    def work() -> None:
        nonlocal repo, hint
        with quiet_retries():
            if not args.skip_data:
                for path in download_data(args.data_dir, args.data_repo, args.cache_dir):
                    print(f"dataset -> {path}")
            if not args.skip_ckpts:
                repo, hint = args.ckpt_repo, TRAIN_HINT
                for path in download_checkpoints(args.ckpt_dir, args.ckpt_repo, args.ckpt_patterns, args.cache_dir):
                    print(f"checkpoint -> {path}")

    def describe(err: BaseException) -> str:
        return hub_error_message(repo, err, hint) if isinstance(err, HUB_ERRORS) else cli.error_line(err)

    return cli.run_main(work, failures=(*HUB_ERRORS, FileNotFoundError), debug=args.debug, describe=describe)


if __name__ == "__main__":
    sys.exit(main())
