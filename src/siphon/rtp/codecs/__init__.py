"""Audio codecs and their registry.

A codec is looked up by its SDP encoding name (case-insensitive) and clock rate::

    codec = codec_for("pcmu")          # -> PCMU
    payload = codec.encode(pcm)        # int16 samples -> RTP payload
    pcm = codec.decode(payload)        # RTP payload -> int16 samples

``CODECS`` is a plain dict keyed by the upper-case encoding name; ``register``
adds codecs (G.722, Opus) without touching the lookup code.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from siphon.errors import ConfigError, SiphonError
from siphon.rtp.codecs.g711 import PCMA, PCMU, G711Codec

__all__ = [
    "CODECS",
    "PCMA",
    "PCMU",
    "Codec",
    "G711Codec",
    "UnsupportedCodec",
    "codec_for",
    "register",
]


@runtime_checkable
class Codec(Protocol):
    """What the media engine needs from an audio codec.

    Members are read-only so plain attributes, ``Final`` class constants and
    properties all satisfy the protocol.
    """

    @property
    def name(self) -> str:
        """SDP encoding name, upper case (``"PCMU"``)."""
        ...

    @property
    def payload_type(self) -> int:
        """Static RTP payload type, or the default dynamic one we offer."""
        ...

    @property
    def clock_rate(self) -> int:
        """RTP timestamp rate as written in SDP ``a=rtpmap`` (8000 for G.711)."""
        ...

    @property
    def sample_rate(self) -> int:
        """Rate of the PCM that ``encode`` takes and ``decode`` returns.

        Equal to ``clock_rate`` except for codecs like G.722 (16 kHz audio, 8 kHz
        RTP clock by RFC 3551's historical error).
        """
        ...

    @property
    def channels(self) -> int: ...

    def frame_samples(self, ptime_ms: int) -> int:
        """PCM samples (per channel) in one packet of ``ptime_ms`` milliseconds."""
        ...

    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes: ...

    def decode(self, payload: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]: ...

    def silence(self, samples: int) -> bytes:
        """An encoded payload of ``samples`` samples of silence."""
        ...


class UnsupportedCodec(SiphonError, KeyError):
    """No registered codec has this encoding name and clock rate.

    A ``KeyError`` too, so dict-style ``except KeyError`` lookups keep working.
    """

    def __init__(self, name: str, clock_rate: int, supported: list[str]) -> None:
        super().__init__(
            f"unsupported codec {name}/{clock_rate}; supported: {', '.join(supported)}"
        )
        self.name = name
        self.clock_rate = clock_rate
        self.supported = supported

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes.
        return str(self.args[0])


CODECS: dict[str, Codec] = {}


def register(codec: Codec, *, replace: bool = False) -> None:
    """Make ``codec`` available to ``codec_for`` under its upper-case name.

    Registering a second codec under a taken name is a ``ConfigError`` unless
    ``replace`` is true.
    """
    key = codec.name.upper()
    existing = CODECS.get(key)
    if existing is not None and existing is not codec and not replace:
        raise ConfigError(f"a codec named {key} is already registered; pass replace=True")
    CODECS[key] = codec


def codec_for(name: str, clock_rate: int = 8000) -> Codec:
    """The registered codec for an SDP encoding name and clock rate."""
    codec = CODECS.get(name.upper())
    if codec is None or codec.clock_rate != clock_rate:
        raise UnsupportedCodec(name, clock_rate, _supported())
    return codec


def _supported() -> list[str]:
    return [f"{c.name}/{c.clock_rate}" for c in CODECS.values()]


register(PCMU)
register(PCMA)
