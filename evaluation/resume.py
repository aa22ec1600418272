"""What a rerun of a stopped evaluation takes over: the files of its finished passes, and the state
its stopped pass saved.

A pass that has written all its files leaves a note of them in `<output folder>/.finished/`
(`FinishedPass`): a rerun that would make the same pass, with the same settings and the same files
asked for, finds the note and the records and reads them back instead of evaluating. A pass in
progress saves its state (evaluation/pass_state.py) every `eval_checkpoint_minutes` and when a
SIGINT or SIGTERM arrives, to `<output folder>/.partial/<identity>.rank<r>.pt`; the identity hashes
what shapes the pass's numbers and the order it counts them in (the records' settings without the
cost: the options, the batch, the ranks, the device; the depths; the checkpoint file's SHA-256), so
a state is only ever continued by the same pass. Each rank saves and resumes its own slice: the
ranks need not agree on when. A finished pass's state files are removed once its files are written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from evaluation.pass_state import PassState
from evaluation.plan import EvalPlan
from evaluation.report import record_stem_of, write_text
from utils.checkpoint import file_sha256, save_checkpoint_atomic
from utils.cli import Interrupted
from utils.safe_load import CheckpointError, safe_torch_load
from utils.signals import SignalFlag

log = logging.getLogger(__name__)

PARTIAL_FOLDER = ".partial"
FINISHED_FOLDER = ".finished"
COST_KEYS = ("pass_wall_s", "pass_trajectory_segments")  # what a record says of the pass's cost, not its options


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as a JSON record holds them (lists for tuples), without the pass's cost."""
    return json.loads(json.dumps({k: v for k, v in settings.items() if k not in COST_KEYS}))


def _read_json(path: Path) -> Any:
    """The file's JSON, or None (named in one line) when it cannot be read: the pass then runs again."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        log.warning("%s: unreadable (%s); the pass runs again", path, err)
        return None


@dataclass(frozen=True)
class FinishedPass:
    """The note a pass leaves in `<output folder>/.finished/` once every file it writes is written: their
    paths. Its name hashes the pass's identity and the options that decide which files it writes
    (`per_trajectory`, `save_outputs`, `reference_files`, `suffix`, `arc_plots`), so a rerun asking for
    other files evaluates again."""

    path: Path

    @classmethod
    def of(cls, folder: Path, identity: str, outputs: dict[str, Any]) -> FinishedPass:
        key = hashlib.sha256(json.dumps([identity, outputs], sort_keys=True).encode()).hexdigest()[:20]
        return cls(folder / FINISHED_FOLDER / f"{key}.json")

    def write(self, files: Sequence[Path]) -> None:
        write_text(self.path, json.dumps({"files": [str(f) for f in files]}, indent=1))

    def records(self, planned: Sequence[dict[str, Any]], folder: Path) -> list[dict[str, Any]] | None:
        """The records this pass wrote, or None when it did not finish, a file it wrote is gone, or a
        record was since overwritten by a run with other settings (each named in one line)."""
        note = _read_json(self.path) if self.path.is_file() else None
        if not isinstance(note, dict) or not isinstance(note.get("files"), list):
            return None
        missing = [f for f in note["files"] if not Path(f).is_file()]
        if missing:
            log.info("%s: %d of the files a finished pass wrote are gone (%s); the pass runs again", self.path,
                     len(missing), missing[0])
            return None
        found = []
        for record in planned:
            path = folder / f"{record_stem_of(record)}.json"
            earlier = _read_json(path)
            if not isinstance(earlier, dict) or not isinstance(earlier.get("config"), dict):
                return None
            if _comparable(earlier["config"]) != _comparable(record["config"]):
                log.info("%s: since written with other settings; the pass runs again", path)
                return None
            found.append(earlier)
        return found


@lru_cache(maxsize=16)
def _checkpoint_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path))


def pass_identity(settings: dict[str, Any], depths: Sequence[int], checkpoint: str) -> str:
    """A hash of what a saved state must share with the pass that continues it."""
    stat = Path(checkpoint).stat()
    what = {**_comparable(settings), "depths": list(depths),
            "checkpoint_sha256": _checkpoint_sha256(checkpoint, stat.st_size, stat.st_mtime_ns)}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class PassFile:
    """Where one rank's state of one pass is saved."""

    path: Path

    @classmethod
    def of(cls, folder: Path, identity: str, rank: int) -> PassFile:
        return cls(folder / PARTIAL_FOLDER / f"{identity}.rank{rank}.pt")

    def load(self) -> PassState | None:
        """The saved state, or None when there is none; an unreadable one is named, and overwritten by the
        pass's next save."""
        if not self.path.is_file():
            return None
        try:
            return PassState.from_dict(safe_torch_load(self.path))
        except (OSError, CheckpointError, KeyError, ValueError, TypeError) as err:
            log.warning("%s: unreadable saved evaluation state (%s); the pass starts from the beginning",
                        self.path, " ".join(str(err).split())[:200])
            return None

    def save(self, state: PassState) -> None:
        save_checkpoint_atomic(state.to_dict(), self.path)

    def discard(self) -> None:
        """Remove the state (and the folder once it is empty: another rank's may still be there)."""
        self.path.unlink(missing_ok=True)
        folder = self.path.parent
        if folder.is_dir() and not any(folder.iterdir()):
            with contextlib.suppress(OSError):  # another rank saved into it meanwhile
                folder.rmdir()


class PassSaver:
    """The engine's `runtime.checkpoint` hook: saves the pass's state every `interval_s` seconds (None:
    only on a signal) and, once `stop` has caught a signal, saves it and raises `Interrupted` with the
    line that says how to continue. Without a `file` (a pass that cannot be saved part-way) a signal
    stops it unsaved."""

    def __init__(self, file: PassFile | None, interval_s: float | None, stop: SignalFlag, what: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.file, self.interval_s, self.stop, self.what, self.clock = file, interval_s, stop, what, clock
        self.last = clock()
        self.saves = 0

    def __call__(self, state: Callable[[], PassState]) -> None:
        if self.stop.caught is not None:
            self._stop(state)
        if self.file is not None and self.interval_s is not None and self.clock() - self.last >= self.interval_s:
            self._save(state())

    def _save(self, state: PassState) -> None:
        assert self.file is not None
        self.file.save(state)
        self.last = self.clock()
        self.saves += 1
        log.debug("%s: saved (%d batches counted, %d trajectories finished ahead)", self.file.path,
                  state.counted, len(state.finished))

    def _stop(self, state: Callable[[], PassState]) -> None:
        if self.file is None:
            raise Interrupted(f"interrupted ({self.stop.caught}) during {self.what}, which cannot be saved "
                              "part-way; rerunning the command reuses the finished points and runs it again")
        self._save(state())
        raise Interrupted(f"interrupted ({self.stop.caught}) during {self.what}: saved {self.file.path}; "
                          "rerun the same command to continue")


def unsavable(plan: EvalPlan) -> str | None:
    """Why `plan`'s pass cannot be saved part-way, or None when it can."""
    if plan.breadth.agree is not None:
        return ("breadth_agree: which restarts an adaptive-breadth pass skips depends on the order the others "
                "finished in")
    lacking = sorted({type(e).__name__ for e in plan.outputs.evaluators.values()
                      if not (hasattr(e, "state_dict") and hasattr(e, "load_state_dict"))})
    if lacking:
        return f"the task evaluator {', '.join(lacking)} has no state_dict()/load_state_dict()"
    return None


@dataclass(frozen=True)
class PassSaving:
    """How one pass of a sweep is saved and continued: its state file, how often, the signal flag of the
    sweep, `what` the pass is (for the lines it prints) and whether a saved state is taken over."""

    file: PassFile
    interval_s: float | None
    stop: SignalFlag
    what: str
    resume: bool = True

    def apply(self, plan: EvalPlan) -> EvalPlan:
        """`plan` starting from the saved state (if any) and saving through a `PassSaver`."""
        reason = unsavable(plan)
        if reason is not None:
            log.info("%s: not saved part-way (%s)", self.what, reason)
            hook = PassSaver(None, None, self.stop, self.what)
            return replace(plan, runtime=replace(plan.runtime, checkpoint=hook))
        state = self.file.load() if self.resume else None
        if state is not None:
            log.info("%s: continuing from %s (%d batches counted, %d trajectories finished ahead, %.0f s run)",
                     self.what, self.file.path, state.counted, len(state.finished), state.elapsed_s)
        hook = PassSaver(self.file, self.interval_s, self.stop, self.what)
        return replace(plan, runtime=replace(plan.runtime, resume=state, checkpoint=hook))
