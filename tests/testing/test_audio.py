"""The synthetic-audio helpers of siphon.testing.audio."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

import siphon.testing.audio
from siphon.testing import FakeVAD, dbfs, frames, silence, speech_like, tone


def _dominant_frequency(pcm: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(len(pcm), 1.0 / sample_rate)[int(np.argmax(spectrum))])


def _webrtcvad_speech_ratio(pcm: np.ndarray, sample_rate: int, mode: int = 2) -> float:
    webrtcvad = pytest.importorskip("webrtcvad", reason="pip install webrtcvad-wheels")
    vad = webrtcvad.Vad(mode)
    window = sample_rate * 20 // 1000
    flags = [vad.is_speech(f.tobytes(), sample_rate) for f in frames(pcm, window, pad=False)]
    return float(sum(flags)) / len(flags)


def test_doctests() -> None:
    assert doctest.testmod(siphon.testing.audio).failed == 0


def test_tone_has_its_frequency_length_and_amplitude() -> None:
    pcm = tone(1000, 0.5, sample_rate=16000, amplitude=0.5)
    assert pcm.dtype == np.int16
    assert len(pcm) == 8000
    assert abs(int(np.abs(pcm).max()) - round(0.5 * 32767)) <= 1
    assert _dominant_frequency(pcm, 16000) == pytest.approx(1000, abs=2)


def test_silence_is_zeros() -> None:
    pcm = silence(0.1, sample_rate=16000)
    assert pcm.dtype == np.int16
    assert len(pcm) == 1600
    assert not pcm.any()
    assert dbfs(pcm) == -math.inf


def test_helpers_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="seconds"):
        silence(-1.0)
    with pytest.raises(ValueError, match="sample_rate"):
        tone(440, 0.1, sample_rate=0)
    with pytest.raises(ValueError, match="amplitude"):
        speech_like(0.1, amplitude=1.5)


def test_speech_like_is_deterministic_and_seeded() -> None:
    a, b, c = speech_like(1.0), speech_like(1.0), speech_like(1.0, seed=1)
    assert a.dtype == np.int16
    assert len(a) == 8000
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert abs(int(np.abs(a).max()) - round(0.3 * 32767)) <= 1
    assert len(speech_like(0.0)) == 0


def test_speech_like_is_band_limited_with_a_syllable_envelope() -> None:
    pcm = speech_like(4.0, sample_rate=16000).astype(np.float64)
    power = np.abs(np.fft.rfft(pcm)) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1.0 / 16000)
    in_band = power[(freqs >= 200) & (freqs <= 3400)].sum()
    assert in_band / power.sum() > 0.99
    # The 20 ms frame levels rise and fall (syllables) but never drop out.
    levels = [dbfs(f) for f in frames(speech_like(4.0), 160, pad=False)]
    assert max(levels) - min(levels) > 6
    assert min(levels) > -40


@pytest.mark.parametrize("sample_rate", [8000, 16000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_webrtcvad_takes_speech_like_for_speech(sample_rate: int, seed: int) -> None:
    pcm = speech_like(5.0, sample_rate, seed=seed)
    assert _webrtcvad_speech_ratio(pcm, sample_rate) >= 0.8


def test_webrtcvad_takes_silence_for_silence() -> None:
    assert _webrtcvad_speech_ratio(silence(2.0), 8000) == 0.0


def test_fake_vad_agrees_with_webrtcvad_on_speech_like_and_silence() -> None:
    stream = FakeVAD().stream()
    speech = [stream.probability(f) for f in frames(speech_like(5.0), 160)]
    quiet = [stream.probability(f) for f in frames(silence(1.0), 160)]
    assert sum(p >= 0.5 for p in speech) / len(speech) >= 0.8
    assert min(speech) == 1.0  # in fact every frame
    assert max(quiet) == 0.0


def test_dbfs_of_known_levels() -> None:
    assert dbfs(tone(440, 0.1, amplitude=1.0)) == pytest.approx(-3.01, abs=0.05)
    assert dbfs(tone(440, 0.1, amplitude=0.1)) == pytest.approx(-23.01, abs=0.05)
    assert dbfs(np.zeros(0, dtype=np.int16)) == -math.inf


def test_frames_pads_or_drops_the_tail() -> None:
    pcm = np.arange(350, dtype=np.int16)
    padded = list(frames(pcm, 160))
    assert [len(f) for f in padded] == [160, 160, 160]
    assert padded[2][:30].tolist() == list(range(320, 350))
    assert not padded[2][30:].any()
    assert [len(f) for f in frames(pcm, 160, pad=False)] == [160, 160]
    with pytest.raises(ValueError):
        list(frames(pcm, 0))
