"""The recording writer thread: batching, order, folders, failures, drain."""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import struct
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import siphon.io.recording as recording_module
from siphon.io.recording import FLUSH_EVERY_FRAMES, Recording, RecordingWriter
from siphon.rtp.recorder import HEADER_SIZE, UNKNOWN_SIZE

FRAME_BYTES = 640  # 20 ms of 8 kHz 16-bit stereo


def frame(i: int) -> bytes:
    """A recognisable stereo frame: every sample is ``i``."""
    return np.full(320, i, dtype="<i2").tobytes()


def samples(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def sizes(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:HEADER_SIZE]
    return struct.unpack_from("<I", head, 4)[0], struct.unpack_from("<I", head, 40)[0]


class CountingQueue(queue.SimpleQueue):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self.batches: list[int] = []

    def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
        if isinstance(item, list):
            self.batches.append(len(item))
        super().put(item, block, timeout)


class CountingWriter(RecordingWriter):
    """Counts the batches handed to the thread (each one a thread wake-up)."""

    def __init__(self) -> None:
        super().__init__()
        self._queue = CountingQueue()
        self.batches = self._queue.batches


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


async def test_open_frames_and_close_ride_in_one_batch_in_order(tmp_path: Path) -> None:
    writer = CountingWriter()
    a = writer.open(tmp_path / "a.wav")
    for i in range(3):
        writer.write(a, frame(i))
    b = writer.open(tmp_path / "b.wav")
    writer.write(b, frame(7))
    writer.close(a)
    writer.write(b, frame(8))
    writer.close(b)
    assert writer.batches == []  # handed over at the end of the loop iteration
    await asyncio.sleep(0)
    assert writer.batches == [9]
    assert writer.drain()
    assert samples(tmp_path / "a.wav").tolist() == [0] * 320 + [1] * 320 + [2] * 320
    assert samples(tmp_path / "b.wav").tolist() == [7] * 320 + [8] * 320
    assert a.frames == 3 and b.frames == 2 and writer.errors == 0


@pytest.mark.parametrize("same_batch", [True, False])
async def test_a_call_without_frames_still_gets_a_valid_wav(
    tmp_path: Path, same_batch: bool
) -> None:
    writer = RecordingWriter()
    path = tmp_path / "silent.wav"
    recording = writer.open(path)
    if not same_batch:  # the file is created before the close arrives
        assert writer.drain()
        assert sizes(path) == (UNKNOWN_SIZE, UNKNOWN_SIZE)
    writer.close(recording)
    assert writer.drain()
    assert path.stat().st_size == HEADER_SIZE
    assert sizes(path) == (36, 0)
    assert samples(path).size == 0
    assert recording.writer is not None and recording.writer.closed


async def test_hand_overs_are_rate_limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recording_module, "HANDOVER_INTERVAL", 0.5)
    writer = CountingWriter()
    first = writer.open(tmp_path / "first.wav")
    await asyncio.sleep(0)
    assert writer.batches == [1]  # the first goes at once
    calls = []
    for i in range(5):  # five loop iterations within the interval: one more wake-up
        calls.append(writer.open(tmp_path / f"call-{i}.wav"))
        writer.write(calls[-1], frame(i))
        writer.close(calls[-1])
        await asyncio.sleep(0)
    assert writer.batches == [1]
    await asyncio.sleep(0.7)
    assert writer.batches == [1, 15]
    writer.close(first)
    assert writer.drain()
    for i in range(5):
        assert samples(tmp_path / f"call-{i}.wav").tolist() == [i] * 320


async def test_drain_from_another_thread_waits_for_the_pending_batch(tmp_path: Path) -> None:
    writer = RecordingWriter()
    recording = writer.open(tmp_path / "c.wav")
    writer.write(recording, frame(5))
    writer.close(recording)
    # The loop, not the draining thread, hands its pending items over.
    assert await asyncio.to_thread(writer.drain)
    assert samples(tmp_path / "c.wav").tolist() == [5] * 320


async def test_drain_hands_open_files_frames_to_the_os(tmp_path: Path) -> None:
    writer = RecordingWriter()
    path = tmp_path / "open.wav"
    recording = writer.open(path)
    writer.write(recording, frame(1))
    assert writer.drain()
    assert path.stat().st_size == HEADER_SIZE + FRAME_BYTES
    writer.close(recording)
    assert writer.drain()


def test_files_are_flushed_every_second_of_audio(tmp_path: Path) -> None:
    writer = RecordingWriter()  # no loop: every item goes at once
    path = tmp_path / "long.wav"
    recording = writer.open(path)
    for i in range(FLUSH_EVERY_FRAMES + 3):
        writer.write(recording, frame(i % 100))
    wait_for(lambda: recording.frames == FLUSH_EVERY_FRAMES + 3)
    # No drain, no close: the flush after the 50th frame put them in the file.
    assert path.stat().st_size == HEADER_SIZE + FLUSH_EVERY_FRAMES * FRAME_BYTES
    writer.close(recording)
    assert writer.drain()


async def test_a_failed_open_is_counted_and_the_other_calls_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "not-a-folder").write_text("a file where a folder should be")
    writer = RecordingWriter()
    bad = writer.open(tmp_path / "not-a-folder" / "bad.wav")
    good = writer.open(tmp_path / "good.wav")
    writer.write(bad, frame(1))
    writer.write(good, frame(2))
    writer.close(bad)
    writer.close(good)
    with caplog.at_level(logging.ERROR, "siphon.io.recording"):
        assert writer.drain()
    assert writer.errors == 1  # the open; its frame and close are skipped
    assert "recording open failed" in caplog.text
    assert bad.writer is None
    assert samples(tmp_path / "good.wav").tolist() == [2] * 320


async def test_a_failed_write_is_counted_and_the_batch_goes_on(tmp_path: Path) -> None:
    writer = RecordingWriter()
    recording = writer.open(tmp_path / "w.wav")
    writer.write(recording, b"\x01\x02\x03")  # not whole sample frames
    writer.write(recording, frame(4))
    writer.close(recording)
    assert writer.drain()
    assert writer.errors == 1
    assert samples(tmp_path / "w.wav").tolist() == [4] * 320


async def test_each_folder_is_created_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    real_makedirs = os.makedirs

    def makedirs(name: str, exist_ok: bool = False) -> None:
        made.append(os.fspath(name))
        real_makedirs(name, exist_ok=exist_ok)

    monkeypatch.setattr(os, "makedirs", makedirs)
    writer = RecordingWriter()
    for i in range(3):
        writer.close(writer.open(tmp_path / "day1" / f"{i}.wav"))
        writer.close(writer.open(tmp_path / "day2" / "deeper" / f"{i}.wav"))
        await asyncio.sleep(0)
    assert writer.drain()
    # Once per folder (makedirs makes "day2" itself on the way to "deeper").
    assert made.count(str(tmp_path / "day1")) == 1
    assert made.count(str(tmp_path / "day2" / "deeper")) == 1
    assert len(made) == 3
    assert len(list((tmp_path / "day2" / "deeper").iterdir())) == 3

    # A folder removed behind the writer's back is made again.
    for path in (tmp_path / "day1").iterdir():
        path.unlink()
    (tmp_path / "day1").rmdir()
    writer.close(writer.open(tmp_path / "day1" / "again.wav"))
    assert writer.drain()
    assert writer.errors == 0
    assert samples(tmp_path / "day1" / "again.wav").size == 0


def test_items_left_on_a_finished_loop_go_out_with_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recording_module, "HANDOVER_INTERVAL", 60.0)
    writer = CountingWriter()

    async def one_call(name: str) -> Recording:
        recording = writer.open(tmp_path / name)
        writer.close(recording)
        await asyncio.sleep(0)
        return recording

    asyncio.run(one_call("first.wav"))  # handed over at once
    asyncio.run(one_call("second.wav"))  # deferred to a timer that never fires
    assert writer.batches == [2]
    monkeypatch.setattr(recording_module, "HANDOVER_INTERVAL", 0.0)
    asyncio.run(one_call("third.wav"))  # a new loop: scheduled there, second's included
    assert writer.batches == [2, 4]
    assert writer.drain()
    for name in ("first.wav", "second.wav", "third.wav"):
        assert sizes(tmp_path / name) == (36, 0)


def test_drain_if_started_does_not_start_a_thread() -> None:
    writer = RecordingWriter()
    assert writer.drain_if_started(0.1)
    assert writer._thread is None


def test_writer_thread_is_a_daemon(tmp_path: Path) -> None:
    writer = RecordingWriter()
    writer.close(writer.open(tmp_path / "d.wav"))
    assert writer.drain()
    assert writer._thread is not None and writer._thread.daemon
    assert writer._thread is not threading.current_thread()
