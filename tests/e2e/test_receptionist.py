"""examples/receptionist.py end to end: the offline stack over real SIP/RTP on loopback.

The agent is the example as shipped (pocketsphinx, Piper, ``RulesLLM``, its tools),
served by ``AgentHarness``. The caller is SIPHON's own user agent speaking with a
Piper voice; what it hears is transcribed by a second pocketsphinx whose language
model is built from the sentences the agent may say (``CallerVoice`` and
``agent_replies`` in ``receptionist_caller.py``). So each test checks the
conversation from both ends: what the agent understood and did (its transcript,
tool calls, metrics, recording) and what reached the caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from siphon.io.recording import recording_writer
from siphon.plugins.base import PcmArray
from siphon.testing import AgentHarness, HeardSpeech, dbfs
from siphon.voice.transcript import ToolCallRecord, Transcript
from tests.e2e.receptionist_caller import (
    RATE,
    CallerVoice,
    agent_replies,
    load_receptionist,
    word_accuracy,
    words,
)
from tests.integration.sipp_async import start_sipp, wait_sipp


@pytest.fixture(scope="module")
def voice() -> CallerVoice:
    return CallerVoice(agent_replies(load_receptionist()))


@pytest.fixture(autouse=True)
def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, "\n".join(r.getMessage() for r in errors)


def tool_calls(transcript: Transcript) -> list[ToolCallRecord]:
    return [record for turn in transcript for record in turn.tool_calls]


def read_stereo(path: str) -> tuple[PcmArray, PcmArray]:
    """A call recording's two channels: (left = caller, right = agent)."""
    with wave.open(path) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, RATE)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return samples[0::2], samples[1::2]


def utterance(heard: HeardSpeech | None) -> HeardSpeech:
    assert heard is not None, "the caller heard nothing"
    return heard


async def test_caller_asks_the_opening_hours_and_hears_them(voice: CallerVoice) -> None:
    receptionist = load_receptionist()
    question = await voice.speak("What are your opening hours?")
    async with AgentHarness(receptionist.agent) as harness, harness.call() as caller:
        greeting = utterance(await caller.listen())
        said = await caller.say(question)
        answer = utterance(await caller.listen(start_timeout=8))
        session = caller.session
    greeting_heard = await voice.transcribe(greeting.pcm)
    answer_heard = await voice.transcribe(answer.pcm)
    print(f"caller heard: {greeting_heard!r} / {answer_heard!r}")
    print(f"answer began {answer.started - said.ended:.2f} s after the question ended")

    # What the caller heard, as the caller's own recogniser understood it.
    assert "bright smile dental" in greeting_heard, greeting_heard
    assert {"monday", "friday", "nine", "five"} <= set(answer_heard.split()), answer_heard
    assert word_accuracy(words(receptionist.HOURS), answer_heard) >= 0.8, answer_heard
    # What the agent understood and said.
    assert [(t.role, t.text) for t in session.transcript] == [
        ("agent", receptionist.llm.greeting),
        ("user", "what are your opening hours"),
        ("agent", receptionist.HOURS),
    ]
    # One caller turn, one set of metrics, every stage stamped in order.
    (metrics,) = session.metrics
    assert session.transcript[2].metrics is metrics
    stamps = [
        metrics.speech_ended_at,
        metrics.endpoint_at,
        metrics.llm_first_token_at,
        metrics.tts_first_audio_at,
        metrics.first_rtp_at,
    ]
    assert None not in stamps, metrics
    assert stamps == sorted(stamps), metrics  # type: ignore[type-var]
    assert metrics.endpoint_reason == "silence+final"
    assert metrics.stt_final_at is not None and metrics.response_ms is not None
    # The answer's audio reached the caller after the question and soon after it was sent.
    assert metrics.first_rtp_at is not None
    assert said.ended < answer.started
    assert 0 <= answer.started - metrics.first_rtp_at < 0.5


async def test_booking_runs_the_tool_and_the_caller_hears_the_confirmation(
    voice: CallerVoice,
) -> None:
    receptionist = load_receptionist()
    question = await voice.speak("Can I book an appointment on Monday at three pm?")
    async with AgentHarness(receptionist.agent) as harness, harness.call() as caller:
        await caller.listen()
        await caller.say(question)
        # "Let me check the calendar." then the confirmation: one answer, short pause.
        confirmation = utterance(await caller.listen(start_timeout=8, quiet=1.5))
        session = caller.session
    heard = await voice.transcribe(confirmation.pcm)
    print(f"caller heard: {heard!r}")

    assert "booked for monday at three p m" in heard, heard
    (record,) = tool_calls(session.transcript)
    assert record.name == "book_appointment" and not record.is_error, record
    assert json.loads(record.arguments) == {"day": "monday", "time": "15:00"}
    assert record.result == "Monday at 3 PM"
    assert receptionist._bookings == [("monday", "15:00")]  # the tool really ran
    assert [(t.role, t.text) for t in session.transcript[1:]] == [
        ("user", "can i book an appointment on monday at three pm"),
        ("agent", "Let me check the calendar. You are booked for Monday at 3 PM. See you then!"),
    ]
    (metrics,) = session.metrics
    assert metrics.tool_calls == 1


async def test_goodbye_ends_the_call_from_the_agent_and_both_sides_are_recorded(
    voice: CallerVoice, tmp_path: Path
) -> None:
    receptionist = load_receptionist()
    goodbye = await voice.speak("Thank you, goodbye.")
    async with AgentHarness(receptionist.agent, record=True) as harness:
        async with harness.call() as caller:
            connected = time.monotonic()
            greeting = utterance(await caller.listen())
            said = await caller.say(goodbye)
            farewell = utterance(await caller.listen(start_timeout=8))
            caller_end_reason = await caller.wait_ended(timeout=10)
            session = caller.session
        assert recording_writer().drain(10)
    assert caller.ended_at is not None
    heard = await voice.transcribe(farewell.pcm)
    print(f"caller heard {heard!r}; BYE {caller.ended_at - farewell.ended:.3f} s after it")

    # The agent said goodbye, and only then hung up (BYE): the caller heard all of it.
    assert heard == "goodbye", heard
    assert farewell.duration >= 0.4, farewell.duration
    assert farewell.ended <= caller.ended_at < farewell.ended + 2.0
    assert caller_end_reason == "remote hangup"
    assert session.call.end_reason == "agent ended the call"
    last = session.transcript[-1]
    assert (last.role, last.text, last.interrupted) == ("agent", "Goodbye!", False)
    assert [r.name for r in last.tool_calls] == ["end_call"]
    assert session.transcript[-2].text == "thank you goodbye"

    # The stereo recording: left = caller, right = agent, as long as the call.
    path = session.call.recording_path
    assert path is not None and Path(path).is_relative_to(tmp_path), path
    channels = caller_channel, agent_channel = read_stereo(path)
    duration = len(caller_channel) / RATE
    call_duration = caller.ended_at - connected
    print(
        f"recording {duration:.2f} s, call {call_duration:.2f} s; caller channel "
        f"{dbfs(caller_channel):.1f} dBFS, agent channel {dbfs(agent_channel):.1f} dBFS"
    )
    assert abs(duration - call_duration) < 0.5, (duration, call_duration)
    assert dbfs(caller_channel) > -40, dbfs(caller_channel)
    assert dbfs(agent_channel) > -40, dbfs(agent_channel)

    # Each channel holds its own side only: the greeting is on the right, the caller's
    # goodbye on the left (windows trimmed by 0.2 s for clock skew).
    def window(channel: PcmArray, start: float, end: float) -> PcmArray:
        return channel[int((start - connected + 0.2) * RATE) : int((end - connected - 0.2) * RATE)]

    during_greeting = [
        round(dbfs(window(c, greeting.started, greeting.ended)), 1) for c in channels
    ]
    during_goodbye = [round(dbfs(window(c, said.started, said.ended)), 1) for c in channels]
    print(f"(caller, agent) dBFS: greeting {during_greeting}, goodbye {during_goodbye}")
    assert during_greeting[0] < -50 and during_greeting[1] > -35, during_greeting
    assert during_goodbye[0] > -35 and during_goodbye[1] < -50, during_goodbye


@pytest.mark.sipp
async def test_billing_is_a_cold_transfer_to_the_billing_desk(
    voice: CallerVoice, tmp_path: Path
) -> None:
    """The caller (our UA, following REFER as a phone does) ends up talking to a SIPp UAS."""
    sipp, port = await start_sipp(tmp_path, "-sn", "uas", timeout=40)
    billing_uri = f"sip:billing@127.0.0.1:{port}"
    receptionist = load_receptionist(billing_uri)
    question = await voice.speak("Can I speak to billing?")
    await asyncio.sleep(0.3)  # SIPp binding its port
    async with AgentHarness(receptionist.agent) as harness, harness.call() as caller:
        await caller.listen()
        said = await caller.say(question)
        handover = utterance(await caller.listen(start_timeout=8))
        caller_end_reason = await caller.wait_ended(timeout=15)  # the agent leaves
        session = caller.session
        transferred = caller.transferred_call
        # Still on the line with billing when the receptionist has gone.
        assert transferred is not None and not transferred.ended
    await wait_sipp(sipp, port, tmp_path, timeout=30)  # SIPp got our BYE: exit code 0
    heard = await voice.transcribe(handover.pcm)
    print(f"caller heard: {heard!r}")

    # All of the hand-over sentence reached the caller before the REFER took it away.
    assert heard == "i will put you through to our billing team", heard
    assert said.ended < handover.started
    assert caller.transfers == [(billing_uri, 200, "OK")]
    assert caller_end_reason == "remote hangup"
    assert session.call.end_reason == "transferred"
    (record,) = tool_calls(session.transcript)
    assert record.name == "transfer_call" and not record.is_error, record
    assert json.loads(record.arguments) == {"destination": billing_uri}
    assert session.transcript[1].text == "can i speak to billing"
