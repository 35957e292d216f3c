"""VoiceActivity: hysteresis rules on scripted probabilities, then webrtcvad on real speech."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest

from siphon.errors import ConfigError
from siphon.plugins.base import VAD
from siphon.plugins.local import WebRtcVAD
from siphon.voice.vad import SpeechEnded, SpeechStarted, VoiceActivity
from tests.voice import speech_8k

Pcm = npt.NDArray[np.int16]
FRAME = 160  # 20 ms at 8 kHz


@dataclass
class ScriptedVAD:
    """A VAD whose n-th window (per stream) scores ``probs[n]`` (0 after the script)."""

    probs: Sequence[float]
    sample_rate: int = 8000
    frame_samples: int = FRAME
    windows: list[Pcm] = field(default_factory=list)

    def stream(self) -> ScriptedVAD._Stream:
        return ScriptedVAD._Stream(self)

    class _Stream:
        def __init__(self, vad: ScriptedVAD) -> None:
            self.vad = vad
            self.n = 0

        def probability(self, frame: Pcm) -> float:
            assert len(frame) == self.vad.frame_samples
            self.vad.windows.append(frame.copy())
            p = self.vad.probs[self.n] if self.n < len(self.vad.probs) else 0.0
            self.n += 1
            return p


def frames(count: int, start: int = 0) -> list[Pcm]:
    """Frames whose samples count up from ``start * FRAME``, so positions can be checked."""
    return [
        (np.arange(FRAME, dtype=np.int64) + (start + k) * FRAME).astype(np.int16)
        for k in range(count)
    ]


def run(
    activity: VoiceActivity, pcm: Sequence[Pcm], t0: float = 0.0
) -> list[SpeechStarted | SpeechEnded]:
    events: list[SpeechStarted | SpeechEnded] = []
    t = t0
    for frame in pcm:
        events += activity.process(frame, t)
        t += len(frame) / 8000
    return events


def summary(events: Sequence[SpeechStarted | SpeechEnded]) -> list[tuple[str, float, float]]:
    return [(type(e).__name__, round(e.time, 6), round(e.detected_at, 6)) for e in events]


S, E = "SpeechStarted", "SpeechEnded"

# Defaults: threshold 0.5 (deactivation 0.35), min speech 0.05 s = 3 windows of
# 20 ms, min silence 0.5 s = 25 windows. Window k covers [k/50, (k+1)/50).
HYSTERESIS_CASES = [
    pytest.param([0.0] * 40, [], id="silence: nothing"),
    pytest.param([0, 0, 1, 1] + [0] * 40, [], id="blip shorter than min_speech"),
    pytest.param(
        [0] * 10 + [1] * 3, [(S, 0.2, 0.26)], id="start: time of the first window, after min_speech"
    ),
    pytest.param(
        [0, 0.6, 0.4, 0.4], [(S, 0.02, 0.08)], id="onset run continues above deactivation"
    ),
    pytest.param([0, 0.6, 0.3, 0.6, 0.6], [], id="onset run broken below deactivation"),
    pytest.param(
        [1] * 10 + [0] * 25,
        [(S, 0.0, 0.06), (E, 0.2, 0.7)],
        id="end: time of the first quiet window, after min_silence",
    ),
    pytest.param(
        [1] * 10 + [0] * 24 + [1] * 5 + [0] * 10, [(S, 0.0, 0.06)], id="pause < min_silence"
    ),
    pytest.param([1] * 10 + [0.4] * 40, [(S, 0.0, 0.06)], id="between thresholds: still speaking"),
    pytest.param(
        [1] * 10 + [0.2] * 10 + [0.4] * 15 + [0] * 10,
        [(S, 0.0, 0.06), (E, 0.2, 0.7)],
        id="between thresholds does not cancel a silence",
    ),
    pytest.param(
        [1] * 10 + [0.2] * 10 + [0.6] + [0] * 25,
        [(S, 0.0, 0.06), (E, 0.42, 0.92)],
        id="above activation cancels a silence",
    ),
    pytest.param(
        [1] * 5 + [0] * 25 + [0] * 5 + [1] * 3,
        [(S, 0.0, 0.06), (E, 0.1, 0.6), (S, 0.7, 0.76)],
        id="second segment",
    ),
]


@pytest.mark.parametrize(("probs", "expected"), HYSTERESIS_CASES)
def test_hysteresis(probs: list[float], expected: list[tuple[str, float, float]]) -> None:
    activity = VoiceActivity(ScriptedVAD(probs))
    assert summary(run(activity, frames(len(probs) + 5))) == expected


def test_speech_ended_duration() -> None:
    events = run(VoiceActivity(ScriptedVAD([0] * 5 + [1] * 20)), frames(60))
    assert isinstance(events[1], SpeechEnded)
    assert events[1].duration == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("min_speech", "windows"), [(0.0, 1), (0.02, 1), (0.021, 2), (0.06, 3), (0.1, 5)]
)
def test_min_speech_duration_in_windows(min_speech: float, windows: int) -> None:
    probs = [1.0] * windows
    short = VoiceActivity(ScriptedVAD(probs[:-1]), min_speech_duration=min_speech)
    enough = VoiceActivity(ScriptedVAD(probs), min_speech_duration=min_speech)
    assert run(short, frames(10)) == []
    assert isinstance(run(enough, frames(10))[0], SpeechStarted)


def test_timeline_starts_at_first_frame_time() -> None:
    activity = VoiceActivity(ScriptedVAD([0, 1, 1, 1]))
    assert summary(run(activity, frames(5), t0=12.0)) == [(S, 12.02, 12.08)]


def test_prefix_is_the_audio_from_padding_before_the_start_up_to_now() -> None:
    # Speech from window 100 (2.0 s): prefix from 1.7 s to the end of frame 102.
    activity = VoiceActivity(ScriptedVAD([0] * 100 + [1] * 3))
    (started,) = run(activity, frames(103))
    assert isinstance(started, SpeechStarted)
    expected = np.concatenate(frames(103))[int(1.7 * 8000) :]
    np.testing.assert_array_equal(started.prefix, expected)


def test_prefix_is_clipped_at_the_start_of_the_call() -> None:
    activity = VoiceActivity(ScriptedVAD([0, 0, 1, 1, 1]))
    (started,) = run(activity, frames(5))
    assert isinstance(started, SpeechStarted)
    np.testing.assert_array_equal(started.prefix, np.concatenate(frames(5)))


def test_prefix_survives_ring_wrap_and_odd_frame_sizes() -> None:
    # 30 ms frames against 20 ms windows: the buffering path, and a ring wrapped many times.
    pcm = np.arange(8000 * 10, dtype=np.int64).astype(np.int16)
    big = [pcm[i : i + 240] for i in range(0, len(pcm), 240)]
    activity = VoiceActivity(ScriptedVAD([0] * 400 + [1] * 3))  # speech at 8.0 s
    events = run(activity, big)
    started = events[0]
    assert isinstance(started, SpeechStarted)
    assert started.time == pytest.approx(8.0)
    # Window 402 ends at 8.06 s, inside the frame covering 8.04-8.07 s.
    assert started.detected_at == pytest.approx(8.07)
    np.testing.assert_array_equal(started.prefix, pcm[int(7.7 * 8000) : int(8.07 * 8000)])


def test_resamples_to_the_vad_rate_and_keeps_window_times() -> None:
    # A silero-like VAD: 16 kHz, 512-sample windows of 32 ms.
    vad = ScriptedVAD([0] * 10 + [1] * 2 + [0] * 16, sample_rate=16000, frame_samples=512)
    events = run(VoiceActivity(vad), frames(60))
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert events[0].time == pytest.approx(10 * 0.032)
    assert events[1].time == pytest.approx(12 * 0.032)
    assert all(len(w) == 512 for w in vad.windows)
    # A window is scored as soon as the frame completing it arrives.
    assert events[0].detected_at == pytest.approx(0.4)  # window 11 ends at 0.384 s


def test_speaking_and_speech_duration_so_far() -> None:
    activity = VoiceActivity(ScriptedVAD([0] * 5 + [1] * 20 + [0] * 30))
    seen = []
    for k, frame in enumerate(frames(60)):
        activity.process(frame, k * 0.02)
        seen.append((activity.speaking, round(activity.speech_duration_so_far(k * 0.02 + 0.02), 6)))
    assert seen[6] == (False, 0.0)  # onset not confirmed yet
    assert seen[7] == (True, 0.06)  # confirmed: counted from the first speech window
    assert seen[20] == (True, 0.32)
    assert seen[30] == (True, 0.4)  # in a pause: counts up to the pause only
    assert seen[49] == (False, 0.0)  # ended after 0.5 s of silence


def test_reset_forgets_state_and_gets_a_fresh_stream() -> None:
    vad = ScriptedVAD([1] * 10)
    activity = VoiceActivity(vad)
    run(activity, frames(5))
    assert activity.speaking
    activity.reset()
    assert not activity.speaking
    # A fresh stream replays the script from the start, on a new timeline.
    assert summary(run(activity, frames(3), t0=100.0)) == [(S, 100.0, 100.06)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"activation_threshold": 0.0},
        {"activation_threshold": 1.5},
        {"deactivation_threshold": 0.6},
        {"min_silence_duration": -1.0},
        {"prefix_padding_duration": -0.1},
    ],
)
def test_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        VoiceActivity(ScriptedVAD([]), **kwargs)  # type: ignore[arg-type]


def test_rejects_frames_that_are_not_int16() -> None:
    with pytest.raises(ConfigError, match="int16"):
        VoiceActivity(ScriptedVAD([])).process(np.zeros(160), 0.0)


def test_scripted_vad_satisfies_the_protocol() -> None:
    assert isinstance(ScriptedVAD([]), VAD)


# -- webrtcvad on real speech ----------------------------------------------------------
def segments(vad: VAD, pcm: Pcm) -> list[tuple[float, float]]:
    activity = VoiceActivity(vad)
    events = run(activity, [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)])
    out: list[tuple[float, float]] = []
    for e in events:
        if isinstance(e, SpeechStarted):
            out.append((e.time, float("inf")))
        else:
            out[-1] = (out[-1][0], e.time)
    return out


@pytest.mark.parametrize("vad", [WebRtcVAD(), WebRtcVAD(mode=3), WebRtcVAD(sample_rate=16000)])
def test_webrtcvad_finds_the_speech_in_a_real_recording(vad: WebRtcVAD) -> None:
    speech = speech_8k()  # ~0.6 s of line noise, then ~6.5 s of talking
    pcm = np.concatenate((np.zeros(8000, np.int16), speech, np.zeros(8000, np.int16)))
    found = segments(vad, pcm)
    assert found, "no speech found"
    assert 1.3 <= found[0][0] <= 2.8  # speech begins 1 s (padding) + 0.6 s in
    assert 7.5 <= found[-1][1] <= 8.2  # and runs to the end of the recording
    assert sum(end - start for start, end in found) >= 5.0


@pytest.mark.parametrize("vad", [WebRtcVAD(), WebRtcVAD(mode=0), WebRtcVAD(sample_rate=16000)])
@pytest.mark.parametrize("level", [0.0, 3.0, 30.0])
def test_webrtcvad_finds_nothing_in_silence_or_low_noise(vad: WebRtcVAD, level: float) -> None:
    noise = np.random.default_rng(7).normal(0.0, level, 8000 * 5)
    assert segments(vad, noise.astype(np.int16)) == []
