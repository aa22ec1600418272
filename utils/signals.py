"""The first SIGINT or SIGTERM as a request to stop cleanly; a second one stops at once.

A long job (a training run, an evaluation pass) cannot stop in the middle of a step without losing
it, so the signal is only remembered and the job asks `caught` at its next safe point, saves, and
stops. A second signal raises KeyboardInterrupt: the user, or the scheduler's grace period, has
waited long enough.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Any, TypeVar

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
Flag = TypeVar("Flag", bound="SignalFlag")


class SignalFlag:
    """Context manager that turns the first SIGINT/SIGTERM into `caught` (its name), logged once with
    `announce` (main thread only; elsewhere the signals stay as they are)."""

    def __init__(self, announce: str | None = None) -> None:
        self.announce = announce
        self.caught: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self: Flag) -> Flag:
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        except ValueError:  # not the main thread
            self._previous = {}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.caught is not None:
            raise KeyboardInterrupt
        self.caught = signal.Signals(signum).name
        if self.announce:
            log.warning("%s: %s (again to stop at once, without saving)", self.caught, self.announce)
