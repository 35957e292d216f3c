"""G.711 tables against CPython's audioop, and the codec registry."""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest

from siphon.errors import ConfigError, SiphonError
from siphon.rtp.codecs import (
    CODECS,
    PCMA,
    PCMU,
    Codec,
    G711Codec,
    UnsupportedCodec,
    codec_for,
    register,
)
from siphon.rtp.codecs.g711 import ALAW_DECODE, ALAW_ENCODE, ULAW_DECODE, ULAW_ENCODE


@pytest.fixture(scope="module")
def audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop as module  # deprecated in 3.11, removed in 3.13
    return module


ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
ALL_BYTES = bytes(range(256))


# -- bit-exactness with audioop, every input ----------------------------------------


def test_ulaw_encode_matches_audioop_on_all_inputs(audioop: ModuleType) -> None:
    expected = audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2)
    assert PCMU.encode(ALL_SAMPLES) == expected


def test_alaw_encode_matches_audioop_on_all_inputs(audioop: ModuleType) -> None:
    expected = audioop.lin2alaw(ALL_SAMPLES.tobytes(), 2)
    assert PCMA.encode(ALL_SAMPLES) == expected


def test_ulaw_decode_matches_audioop_on_all_inputs(audioop: ModuleType) -> None:
    expected = np.frombuffer(audioop.ulaw2lin(ALL_BYTES, 2), np.int16)
    np.testing.assert_array_equal(PCMU.decode(ALL_BYTES), expected)


def test_alaw_decode_matches_audioop_on_all_inputs(audioop: ModuleType) -> None:
    expected = np.frombuffer(audioop.alaw2lin(ALL_BYTES, 2), np.int16)
    np.testing.assert_array_equal(PCMA.decode(ALL_BYTES), expected)


def _itu_g191_ulaw_compress(x: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """ITU-T G.191 ``ulaw_compress``: one's complement for negative samples."""
    v = x.astype(np.int32)
    absno = np.minimum(np.where(v < 0, ~v, v) >> 2, 0x1FFF - 33) + 33
    segno = 1 + np.frexp((absno >> 6).astype(np.float64))[1]  # 1 + bit length
    code = ((8 - segno) << 4) | (0xF - ((absno >> segno) & 0xF))
    out: npt.NDArray[np.uint8] = np.where(v >= 0, code | 0x80, code).astype(np.uint8)
    return out


def test_ulaw_follows_audioop_not_the_itu_reference(audioop: ModuleType) -> None:
    # audioop takes -v as the magnitude of a negative sample where G.191 takes
    # ~v = -v - 1, so they disagree on 508 negative inputs; we side with audioop.
    ours = np.frombuffer(PCMU.encode(ALL_SAMPLES), np.uint8)
    itu = _itu_g191_ulaw_compress(ALL_SAMPLES)
    differ = ALL_SAMPLES[ours != itu]
    assert len(differ) == 508 and differ.max() < 0
    assert ours.tobytes() == audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2)


def test_tables_are_read_only_with_expected_shapes() -> None:
    assert ULAW_ENCODE.shape == ALAW_ENCODE.shape == (65536,)
    assert ULAW_ENCODE.dtype == ALAW_ENCODE.dtype == np.uint8
    assert ULAW_DECODE.shape == ALAW_DECODE.shape == (256,)
    assert ULAW_DECODE.dtype == ALAW_DECODE.dtype == np.int16
    for table in (ULAW_ENCODE, ALAW_ENCODE, ULAW_DECODE, ALAW_DECODE):
        assert not table.flags.writeable


# -- codec behaviour ----------------------------------------------------------------


@pytest.mark.parametrize("codec", [PCMU, PCMA], ids=lambda c: c.name)
def test_decode_encode_round_trip_is_identity_on_codes(codec: G711Codec) -> None:
    # Every code decodes to a value that encodes back to the same code
    # (except μ-law's negative zero 0x7F, which decodes to 0 = positive zero 0xFF).
    decoded = codec.decode(ALL_BYTES)
    reencoded = codec.encode(decoded)
    diff = [i for i in range(256) if reencoded[i] != i]
    assert diff == ([0x7F] if codec is PCMU else [])


@pytest.mark.parametrize("codec", [PCMU, PCMA], ids=lambda c: c.name)
def test_frame_of_sine_survives_within_quantisation(codec: G711Codec) -> None:
    t = np.arange(160) / 8000
    pcm = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    payload = codec.encode(pcm)
    assert isinstance(payload, bytes) and len(payload) == 160
    out = codec.decode(payload)
    assert out.dtype == np.int16 and out.shape == (160,)
    # G.711 keeps ~4 mantissa bits: error under 1/32 of the magnitude + a step.
    assert np.all(np.abs(out.astype(np.int32) - pcm) <= np.abs(pcm.astype(np.int32)) // 16 + 16)


def test_decode_accepts_any_bytes_like_and_returns_writable_copy() -> None:
    data = bytearray(b"\x00\x80\xff")
    for payload in (bytes(data), data, memoryview(data)):
        out = PCMU.decode(payload)
        np.testing.assert_array_equal(out, [-32124, 32124, 0])
        assert out.flags.writeable
        out[0] = 1  # must not touch the table
    assert ULAW_DECODE[0] == -32124
    assert PCMA.decode(b"").shape == (0,)


def test_encode_accepts_non_contiguous_and_rejects_wrong_dtype() -> None:
    pcm = np.arange(0, 3200, 10, dtype=np.int16)
    assert PCMA.encode(pcm[::2]) == PCMA.encode(pcm[::2].copy())
    with pytest.raises(ConfigError, match="int16"):
        PCMU.encode(pcm.astype(np.float32))


def test_silence() -> None:
    assert PCMU.silence(160) == b"\xff" * 160
    assert PCMA.silence(3) == b"\xd5\xd5\xd5"
    assert PCMU.silence(0) == b""
    np.testing.assert_array_equal(PCMU.decode(PCMU.silence(4)), 0)
    assert np.all(np.abs(PCMA.decode(PCMA.silence(4))) <= 8)


def test_static_attributes_and_frame_samples() -> None:
    assert (PCMU.name, PCMU.payload_type) == ("PCMU", 0)
    assert (PCMA.name, PCMA.payload_type) == ("PCMA", 8)
    for codec in (PCMU, PCMA):
        assert codec.clock_rate == codec.sample_rate == 8000
        assert codec.channels == 1
        assert codec.frame_samples(20) == 160
        assert codec.frame_samples(30) == 240
        assert codec.frame_samples(10) == 80
        with pytest.raises(ConfigError):
            codec.frame_samples(0)


# -- registry -----------------------------------------------------------------------


def test_codec_for_is_case_insensitive() -> None:
    assert codec_for("PCMU") is PCMU
    assert codec_for("pcma") is PCMA
    assert codec_for("pcmu", 8000) is PCMU
    assert CODECS["PCMU"] is PCMU and CODECS["PCMA"] is PCMA


def test_codec_for_unknown_name_or_rate_names_the_supported_ones() -> None:
    with pytest.raises(UnsupportedCodec) as info:
        codec_for("G729")
    message = str(info.value)
    assert "G729/8000" in message and "PCMU/8000" in message and "PCMA/8000" in message
    assert not message.startswith("'")  # not KeyError's quoting
    assert isinstance(info.value, SiphonError) and isinstance(info.value, KeyError)
    with pytest.raises(KeyError):
        codec_for("PCMU", 16000)


def test_codecs_satisfy_protocol() -> None:
    assert isinstance(PCMU, Codec) and isinstance(PCMA, Codec)
    codec: Codec = PCMU  # static check by mypy
    assert codec.payload_type == 0


class _FakeWideband:
    name = "x-test"
    payload_type = 99
    clock_rate = 16000
    sample_rate = 16000
    channels = 1

    def frame_samples(self, ptime_ms: int) -> int:
        return 16 * ptime_ms

    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes:
        return pcm.tobytes()

    def decode(self, payload: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
        return np.frombuffer(payload, np.int16)

    def silence(self, samples: int) -> bytes:
        return bytes(2 * samples)


def test_register_adds_codec_and_refuses_silent_replacement() -> None:
    fake = _FakeWideband()
    try:
        register(fake)
        assert codec_for("X-TEST", 16000) is fake
        register(fake)  # same object again is fine
        with pytest.raises(ConfigError, match="already registered"):
            register(_FakeWideband())
        other = _FakeWideband()
        register(other, replace=True)
        assert codec_for("x-test", 16000) is other
        with pytest.raises(ConfigError):
            register(G711Codec("PCMU", 0, ULAW_ENCODE, ULAW_DECODE, 0xFF))
    finally:
        CODECS.pop("X-TEST", None)
    assert codec_for("PCMU") is PCMU
