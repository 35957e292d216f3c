"""Overload detection: is the event loop keeping up?

Everything in a SIPHON process (SIP, the media clock, the agents) shares one event
loop on one core. Offered more calls than that core can set up, the loop falls
behind, the callers' INVITEs and BYEs are retransmitted (RFC 3261 §17: T1 = 500 ms),
the retransmissions are more work still and throughput collapses: in a measured
run, asking 1.5x the sustainable rate halved the calls actually completed. Worse,
the media clock's ticks come late and every call in progress hears gaps.

So new calls are refused while the loop is saturated: 503 with Retry-After (RFC
3261 §21.5.4), which a proxy in front (Kamailio's dispatcher) takes as "try another
server" (RFC 6357 §3 describes the collapse; this is its simplest local remedy).
Refusing costs a parse and one response, a tenth of a call's setup, so the calls
admitted still complete. Calls in progress and in-dialog requests are never refused.

Three signals, sampled by a timer every ``interval`` and smoothed (exponential
moving average) so a single pause (a garbage collection, a slow handler) turns
nobody away; any one above its limit means overloaded:

- ``backlog``: bytes of SIP datagrams waiting in the kernel's receive queue
  (Linux). The direct measure: the loop runs each batch of ready sockets in
  bounded time, so it does not look late while requests pile up there.
- ``busy``: the share of wall time the loop's thread spent on the CPU: the cause
  of that backlog, and the signal where the backlog cannot be read.
- ``lag``: how late the loop runs timers: a core shared with other processes
  leaves the thread waiting for the CPU rather than using it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# Sample 20 times a second: cheap, and an overload is seen within a few samples.
SAMPLE_INTERVAL = 0.050
# Weight of each new sample: ~5 samples (a quarter second) to follow a change.
SMOOTHING = 0.2
# Default limit: 3 media ticks late is where the media clock starts to skip ticks
# (siphon.io.media_clock.MAX_CATCH_UP_TICKS): calls in progress lose audio.
DEFAULT_MAX_LAG = 0.060
# Default limit of the loop thread's CPU share: above it, queues grow faster than
# they drain at any burst; the last few percent are headroom for the media clock.
DEFAULT_MAX_BUSY = 0.95
# Default limit of the receive backlog: a loopback datagram takes ~2.3 KiB of
# socket memory, so ~110 requests, 20-50 ms of work; normal bursts drain within
# a sample or two and stay below it once smoothed.
DEFAULT_MAX_BACKLOG = 256 * 1024


class LoopLoad:
    """The event loop's smoothed timer lateness (``lag``, s) and CPU share (``busy``)."""

    def __init__(
        self,
        max_lag: float = DEFAULT_MAX_LAG,
        max_busy: float = DEFAULT_MAX_BUSY,
        interval: float = SAMPLE_INTERVAL,
        *,
        backlog: Callable[[], int | None] | None = None,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
    ) -> None:
        if max_lag <= 0 or interval <= 0 or not 0 < max_busy <= 1:
            raise ValueError("max_lag and interval must be positive, max_busy in (0, 1]")
        self.max_lag = max_lag
        self.max_busy = max_busy
        self.interval = interval
        self.max_backlog = max_backlog
        self.lag = 0.0
        self.busy = 0.0
        self.backlog = 0.0
        self._read_backlog = backlog
        self.worst = 0.0  # largest single lateness sample seen (statistics)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._expected = 0.0
        self._cpu = 0.0
        self._wall = 0.0

    @property
    def overloaded(self) -> bool:
        return (
            self.backlog > self.max_backlog or self.busy > self.max_busy or self.lag > self.max_lag
        )

    def start(self) -> None:
        """Begin sampling on the running loop (idempotent)."""
        if self._handle is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._cpu, self._wall = time.thread_time(), self._loop.time()
        self._arm(self._wall)

    def _arm(self, now: float) -> None:
        assert self._loop is not None
        self._expected = now + self.interval
        self._handle = self._loop.call_at(self._expected, self._sample)

    def _sample(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        late = max(0.0, now - self._expected)
        self.worst = max(self.worst, late)
        self.lag += SMOOTHING * (late - self.lag)
        # Sampled on the loop's own thread, so this is the loop's CPU time (not the
        # recording writer's or a tool's thread).
        cpu = time.thread_time()
        if now > self._wall:
            share = min(1.0, (cpu - self._cpu) / (now - self._wall))
            self.busy += SMOOTHING * (share - self.busy)
        self._cpu, self._wall = cpu, now
        queued = self._read_backlog() if self._read_backlog is not None else None
        if queued is not None:
            self.backlog += SMOOTHING * (queued - self.backlog)
        self._arm(now)

    def close(self) -> None:
        """Stop sampling (idempotent)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.lag = self.busy = self.backlog = 0.0
