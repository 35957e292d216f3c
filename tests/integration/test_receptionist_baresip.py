"""A real softphone asks examples/receptionist.py for its opening hours, and hears them.

The receptionist runs as ``siphon dev`` (a subprocess, the offline stack: pocketsphinx,
Piper, RulesLLM). baresip dials it with a WAV as its microphone (module aufile): a
pause for the greeting, a Piper voice asking "What are your opening hours?", then
silence while the answer plays; aufile hangs up when the WAV ends. baresip records
what it hears (module sndfile, ``...-dec.wav``), and pocketsphinx with the agent's
possible replies as its language model must find the hours in that recording.
Launch, configuration and cleanup are those of ``test_baresip.py``.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import start_server, stop_server
from tests.e2e.receptionist_caller import (
    RATE,
    CallerVoice,
    agent_replies,
    load_receptionist,
    speech_segments,
    word_accuracy,
    words,
)
from tests.integration.test_baresip import (
    baresip_config,
    read_mono,
    require_baresip,
    run_baresip,
    write_wav,
)

pytestmark = pytest.mark.baresip

QUESTION = "What are your opening hours?"
GREETING_SECONDS = 5.0  # the greeting lasts ~3.5 s: ask once it is over
ANSWER_SECONDS = 9.0  # endpointing (~0.7 s) and the ~4.5 s answer, with room to spare


async def test_baresip_asks_the_receptionist_for_its_opening_hours(tmp_path: Path) -> None:
    baresip = require_baresip()
    receptionist = load_receptionist()
    voice = CallerVoice(agent_replies(receptionist))
    question = await voice.speak(QUESTION)
    microphone = tmp_path / "microphone.wav"
    write_wav(
        microphone,
        np.concatenate(
            [
                np.zeros(int(GREETING_SECONDS * RATE), dtype=np.int16),
                question,
                np.zeros(int(ANSWER_SECONDS * RATE), dtype=np.int16),
            ]
        ),
    )
    conf, rec, cons_port = baresip_config(tmp_path, microphone)

    server = await asyncio.to_thread(start_server, "examples/receptionist.py", tmp_path)
    try:
        cmd = [
            baresip,
            "-n",
            "127.0.0.1",
            "-f",
            str(conf),
            "-t",
            "40",  # a backstop: baresip hangs up itself when its microphone WAV ends
            "-e",
            f"/dial sip:receptionist@127.0.0.1:{server.port}",
        ]
        output = await asyncio.to_thread(run_baresip, cmd, cons_port, 45)
    finally:
        await asyncio.to_thread(stop_server, server)
    log = server.log()
    assert "Traceback" not in log, log
    details = f"baresip:\n{output[-3000:]}\nsiphon:\n{log[-3000:]}"
    assert "Call established" in output, details
    # Hung up by baresip when its microphone WAV ended (not by the -t timer).
    assert re.search(r"call \S+ ended: remote hangup", log), details
    # The receptionist understood the question (its own pocketsphinx, on G.711 from baresip).
    assert re.search(r"call \S+: user: what are your opening hours\s*$", log, re.M), details

    heard = sorted(rec.glob("*-dec.wav"))
    assert len(heard) == 1, (heard, details)
    received = read_mono(heard[0]).astype(np.int16)
    # The greeting, then the answer: transcribe each stretch of speech on its own.
    segments = speech_segments(received)
    transcripts = [await voice.transcribe(received[start:end]) for start, end in segments]
    print(
        "baresip heard: "
        + "; ".join(
            f"{start / RATE:.1f}-{end / RATE:.1f} s {text!r}"
            for (start, end), text in zip(segments, transcripts, strict=True)
        )
    )
    assert len(segments) >= 2, (segments, transcripts)
    assert "bright smile dental" in transcripts[0], transcripts
    answers = [t for t in transcripts if {"monday", "friday", "nine", "five"} <= set(t.split())]
    assert answers, transcripts
    assert word_accuracy(words(receptionist.HOURS), answers[0]) >= 0.8, answers
