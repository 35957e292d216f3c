"""Recording files written off the event loop.

Every call's stereo WAV (``siphon.rtp.recorder.WavWriter``: left = caller, right =
agent) is fed one interleaved 20 ms frame per media-clock tick. Opening, writing
and closing files can block (a slow disk, a full page cache) and the event loop
must never block, so all of it goes through one queue to one writer thread for
the whole process. Files are flushed every second, so a killed process loses at
most a second; ``repair_directory`` fixes their headers on the next start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from pathlib import Path

from siphon.rtp.recorder import WavWriter, repair_directory

log = logging.getLogger("siphon.io.recording")

# Flush each file's OS buffer this often so a killed process loses at most this much.
FLUSH_EVERY_FRAMES = 50  # 1 s of audio


def recordings_dir() -> Path:
    return Path(os.environ.get("SIPHON_RECORDINGS_DIR", "recordings"))


class Recording:
    """A recording being written; ``path`` is where it lands."""

    __slots__ = ("frames", "path", "sample_rate", "writer")

    def __init__(self, path: Path, sample_rate: int) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.writer: WavWriter | None = None  # created by the writer thread
        self.frames = 0


class RecordingWriter:
    """One background thread that owns every open recording file."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[
            tuple[str, Recording | threading.Event | list[tuple[Recording, bytes]], bytes]
        ] = queue.SimpleQueue()
        self._pending: list[tuple[Recording, bytes]] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.errors = 0

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="siphon-recordings", daemon=True
                )
                self._thread.start()

    def open(self, path: Path, sample_rate: int = 8000) -> Recording:
        recording = Recording(path, sample_rate)
        self._ensure_thread()
        self._queue.put(("open", recording, b""))
        return recording

    def write(self, recording: Recording, data: bytes) -> None:
        """Queue one frame; a tick's frames of every call go to the thread as one batch.

        One queue item (and one thread wake-up, one GIL hand-over) per tick instead of
        one per call per tick: with hundreds of calls the per-item cost would delay
        the next tick's packets.
        """
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self._submit)
            except RuntimeError:  # no loop (tests, shutdown): hand over at once
                self._pending.append((recording, data))
                self._submit()
                return
        self._pending.append((recording, data))

    def _submit(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self._queue.put(("batch", batch, b""))

    def close(self, recording: Recording) -> None:
        self._submit()  # frames written before the close go first
        self._queue.put(("close", recording, b""))

    def drain(self, timeout: float = 5.0) -> bool:
        """Block until everything queued so far is on disk (tests and shutdown)."""
        done = threading.Event()
        self._ensure_thread()
        self._submit()
        self._queue.put(("mark", done, b""))
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            kind, target, _ = self._queue.get()
            try:
                if isinstance(target, threading.Event):
                    target.set()
                elif isinstance(target, list):
                    for recording, frame in target:
                        self._write(recording, frame)
                elif kind == "open":
                    target.path.parent.mkdir(parents=True, exist_ok=True)
                    target.writer = WavWriter(
                        target.path, sample_rate=target.sample_rate, channels=2
                    )
                elif target.writer is None:
                    continue  # its open failed (logged): nothing to write or close
                elif kind == "close":
                    target.writer.close()
            except Exception:  # a full disk must not stop the writer for other calls
                self.errors += 1
                log.exception("recording %s failed", kind)

    def _write(self, recording: Recording, frame: bytes) -> None:
        if recording.writer is None:
            return  # its open failed (logged)
        try:
            recording.writer.write(frame)
        except Exception:
            self.errors += 1
            log.exception("recording write failed: %s", recording.path)
            return
        recording.frames += 1
        if recording.frames % FLUSH_EVERY_FRAMES == 0:
            recording.writer.flush()


_WRITER: RecordingWriter | None = None


def recording_writer() -> RecordingWriter:
    """The process-wide writer; repairs files a killed process left, on first use."""
    global _WRITER
    if _WRITER is None:
        _WRITER = RecordingWriter()
        folder = recordings_dir()
        if folder.is_dir():
            for fixed in repair_directory(folder):
                log.info("repaired recording left by an earlier process: %s", fixed)
    return _WRITER
