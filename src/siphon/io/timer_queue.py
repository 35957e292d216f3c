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
from typing import Any

log = logging.getLogger("siphon.io.timers")

# Below this many cancelled handles the heap is never rebuilt (asyncio uses 100 too).
_MIN_CANCELLED_TO_COMPACT = 100


class TimerHandle:
    __slots__ = ("_queue", "args", "callback", "cancelled", "deadline")

    def __init__(
        self,
        deadline: float,
        callback: Callable[..., None],
        args: tuple[Any, ...] = (),
        queue: TimerQueue | None = None,
    ) -> None:
        self.deadline = deadline
        self.callback = callback
        # Arguments instead of a closure: one object less per timer, and thousands of
        # transaction timers are pending at any time.
        self.args = args
        self.cancelled = False
        self._queue = queue  # while the handle waits in that queue's heap

    def cancel(self) -> None:
        self.cancelled = True
        self.callback = _noop
        self.args = ()
        queue, self._queue = self._queue, None
        if queue is not None:
            queue._cancelled_one()


def _noop(*args: object) -> None:
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
        # Cancelled handles stay in the heap until their deadline. Most are cancelled
        # long before it (the 2xx retransmission at the ACK, a call's ring timeout at
        # its end), so past a point the heap is rebuilt without them, as asyncio's
        # own loop does: otherwise they would pile up for the garbage collector.
        self._cancelled = 0

    def now(self) -> float:
        return self._loop.time()

    def __len__(self) -> int:
        return len(self._heap)

    def call_at(self, deadline: float, callback: Callable[..., None], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` at ``deadline`` (like ``loop.call_at``)."""
        handle = TimerHandle(deadline, callback, args, self)
        heapq.heappush(self._heap, (deadline, next(self._counter), handle))
        if deadline < self._wakeup_at and not self._closed:
            self._arm(deadline)
        return handle

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> TimerHandle:
        return self.call_at(self._loop.time() + delay, callback, *args)

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
                self._cancelled -= 1
                continue
            handle._queue = None  # out of the heap: a late cancel() counts nothing
            try:
                handle.callback(*handle.args)
            except Exception:  # a timer callback must never stop the others
                log.exception("timer callback failed")
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
            self._cancelled -= 1
        if heap and not self._closed:
            self._arm(heap[0][0])

    def _cancelled_one(self) -> None:
        self._cancelled += 1
        heap = self._heap
        if self._cancelled > _MIN_CANCELLED_TO_COMPACT and 2 * self._cancelled > len(heap):
            # In place: _fire() may be running (a callback cancelling other timers).
            heap[:] = [entry for entry in heap if not entry[2].cancelled]
            heapq.heapify(heap)
            self._cancelled = 0

    def close(self) -> None:
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        heap, self._heap = self._heap, []
        self._cancelled = 0
        for _, _, handle in heap:
            handle._queue = None
            handle.cancel()
