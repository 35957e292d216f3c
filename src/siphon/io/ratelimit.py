"""Rate-limited logging for rejections caused by network input.

A flood of garbage must not become a flood of log lines: each rejection is logged
as one line while under the budget, then counted and summarised once per window.
"""

from __future__ import annotations

import logging
import time


class RateLimitedLogger:
    def __init__(self, logger: logging.Logger, per_second: float = 10.0) -> None:
        self._logger = logger
        self._budget = per_second
        self._tokens = per_second
        self._last = time.monotonic()
        self._suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        self._tokens = min(self._budget, self._tokens + (now - self._last) * self._budget)
        self._last = now
        if self._tokens < 1.0:
            self._suppressed += 1
            return
        self._tokens -= 1.0
        if self._suppressed:
            self._logger.warning("(%d similar lines suppressed)", self._suppressed)
            self._suppressed = 0
        self._logger.warning(msg, *args)

    @property
    def suppressed(self) -> int:
        return self._suppressed
