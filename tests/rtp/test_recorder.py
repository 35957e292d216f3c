"""Crash-safe stereo WAV recording: header, interleaving, writer, repair after a kill."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from siphon.errors import ConfigError
from siphon.rtp.recorder import (
    HEADER_SIZE,
    UNKNOWN_SIZE,
    WavWriter,
    interleave,
    plan_repair,
    repair_directory,
    repair_wav,
    wav_header,
)

FRAME = 160  # 20 ms at 8 kHz


def tick(i: int) -> tuple[np.ndarray, np.ndarray]:
    """One 20 ms tick of caller (left) and agent (right) audio, distinct and recognisable."""
    n = np.arange(FRAME, dtype=np.int32)
    left = ((n + i * FRAME) % 30000).astype(np.int16)
    right = (-(n + i * FRAME) % 30000).astype(np.int16)
    return left, right


def expected_samples(ticks: int) -> np.ndarray:
    frames = [np.stack(tick(i), axis=1) for i in range(ticks)]
    return np.concatenate(frames).astype(np.int16)


def read_wav(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        data = w.readframes(params.nframes)
    return params, np.frombuffer(data, dtype="<i2").reshape(-1, params.nchannels)


def sizes(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:HEADER_SIZE]
    return struct.unpack_from("<I", head, 4)[0], struct.unpack_from("<I", head, 40)[0]


# --------------------------------------------------------------------------- header, interleave


@pytest.mark.parametrize(
    ("rate", "channels", "frames"), [(8000, 2, 0), (8000, 2, 480), (16000, 1, 7)]
)
def test_header_matches_stdlib_wave(rate: int, channels: int, frames: int) -> None:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0" * (frames * channels * 2))
    assert wav_header(rate, channels, 16, frames * channels * 2) == buf.getvalue()[:HEADER_SIZE]


def test_header_fields() -> None:
    h = wav_header(8000, 2, 16, 1000)
    assert len(h) == HEADER_SIZE
    assert h[:4] == b"RIFF" and h[8:16] == b"WAVEfmt " and h[36:40] == b"data"
    riff, fmt_size, fmt, ch, rate, byte_rate, align, bits = struct.unpack_from(
        "<I4x4xIHHIIHH", h, 4
    )
    assert (riff, fmt_size, fmt, ch, rate, byte_rate, align, bits) == (
        1036,
        16,
        1,
        2,
        8000,
        32000,
        4,
        16,
    )
    assert struct.unpack_from("<I", h, 40)[0] == 1000


def test_header_placeholder_saturates() -> None:
    h = wav_header(8000, 2, 16, UNKNOWN_SIZE)
    assert struct.unpack_from("<I", h, 4)[0] == UNKNOWN_SIZE
    assert struct.unpack_from("<I", h, 40)[0] == UNKNOWN_SIZE
    big = wav_header(8000, 2, 16, UNKNOWN_SIZE - 36)  # the largest size RIFF can state
    assert struct.unpack_from("<II", big, 4)[0] == UNKNOWN_SIZE


@pytest.mark.parametrize(
    "args", [(0, 2, 16, 0), (8000, 0, 16, 0), (8000, 2, 12, 0), (8000, 2, 16, -1)]
)
def test_header_rejects_bad_format(args: tuple[int, int, int, int]) -> None:
    with pytest.raises(ConfigError):
        wav_header(*args)


def test_interleave_left_first_little_endian() -> None:
    left = np.array([1, -2, 0x1234], dtype=np.int16)
    right = np.array([100, 200, -1], dtype=np.int16)
    out = interleave(left, right)
    assert out == struct.pack("<6h", 1, 100, -2, 200, 0x1234, -1)
    assert interleave(np.zeros(0, np.int16), np.zeros(0, np.int16)) == b""


def test_interleave_rejects_misaligned_or_wrong_type() -> None:
    with pytest.raises(ConfigError, match="equal length"):
        interleave(np.zeros(160, np.int16), np.zeros(80, np.int16))
    with pytest.raises(ConfigError, match="int16"):
        interleave(np.zeros(160, np.int32), np.zeros(160, np.int16))
    with pytest.raises(ConfigError, match="1-D"):
        interleave(np.zeros((2, 80), np.int16), np.zeros((2, 80), np.int16))


# --------------------------------------------------------------------------- writer


def test_written_file_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    w = WavWriter(path)
    for i in range(50):  # one second
        w.write(interleave(*tick(i)))
    assert w.frames_written == 8000 and w.duration_s == 1.0
    w.close()
    params, samples = read_wav(path)
    assert (params.nchannels, params.sampwidth, params.framerate, params.nframes) == (
        2,
        2,
        8000,
        8000,
    )
    np.testing.assert_array_equal(samples, expected_samples(50))
    assert samples[0, 0] == 0 and samples[1, 0] == 1  # left = caller ramp
    assert sizes(path) == (36 + 32000, 32000)
    assert path.stat().st_size == HEADER_SIZE + 32000


def test_open_writes_streaming_placeholder(tmp_path: Path) -> None:
    path = tmp_path / "growing.wav"
    w = WavWriter(path)
    assert path.stat().st_size == HEADER_SIZE
    assert sizes(path) == (UNKNOWN_SIZE, UNKNOWN_SIZE)
    w.write(interleave(*tick(0)))
    w.flush()
    assert path.stat().st_size == HEADER_SIZE + FRAME * 4  # visible to other readers now
    w.close()


def test_close_is_idempotent_and_context_manager(tmp_path: Path) -> None:
    path = tmp_path / "c.wav"
    with WavWriter(path) as w:
        w.write(interleave(*tick(0)))
    assert w.closed
    before = path.read_bytes()
    w.close()
    w.close()
    w.flush()  # no-op once closed
    assert path.read_bytes() == before
    with pytest.raises(ConfigError, match="after close"):
        w.write(interleave(*tick(1)))


def test_empty_recording(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    WavWriter(path).close()
    params, samples = read_wav(path)
    assert params.nframes == 0 and samples.size == 0
    assert repair_wav(path) is False


def test_write_rejects_partial_frames(tmp_path: Path) -> None:
    with WavWriter(tmp_path / "p.wav") as w:
        with pytest.raises(ConfigError, match="sample frames"):
            w.write(b"\x01\x02\x03")
        w.write(memoryview(b"\0" * 8))
        assert w.frames_written == 2


def test_mono_16k_writer(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    with WavWriter(path, sample_rate=16000, channels=1) as w:
        w.write(np.arange(320, dtype="<i2").tobytes())
    params, samples = read_wav(path)
    assert (params.nchannels, params.framerate, params.nframes) == (1, 16000, 320)
    assert samples[:, 0].tolist() == list(range(320))


def test_frames_stay_buffered_until_flush(tmp_path: Path) -> None:
    path = tmp_path / "buffered.wav"
    w = WavWriter(path)
    for i in range(3):
        w.write(interleave(*tick(i)))
    assert path.stat().st_size == HEADER_SIZE  # one write per flush, not per frame
    w.flush(fsync=True)
    assert path.stat().st_size == HEADER_SIZE + 3 * FRAME * 4
    w.close()
    np.testing.assert_array_equal(read_wav(path)[1], expected_samples(3))


def test_short_call_is_one_write_of_header_and_data(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    with WavWriter(path) as w:  # closed before any flush: header patched with the data
        for i in range(4):
            w.write(interleave(*tick(i)))
    assert sizes(path) == (36 + 4 * FRAME * 4, 4 * FRAME * 4)
    np.testing.assert_array_equal(read_wav(path)[1], expected_samples(4))


def test_unflushed_writer_flushes_itself_every_64_kib(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    with WavWriter(path) as w:
        for i in range(110):  # 70 400 bytes, never flushed by the caller
            w.write(interleave(*tick(i)))
            if i == 100:
                assert path.stat().st_size == HEADER_SIZE
        assert path.stat().st_size == HEADER_SIZE + 103 * FRAME * 4
    np.testing.assert_array_equal(read_wav(path)[1], expected_samples(110))


def test_write_keeps_a_copy_of_a_mutable_buffer(tmp_path: Path) -> None:
    path = tmp_path / "copy.wav"
    buf = bytearray(interleave(*tick(0)))
    with WavWriter(path) as w:
        w.write(buf)
        buf[:] = bytes(len(buf))  # the caller reuses its buffer before the flush
    np.testing.assert_array_equal(read_wav(path)[1], expected_samples(1))


@pytest.mark.parametrize("frames", [0, 3])
def test_lazy_header_comes_with_the_first_flush_or_close(tmp_path: Path, frames: int) -> None:
    path = tmp_path / "lazy.wav"
    w = WavWriter(path, lazy_header=True)
    assert path.stat().st_size == 0
    for i in range(frames):
        w.write(interleave(*tick(i)))
    w.close()
    assert sizes(path) == (36 + frames * FRAME * 4, frames * FRAME * 4)
    params, samples = read_wav(path)
    assert (params.nchannels, params.framerate, params.nframes) == (2, 8000, frames * FRAME)
    if frames:
        np.testing.assert_array_equal(samples, expected_samples(frames))
    assert repair_wav(path) is False


def test_lazy_header_flush_writes_the_placeholder_then_close_patches_it(tmp_path: Path) -> None:
    path = tmp_path / "lazy-flushed.wav"
    w = WavWriter(path, lazy_header=True)
    w.write(interleave(*tick(0)))
    w.flush()
    assert sizes(path) == (UNKNOWN_SIZE, UNKNOWN_SIZE)
    assert path.stat().st_size == HEADER_SIZE + FRAME * 4
    w.write(interleave(*tick(1)))
    w.close()
    np.testing.assert_array_equal(read_wav(path)[1], expected_samples(2))


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import siphon.rtp.recorder as recorder

    real_write, real_writev, real_pwrite = os.write, os.writev, os.pwrite

    def write(fd: int, data: bytes) -> int:
        return real_write(fd, bytes(data)[:100])

    def writev(fd: int, chunks: list[bytes]) -> int:
        return real_writev(fd, chunks[:1])  # the first chunk only

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        return real_pwrite(fd, bytes(data)[:10], offset)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(recorder, "_writev", writev)
    monkeypatch.setattr(recorder, "_pwrite", pwrite)
    path = tmp_path / "short-writes.wav"
    with WavWriter(path) as w:
        for i in range(5):
            w.write(interleave(*tick(i)))
        w.flush()
        w.write(interleave(*tick(5)))
    assert sizes(path) == (36 + 6 * FRAME * 4, 6 * FRAME * 4)
    np.testing.assert_array_equal(read_wav(path)[1], expected_samples(6))


def test_without_pwrite_the_header_is_patched_after_a_seek(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import siphon.rtp.recorder as recorder

    monkeypatch.setattr(recorder, "_pwrite", None)  # Windows
    monkeypatch.setattr(recorder, "_writev", None)
    path = tmp_path / "seek.wav"
    with WavWriter(path) as w:
        for i in range(3):
            w.write(interleave(*tick(i)))
        w.flush()
    np.testing.assert_array_equal(read_wav(path)[1], expected_samples(3))


def test_abandoned_writer_finishes_its_file(tmp_path: Path) -> None:
    path = tmp_path / "abandoned.wav"
    w = WavWriter(path)
    w.write(interleave(*tick(0)))
    del w  # no close: the finalizer writes, patches and frees the descriptor
    assert sizes(path) == (36 + FRAME * 4, FRAME * 4)


def test_open_failure_raises_and_leaks_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        WavWriter(tmp_path / "missing" / "x.wav")
    with pytest.raises(ConfigError):
        WavWriter(tmp_path / "bad.wav", channels=0)
    assert not (tmp_path / "bad.wav").exists()


# --------------------------------------------------------------------------- crash and repair

KILLED_WRITER = """
import os, signal, sys
import numpy as np
from siphon.rtp.recorder import WavWriter, interleave
w = WavWriter(sys.argv[1])
n = np.arange(160, dtype=np.int32)
for i in range(int(sys.argv[2])):
    left = ((n + i * 160) % 30000).astype(np.int16)
    right = (-(n + i * 160) % 30000).astype(np.int16)
    w.write(interleave(left, right))
w.flush()
if len(sys.argv) > 3:
    os.write(w._fd, bytes.fromhex(sys.argv[3]))  # a partial trailing sample frame
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_recording(path: Path, ticks: int, trailing: bytes = b"") -> None:
    """A recording whose writer process was SIGKILLed after its last flush (no close)."""
    args = [sys.executable, "-c", KILLED_WRITER, str(path), str(ticks)]
    if trailing:
        args.append(trailing.hex())
    proc = subprocess.run(args, capture_output=True, check=False)
    assert proc.returncode == -9, proc.stderr.decode()


def test_killed_writer_leaves_a_file_repair_fixes(tmp_path: Path) -> None:
    path = tmp_path / "killed.wav"
    killed_recording(path, 25)
    assert path.stat().st_size == HEADER_SIZE + 25 * FRAME * 4
    assert sizes(path) == (UNKNOWN_SIZE, UNKNOWN_SIZE)
    assert repair_wav(path) is True
    assert sizes(path) == (36 + 25 * FRAME * 4, 25 * FRAME * 4)
    params, samples = read_wav(path)
    assert (params.nchannels, params.sampwidth, params.framerate) == (2, 2, 8000)
    assert params.nframes == 25 * FRAME
    np.testing.assert_array_equal(samples, expected_samples(25))
    assert repair_wav(path) is False  # second repair: nothing left to do


@pytest.mark.parametrize("trailing", [b"\x01", b"\x01\x02", b"\x01\x02\x03"])
def test_repair_truncates_partial_trailing_frame(tmp_path: Path, trailing: bytes) -> None:
    path = tmp_path / "partial.wav"
    killed_recording(path, 3, trailing)
    assert path.stat().st_size == HEADER_SIZE + 3 * FRAME * 4 + len(trailing)
    assert repair_wav(path) is True
    assert path.stat().st_size == HEADER_SIZE + 3 * FRAME * 4
    params, samples = read_wav(path)
    assert params.nframes == 3 * FRAME
    np.testing.assert_array_equal(samples, expected_samples(3))


def test_killed_before_any_audio(tmp_path: Path) -> None:
    path = tmp_path / "header-only.wav"
    killed_recording(path, 0)
    assert repair_wav(path) is True
    params, _ = read_wav(path)
    assert params.nframes == 0


def test_repair_of_good_file_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "good.wav"
    with WavWriter(path) as w:
        for i in range(5):
            w.write(interleave(*tick(i)))
    before = path.read_bytes()
    assert repair_wav(path) is False
    assert path.read_bytes() == before


def test_repair_leaves_good_file_with_trailing_chunk_alone(tmp_path: Path) -> None:
    path = tmp_path / "list.wav"
    data = b"\0" * 64
    extra = b"LIST" + struct.pack("<I", 4) + b"INFO"
    riff = wav_header(8000, 2, 16, len(data))
    riff = riff[:4] + struct.pack("<I", 36 + len(data) + len(extra)) + riff[8:]
    path.write_bytes(riff + data + extra)
    assert repair_wav(path) is False


def test_repair_zero_placeholder_from_other_writers(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    header = bytearray(wav_header(8000, 2, 16, 0))
    struct.pack_into("<I", header, 4, 0)
    path.write_bytes(bytes(header) + b"\0" * 400)
    assert repair_wav(path) is True
    assert read_wav(path)[0].nframes == 100


def test_repair_declared_size_past_end(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    path.write_bytes(wav_header(8000, 2, 16, 10_000) + b"\0" * 402)
    assert repair_wav(path) is True
    assert path.stat().st_size == HEADER_SIZE + 400
    assert read_wav(path)[0].nframes == 100


@pytest.mark.parametrize(
    "content",
    [b"", b"RIFF", b"not a wav file at all, just text" * 4, wav_header(8000, 2, 16, 0)[:30]],
)
def test_repair_leaves_non_wav_and_truncated_headers_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.wav"
    path.write_bytes(content)
    assert repair_wav(path) is False
    assert path.read_bytes() == content


def test_plan_repair_is_pure() -> None:
    head = wav_header(8000, 2, 16, UNKNOWN_SIZE)
    plan = plan_repair(head, HEADER_SIZE + 1001)
    assert plan is not None
    assert (plan.riff_size, plan.data_size_offset, plan.data_size, plan.file_size) == (
        36 + 1000,
        40,
        1000,
        HEADER_SIZE + 1000,
    )
    assert plan_repair(wav_header(8000, 2, 16, 1000), HEADER_SIZE + 1000) is None
    assert plan_repair(b"RIFX" + head[4:], HEADER_SIZE + 1000) is None
    alaw = bytearray(head)
    struct.pack_into("<H", alaw, 20, 6)  # G.711 A-law format tag: not ours to touch
    assert plan_repair(bytes(alaw), HEADER_SIZE + 1000) is None


def test_repair_directory(tmp_path: Path) -> None:
    killed_recording(tmp_path / "b-killed.wav", 4)
    killed_recording(tmp_path / "a-killed.WAV", 2, b"\x07")
    with WavWriter(tmp_path / "good.wav") as w:
        w.write(interleave(*tick(0)))
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "junk.wav").write_bytes(b"garbage")
    (tmp_path / "sub.wav").mkdir()
    good_before = (tmp_path / "good.wav").read_bytes()

    fixed = repair_directory(tmp_path)

    assert fixed == [tmp_path / "a-killed.WAV", tmp_path / "b-killed.wav"]
    assert read_wav(tmp_path / "a-killed.WAV")[0].nframes == 2 * FRAME
    assert read_wav(tmp_path / "b-killed.wav")[0].nframes == 4 * FRAME
    assert (tmp_path / "good.wav").read_bytes() == good_before
    assert (tmp_path / "junk.wav").read_bytes() == b"garbage"
    assert repair_directory(tmp_path) == []
    assert repair_directory(os.fspath(tmp_path)) == []
