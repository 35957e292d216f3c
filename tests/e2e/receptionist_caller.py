"""The receptionist example under test, and a caller that speaks and understands it.

``CallerVoice`` is the simulated caller's mouth (Piper, resampled to 8 kHz) and
ears (pocketsphinx with a small language model built from ``agent_replies``, the
sentences the receptionist may say): the documented way for an offline caller to
understand an agent (see ``siphon.plugins.local.stt``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import sys
from pathlib import Path
from types import ModuleType
from unittest import mock

import numpy as np

from siphon.plugins.base import PcmArray, SpeechEventType
from siphon.plugins.local import STT, TTS
from siphon.rtp.resample import Resampler
from siphon.testing import dbfs

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "receptionist.py"
RATE = 8000  # telephone audio, as the caller sends and hears it
_copies = itertools.count()


def load_receptionist(billing_uri: str | None = None) -> ModuleType:
    """A fresh copy of the example: its own bookings, and BILLING_URI read at its import."""
    name = f"receptionist_under_test_{next(_copies)}"
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    with mock.patch.dict(os.environ, {"BILLING_URI": billing_uri} if billing_uri else {}):
        spec.loader.exec_module(module)
    return module


def agent_replies(receptionist: ModuleType) -> list[str]:
    """Everything the receptionist may say (numbers as words): the caller's vocabulary."""
    return [
        receptionist.llm.greeting,
        receptionist.HOURS,
        receptionist.ADDRESS,
        "Let me check the calendar.",
        "Which day and time would suit you?",
        "You are booked for Monday at three P M. See you then!",
        "I will put you through to our billing team.",
        "Yes, we accept most major dental insurance plans.",
        "Yes, we see patients of all ages, children included.",
        "Goodbye!",
    ]


def words(text: str) -> str:
    """Lower case, letters and spaces only: how the recogniser writes."""
    return " ".join("".join(c if c.isalpha() else " " for c in text.lower()).split())


def word_accuracy(reference: str, hypothesis: str) -> float:
    """1 - word edit distance / reference words."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return 1 - row[-1] / len(ref)


def speech_segments(
    pcm: PcmArray, *, level_dbfs: float = -45.0, gap: float = 0.8
) -> list[tuple[int, int]]:
    """(start, end) sample indices of the stretches of audible 8 kHz audio.

    20 ms frames louder than ``level_dbfs`` are speech; pauses shorter than ``gap``
    (between the sentences of one answer) do not split a stretch.
    """
    frame = RATE // 50
    segments: list[tuple[int, int]] = []
    for start in range(0, len(pcm) - frame + 1, frame):
        if dbfs(pcm[start : start + frame]) <= level_dbfs:
            continue
        if segments and start - segments[-1][1] <= gap * RATE:
            segments[-1] = (segments[-1][0], start + frame)
        else:
            segments.append((start, start + frame))
    return segments


class CallerVoice:
    """The simulated caller's mouth (Piper, to 8 kHz) and ears (pocketsphinx)."""

    def __init__(self, replies: list[str]) -> None:
        self.tts = TTS()  # the agent's voice too: loaded once per process for both
        self.ears = STT(replies)
        self._spoken: dict[str, PcmArray] = {}

    async def speak(self, text: str) -> PcmArray:
        """``text`` as 8 kHz audio (each text synthesised once)."""
        if text not in self._spoken:
            await self.tts.prewarm()
            resampler = Resampler(self.tts.sample_rate, RATE)
            parts = [resampler.process(chunk) async for chunk in self.tts.synthesize(text)]
            self._spoken[text] = np.concatenate([*parts, resampler.flush()])
        return self._spoken[text]

    async def transcribe(self, pcm: PcmArray) -> str:
        """What the caller understands of one utterance of 8 kHz audio (upsampled to 16 kHz)."""
        # Some silence either side, as a VAD's pre-roll and hangover would leave.
        pad = np.zeros(int(0.3 * RATE), dtype=np.int16)
        resampler = Resampler(RATE, self.ears.sample_rate)
        audio = resampler.process(np.concatenate([pad, pcm.astype(np.int16), pad]))
        audio = np.concatenate([audio, resampler.flush()])
        stream = self.ears.stream()
        frame = self.ears.sample_rate // 50  # 20 ms, as a call delivers it
        for start in range(0, len(audio), frame):
            stream.push(audio[start : start + frame])
        stream.flush()
        try:
            async with asyncio.timeout(30):
                async for event in stream:
                    if event.type is SpeechEventType.FINAL:
                        return event.text
        finally:
            await stream.aclose()
        return ""
