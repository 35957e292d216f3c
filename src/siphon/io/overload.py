"""Overload control: admit new calls at the rate the event loop can set them up.

Everything in a SIPHON process (SIP, the media clock, the agents) shares one event
loop on one core. Offered more calls than that core can set up, requests queue up
in the SIP socket, and the queue feeds itself: a call whose BYE waits there keeps
sending RTP 50 times a second, and past T1 (500 ms, RFC 3261 §17) the callers
retransmit every request. Measured at 80% of a core, a 60 ms pause (a garbage
collection, another process on the core) could tip the queue into that spiral and
the process then completed a fraction of what it had been offered (RFC 6357 §3
describes this collapse).

So each new call is refused with a probability that follows the SIP socket's
queueing delay: the sojourn time of a probe we send ourselves, and of it the
*standing* part, the least delay over the last ``window`` (as CoDel tells a standing
queue from a burst: a pause that drains by itself within the window refuses nobody).
A proportional-integral controller moves that probability at every sample, as PIE
does for a router's queue (RFC 8033 §4.2): up with the standing delay's excess over
``max_queue_delay`` and with its growth since the last sample, down as it shrinks or
stays under the target. The growth term is what catches an overload early: past
capacity the delay does not level off, it accelerates.

A refused INVITE gets 503 with Retry-After (RFC 3261 §21.5.4), which a proxy in
front (Kamailio's dispatcher) takes as "try another server". Refusing costs a parse
and one response, a tenth of a call's setup. Calls in progress and in-dialog
requests are never refused.

Two more signals, either of which also counts as congestion when set:

- ``lag``: how late the loop runs timers (smoothed). A core shared with other
  processes leaves the loop waiting for the CPU; past three media ticks the media
  clock skips ticks and every call hears it.
- ``busy``: the loop thread's smoothed share of the CPU. Off by default: a server
  at capacity is busy and still keeping up; useful where the queue delay cannot be
  probed (a TCP-only server).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from siphon.errors import ConfigError

# Sample 20 times a second: cheap, and a standing queue is seen within a few samples.
SAMPLE_INTERVAL = 0.050
# Weight of each new lag/busy sample: ~5 samples (a quarter second) to follow a change.
SMOOTHING = 0.2
# Default target of the standing queueing delay: a tenth of T1 (500 ms, when callers
# retransmit), which leaves the controller room to act before that.
DEFAULT_MAX_QUEUE_DELAY = 0.050
# The standing delay is the least over this long: longer than one collection of the
# young generations (~60 ms) or a moment off the CPU, short against T1.
DEFAULT_WINDOW = 0.200
# Default limit of the smoothed timer lateness: 3 media ticks late is where the media
# clock starts to skip ticks (siphon.io.media_clock.MAX_CATCH_UP_TICKS).
DEFAULT_MAX_LAG = 0.060
# The controller's gains, per sample (RFC 8033 §4.2 with its units: per second of
# delay). ALPHA: 100 ms over target adds 5% to the refusal probability per sample
# (1 a second, as PIE's 0.125 per 15 ms). BETA: a standing delay 50 ms longer than a
# sample ago adds 10% (PIE: 1.25, with which the whole rise counts too).
ALPHA = 0.5
BETA = 2.0
# Share of the refusal probability kept per sample once the queue is under half the
# target: the integral term alone would go on refusing for a second after the queue
# is gone (PIE decays by 2% a sample, for TCP flows that take longer to come back).
DECAY = 0.7
# Refusal probability added per sample while the lag or busy signal is over its limit.
LOOP_STEP = 0.05
# A trickle of new calls always gets through: it probes whether the overload is over.
MAX_REFUSAL = 0.95


class LoopLoad:
    """Congestion signals of the event loop, and the share of new calls it admits."""

    def __init__(
        self,
        max_lag: float | None = DEFAULT_MAX_LAG,
        max_busy: float | None = None,
        interval: float = SAMPLE_INTERVAL,
        *,
        queue_delay: Callable[[float], float | None] | None = None,
        max_queue_delay: float = DEFAULT_MAX_QUEUE_DELAY,
        window: float = DEFAULT_WINDOW,
    ) -> None:
        if (
            interval <= 0
            or max_queue_delay <= 0
            or window < interval
            or (max_lag is not None and max_lag <= 0)
            or (max_busy is not None and not 0 < max_busy <= 1)
        ):
            raise ConfigError(
                f"overload control: max_queue_delay ({max_queue_delay}) and max_loop_lag "
                f"({max_lag}) must be positive seconds and max_loop_busy ({max_busy}) a "
                "share in (0, 1]; None turns lag or busy off, overload_control=False all "
                f"(sampling every {interval} s over a window of {window} s)"
            )
        self.max_lag = max_lag
        self.max_busy = max_busy
        self.interval = interval
        self.max_queue_delay = max_queue_delay
        self._read_queue_delay = queue_delay
        # Samples of the queue delay over the last window (the standing part is their minimum).
        self._delays: deque[float] = deque(maxlen=max(1, round(window / interval)))
        self.standing_delay = 0.0  # the least of the window's samples (s)
        self.lag = 0.0
        self.busy = 0.0
        self.queue_delay = 0.0  # the last sample (s)
        self.congested = False  # the last sample's verdict
        self.refusal = 0.0  # probability that a new call is refused
        self._credit = 1.0
        # Statistics
        self.worst = 0.0  # largest single lateness sample seen
        self.congested_samples = 0
        self.admitted = 0
        self.refused = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._expected = 0.0
        self._cpu = 0.0
        self._wall = 0.0

    @property
    def overloaded(self) -> bool:
        """Some new calls are being refused."""
        return self.refusal > 0.0

    @property
    def admit_ratio(self) -> float:
        return 1.0 - self.refusal

    def admit(self) -> bool:
        """Whether to take one more new call (counted either way).

        Spread evenly rather than drawn at random: at a ratio of 0.5 every other
        call is taken, so a short overload refuses few calls in a row.
        """
        self._credit += 1.0 - self.refusal
        if self._credit >= 1.0:
            self._credit -= 1.0
            self.admitted += 1
            return True
        self.refused += 1
        return False

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
        delay = self._read_queue_delay(now) if self._read_queue_delay is not None else None
        standing = None
        if delay is not None:
            self.queue_delay = delay
            self._delays.append(delay)
            standing = min(self._delays)
        loop_congested = (self.max_lag is not None and self.lag > self.max_lag) or (
            self.max_busy is not None and self.busy > self.max_busy
        )
        self.update(standing, loop_congested)
        self._arm(now)

    def update(self, standing: float | None, loop_congested: bool = False) -> None:
        """Move the refusal probability after a sample (RFC 8033 §4.2).

        ``standing``: the standing queueing delay now (None: not measured).
        """
        change = LOOP_STEP if loop_congested else 0.0
        if standing is not None:
            target = self.max_queue_delay
            change += ALPHA * (standing - target)
            if max(standing, self.standing_delay) > target / 2:
                # A queue growing from nothing is a burst until it nears the target
                # (RFC 8033 §4.1 keeps that safeguard in its drop decision).
                change += BETA * (standing - self.standing_delay)
            elif not loop_congested:
                change -= (1.0 - DECAY) * self.refusal
            self.standing_delay = standing
        elif not loop_congested:
            change = -LOOP_STEP  # no delay to go by: the loop signals alone
        self.congested = change > 0
        if self.congested:
            self.congested_samples += 1
        self.refusal = min(MAX_REFUSAL, max(0.0, self.refusal + change))

    def close(self) -> None:
        """Stop sampling (idempotent); all calls are admitted again."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.lag = self.busy = self.queue_delay = 0.0
        self._delays.clear()
        self.congested = False
        self.refusal = self.standing_delay = 0.0
        self._credit = 1.0
