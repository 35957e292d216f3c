"""Outbound audio of one call: a queue of 20 ms PCM frames stamped with a turn epoch.

Barge-in must silence the agent within one tick and nothing queued before the
interruption may reach the wire afterwards. Cancelling the producer is not enough
(frames already queued, or produced by a task that has not seen the cancellation
yet, would still play), so every frame carries the epoch it was queued in and
``flush()`` bumps the epoch: stale frames are dropped here, at the last step.

Every frame also gets a *position* (a running count of frames ever queued), so
the voice runtime can ask "has position N gone out?": the time its first frame
hit the wire (per-turn latency), when its last frame did (``end_call`` waits for
it), and how far an interrupted reply got (the transcript keeps only what the
caller heard).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from itertools import count

import numpy as np
import numpy.typing as npt

PcmFrame = npt.NDArray[np.int16]

# 20 ms at 8 kHz.
FRAME_SAMPLES = 160
# Bound on queued audio (60 s): a producer far ahead of real time is a bug, and
# memory per call must stay small with hundreds of calls in one process.
MAX_QUEUED_FRAMES = 3000

# ``callback(played, now)``: played is False when a flush dropped the frame.
PlayedCallback = Callable[[bool, float], None]
# Flushed position ranges remembered for late ``notify_played`` questions (one per
# barge-in: a call has a handful, not thousands).
MAX_DROPPED_RANGES = 64


class PlayoutQueue:
    __slots__ = (
        "_buffer",
        "_dropped",
        "_frames",
        "_order",
        "_waiters",
        "dropped_overflow",
        "dropped_stale",
        "epoch",
        "last_played",
        "on_start",
        "played",
        "queued",
    )

    def __init__(self) -> None:
        self._frames: deque[tuple[int, int, PcmFrame]] = deque()  # (epoch, position, pcm)
        self._buffer = np.zeros(0, dtype=np.int16)  # samples not yet a whole frame
        self._waiters: list[tuple[int, int, PlayedCallback]] = []  # heap by position
        self._order = count()
        self._dropped: deque[tuple[int, int]] = deque(maxlen=MAX_DROPPED_RANGES)
        self.epoch = 0
        self.played = 0
        self.queued = 0  # frames ever queued: the next frame's position
        self.last_played = -1  # position of the last frame that went out
        self.dropped_stale = 0
        self.dropped_overflow = 0
        # Called when audio arrives in an empty queue (the RTP session may send its
        # first frame at once instead of waiting up to 20 ms for the next tick).
        self.on_start: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def queued_ms(self) -> int:
        return len(self._frames) * 20

    @property
    def idle(self) -> bool:
        """Nothing left to play (a partial frame waiting for more audio counts as busy)."""
        return not self._frames and not len(self._buffer)

    def put(self, pcm: PcmFrame, epoch: int | None = None) -> int:
        """Queue 8 kHz PCM of any length; it is cut into 20 ms frames (the tail waits).

        Returns the position of the last whole frame queued so far (-1 when none
        ever was); a stale ``epoch`` queues nothing.
        """
        if epoch is not None and epoch != self.epoch:
            self.dropped_stale += 1
            return self.queued - 1
        was_empty = not self._frames
        samples = np.concatenate((self._buffer, np.asarray(pcm, dtype=np.int16)))
        whole = len(samples) - len(samples) % FRAME_SAMPLES
        for start in range(0, whole, FRAME_SAMPLES):
            if len(self._frames) >= MAX_QUEUED_FRAMES:
                self.dropped_overflow += 1
                continue
            self._frames.append((self.epoch, self.queued, samples[start : start + FRAME_SAMPLES]))
            self.queued += 1
        self._buffer = samples[whole:]
        last = self.queued - 1
        if was_empty and self._frames and self.on_start is not None:
            self.on_start()
        return last

    def end_of_utterance(self, epoch: int | None = None) -> int:
        """Pad the waiting tail with silence so the last partial frame plays too.

        Returns the position of the utterance's last frame (see ``put``).
        """
        if epoch is not None and epoch != self.epoch:
            return self.queued - 1
        if len(self._buffer):
            tail = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            tail[: len(self._buffer)] = self._buffer
            self._buffer = np.zeros(0, dtype=np.int16)
            self._frames.append((self.epoch, self.queued, tail))
            self.queued += 1
        return self.queued - 1

    def notify_played(self, position: int, callback: PlayedCallback) -> None:
        """Call ``callback(True, now)`` when the frame at ``position`` goes out.

        ``callback(False, now)`` when a flush drops it first; at once when it has
        already gone out (or nothing will ever be queued there by this epoch).
        """
        if position <= self.last_played:
            dropped = any(low <= position <= high for low, high in self._dropped)
            callback(not dropped, 0.0)
            return
        heapq.heappush(self._waiters, (position, next(self._order), callback))

    def flush(self, now: float = 0.0) -> int:
        """Drop everything queued and start a new epoch; returns the new epoch."""
        self._frames.clear()
        self._buffer = np.zeros(0, dtype=np.int16)
        self.epoch += 1
        # Positions of dropped frames will never play: their waiters learn it now.
        if self.queued - 1 > self.last_played:
            self._dropped.append((self.last_played + 1, self.queued - 1))
            self.last_played = self.queued - 1
        waiters, self._waiters = self._waiters, []
        for _, _, callback in waiters:
            callback(False, now)
        return self.epoch

    def pop(self, now: float = 0.0) -> PcmFrame | None:
        """The next frame of the current epoch, or None (the caller sends comfort silence)."""
        while self._frames:
            epoch, position, frame = self._frames.popleft()
            if epoch == self.epoch:
                self.played += 1
                self.last_played = position
                if self._waiters and self._waiters[0][0] <= position:
                    self._wake(position, now)
                return frame
            self.dropped_stale += 1
        return None

    def _wake(self, position: int, now: float) -> None:
        waiters = self._waiters
        while waiters and waiters[0][0] <= position:
            _, _, callback = heapq.heappop(waiters)
            callback(True, now)
