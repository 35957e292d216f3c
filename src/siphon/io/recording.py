"""Recording files written off the event loop.

Every call's stereo WAV (``siphon.rtp.recorder.WavWriter``) is fed 20 ms frames by
the media clock. File writes can block (a slow disk, a full page cache), and the
event loop must never block, so frames go through one queue to one writer thread
for the whole process.
"""

from __future__ import annotations

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


class _Command:
    __slots__ = ("data", "done", "kind", "writer")

    def __init__(
        self,
        kind: str,
        writer: WavWriter | None = None,
        data: bytes = b"",
        done: threading.Event | None = None,
    ) -> None:
        self.kind = kind  # "write", "close" or "mark"
        self.writer = writer
        self.data = data
        self.done = done


class RecordingWriter:
    """One background thread that owns every open recording file."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Command | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._frames: dict[int, int] = {}
        self.errors = 0

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="siphon-recordings", daemon=True
                )
                self._thread.start()

    def open(self, path: Path, sample_rate: int = 8000) -> WavWriter:
        """Create the file now (so a crash right after still leaves one), then write async."""
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = WavWriter(path, sample_rate=sample_rate, channels=2)
        self._ensure_thread()
        return writer

    def write(self, writer: WavWriter, data: bytes) -> None:
        self._queue.put(_Command("write", writer, data))

    def close(self, writer: WavWriter) -> None:
        self._queue.put(_Command("close", writer))

    def drain(self, timeout: float = 5.0) -> None:
        """Block until everything queued so far is on disk (tests and shutdown)."""
        done = threading.Event()
        self._ensure_thread()
        self._queue.put(_Command("mark", done=done))
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            command = self._queue.get()
            if command is None:
                return
            try:
                if command.kind == "write" and command.writer is not None:
                    command.writer.write(command.data)
                    key = id(command.writer)
                    count = self._frames.get(key, 0) + 1
                    self._frames[key] = count
                    if count % FLUSH_EVERY_FRAMES == 0:
                        command.writer.flush()
                elif command.kind == "close" and command.writer is not None:
                    self._frames.pop(id(command.writer), None)
                    command.writer.close()
                elif command.kind == "mark" and command.done is not None:
                    command.done.set()
            except Exception:  # a full disk must not kill the writer for other calls
                self.errors += 1
                log.exception("recording write failed")


_WRITER: RecordingWriter | None = None


def recording_writer() -> RecordingWriter:
    """The process-wide writer; repairs files a killed process left on first use."""
    global _WRITER
    if _WRITER is None:
        _WRITER = RecordingWriter()
        folder = recordings_dir()
        if folder.is_dir():
            for fixed in repair_directory(folder):
                log.info("repaired recording left by an earlier process: %s", fixed)
    return _WRITER
