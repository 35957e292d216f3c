"""Crash-safe call recording to a stereo WAV file (left = caller, right = agent).

The core is sans-IO: ``wav_header`` builds the 44-byte canonical RIFF/WAVE PCM
header, ``interleave`` turns two aligned mono frames into stereo PCM, and
``plan_repair`` decides from a file's first bytes and size how to fix its header.
``WavWriter``, ``repair_wav`` and ``repair_directory`` are thin blocking file
I/O around it, meant to run in a worker thread of the asyncio layer.

Crash safety: the header is written at open (with ``lazy_header``, at the first
flush: a file killed before it stays empty) with both size fields set to
``0xFFFFFFFF``, the conventional "unknown length, read to end of file" value of
streamed WAV (what ffmpeg writes on unseekable output; ffmpeg, sox and most
players read such a file to its end while it grows). ``close`` patches the true
sizes. A file left by a killed process keeps the placeholder; ``repair_wav``
(or ``repair_directory`` at start-up) computes the sizes from the file length,
dropping a partial trailing sample frame. Data written before the last
``flush`` is safe against the process dying; ``flush(fsync=True)`` also makes
it safe against the machine dying.

A RIFF file cannot describe more than 4 GiB: at 8 kHz stereo 16-bit that is
about 37 hours of call; beyond it the header sizes saturate at the placeholder.
"""

from __future__ import annotations

import contextlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from siphon.errors import ConfigError

__all__ = [
    "HEADER_SIZE",
    "UNKNOWN_SIZE",
    "RepairPlan",
    "WavWriter",
    "interleave",
    "plan_repair",
    "repair_directory",
    "repair_wav",
    "wav_header",
]

HEADER_SIZE = 44
UNKNOWN_SIZE = 0xFFFFFFFF
"""Placeholder RIFF and data sizes of a file still being written."""

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_PCM = 1
_EXTENSIBLE = 0xFFFE
_MAX_DATA = UNKNOWN_SIZE - (HEADER_SIZE - 8)  # the largest data size a RIFF size can hold


def wav_header(sample_rate: int, channels: int, bits: int, data_bytes: int) -> bytes:
    """The 44-byte canonical PCM WAV header for ``data_bytes`` of sample data.

    Sizes too large for RIFF's 32-bit fields (``UNKNOWN_SIZE`` among them) give
    ``UNKNOWN_SIZE`` in both size fields, the streamed-WAV placeholder.
    """
    if sample_rate <= 0 or channels <= 0 or bits <= 0 or bits % 8:
        raise ConfigError(
            f"invalid WAV format {sample_rate} Hz x {channels} channels x {bits} bits: "
            "rate and channels must be positive, bits a positive multiple of 8"
        )
    if data_bytes < 0:
        raise ConfigError(f"data_bytes must not be negative, not {data_bytes}")
    block_align = channels * bits // 8
    if data_bytes > _MAX_DATA:
        riff_size = data_size = UNKNOWN_SIZE
    else:
        riff_size, data_size = HEADER_SIZE - 8 + data_bytes, data_bytes
    return _HEADER.pack(
        b"RIFF",
        riff_size,
        b"WAVE",
        b"fmt ",
        16,
        _PCM,
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        bits,
        b"data",
        data_size,
    )


def interleave(left: npt.NDArray[np.int16], right: npt.NDArray[np.int16]) -> bytes:
    """Little-endian 16-bit stereo PCM, left (caller) sample first in each frame.

    Both channels must be int16 arrays of the same length: the media clock hands
    each side one frame per tick (silence where a side had nothing), which keeps
    them aligned.
    """
    if left.dtype != np.int16 or right.dtype != np.int16:
        raise ConfigError(f"interleave needs int16 samples, got {left.dtype} and {right.dtype}")
    if left.ndim != 1 or right.ndim != 1 or left.shape != right.shape:
        raise ConfigError(
            f"interleave needs two 1-D frames of equal length, got {left.shape} and {right.shape}"
        )
    out = np.empty((left.shape[0], 2), dtype="<i2")
    out[:, 0] = left
    out[:, 1] = right
    return out.tobytes()


# --------------------------------------------------------------------------- repair


@dataclass(frozen=True, slots=True)
class RepairPlan:
    """How to fix a WAV file: patch these two size fields, truncate to ``file_size``."""

    riff_size: int
    data_size_offset: int  # where the data chunk's size field is
    data_size: int
    file_size: int


def plan_repair(head: bytes, file_size: int) -> RepairPlan | None:
    """What to change in a WAV file whose first bytes are ``head``; None if nothing.

    ``head`` must hold the file's chunk headers up to the ``data`` chunk's (the
    first 4 KiB is plenty for what we write). None too when the file is not a
    PCM WAV file at all, or too short to hold a header: those are left alone.
    A data size that is a placeholder or runs past the end of the file is
    replaced by what the file holds, rounded down to whole sample frames; a good
    file (also one with chunks after its data) gives None.
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    block_align = 0
    while pos + 8 <= min(len(head), file_size):
        chunk_id = head[pos : pos + 4]
        (size,) = struct.unpack_from("<I", head, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(head):
                return None
            fmt, _ch, _rate, _bps, block_align, _bits = struct.unpack_from("<HHIIHH", head, body)
            if fmt not in (_PCM, _EXTENSIBLE) or block_align == 0:
                return None
        elif chunk_id == b"data":
            if block_align == 0:
                return None  # no usable fmt chunk before the data
            return _plan_data(head, file_size, pos, size, block_align)
        pos = body + size + (size & 1)
    return None


def _plan_data(
    head: bytes, file_size: int, pos: int, size: int, block_align: int
) -> RepairPlan | None:
    (riff_now,) = struct.unpack_from("<I", head, 4)
    body = pos + 8
    available = file_size - body
    if size != UNKNOWN_SIZE and size <= available and (size > 0 or available < block_align):
        # A believable data size (possibly followed by more chunks): keep it.
        data, new_size = size, file_size
        riff = min(file_size - 8, UNKNOWN_SIZE)
    else:
        # A placeholder (ours is UNKNOWN_SIZE, some writers use 0) or a size
        # running past the end: the data is whatever whole frames the file holds.
        data = available - available % block_align
        new_size = body + data
        riff = new_size - 8
        if data > _MAX_DATA:  # more than RIFF can describe: stay a streamed file
            data = riff = UNKNOWN_SIZE
    if (riff, data, new_size) == (riff_now, size, file_size):
        return None
    return RepairPlan(riff, pos + 4, data, new_size)


def repair_wav(path: str | os.PathLike[str]) -> bool:
    """Fix the header of a WAV file left unfinished by a killed process.

    Sets the RIFF and data sizes from the file's actual length, truncating a
    partial last sample frame. Returns whether the file was changed: False for a
    good file, and for files that are not PCM WAV or too short to repair.
    """
    with open(path, "r+b") as f:
        head = f.read(4096)
        size = os.fstat(f.fileno()).st_size
        plan = plan_repair(head, size)
        if plan is None:
            return False
        f.seek(4)
        f.write(struct.pack("<I", plan.riff_size))
        f.seek(plan.data_size_offset)
        f.write(struct.pack("<I", plan.data_size))
        if plan.file_size < size:
            f.truncate(plan.file_size)
        f.flush()
        os.fsync(f.fileno())
    return True


def repair_directory(directory: str | os.PathLike[str]) -> list[Path]:
    """Repair every ``*.wav`` file directly in ``directory``; the paths changed, sorted.

    Meant for start-up, before any ``WavWriter`` writes there again: a file being
    written would be "repaired" to its current length.
    """
    repaired: list[Path] = []
    for path in sorted(Path(directory).iterdir()):
        if path.suffix.lower() == ".wav" and path.is_file() and repair_wav(path):
            repaired.append(path)
    return repaired


# --------------------------------------------------------------------------- writer


class WavWriter:
    """Appends PCM frames to a WAV file whose header is finished on ``close``.

    Blocking file I/O, to run in a worker thread. The header (with placeholder
    sizes) reaches the OS at open; with ``lazy_header`` only with the first flush
    or on close, one write less for a file closed before its first flush (but
    empty until then). ``write`` takes whole sample frames (e.g.
    ``interleave`` output) and buffers them in memory; ``flush`` hands them to
    the OS and should be called every second or so by the caller (a writer
    nobody flushes does it itself every 64 KiB); ``close`` writes what is left,
    patches the header sizes and may be called any number of times.

    Plain descriptor calls, not a buffered file object: a short recording costs
    four system calls (open, header, header patch, close; three with
    ``lazy_header``) and a long one one write per flush, not one per 4-8 KiB.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sample_rate: int = 8000,
        channels: int = 2,
        bits: int = 16,
        *,
        lazy_header: bool = False,
    ) -> None:
        self._fd: int | None = None  # first, for __del__ if the rest fails
        header = wav_header(sample_rate, channels, bits, UNKNOWN_SIZE)
        self.path = path if isinstance(path, Path) else Path(path)
        self.sample_rate = sample_rate
        self.channels = channels
        self.bits = bits
        self.block_align = channels * bits // 8
        self.data_bytes = 0
        self._chunks: list[bytes] = []  # written, not yet handed to the OS
        self._buffered = 0
        self._data_in_file = False  # whether any sample data was handed to the OS
        self._header_due = lazy_header  # the placeholder header is still to be written
        fd = os.open(self.path, _OPEN_FLAGS, 0o666)
        if not lazy_header:
            try:
                _write_all(fd, header)
            except BaseException:
                os.close(fd)
                raise
        self._fd = fd

    @property
    def closed(self) -> bool:
        return self._fd is None

    @property
    def frames_written(self) -> int:
        return self.data_bytes // self.block_align

    @property
    def duration_s(self) -> float:
        return self.frames_written / self.sample_rate

    def write(self, frames: bytes | bytearray | memoryview) -> None:
        """Append whole sample frames (``block_align`` bytes each)."""
        if self._fd is None:
            raise ConfigError(f"write to {self.path} after close")
        # Buffered until the next flush: a copy unless immutable.
        data = frames if isinstance(frames, bytes) else bytes(frames)
        n = len(data)
        if n % self.block_align:
            raise ConfigError(
                f"{n} bytes is not a whole number of {self.block_align}-byte sample frames"
            )
        self._chunks.append(data)
        self._buffered += n
        self.data_bytes += n
        if self._buffered >= _AUTO_FLUSH_BYTES:
            self.flush()

    def flush(self, *, fsync: bool = False) -> None:
        """Push buffered data to the OS (a crash of this process then loses none of it).

        With ``fsync`` also to the disk, against power loss. No-op once closed.
        Buffered data a failing write could not hand over is dropped, not retried
        (a retry would duplicate what part of it did reach the file).
        """
        fd = self._fd
        if fd is None:
            return
        if self._header_due:
            self._header_due = False
            header = wav_header(self.sample_rate, self.channels, self.bits, UNKNOWN_SIZE)
            self._chunks.insert(0, header)
            self._buffered += len(header)
        if self._chunks:
            chunks, size = self._chunks, self._buffered
            self._chunks, self._buffered = [], 0
            self._data_in_file = True
            _write_chunks(fd, chunks, size)
        if fsync:
            os.fsync(fd)

    def close(self) -> None:
        """Write what is buffered, patch the RIFF and data sizes and close; later calls
        do nothing."""
        fd = self._fd
        if fd is None:
            return
        self._fd = None
        try:
            header = wav_header(self.sample_rate, self.channels, self.bits, self.data_bytes)
            chunks, size = self._chunks, self._buffered
            self._chunks, self._buffered = [], 0
            if chunks and not self._data_in_file:
                # Nothing but the header in the file yet: header and data in one write.
                _pwrite_all(fd, header + b"".join(chunks), 0)
            else:
                if chunks:
                    _write_chunks(fd, chunks, size)
                _pwrite_all(fd, header, 0)
        finally:
            os.close(fd)

    def __del__(self) -> None:
        # An abandoned writer still finishes its file and frees its descriptor.
        if self._fd is not None:
            with contextlib.suppress(Exception):
                self.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
_AUTO_FLUSH_BYTES = 1 << 16  # bounds the memory of a writer nobody flushes
_IOV_MAX = 1024  # Linux, macOS and the BSDs; the POSIX minimum is 16
_writev = getattr(os, "writev", None)  # not on Windows
_pwrite = getattr(os, "pwrite", None)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    done = os.write(fd, data)
    if done < len(data):  # a short write (a nearly full disk): the rest, or its error
        view = memoryview(data)
        while done < len(view):
            done += os.write(fd, view[done:])


def _write_chunks(fd: int, chunks: list[bytes], size: int) -> None:
    if len(chunks) == 1:
        _write_all(fd, chunks[0])
    elif _writev is not None and len(chunks) <= _IOV_MAX:
        done = _writev(fd, chunks)  # no copy into one buffer
        if done < size:
            _write_all(fd, memoryview(b"".join(chunks))[done:])
    else:
        _write_all(fd, b"".join(chunks))


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    if _pwrite is None:
        os.lseek(fd, offset, os.SEEK_SET)
        _write_all(fd, data)
        return
    done = _pwrite(fd, data, offset)
    while done < len(data):
        done += _pwrite(fd, memoryview(data)[done:], offset + done)
