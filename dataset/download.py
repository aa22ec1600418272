"""Fetch the prebuilt datasets and released checkpoints from the Hugging Face Hub.

`python -m dataset.download [--with-ckpts | --ckpts-only] [--data-dir DIR] [--ckpt-dir DIR]`
(or `scripts/download_artifacts.sh`). `HF_TOKEN` is honoured. When the Hub cannot be
reached the command prints one message saying so and how to build the data locally.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import huggingface_hub
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

DATA_REPO = "locuslab/EqR-data"
MODEL_REPO = "locuslab/EqR-model"
CHECKPOINT_FILES = ("sudoku-extreme/eqr.pth", "maze-unique/eqr.pth")
HUB_ERRORS = (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError)
BUILD_HINT = (
    "To build the data locally instead run: python -m dataset.build_sudoku_dataset --source generate "
    "(or --source-dir DIR with train.csv/test.csv) and python -m dataset.build_maze_unique_dataset"
)
TRAIN_HINT = "To get a checkpoint locally instead, train one with pretrain.py (see README.md)"


def hub_error_message(repo_id: str, err: Exception, hint: str = BUILD_HINT) -> str:
    """One readable line for a failed Hub request, with the local alternative."""
    if isinstance(err, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
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


def download_data(data_dir: Path | str = "data", repo_id: str = DATA_REPO) -> Path:
    """Snapshot of the dataset repo into `data_dir` (e.g. data/sudoku-extreme-1k-aug-1000/...)."""
    path = huggingface_hub.snapshot_download(
        repo_id, repo_type="dataset", local_dir=str(data_dir), token=_token()
    )
    return Path(path)


def download_checkpoints(ckpt_dir: Path | str = "checkpoints", repo_id: str = MODEL_REPO) -> list[Path]:
    """The released EqR checkpoints, as `<ckpt_dir>/sudoku-extreme/eqr.pth` and `.../maze-unique/eqr.pth`."""
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
    args = parser.parse_args(argv)
    repo, hint = DATA_REPO, BUILD_HINT
    try:
        with quiet_retries():
            if not args.ckpts_only:
                print(f"data -> {download_data(args.data_dir)}")
            if args.with_ckpts or args.ckpts_only:
                repo, hint = MODEL_REPO, TRAIN_HINT
                for path in download_checkpoints(args.ckpt_dir):
                    print(f"checkpoint -> {path}")
    except HUB_ERRORS as err:
        print(hub_error_message(repo, err, hint), file=sys.stderr)
        return 1
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
