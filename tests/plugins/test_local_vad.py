"""The offline VADs: webrtcvad, and silero through a fake ONNX session and the real model."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from siphon.errors import ConfigError
from siphon.plugins.base import VAD
from siphon.plugins.local import SileroVAD, WebRtcVAD
from siphon.plugins.local import vad as local_vad
from siphon.rtp.resample import Resampler
from siphon.voice.vad import SpeechEnded, SpeechStarted, VoiceActivity
from tests.voice import speech_8k

Pcm = npt.NDArray[np.int16]


# -- webrtcvad -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rate", "ms", "samples"), [(8000, 20, 160), (8000, 10, 80), (16000, 30, 480), (48000, 20, 960)]
)
def test_webrtcvad_window_size(rate: int, ms: int, samples: int) -> None:
    vad = WebRtcVAD(sample_rate=rate, frame_ms=ms)
    assert (vad.sample_rate, vad.frame_samples) == (rate, samples)
    assert isinstance(vad, VAD)


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": 4}, {"sample_rate": 11025}, {"frame_ms": 25}, {"warmup_ms": -1}],
)
def test_webrtcvad_bad_parameters(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        WebRtcVAD(**kwargs)


def test_webrtcvad_rejects_a_wrong_window() -> None:
    with pytest.raises(ConfigError, match="160 samples"):
        WebRtcVAD().stream().probability(np.zeros(100, np.int16))


def windows(pcm: Pcm, n: int) -> list[Pcm]:
    return [pcm[i : i + n] for i in range(0, len(pcm) - n + 1, n)]


def test_webrtcvad_scores_speech_one_and_silence_zero() -> None:
    speech = speech_8k()
    stream = WebRtcVAD(warmup_ms=0).stream()
    scores = [stream.probability(w) for w in windows(speech, 160)]
    assert set(scores) <= {0.0, 1.0}
    assert np.mean(scores[100:]) > 0.8  # talking from 2 s on
    quiet = WebRtcVAD().stream()
    assert [quiet.probability(w) for w in windows(np.zeros(8000, np.int16), 160)] == [0.0] * 50


def test_webrtcvad_warmup_hides_the_unadapted_start() -> None:
    noise = np.random.default_rng(1).normal(0, 100, 8000).astype(np.int16)
    cold = WebRtcVAD(warmup_ms=0).stream()
    assert any(cold.probability(w) for w in windows(noise, 160)[:7])  # the raw detector
    warm = WebRtcVAD().stream()
    assert not any(warm.probability(w) for w in windows(noise, 160))


def test_webrtcvad_streams_are_independent() -> None:
    vad = WebRtcVAD(warmup_ms=0)
    speech = windows(speech_8k(), 160)[100:150]
    a, b = vad.stream(), vad.stream()
    for w in speech:
        a.probability(w)
    fresh = vad.stream()
    assert [b.probability(w) for w in speech] == [fresh.probability(w) for w in speech]


# -- silero with a fake session --------------------------------------------------------------
@dataclass
class Arg:
    name: str
    shape: Sequence[int | str | None]
    type: str = "tensor(float)"


class FakeSilero:
    """An ONNX-session look-alike recording its feeds.

    Its "probability" is the number of windows this state has seen / 10, so the
    state carried between calls shows in the output; its new state is the old + 1.
    """

    def __init__(self, inputs: list[Arg]) -> None:
        self.inputs = inputs
        self.feeds: list[dict[str, Any]] = []

    def get_inputs(self) -> Sequence[Arg]:
        return self.inputs

    def run(
        self, output_names: Sequence[str] | None, input_feed: dict[str, Any]
    ) -> Sequence[npt.NDArray[Any]]:
        self.feeds.append({k: np.array(v, copy=True) for k, v in input_feed.items()})
        states = [input_feed[a.name] for a in self.inputs if a.name in ("state", "h", "c")]
        seen = float(states[0].flat[0])
        return [np.array([[(seen + 1) / 10]], np.float32), *(s + 1 for s in states)]


V5 = [Arg("input", [None, None]), Arg("state", [2, None, 128]), Arg("sr", [])]
V4 = [Arg("input", [None, None]), Arg("sr", []), Arg("h", [2, None, 64]), Arg("c", [2, None, 64])]


def ramp(start: int, n: int) -> Pcm:
    return np.arange(start, start + n, dtype=np.int16)


@pytest.mark.parametrize(("rate", "window", "context"), [(16000, 512, 64), (8000, 256, 32)])
def test_silero_v5_carries_state_and_context(rate: int, window: int, context: int) -> None:
    session = FakeSilero(V5)
    vad = SileroVAD(sample_rate=rate, session=session)
    assert vad.frame_samples == window
    stream = vad.stream()
    probs = [stream.probability(ramp(k * window, window)) for k in range(3)]
    assert probs == pytest.approx([0.1, 0.2, 0.3])  # the state went round
    first, second = session.feeds[0], session.feeds[1]
    assert first["input"].shape == (1, context + window)
    assert first["input"].dtype == np.float32
    np.testing.assert_array_equal(first["input"][0, :context], 0.0)  # no history yet
    np.testing.assert_allclose(first["input"][0, context:], ramp(0, window) / 32768)
    # The previous window's last `context` samples come first.
    np.testing.assert_allclose(
        second["input"][0, :context], ramp(window - context, context) / 32768
    )
    np.testing.assert_allclose(second["input"][0, context:], ramp(window, window) / 32768)
    assert first["state"].shape == (2, 1, 128) and second["state"].flat[0] == 1.0
    assert first["sr"] == rate and first["sr"].dtype == np.int64


def test_silero_streams_do_not_share_state() -> None:
    session = FakeSilero(V5)
    vad = SileroVAD(session=session)
    a, b = vad.stream(), vad.stream()
    a.probability(ramp(0, 512))
    a.probability(ramp(0, 512))
    assert b.probability(ramp(0, 512)) == pytest.approx(0.1)
    np.testing.assert_array_equal(session.feeds[-1]["input"][0, :64], 0.0)


def test_silero_v4_layout_has_h_c_and_no_context() -> None:
    session = FakeSilero(V4)
    stream = SileroVAD(session=session).stream()
    assert [stream.probability(ramp(0, 512)) for _ in range(2)] == pytest.approx([0.1, 0.2])
    feed = session.feeds[1]
    assert feed["input"].shape == (1, 512)
    assert feed["h"].shape == feed["c"].shape == (2, 1, 64)
    assert feed["h"].flat[0] == feed["c"].flat[0] == 1.0


def test_silero_fixed_width_export_takes_its_context_from_the_shape() -> None:
    session = FakeSilero([Arg("input", [1, 576]), Arg("state", [2, 1, 128])])  # 16 kHz only
    SileroVAD(session=session).stream().probability(ramp(0, 512))
    assert session.feeds[0]["input"].shape == (1, 576)
    assert "sr" not in session.feeds[0]
    with pytest.raises(ConfigError, match="16 kHz only"):
        SileroVAD(sample_rate=8000, session=session)


@pytest.mark.parametrize(
    "inputs",
    [[Arg("audio", [None, None])], [Arg("input", [None, None]), Arg("hidden", [2, None, 64])]],
)
def test_silero_rejects_other_models(inputs: list[Arg]) -> None:
    with pytest.raises(ConfigError, match="inputs"):
        SileroVAD(session=FakeSilero(inputs))


def test_silero_rejects_a_wrong_window_and_rate() -> None:
    with pytest.raises(ConfigError, match="512 samples"):
        SileroVAD(session=FakeSilero(V5)).stream().probability(np.zeros(160, np.int16))
    with pytest.raises(ConfigError, match="8000 or 16000"):
        SileroVAD(sample_rate=48000, session=FakeSilero(V5))


def test_voice_activity_over_fake_silero_windows() -> None:
    class Loudness(FakeSilero):
        """Probability 1 when the window is loud: checks the windowing end to end."""

        def run(
            self, output_names: Sequence[str] | None, input_feed: dict[str, Any]
        ) -> Sequence[npt.NDArray[Any]]:
            super().run(output_names, input_feed)
            loud = np.abs(input_feed["input"][0, 64:]).mean() > 0.05
            return [np.array([[1.0 if loud else 0.0]], np.float32), input_feed["state"]]

    session = Loudness(V5)
    activity = VoiceActivity(SileroVAD(session=session))
    pcm = np.concatenate(
        [np.zeros(8000, np.int16), np.full(8000, 8000, np.int16), np.zeros(8000, np.int16)]
    )
    events: list[SpeechStarted | SpeechEnded] = []
    for k in range(len(pcm) // 160):
        events += activity.process(pcm[k * 160 : (k + 1) * 160], k * 0.02)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert abs(events[0].time - 1.0) <= 0.033 and abs(events[1].time - 2.0) <= 0.033
    assert all(feed["input"].shape == (1, 576) for feed in session.feeds)


# -- model file discovery ----------------------------------------------------------------------
def test_model_found_in_an_installed_silero_vad_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "silero_vad" / "data" / "silero_vad.onnx"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"onnx")
    (tmp_path / "silero_vad" / "__init__.py").write_text("raise ImportError('wants torch')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert local_vad.find_silero_model() == model  # found without importing the package


def test_missing_model_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install --no-deps silero-vad"):
        SileroVAD()
    with pytest.raises(ConfigError, match="does not exist"):
        SileroVAD(model_path="/nonexistent/silero_vad.onnx")


def test_missing_onnxruntime_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "silero_vad.onnx"
    model.write_bytes(b"onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"siphon\[silero\]"):
        SileroVAD(model_path=model)


# -- silero, the real model ---------------------------------------------------------------------
HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(scope="module")
def silero_model() -> Path:
    try:
        return local_vad.find_silero_model()
    except ConfigError as exc:
        pytest.skip(str(exc))


@pytest.mark.skipif(not HAVE_ORT, reason="onnxruntime not installed: pip install 'siphon[silero]'")
@pytest.mark.parametrize("rate", [16000, 8000])
def test_real_silero_model_on_real_speech(silero_model: Path, rate: int) -> None:
    vad = SileroVAD(sample_rate=rate)
    assert SileroVAD(silero_model, sample_rate=rate)._session is vad._session  # loaded once
    speech = speech_8k()
    pcm = speech if rate == 8000 else Resampler(8000, rate).process(speech)
    stream = vad.stream()
    probs = np.array([stream.probability(w) for w in windows(pcm, vad.frame_samples)])
    seconds = np.arange(len(probs)) * vad.frame_samples / rate
    assert probs[(seconds > 2.0) & (seconds < 4.5)].mean() > 0.9  # talking
    assert probs[seconds < 0.5].max() < 0.2  # line noise before the talking
    silence = vad.stream()
    assert (
        max(silence.probability(w) for w in windows(np.zeros(rate, np.int16), vad.frame_samples))
        < 0.1
    )


@pytest.mark.skipif(not HAVE_ORT, reason="onnxruntime not installed: pip install 'siphon[silero]'")
def test_real_silero_model_in_voice_activity(silero_model: Path) -> None:
    speech = speech_8k()
    pcm = np.concatenate((speech, np.zeros(8000, np.int16)))
    activity = VoiceActivity(SileroVAD(silero_model))
    events: list[SpeechStarted | SpeechEnded] = []
    for k in range(len(pcm) // 160):
        events += activity.process(pcm[k * 160 : (k + 1) * 160], k * 0.02)
    assert isinstance(events[0], SpeechStarted) and isinstance(events[-1], SpeechEnded)
    assert 0.5 <= events[0].time <= 2.0
    assert 6.5 <= events[-1].time <= 7.2
