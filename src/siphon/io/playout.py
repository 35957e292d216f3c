"""Outbound audio of one call: a queue of 20 ms PCM frames stamped with a turn epoch.

Barge-in must silence the agent within one tick and nothing queued before the
interruption may reach the wire afterwards. Cancelling the producer is not enough
(frames already queued, or produced by a task that has not seen the cancellation
yet, would still play), so every frame carries the epoch it was queued in and
``flush()`` bumps the epoch: stale frames are dropped here, at the last step.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

PcmFrame = npt.NDArray[np.int16]

# 20 ms at 8 kHz.
FRAME_SAMPLES = 160
# Bound on queued audio (60 s): a producer far ahead of real time is a bug, and
# memory per call must stay small with hundreds of calls in one process.
MAX_QUEUED_FRAMES = 3000


class PlayoutQueue:
    __slots__ = ("_buffer", "_frames", "dropped_overflow", "dropped_stale", "epoch", "played")

    def __init__(self) -> None:
        self._frames: deque[tuple[int, PcmFrame]] = deque()
        self._buffer = np.zeros(0, dtype=np.int16)  # samples not yet a whole frame
        self.epoch = 0
        self.played = 0
        self.dropped_stale = 0
        self.dropped_overflow = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def queued_ms(self) -> int:
        return len(self._frames) * 20

    def put(self, pcm: PcmFrame, epoch: int | None = None) -> None:
        """Queue 8 kHz PCM of any length; it is cut into 20 ms frames (the tail waits)."""
        if epoch is not None and epoch != self.epoch:
            self.dropped_stale += 1
            return
        samples = np.concatenate((self._buffer, np.asarray(pcm, dtype=np.int16)))
        whole = len(samples) - len(samples) % FRAME_SAMPLES
        for start in range(0, whole, FRAME_SAMPLES):
            if len(self._frames) >= MAX_QUEUED_FRAMES:
                self.dropped_overflow += 1
                continue
            self._frames.append((self.epoch, samples[start : start + FRAME_SAMPLES]))
        self._buffer = samples[whole:]

    def end_of_utterance(self) -> None:
        """Pad the waiting tail with silence so the last partial frame plays too."""
        if len(self._buffer):
            tail = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            tail[: len(self._buffer)] = self._buffer
            self._buffer = np.zeros(0, dtype=np.int16)
            self._frames.append((self.epoch, tail))

    def flush(self) -> int:
        """Drop everything queued and start a new epoch; returns the new epoch."""
        self._frames.clear()
        self._buffer = np.zeros(0, dtype=np.int16)
        self.epoch += 1
        return self.epoch

    def pop(self) -> PcmFrame | None:
        """The next frame of the current epoch, or None (the caller sends comfort silence)."""
        while self._frames:
            epoch, frame = self._frames.popleft()
            if epoch == self.epoch:
                self.played += 1
                return frame
            self.dropped_stale += 1
        return None
