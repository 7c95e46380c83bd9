"""Log lines that clients can cause, rate-limited: at most ``burst`` lines per ``per`` seconds,
then one line saying how many were left out. A flood of bad requests cannot fill the disk."""

from __future__ import annotations

import logging
import time


class RateLimited:
    def __init__(self, log: logging.Logger, *, per: float, burst: int) -> None:
        self._log = log
        self._per = per
        self._burst = burst
        self._window = 0.0
        self._count = 0
        self._dropped = 0

    def _allow(self) -> bool:
        now = time.monotonic()
        if now - self._window >= self._per:
            if self._dropped:
                self._log.warning(
                    "%d similar log lines left out in %.0f s", self._dropped, self._per
                )
            self._window, self._count, self._dropped = now, 0, 0
        if self._count >= self._burst:
            self._dropped += 1
            return False
        self._count += 1
        return True

    def warning(self, msg: str, *args: object) -> None:
        if self._allow():
            self._log.warning(msg, *args)

    def exception(self, msg: str, *args: object) -> None:
        if self._allow():
            self._log.exception(msg, *args, stacklevel=2)
