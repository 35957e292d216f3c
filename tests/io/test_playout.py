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
