"""G.711 μ-law (PCMU, payload type 0) and A-law (PCMA, payload type 8).

Both directions are single numpy table look-ups, built once at import:

* decode: a 256-entry ``int16`` table indexed by the payload bytes;
* encode: a 65,536-entry ``uint8`` table indexed by the ``int16`` samples viewed
  as ``uint16`` (so sample ``-1`` reads entry ``0xFFFF``).

The tables are bit-exact with CPython's ``audioop`` (width 2), which is deprecated
and gone in Python 3.13, so we build them ourselves from the same algorithm (the
SoX/Sun ``g711.c`` routines audioop embeds), vectorised over every input:

* μ-law encode drops the two low bits (14-bit input, arithmetic shift, so
  negative samples round towards -inf), takes the magnitude as ``-v`` for negative
  ``v`` (the ITU-T G.191 reference uses ``-v - 1``, which is why audioop differs
  from it on 508 negative inputs), clips it at 8159, adds the bias 0x84 >> 2 = 33, finds the
  segment as the first of ``0x3F, 0x7F, ..., 0x1FFF`` it does not exceed (a biased
  magnitude above 0x1FFF, i.e. the clipped 8159 + 33, takes the "out of range"
  path and gives the largest code), keeps four mantissa bits and inverts the
  code word (``^ 0xFF`` positive, ``^ 0x7F`` negative).
* A-law encode drops three low bits (13-bit input), takes ``-v - 1`` as the
  magnitude of a negative ``v``, finds the segment against
  ``0x1F, 0x3F, ..., 0xFFF``, keeps four mantissa bits (shifted by 1 in segments
  0 and 1, by the segment number above) and inverts the even bits
  (``^ 0xD5`` positive, ``^ 0x55`` negative).
* Decoding is the textbook expansion, which audioop also uses.

``tests/rtp/test_g711.py`` checks all 65,536 + 256 entries against audioop.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from siphon.errors import ConfigError

Int16Array = npt.NDArray[np.int16]
UInt8Array = npt.NDArray[np.uint8]

# Segment end points (inclusive upper bounds of the biased magnitude).
_ULAW_SEG_END: Final = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], np.int32)
_ALAW_SEG_END: Final = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], np.int32)
_ULAW_CLIP: Final = 8159
_ULAW_BIAS14: Final = 0x84 >> 2


def _all_int16() -> npt.NDArray[np.int32]:
    """Every int16 value, ordered as its uint16 view (0, 1, ..., 32767, -32768, ..., -1)."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> UInt8Array:
    v = _all_int16() >> 2  # 14-bit, arithmetic shift
    negative = v < 0
    magnitude = np.minimum(np.where(negative, -v, v), _ULAW_CLIP) + _ULAW_BIAS14
    segment = np.searchsorted(_ULAW_SEG_END, magnitude, side="left")
    in_range = segment < 8
    seg = np.minimum(segment, 7)
    code = np.where(in_range, (seg << 4) | ((magnitude >> (seg + 1)) & 0xF), 0x7F)
    code ^= np.where(negative, 0x7F, 0xFF)
    return code.astype(np.uint8)


def _build_alaw_encode() -> UInt8Array:
    v = _all_int16() >> 3  # 13-bit, arithmetic shift
    negative = v < 0
    magnitude = np.where(negative, -v - 1, v)
    segment = np.searchsorted(_ALAW_SEG_END, magnitude, side="left")
    in_range = segment < 8
    seg = np.minimum(segment, 7)
    mantissa = (magnitude >> np.maximum(seg, 1)) & 0xF
    code = np.where(in_range, (seg << 4) | mantissa, 0x7F)
    code ^= np.where(negative, 0x55, 0xD5)
    return code.astype(np.uint8)


def _build_ulaw_decode() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0xF) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_decode() -> Int16Array:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = ((a & 0xF) << 4) + np.where(seg == 0, 8, 0x108)
    t <<= np.maximum(seg - 1, 0)
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE: Final[UInt8Array] = _build_ulaw_encode()
ULAW_DECODE: Final[Int16Array] = _build_ulaw_decode()
ALAW_ENCODE: Final[UInt8Array] = _build_alaw_encode()
ALAW_DECODE: Final[Int16Array] = _build_alaw_decode()
for _table in (ULAW_ENCODE, ULAW_DECODE, ALAW_ENCODE, ALAW_DECODE):
    _table.flags.writeable = False  # shared by every call: never mutated
del _table


class G711Codec:
    """One G.711 law: stateless, so a single instance serves every call.

    ``encode`` takes ``int16`` samples at 8 kHz (any shape, read in C order) and
    returns one byte per sample; ``decode`` takes any bytes-like payload and
    returns a new, writable ``int16`` array.
    """

    __slots__ = ("_decode", "_encode", "_silence", "name", "payload_type")

    clock_rate: Final = 8000
    sample_rate: Final = 8000
    channels: Final = 1

    def __init__(
        self,
        name: str,
        payload_type: int,
        encode_table: UInt8Array,
        decode_table: Int16Array,
        silence_byte: int,
    ) -> None:
        self.name = name
        self.payload_type = payload_type
        self._encode = encode_table
        self._decode = decode_table
        self._silence = bytes([silence_byte])

    def __repr__(self) -> str:
        return f"G711Codec({self.name!r}, payload_type={self.payload_type})"

    def frame_samples(self, ptime_ms: int) -> int:
        """Samples in one packet of ``ptime_ms`` milliseconds (160 for 20 ms)."""
        if ptime_ms <= 0:
            raise ConfigError(f"ptime must be a positive number of milliseconds, not {ptime_ms}")
        return self.clock_rate * ptime_ms // 1000

    def encode(self, pcm: Int16Array) -> bytes:
        if pcm.dtype != np.int16:
            raise ConfigError(f"{self.name}.encode needs int16 samples, not {pcm.dtype}")
        return self._encode.take(pcm.view(np.uint16)).tobytes()

    def decode(self, payload: bytes | bytearray | memoryview) -> Int16Array:
        return self._decode.take(np.frombuffer(payload, np.uint8))

    def silence(self, samples: int) -> bytes:
        """``samples`` bytes of the law's silence code.

        μ-law 0xFF decodes to 0; A-law has no zero code, and 0xD5 decodes to +8.
        """
        return self._silence * samples


PCMU: Final = G711Codec("PCMU", 0, ULAW_ENCODE, ULAW_DECODE, 0xFF)
PCMA: Final = G711Codec("PCMA", 8, ALAW_ENCODE, ALAW_DECODE, 0xD5)
