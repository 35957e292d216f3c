"""The playout queue: 20 ms framing, and the turn epoch that makes barge-in exact."""

from __future__ import annotations

import numpy as np

from siphon.io.playout import FRAME_SAMPLES, MAX_QUEUED_FRAMES, PlayoutQueue


def tone(value: int, samples: int) -> np.ndarray:
    return np.full(samples, value, dtype=np.int16)


def test_any_length_is_cut_into_20ms_frames_and_the_tail_waits() -> None:
    queue = PlayoutQueue()
    queue.put(tone(1, 400))  # 2.5 frames
    assert len(queue) == 2
    assert queue.pop()[0] == 1 and queue.pop()[0] == 1  # type: ignore[index]
    assert queue.pop() is None  # the half frame waits for more audio
    queue.put(tone(2, 80))
    frame = queue.pop()
    assert frame is not None and len(frame) == FRAME_SAMPLES
    assert frame[0] == 1 and frame[-1] == 2


def test_end_of_utterance_pads_the_tail_with_silence() -> None:
    queue = PlayoutQueue()
    queue.put(tone(5, 100))
    queue.end_of_utterance()
    frame = queue.pop()
    assert frame is not None and frame[99] == 5 and frame[100] == 0


def test_nothing_queued_before_a_flush_plays_after_it() -> None:
    queue = PlayoutQueue()
    old_epoch = queue.epoch
    queue.put(tone(7, FRAME_SAMPLES * 10), old_epoch)
    new_epoch = queue.flush()
    assert new_epoch == old_epoch + 1
    # A producer that has not seen the interruption yet keeps queuing: dropped.
    queue.put(tone(7, FRAME_SAMPLES * 3), old_epoch)
    queue.put(tone(8, FRAME_SAMPLES), new_epoch)
    played = []
    while (frame := queue.pop()) is not None:
        played.append(int(frame[0]))
    assert played == [8]
    assert queue.dropped_stale == 1


def test_queue_is_bounded() -> None:
    queue = PlayoutQueue()
    queue.put(tone(1, FRAME_SAMPLES * (MAX_QUEUED_FRAMES + 10)))
    assert len(queue) == MAX_QUEUED_FRAMES
    assert queue.dropped_overflow == 10


def test_positions_and_played_notifications() -> None:
    queue = PlayoutQueue()
    seen: list[tuple[str, bool, float]] = []
    first = queue.put(tone(1, FRAME_SAMPLES * 3))
    assert first == 2 and queue.queued == 3
    queue.notify_played(0, lambda ok, now: seen.append(("first", ok, now)))
    queue.notify_played(2, lambda ok, now: seen.append(("last", ok, now)))
    queue.pop(1.0)
    assert seen == [("first", True, 1.0)]
    queue.pop(1.02)
    queue.pop(1.04)
    assert seen[-1] == ("last", True, 1.04)
    assert queue.idle
    # Already played: answered at once.
    queue.notify_played(1, lambda ok, now: seen.append(("late", ok, now)))
    assert seen[-1][:2] == ("late", True)


def test_a_flush_tells_waiters_their_frames_never_played() -> None:
    queue = PlayoutQueue()
    last = queue.put(tone(1, FRAME_SAMPLES * 5))
    outcome: list[bool] = []
    queue.notify_played(last, lambda ok, now: outcome.append(ok))
    queue.pop(0.0)
    queue.flush(0.5)
    assert outcome == [False]
    # A late question about a dropped position gets the same answer.
    queue.notify_played(3, lambda ok, now: outcome.append(ok))
    queue.notify_played(0, lambda ok, now: outcome.append(ok))  # this one did play
    assert outcome == [False, False, True]
    # New audio after the flush gets new positions.
    assert queue.put(tone(2, FRAME_SAMPLES)) == 5


def test_end_of_utterance_returns_the_last_position_and_respects_the_epoch() -> None:
    queue = PlayoutQueue()
    queue.put(tone(3, 100))
    assert queue.end_of_utterance() == 0
    epoch = queue.flush()
    queue.put(tone(3, 100), epoch)
    assert queue.end_of_utterance(epoch - 1) == 0  # stale: nothing padded
    assert queue.end_of_utterance(epoch) == 1
