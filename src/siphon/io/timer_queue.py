"""One heap of deadlines driven by one event-loop handle.

The transaction layer asks for timers by absolute deadline; thousands of calls
would otherwise mean thousands of ``call_at`` handles. Here all deadlines live in
one heap and the loop is asked to wake us only for the earliest one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable

log = logging.getLogger("siphon.io.timers")


class TimerHandle:
    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.callback = _noop


def _noop() -> None:
    return None


class TimerQueue:
    """Deadlines on the loop's monotonic clock (``loop.time()``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._counter = itertools.count()
        self._wakeup: asyncio.TimerHandle | None = None
        self._wakeup_at = float("inf")
        self._closed = False

    def now(self) -> float:
        return self._loop.time()

    def __len__(self) -> int:
        return len(self._heap)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(deadline, callback)
        heapq.heappush(self._heap, (deadline, next(self._counter), handle))
        if deadline < self._wakeup_at and not self._closed:
            self._arm(deadline)
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self.call_at(self._loop.time() + delay, callback)

    def _arm(self, deadline: float) -> None:
        if self._wakeup is not None:
            self._wakeup.cancel()
        self._wakeup_at = deadline
        self._wakeup = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._wakeup = None
        self._wakeup_at = float("inf")
        now = self._loop.time()
        heap = self._heap
        # A small slack groups timers that fall due within the same millisecond.
        while heap and heap[0][0] <= now + 0.001:
            _, _, handle = heapq.heappop(heap)
            if handle.cancelled:
                continue
            try:
                handle.callback()
            except Exception:  # a timer callback must never stop the others
                log.exception("timer callback failed")
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        if heap and not self._closed:
            self._arm(heap[0][0])

    def close(self) -> None:
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        for _, _, handle in self._heap:
            handle.cancel()
        self._heap.clear()
