"""Builders fed by a Hub dataset repo's `train.csv` / `test.csv`: where a split's CSV comes from, and
the command around a build (one error line, the offline hint for an unreachable Hub).

The CSV is downloaded once into the Hugging Face cache; offline the cached copy is used, and without
one the error names the unreachable address at once instead of waiting on retries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import huggingface_hub
from huggingface_hub.errors import LocalEntryNotFoundError

from dataset.download import HUB_ERRORS, HubUnreachable, check_hub_reachable, hub_error_message, quiet_retries
from utils import cli
from utils.validation import ConfigError


def _download(repo: str, split: str, local_only: bool) -> Path:
    with quiet_retries():  # an outage ends in one message, not the client's retry warnings
        return Path(huggingface_hub.hf_hub_download(repo, f"{split}.csv", repo_type="dataset",
                                                    local_files_only=local_only))


def split_csv(source_dir: Path | None, repo: str, split: str) -> Path:
    """`<source_dir>/<split>.csv`, else the split's CSV from the Hub repo `repo` (cached; offline the cache)."""
    if source_dir is not None:
        return source_dir / f"{split}.csv"
    print(f"fetching {split}.csv from {repo} (cached after the first time)")
    try:
        check_hub_reachable()
    except HubUnreachable as offline:
        try:
            return _download(repo, split, local_only=True)
        except LocalEntryNotFoundError:
            raise HubUnreachable(f"{offline}; {split}.csv is not cached") from None
    return _download(repo, split, local_only=False)


class HubBuild(Protocol):
    source_repo: str


def run_build(argv: list[str], parse: Callable[[list[str]], HubBuild], build: Callable[[HubBuild], Path],
              offline_hint: str, failures: tuple[type[BaseException], ...]) -> int:
    """A builder's command: parse, build, and every expected failure as one line (an unreachable Hub
    with the repo and `offline_hint`); exit status as `utils.cli.run_main` gives it."""
    parsed: list[HubBuild] = []

    def work() -> None:
        parsed.append(parse(argv))
        build(parsed[0])

    def describe(err: BaseException) -> str:
        if isinstance(err, HUB_ERRORS) and parsed:
            return hub_error_message(parsed[0].source_repo, err, offline_hint)
        return cli.plain_error_line(err)

    return cli.run_main(work, errors=(ConfigError,), failures=(*HUB_ERRORS, FileExistsError, FileNotFoundError,
                                                                *failures),
                        debug=cli.debug_requested(argv), describe=describe)
