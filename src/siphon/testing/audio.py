"""Synthetic audio for tests: tones, silence and speech-shaped noise.

Every helper returns mono int16 PCM (``numpy.ndarray`` of ``int16``) and is
deterministic: the same arguments always give the same samples, so a test that
drives an agent with scripted caller audio behaves the same on every run.

Example: a caller who says something for 1.2 s, then stays quiet::

    import numpy as np
    from siphon.testing import frames, silence, speech_like

    caller = np.concatenate([silence(0.5), speech_like(1.2), silence(1.0)])
    for frame in frames(caller, 160):  # 20 ms frames at 8 kHz
        ...

``speech_like`` is what voice activity detectors (webrtcvad, ``FakeVAD``) take
for speech; ``tone`` is handy when a test wants to recognise *which* sound came
out the other end (measure its frequency).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from siphon.plugins.base import PcmArray

__all__ = ["dbfs", "frames", "silence", "speech_like", "tone"]

_FULL_SCALE = 32767


def _sample_count(seconds: float, sample_rate: int) -> int:
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    return round(seconds * sample_rate)


def _check_amplitude(amplitude: float) -> None:
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError(f"amplitude is a fraction of full scale in [0, 1], got {amplitude}")


def tone(
    freq_hz: float, seconds: float, sample_rate: int = 8000, amplitude: float = 0.3
) -> PcmArray:
    """A sine wave of ``freq_hz`` lasting ``seconds``; ``amplitude`` is a fraction of full scale.

    >>> t = tone(440, 0.02)
    >>> t.dtype, len(t), int(abs(t).max())
    (dtype('int16'), 160, 9830)
    """
    _check_amplitude(amplitude)
    n = _sample_count(seconds, sample_rate)
    t = np.arange(n, dtype=np.float64) / sample_rate
    wave = amplitude * _FULL_SCALE * np.sin(2.0 * math.pi * freq_hz * t)
    return np.round(wave).astype(np.int16)


def silence(seconds: float, sample_rate: int = 8000) -> PcmArray:
    """Digital silence (all zeros) lasting ``seconds``.

    >>> silence(0.02).tolist() == [0] * 160
    True
    """
    return np.zeros(_sample_count(seconds, sample_rate), dtype=np.int16)


def speech_like(
    seconds: float, sample_rate: int = 8000, seed: int = 0, *, amplitude: float = 0.3
) -> PcmArray:
    """Noise shaped like speech: deterministic, and taken for speech by voice detectors.

    The signal is noise band-limited to the telephone band (200-3400 Hz) with a
    speech-like spectral tilt (energy falling above 500 Hz), modulated by a
    syllable envelope: bumps of random length around 250 ms (about 4 syllables
    per second) that never drop below a third of the peak, so every 20 ms frame
    stays clearly voiced. ``amplitude`` is the peak as a fraction of full scale;
    ``seed`` picks a different but equally deterministic utterance.

    webrtcvad (mode 2, 20 ms frames, 8 or 16 kHz) flags every frame of it as
    speech at the default amplitude, and ``FakeVAD`` does too.

    >>> a, b = speech_like(1.0), speech_like(1.0)
    >>> bool((a == b).all()), len(a)
    (True, 8000)
    """
    _check_amplitude(amplitude)
    n = _sample_count(seconds, sample_rate)
    if n == 0:
        return np.zeros(0, dtype=np.int16)
    rng = np.random.default_rng(seed)

    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    shape = ((freqs >= 200.0) & (freqs <= 3400.0)) * (500.0 / np.maximum(freqs, 500.0))
    noise = np.fft.irfft(spectrum * shape, n)
    rms = float(np.sqrt(np.mean(noise**2)))
    if rms > 0.0:
        noise /= rms

    envelope = np.empty(n, dtype=np.float64)
    floor = 1.0 / 3.0
    start = 0
    while start < n:
        length = max(1, round(rng.uniform(0.15, 0.35) * sample_rate))
        peak = rng.uniform(0.7, 1.0)
        bump = np.sin(np.linspace(0.0, math.pi, length, endpoint=False) + math.pi / (2 * length))
        envelope[start : start + length] = (floor + (peak - floor) * bump)[: n - start]
        start += length
    ramp = min(n // 2, round(0.005 * sample_rate))  # 5 ms fades: no click at either end
    if ramp > 0:
        fade = np.linspace(0.0, 1.0, ramp, endpoint=False)
        envelope[:ramp] *= fade
        envelope[n - ramp :] *= fade[::-1]

    signal = noise * envelope
    peak_value = float(np.max(np.abs(signal)))
    if peak_value > 0.0:
        signal *= amplitude * _FULL_SCALE / peak_value
    return np.round(signal).astype(np.int16)


def dbfs(pcm: PcmArray) -> float:
    """Level of ``pcm`` as RMS in dB relative to full scale (``-inf`` for silence or no samples).

    A full-scale square wave is 0 dBFS, a full-scale sine about -3 dBFS.

    >>> round(dbfs(tone(440, 0.1, amplitude=1.0)), 1)
    -3.0
    """
    if len(pcm) == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
    if rms == 0.0:
        return -math.inf
    return 20.0 * math.log10(rms / _FULL_SCALE)


def frames(pcm: PcmArray, frame_samples: int, *, pad: bool = True) -> Iterator[PcmArray]:
    """Cut ``pcm`` into consecutive frames of ``frame_samples`` (the last one zero-padded).

    With ``pad=False`` a short last frame is dropped instead. VAD windows and RTP
    packets want exact frame lengths; this gives them.

    >>> [len(f) for f in frames(silence(0.05), 160)]
    [160, 160, 160]
    """
    if frame_samples <= 0:
        raise ValueError(f"frame_samples must be > 0, got {frame_samples}")
    for start in range(0, len(pcm), frame_samples):
        frame = pcm[start : start + frame_samples]
        if len(frame) < frame_samples:
            if not pad:
                return
            frame = np.concatenate([frame, np.zeros(frame_samples - len(frame), dtype=np.int16)])
        yield frame
