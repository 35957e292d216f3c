"""What the caller heard of an interrupted utterance, from playout positions."""

from __future__ import annotations

import pytest

from siphon.voice.speech import Phrase, Speech


def utterance(upto: int | None) -> Speech:
    speech = Speech(turn_id=1, source="reply", allow_interruptions=True)
    speech.phrases = [
        Phrase("Hello there.", 0, first=0, last=9),
        Phrase("One two three four five six.", 0, first=10, last=29),
        Phrase("Never reached.", 0, first=30, last=39),
    ]
    speech.played_upto = upto
    return speech


@pytest.mark.parametrize(
    "upto,heard",
    [
        (None, "Hello there. One two three four five six. Never reached."),  # not interrupted
        (-1, ""),  # cut before the first frame
        (4, "Hello"),  # half of the first phrase's frames: half its words
        (9, "Hello there."),
        (19, "Hello there. One two three"),
        (29, "Hello there. One two three four five six."),
        (39, "Hello there. One two three four five six. Never reached."),
    ],
)
def test_played_text_follows_the_last_frame_heard(upto: int | None, heard: str) -> None:
    assert utterance(upto).played_text() == heard


def test_phrases_without_frames_were_not_heard() -> None:
    speech = utterance(29)
    speech.phrases.insert(1, Phrase("(no audio)", 0))
    assert speech.played_text() == "Hello there. One two three four five six."


def test_leading_near_silence_of_an_utterance_is_trimmed() -> None:
    import numpy as np

    from siphon.voice.session import ONSET_KEEP_SAMPLES, _trim_leading_quiet

    rng = np.random.default_rng(0)
    breath = (rng.standard_normal(3200) * 40).astype(np.int16)  # ~ -58 dBFS noise
    speech = np.full(400, 2000, dtype=np.int16)
    trimmed = _trim_leading_quiet(np.concatenate([breath, speech]))
    assert len(trimmed) == 400 + ONSET_KEEP_SAMPLES
    assert _trim_leading_quiet(breath).size == 0  # all quiet: nothing to play yet
    assert _trim_leading_quiet(speech).size == 400  # starts loud: untouched
    short = np.full(50, 3000, dtype=np.int16)  # shorter than a block
    assert _trim_leading_quiet(short).size == 50
