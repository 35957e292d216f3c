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
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger("siphon.io.timers")

# Below this many cancelled handles the heap is never rebuilt (asyncio uses 100 too).
_MIN_CANCELLED_TO_COMPACT = 100
# Timers falling due within this much of each other fire in the same wake-up.
_GROUPING_SLACK = 0.001

T = TypeVar("T")


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
        queue = self._queue
        if queue is not None:
            self._queue = None
            # Counted here, not in a method of the queue: calls cancel a timer or two each.
            cancelled = queue._cancelled = queue._cancelled + 1
            if cancelled > _MIN_CANCELLED_TO_COMPACT and 2 * cancelled > len(queue._heap):
                queue._compact()


def _noop(*args: object) -> None:
    return None


class TimerQueue:
    """Deadlines on the loop's monotonic clock (``loop.time()``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # The loop's own clock, bound once: read on every SIP message.
        self.now: Callable[[], float] = loop.time
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

    @property
    def closed(self) -> bool:
        return self._closed

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
        # call_at(), inlined: the user agent's per-call timers come this way.
        deadline = self.now() + delay
        handle = TimerHandle(deadline, callback, args, self)
        heapq.heappush(self._heap, (deadline, next(self._counter), handle))
        if deadline < self._wakeup_at and not self._closed:
            self._arm(deadline)
        return handle

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
        while heap and heap[0][0] <= now + _GROUPING_SLACK:
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

    def _compact(self) -> None:
        """Rebuild the heap without its cancelled handles (more than half of it)."""
        heap = self._heap
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


class TimerLane(Generic[T]):
    """Timers that fall due in the order they are set: ``callback(item, arg)`` at each.

    A busy SIP server keeps one timer per finished transaction (RFC 3261 Timer J,
    RFC 6026 Timer L), and every one lasts the same 64*T1. With one duration and a
    monotonic clock, deadlines only grow: a deque replaces the heap, no handle is made
    per timer, and the lane asks its queue for one wake-up, at its earliest deadline.

    Timers in a lane cannot be cancelled, so ``callback`` must check that it still
    matters (a transaction's ``timer_fired`` ignores timers it no longer runs).
    """

    __slots__ = ("_arg", "_callback", "_deadlines", "_firing", "_items", "_queue", "_wakeup")

    def __init__(
        self, queue: TimerQueue, callback: Callable[[T, Any], None], arg: Any = None
    ) -> None:
        self._queue = queue
        self._callback = callback
        self._arg = arg
        # Two deques of plain references rather than one of tuples: nothing here for
        # the garbage collector to track per timer.
        self._deadlines: deque[float] = deque()
        self._items: deque[T] = deque()
        self._wakeup: TimerHandle | None = None
        self._firing = False

    def __len__(self) -> int:
        return len(self._items)

    def add(self, deadline: float, item: T) -> bool:
        """Queue ``item`` for ``deadline``; False (nothing done) if it is earlier than the last."""
        deadlines = self._deadlines
        if deadlines:
            if deadline < deadlines[-1]:
                return False
        elif not self._firing:
            self._wakeup = self._queue.call_at(deadline, self._fire)
        deadlines.append(deadline)
        self._items.append(item)
        return True

    def _fire(self) -> None:
        self._wakeup = None
        self._firing = True
        deadlines, items, callback, arg = self._deadlines, self._items, self._callback, self._arg
        limit = self._queue.now() + _GROUPING_SLACK
        try:
            while deadlines and deadlines[0] <= limit:
                deadlines.popleft()
                item = items.popleft()
                try:
                    callback(item, arg)
                except Exception:  # a timer callback must never stop the others
                    log.exception("timer callback failed")
        finally:
            self._firing = False
            if deadlines and not self._queue.closed:
                self._wakeup = self._queue.call_at(deadlines[0], self._fire)

    def clear(self) -> None:
        """Forget every timer of the lane."""
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        self._deadlines.clear()
        self._items.clear()
