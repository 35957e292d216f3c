"""One process-wide media clock: a 20 ms tick on the monotonic clock for every call.

Per-call ``sleep`` loops drift, wake up hundreds of tasks 50 times a second and
send packets in a ragged stream. Here one timer, armed on absolute deadlines
(``start + n * 20 ms``, so lateness never accumulates), calls every registered
session's ``on_tick`` in one batch: each sends its next frame. When the loop falls
behind by more than a few ticks, missed ticks are skipped (and counted) instead of
being burst out, which would only arrive as jitter at the far end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

log = logging.getLogger("siphon.io.media")

TICK_SECONDS = 0.020
# Beyond this many ticks behind, jump the grid forward rather than catching up.
MAX_CATCH_UP_TICKS = 3


class TickListener(Protocol):
    def on_tick(self, tick: int, now: float) -> None:
        """Send this session's next 20 ms frame (``tick`` counts from the clock's start)."""


class MediaClock:
    def __init__(
        self, loop: asyncio.AbstractEventLoop | None = None, interval: float = TICK_SECONDS
    ) -> None:
        self._loop = loop
        self.interval = interval
        self._listeners: dict[int, TickListener] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._start = 0.0
        self._tick = 0
        # Statistics
        self.ticks = 0
        self.skipped_ticks = 0
        self.max_lateness = 0.0
        self.busy_seconds = 0.0  # time spent inside on_tick callbacks
        self.errors = 0

    @property
    def listener_count(self) -> int:
        return len(self._listeners)

    def add(self, listener: TickListener) -> None:
        self._listeners[id(listener)] = listener
        if self._handle is None:
            self._begin()

    def remove(self, listener: TickListener) -> None:
        # An idle clock stops at its next tick (see _on_timer), not here: at call-setup
        # rates, calls that come and go one at a time would cancel and re-arm the timer
        # for each call, which costs more than one empty wake-up.
        self._listeners.pop(id(listener), None)

    def _begin(self) -> None:
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        self._start = loop.time()
        self._tick = 0
        self._handle = loop.call_at(self._start + self.interval, self._on_timer)

    def _on_timer(self) -> None:
        if not self._listeners:
            # Idle processes should not wake up 50 times a second. Nothing ran: the
            # statistics do not count this wake-up as a tick.
            self._handle = None
            return
        loop = self._loop
        assert loop is not None
        self._tick += 1
        deadline = self._start + self._tick * self.interval
        now = loop.time()
        lateness = now - deadline
        if lateness > self.max_lateness:
            self.max_lateness = lateness
        behind = int(lateness / self.interval)
        if behind > MAX_CATCH_UP_TICKS:
            self.skipped_ticks += behind
            self._tick += behind
        began = time.perf_counter()
        for listener in list(self._listeners.values()):
            try:
                listener.on_tick(self._tick, now)
            except Exception:  # one broken session must not silence the others
                self.errors += 1
                log.exception("media tick failed for %r", listener)
        self.busy_seconds += time.perf_counter() - began
        self.ticks += 1
        if self._listeners:
            self._handle = loop.call_at(
                self._start + (self._tick + 1) * self.interval, self._on_timer
            )
        else:
            self._handle = None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._listeners.clear()
