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
import atexit
import enum
import logging
import os
import queue
import threading
from pathlib import Path
from typing import Final

from siphon.rtp.recorder import WavWriter, repair_directory

log = logging.getLogger("siphon.io.recording")

# Flush each file's OS buffer this often so a killed process loses at most this much.
FLUSH_EVERY_FRAMES = 50  # 1 s of audio
# Wake the writer thread at most this often (s): each wake-up costs a thread switch
# and a GIL hand-over, on a busy core more than the work it brings.
HANDOVER_INTERVAL = 0.01


def recordings_dir() -> Path:
    return Path(os.environ.get("SIPHON_RECORDINGS_DIR", "recordings"))


class Recording:
    """A recording being written; ``path`` is where it lands."""

    __slots__ = ("closing", "frames", "path", "sample_rate", "writer")

    def __init__(self, path: Path, sample_rate: int) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.writer: WavWriter | None = None  # created by the writer thread
        self.frames = 0
        self.closing = False  # close() was called (the writer may not have got to it)


class _Op(enum.Enum):
    OPEN = "open"
    CLOSE = "close"


_OPEN: Final = _Op.OPEN
_CLOSE: Final = _Op.CLOSE

# One pending item: a frame to append, or the recording's open or close.
_Item = tuple[Recording, "bytes | _Op"]


class RecordingWriter:
    """One background thread that owns every open recording file.

    Opens, frames and closes all go into one pending list, in the order they were
    made, handed to the thread as one queue item by a ``call_soon`` callback at the
    end of the loop iteration, or, if the last hand-over was less than
    ``HANDOVER_INTERVAL`` ago, by a timer then. So the thread wakes at most once per
    iteration and ``HANDOVER_INTERVAL`` however many calls start, tick or end: at
    one call per iteration (one datagram each) the ACK and BYE of a short call
    would otherwise wake it twice. Only the loop thread touches the pending list.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[list[_Item] | threading.Event] = queue.SimpleQueue()
        self._pending: list[_Item] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # where _submit was scheduled
        self._handed_at = float("-inf")  # loop.time() of the last hand-over
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._dirs: set[str] = set()  # folders known to exist (writer thread only)
        self._open: set[Recording] = set()  # open files, flushed by drain (writer thread)
        self.errors = 0

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="siphon-recordings", daemon=True
                )
                self._thread.start()

    def open(self, path: Path, sample_rate: int = 8000) -> Recording:
        """A new recording; the thread creates the file (and its folder) soon after."""
        recording = Recording(path, sample_rate)
        self._add((recording, _OPEN))
        return recording

    def write(self, recording: Recording, data: bytes) -> None:
        """Queue one frame; it goes to the thread with the other pending items."""
        if self._pending:  # the hot path: a hand-over is scheduled already
            self._pending.append((recording, data))
        else:
            self._add((recording, data))

    def close(self, recording: Recording) -> None:
        """Queue the close: the frames written before it go first."""
        recording.closing = True
        if self._pending:
            self._pending.append((recording, _CLOSE))
        else:
            self._add((recording, _CLOSE))

    def _add(self, item: _Item) -> None:
        pending = self._pending
        pending.append(item)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (tests, shutdown): hand over at once
            self._submit()
            return
        # Schedule unless scheduled already; open() comes here every time so that a
        # hand-over left behind on a loop that ended is made up for on the next.
        if len(pending) == 1 or loop is not self._loop:
            loop.call_soon(self._handover, loop, False)
            self._loop = loop

    def _handover(self, loop: asyncio.AbstractEventLoop, timed: bool) -> None:
        now = loop.time()
        due = self._handed_at + HANDOVER_INTERVAL
        if now < due and not timed:
            loop.call_at(due, self._handover, loop, True)
            return
        self._handed_at = now
        self._submit()

    def _submit(self) -> None:
        batch = self._pending
        if batch:
            self._pending = []
            thread = self._thread
            if thread is None or not thread.is_alive():
                self._ensure_thread()
            self._queue.put(batch)

    def drain(self, timeout: float = 5.0) -> bool:
        """Block until everything queued so far is on disk (tests and shutdown).

        Also hands the buffered frames of files still open to the OS. From another
        thread than the loop's, the loop itself submits its pending items (only the
        loop thread touches them).
        """
        done = threading.Event()
        self._ensure_thread()
        loop = self._loop
        if loop is not None and loop.is_running() and not _running_in(loop):
            try:
                loop.call_soon_threadsafe(self._submit_mark, done)
                return done.wait(timeout)
            except RuntimeError:  # closed meanwhile: nothing runs there any more
                pass
        self._submit_mark(done)
        return done.wait(timeout)

    def drain_if_started(self, timeout: float = 5.0) -> bool:
        """``drain`` unless nothing was ever queued (for exit: no thread to start)."""
        if self._thread is None and not self._pending:
            return True
        try:
            return self.drain(timeout)
        except RuntimeError:  # too late in the interpreter's shutdown to start a thread
            return False

    def _submit_mark(self, done: threading.Event) -> None:
        self._submit()
        self._queue.put(done)

    def _run(self) -> None:
        get = self._queue.get
        while True:
            item = get()
            if isinstance(item, threading.Event):
                self._flush_open()
                item.set()
            else:
                self._apply(item)

    def _apply(self, batch: list[_Item]) -> None:
        for recording, data in batch:
            try:
                if data is _CLOSE:
                    writer = recording.writer
                    if writer is not None:  # else its open failed (logged)
                        self._open.discard(recording)
                        writer.close()
                elif data is _OPEN:
                    recording.writer = self._create(recording)
                    self._open.add(recording)
                else:
                    writer = recording.writer
                    if writer is None:
                        continue  # its open failed (logged)
                    writer.write(data)
                    recording.frames += 1
                    if recording.frames % FLUSH_EVERY_FRAMES == 0:
                        writer.flush()
            except Exception:  # a full disk must not stop the writer for other calls
                self.errors += 1
                what = data.value if isinstance(data, _Op) else "write"
                log.exception("recording %s failed: %s", what, recording.path)

    def _create(self, recording: Recording) -> WavWriter:
        folder = os.path.dirname(recording.path)
        if folder and folder not in self._dirs:
            os.makedirs(folder, exist_ok=True)  # once per folder, not per file
            self._dirs.add(folder)
        try:
            return self._wav(recording)
        except FileNotFoundError:
            if not folder:
                raise
            os.makedirs(folder, exist_ok=True)  # removed since we made it
            return self._wav(recording)

    @staticmethod
    def _wav(recording: Recording) -> WavWriter:
        # A call already over (a short one: its close is in this batch or the next)
        # gets its header once, with the true sizes, on close.
        return WavWriter(
            recording.path, recording.sample_rate, channels=2, lazy_header=recording.closing
        )

    def _flush_open(self) -> None:
        for recording in list(self._open):
            try:
                if recording.writer is not None:
                    recording.writer.flush()
            except Exception:
                self.errors += 1
                log.exception("recording flush failed: %s", recording.path)


def _running_in(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


_WRITER: RecordingWriter | None = None


def recording_writer() -> RecordingWriter:
    """The process-wide writer; repairs files a killed process left, on first use."""
    global _WRITER
    if _WRITER is None:
        _WRITER = RecordingWriter()
        # The thread is a daemon: what is pending or buffered at exit goes out first.
        atexit.register(_WRITER.drain_if_started, 2.0)
        folder = recordings_dir()
        if folder.is_dir():
            for fixed in repair_directory(folder):
                log.info("repaired recording left by an earlier process: %s", fixed)
    return _WRITER
