"""Streaming sample-rate conversion between telephony and wideband rates.

``Resampler`` wraps ``soxr.ResampleStream`` (mono, int16 in and out) for one
direction of one call: 8 kHz G.711 audio up to 16/24/48 kHz for speech
recognition, and 16/22.05/24/48 kHz synthesised speech down to 8 kHz (22.05 kHz
is the rate of Piper's medium voices and of espeak-ng).

Timing. soxr keeps its output stream aligned with its input (output sample
``m`` is input time ``m / out_rate``; an impulse comes out where it went in), but
it holds output back until its filter has seen enough input, so a sample fed to
``process`` may only be returned by a later call. ``delay_ms`` is that hold-back:
the extra buffering a player consuming the output in real time needs, worst case
over sample positions, with 20 ms chunks (the 20 ms of the chunk itself not
counted). Measured by ``measure_delay`` and ``benchmarks/codec_cost.py``
(libsoxr 0.1.3 via python-soxr 1.1.0, x86-64, 20 ms chunks). "First out" is the
input fed before the first non-empty output, chunk included; cost is CPU time
per second of audio of one stream (50 ``process`` calls), against 4.7 µs for a
numpy copy of the same chunks:

    quality   8k->16k first out / delay / cost    16k->8k first out / delay / cost
    QQ                20 ms /   0.2 ms / 149 µs            20 ms /   0.1 ms / 121 µs
    LQ                80 ms /  61.2 ms / 135 µs            80 ms /  61.2 ms / 123 µs
    MQ               120 ms / 117.5 ms / 137 µs           120 ms / 117.5 ms / 128 µs
    HQ               120 ms / 115.0 ms / 137 µs           120 ms / 115.0 ms / 128 µs
    VHQ              120 ms / 111.2 ms / 144 µs           120 ms / 111.2 ms / 133 µs

    delay, other pairs    8k->24k  24k->8k  8k->48k  48k->8k  8k->22.05k  22.05k->8k
    QQ                     0.2 ms   0.0 ms   0.2 ms   0.0 ms     0.2 ms      0.0 ms
    LQ                    40.0     40.0     57.3     40.0        2.6        43.4
    MQ                    75.3     75.2     91.7     75.0      117.3        82.2
    HQ                    73.2     73.1    175.0    157.2      115.5        80.4
    VHQ                  152.5    152.5    170.0    153.2      111.1       168.4

Cost barely depends on quality at this chunk size (~2.5 µs a call, mostly call
overhead; QQ upsampling grows with the output rate, 263 µs/s to 48 kHz), so the
choice is latency against filtering. The hold-back of LQ and above comes from
libsoxr's block (DFT) processing, not from the filter's length or phase: the
minimum-phase flag leaves LQ at 59 ms, and python-soxr does not expose libsoxr's
runtime (block size) settings.

Default ``QQ``, chosen for latency. What a caller hears from an AI agent is the
time to its reply, and every millisecond here is paid on each turn: LQ would add
~60 ms on the way in (8k -> 16k for recognition) and again on the way out
(24k -> 8k from synthesis), MQ and above twice that, for a channel G.711 limits
to 4 kHz anyway. The price, measured: QQ is cubic interpolation with no
anti-alias filter, so downsampling folds content above 4 kHz back into the band
at full level (a 5 kHz tone at 16 kHz comes out as 3 kHz at 0 dB, where LQ
attenuates it by 81 dB), and upsampling rolls off by 1.9 dB at 3 kHz. That is
also what ``audioop.ratecv`` (linear interpolation), long the usual choice in
Python telephony code, does. A source with real energy above 4 kHz that must
sound clean at 8 kHz (music, bright synthetic voices) should pass
``quality="LQ"`` and accept the 40-60 ms.

libsoxr adds TPDF dither when it writes int16 (python-soxr cannot turn it off),
so digital silence comes out as +-1 LSB noise, below G.711's smallest step; the
float32 path that avoids it costs twice as much per call (5.1 against 2.4 µs).
"""

from __future__ import annotations

from functools import cache
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

# python-soxr ships no type information (its compiled extension has a .pyi, the
# package itself has no py.typed), so mypy treats it as untyped.
import soxr  # type: ignore[import-untyped]

from siphon.errors import ConfigError

Int16Array = npt.NDArray[np.int16]

SUPPORTED_RATES: Final = frozenset({8000, 16000, 22050, 24000, 48000})
QUALITIES: Final = ("QQ", "LQ", "MQ", "HQ", "VHQ")
DEFAULT_QUALITY: Final = "QQ"
# Chunk length ``delay_ms`` assumes (one RTP packet at the usual ptime).
DELAY_CHUNK_MS: Final = 20

_EMPTY: Final[Int16Array] = np.zeros(0, np.int16)
_EMPTY.flags.writeable = False


class _SoxrStream(Protocol):
    """The part of ``soxr.ResampleStream`` we use, typed."""

    def resample_chunk(self, x: Int16Array, last: bool = False) -> Int16Array: ...


def _soxr_stream(in_rate: int, out_rate: int, quality: str) -> _SoxrStream:
    stream: _SoxrStream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
    return stream


class Resampler:
    """One direction of streaming rate conversion, mono int16.

    ``process`` may return fewer samples than the rate ratio implies while the
    filter fills (up to ``delay_ms`` worth); ``flush`` returns the rest at the end
    of the stream and makes the resampler ready for a new one. When
    ``in_rate == out_rate`` it is a passthrough: ``process`` returns its argument.
    """

    __slots__ = ("_stream", "in_rate", "out_rate", "quality")

    def __init__(self, in_rate: int, out_rate: int, quality: str = DEFAULT_QUALITY) -> None:
        for rate in (in_rate, out_rate):
            if rate not in SUPPORTED_RATES:
                raise ConfigError(
                    f"unsupported sample rate {rate!r}; use one of {sorted(SUPPORTED_RATES)}"
                )
        q = quality.upper()
        if q not in QUALITIES:
            raise ConfigError(f"unknown resampler quality {quality!r}; use one of {QUALITIES}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.quality = q
        self._stream: _SoxrStream | None = None
        if in_rate != out_rate:
            self._stream = _soxr_stream(in_rate, out_rate, q)

    def __repr__(self) -> str:
        return f"Resampler({self.in_rate}, {self.out_rate}, quality={self.quality!r})"

    @property
    def delay_ms(self) -> float:
        """Worst-case hold-back of output, in ms, with 20 ms chunks (0 for passthrough).

        Measured once per process and configuration by ``measure_delay``.
        """
        if self._stream is None:
            return 0.0
        return measure_delay(self.in_rate, self.out_rate, self.quality)[1]

    def process(self, pcm: Int16Array) -> Int16Array:
        """Feed the next chunk of input; return the output that is ready."""
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ConfigError(
                f"Resampler.process needs a 1-D int16 array, not {pcm.ndim}-D {pcm.dtype}"
            )
        if self._stream is None:
            return pcm
        return self._stream.resample_chunk(np.ascontiguousarray(pcm))

    def flush(self) -> Int16Array:
        """End the stream: return the output still held back, then reset."""
        if self._stream is None:
            return _EMPTY
        out = self._stream.resample_chunk(_EMPTY, last=True)
        self.reset()
        return out

    def reset(self) -> None:
        """Drop buffered input and start a new stream (e.g. after a hold)."""
        if self._stream is not None:
            # A new stream rather than ``clear()``: clear keeps the dither
            # generator's state, so the same input would not give the same output.
            # Costs 4 µs (QQ) to 40 µs (VHQ).
            self._stream = _soxr_stream(self.in_rate, self.out_rate, self.quality)


@cache
def measure_delay(
    in_rate: int, out_rate: int, quality: str, chunk_ms: int = DELAY_CHUNK_MS
) -> tuple[float, float]:
    """Measure soxr's streaming timing: ``(first_out_ms, delay_ms)``.

    Feeds three seconds of ``chunk_ms`` chunks and records when each output
    sample is returned. ``first_out_ms`` is the input fed (chunk included) before
    the first non-empty output; ``delay_ms`` is the largest gap between the time
    a sample is returned (the input fed so far) and its place in the stream, less
    one chunk, i.e. the buffering soxr adds for a real-time consumer. Output is
    returned in stream order, so the first sample of each batch is the worst.
    """
    if quality not in QUALITIES:
        raise ConfigError(f"unknown resampler quality {quality!r}; use one of {QUALITIES}")
    stream = _soxr_stream(in_rate, out_rate, quality)
    chunk = np.zeros(in_rate * chunk_ms // 1000, np.int16)
    produced = 0
    first_out = 0.0
    worst = 0.0
    for k in range(3000 // chunk_ms):
        n = len(stream.resample_chunk(chunk))
        if n:
            fed_ms = float((k + 1) * chunk_ms)
            if not produced:
                first_out = fed_ms
            worst = max(worst, fed_ms - produced * 1000 / out_rate)
            produced += n
    return first_out, max(0.0, worst - chunk_ms)
