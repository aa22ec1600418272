"""Fetch the prebuilt datasets and released checkpoints from the Hugging Face Hub.

`python -m dataset.download [--with-ckpts | --ckpts-only] [--data-dir DIR] [--ckpt-dir DIR]`
(or `scripts/download_artifacts.sh`). `HF_TOKEN` and `HF_ENDPOINT` are honoured. The Hub is
probed once (a TCP connection, `PROBE_TIMEOUT_S`) before anything is fetched, so an offline
machine gets one message saying the Hub is unreachable and how to build the data locally
within seconds, instead of the client's retries. Success is reported only for what was
fetched and found on disk: an existing `data/` never stands in for a download.
"""

from __future__ import annotations

import argparse
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
CHECKPOINT_FILES = ("sudoku-extreme/eqr.pth", "maze-unique/eqr.pth")
PROBE_TIMEOUT_S = 4.0


class HubUnreachable(ConnectionError):
    """The Hub's endpoint did not accept a connection (offline, no DNS, firewall, HF_HUB_OFFLINE)."""


HUB_ERRORS = (HubUnreachable, LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError)
BUILD_HINT = (
    "To build the data locally instead run: python -m dataset.build_sudoku_dataset --source generate "
    "(or --source-dir DIR with train.csv/test.csv) and python -m dataset.build_maze_unique_dataset"
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


def download_data(data_dir: Path | str = "data", repo_id: str = DATA_REPO) -> list[Path]:
    """Snapshot of the dataset repo into `data_dir`; returns the datasets it holds (folders with
    `train/dataset.json`, e.g. data/sudoku-extreme-1k-aug-1000)."""
    check_hub_reachable()
    root = Path(huggingface_hub.snapshot_download(
        repo_id, repo_type="dataset", local_dir=str(data_dir), token=_token()
    ))
    datasets = sorted(p.parent.parent for p in root.glob("*/train/dataset.json"))
    if not datasets:
        raise FileNotFoundError(f"{repo_id} provided no dataset (no */train/dataset.json under {root})")
    return datasets


def download_checkpoints(ckpt_dir: Path | str = "checkpoints", repo_id: str = MODEL_REPO) -> list[Path]:
    """The released EqR checkpoints, as `<ckpt_dir>/sudoku-extreme/eqr.pth` and `.../maze-unique/eqr.pth`."""
    check_hub_reachable()
    root = Path(
        huggingface_hub.snapshot_download(
            repo_id, allow_patterns=list(CHECKPOINT_FILES), local_dir=str(ckpt_dir), token=_token()
        )
    )
    paths = [root / name for name in CHECKPOINT_FILES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{repo_id} did not provide {', '.join(missing)}")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--with-ckpts", action="store_true", help="also fetch the released checkpoints")
    group.add_argument("--ckpts-only", action="store_true", help="fetch only the released checkpoints")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--ckpt-dir", type=Path, default=Path("checkpoints"))
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    repo, hint = DATA_REPO, BUILD_HINT

    def work() -> None:
        nonlocal repo, hint
        with quiet_retries():
            if not args.ckpts_only:
                for path in download_data(args.data_dir):
                    print(f"dataset -> {path}")
            if args.with_ckpts or args.ckpts_only:
                repo, hint = MODEL_REPO, TRAIN_HINT
                for path in download_checkpoints(args.ckpt_dir):
                    print(f"checkpoint -> {path}")

    def describe(err: BaseException) -> str:
        return hub_error_message(repo, err, hint) if isinstance(err, HUB_ERRORS) else cli.error_line(err)

    return cli.run_main(work, failures=(*HUB_ERRORS, FileNotFoundError), debug=args.debug, describe=describe)


if __name__ == "__main__":
    sys.exit(main())
