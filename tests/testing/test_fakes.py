"""The scripted providers of siphon.testing.fakes.

Timing assertions use generous bounds: they check that a latency is honoured
(never early) and not wildly late, not the machine's speed.
"""

from __future__ import annotations

import asyncio
import doctest
import json
from collections.abc import AsyncIterator

import numpy as np
import pytest

import siphon.testing.fakes
from siphon.plugins.base import (
    LLM,
    STT,
    TTS,
    VAD,
    ChatMessage,
    LLMChunk,
    SpeechEvent,
    SpeechEventType,
    ToolCall,
    ToolSpec,
)
from siphon.testing import (
    FakeLLM,
    FakeLLMExhausted,
    FakeReply,
    FakeSTT,
    FakeSTTStream,
    FakeTranscript,
    FakeTTS,
    FakeVAD,
    dbfs,
    frames,
    silence,
    speech_like,
    tone,
)

SLACK = 1.0  # seconds a timer may be late on a loaded machine
EARLY = 0.005  # loop clock granularity: a timer may fire this much "early"

INTERIM, FINAL, END = SpeechEventType.INTERIM, SpeechEventType.FINAL, SpeechEventType.END_OF_TURN


def now() -> float:
    return asyncio.get_running_loop().time()


async def next_event(stream: FakeSTTStream, timeout: float = 5.0) -> SpeechEvent:
    return await asyncio.wait_for(anext(stream), timeout)


async def no_event(stream: FakeSTTStream, wait: float = 0.1) -> bool:
    """True when nothing comes out of ``stream`` within ``wait`` seconds."""
    try:
        await asyncio.wait_for(anext(stream), wait)
    except TimeoutError:
        return True
    return False


async def collect(chunks: AsyncIterator[LLMChunk]) -> list[LLMChunk]:
    return [chunk async for chunk in chunks]


def test_doctests() -> None:
    result = doctest.testmod(siphon.testing.fakes, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 10


def test_fakes_satisfy_the_provider_protocols() -> None:
    assert isinstance(FakeVAD(), VAD)
    assert isinstance(FakeSTT(), STT)
    assert isinstance(FakeLLM(), LLM)
    assert isinstance(FakeTTS(), TTS)


# -- FakeVAD ------------------------------------------------------------------------------
def test_vad_scores_by_level() -> None:
    vad = FakeVAD(sample_rate=16000, frame_samples=320)
    stream = vad.stream()
    assert stream.probability(speech_like(0.02, 16000)) == 1.0
    assert stream.probability(tone(300, 0.02, 16000)) == 1.0
    assert stream.probability(silence(0.02, 16000)) == 0.0
    # A sine of amplitude a is at 20*log10(a) - 3 dBFS: -60 dBFS is well below -40.
    assert stream.probability(tone(300, 0.02, 16000, amplitude=10 ** (-57 / 20))) == 0.0
    assert stream.frames == 4
    assert vad.streams == [stream]


def test_vad_ramp_is_one_half_at_the_threshold() -> None:
    soft, hard = FakeVAD(ramp_db=10.0), FakeVAD(ramp_db=0.0)
    assert soft.probability_of_level(-40.0) == 0.5
    assert soft.probability_of_level(-42.5) == pytest.approx(0.25)
    assert soft.probability_of_level(-46.0) == 0.0
    assert soft.probability_of_level(-34.0) == 1.0
    assert hard.probability_of_level(-40.0) == 1.0
    assert hard.probability_of_level(-40.1) == 0.0


def test_vad_streams_are_independent_and_reject_wrong_windows() -> None:
    vad = FakeVAD()
    a, b = vad.stream(), vad.stream()
    a.probability(silence(0.02))
    assert (a.frames, b.frames) == (1, 0)
    with pytest.raises(ValueError, match="exactly 160 samples"):
        a.probability(silence(0.03))


# -- FakeSTT ------------------------------------------------------------------------------
async def test_stt_emits_interim_final_end_of_turn_in_order() -> None:
    stt = FakeSTT(["I would like to book a table"], latency=0.02, end_of_turn=True)
    assert stt.provides_end_of_turn
    async with stt.stream() as stream:
        stream.push(silence(1.0, 16000))
        stream.push(speech_like(2.0, 16000))
        interim = await next_event(stream)  # as soon as the voice starts, before any flush
        assert interim.type is INTERIM
        assert interim.text == "I would like"
        stream.push(silence(0.5, 16000))
        stream.flush()
        final, end = await next_event(stream), await next_event(stream)
    assert final == SpeechEvent(FINAL, "I would like to book a table", 1.0, 3.0, "en", 1.0)
    assert end.type is END
    assert (end.start_time, end.end_time) == (1.0, 3.0)
    assert stream.events == [interim, final, end]
    assert stream.pushed_samples == 3.5 * 16000
    assert stream.audio_seconds == 3.5
    assert stream.flushes == 1


async def test_stt_without_interims_or_end_of_turn_emits_only_finals() -> None:
    stt = FakeSTT(["hello"], latency=0.0, interim=False)
    assert not stt.provides_end_of_turn
    async with stt.stream() as stream:
        stream.push(speech_like(0.5, 16000))
        stream.flush()
        assert (await next_event(stream)).type is FINAL
        assert await no_event(stream)


async def test_stt_honours_latency() -> None:
    async with FakeSTT(["hello there"], latency=0.2, interim=False).stream() as stream:
        stream.push(speech_like(0.5, 16000))
        flushed = now()
        stream.flush()
        assert stream.pending == 1
        await next_event(stream)
        waited = now() - flushed
    assert 0.2 - EARLY <= waited < 0.2 + SLACK


async def test_stt_per_turn_overrides_and_turn_order() -> None:
    stt = FakeSTT(
        [FakeTranscript("slow one", latency=0.3), FakeTranscript("bonjour", 0.0, language="fr")],
        interim=False,
        latency=5.0,
    )
    async with stt.stream(language="en-GB") as stream:
        for _ in range(2):
            stream.push(speech_like(0.5, 16000))
            stream.push(silence(0.5, 16000))
            stream.flush()
        started = now()
        first, second = await next_event(stream), await next_event(stream)
    # The second turn's latency is shorter, but turns never overtake each other.
    assert (first.text, first.language) == ("slow one", "en-GB")
    assert (second.text, second.language) == ("bonjour", "fr")
    assert now() - started < 0.3 + SLACK
    assert (first.start_time, first.end_time) == (0.0, 0.5)
    assert (second.start_time, second.end_time) == (1.0, 1.5)


async def test_stt_flush_without_voice_is_not_a_turn() -> None:
    stt = FakeSTT(["hello"], latency=0.0)
    async with stt.stream() as stream:
        stream.flush()
        stream.push(silence(1.0, 16000))
        stream.flush()
        assert await no_event(stream)
        assert (stream.flushes, stt.turns, stt.remaining) == (2, 0, 1)
        stream.push(speech_like(0.3, 16000))
        stream.flush()
        assert (await next_event(stream)).type is INTERIM
        assert (await next_event(stream)).text == "hello"


async def test_stt_turns_past_the_script_emit_nothing_and_are_counted() -> None:
    stt = FakeSTT(["only this"], latency=0.0, interim=True)
    async with stt.stream() as stream:
        for _ in range(3):
            stream.push(speech_like(0.3, 16000))
            stream.flush()
        assert [e.type for e in [await next_event(stream), await next_event(stream)]] == [
            INTERIM,
            FINAL,
        ]
        assert await no_event(stream)
    assert (stt.turns, stt.unscripted_turns, stt.remaining) == (3, 2, 0)


async def test_stt_default_transcript_hears_every_turn_past_the_script() -> None:
    stt = FakeSTT(
        ["scripted"],
        latency=0.0,
        interim=True,
        default_transcript=FakeTranscript("yes please", latency=0.0, language="fr"),
    )
    streams = [stt.stream(), stt.stream()]  # concurrent calls share the script and default
    heard: list[tuple[str, str]] = []
    for stream in (*streams, streams[0]):
        stream.push(speech_like(0.3, 16000))
        stream.flush()
        interim, final = await next_event(stream), await next_event(stream)
        assert (interim.type, final.type) == (INTERIM, FINAL)
        heard.append((final.text, final.language))
    assert heard == [("scripted", "en"), ("yes please", "fr"), ("yes please", "fr")]
    assert (stt.turns, stt.unscripted_turns, stt.remaining) == (3, 0, 0)
    for stream in streams:
        await stream.aclose()
    assert FakeSTT(default_transcript="hi").default_transcript == FakeTranscript("hi")


async def test_stt_script_is_shared_by_its_streams() -> None:
    stt = FakeSTT(["first", "second"], latency=0.0, interim=False)
    for expected in ("first", "second"):
        async with stt.stream() as stream:
            stream.push(speech_like(0.3, 16000))
            stream.flush()
            assert (await next_event(stream)).text == expected
    assert len(stt.streams) == 2


async def test_stt_aclose_ends_iteration_cancels_timers_and_is_idempotent() -> None:
    stream = FakeSTT(["never heard"], latency=0.1).stream()
    received: list[SpeechEvent] = []

    async def read() -> None:
        async for event in stream:
            received.append(event)

    reader = asyncio.create_task(read())
    stream.push(speech_like(0.3, 16000))
    stream.flush()
    await asyncio.sleep(0.01)
    assert stream.pending == 1
    await stream.aclose()
    await stream.aclose()
    assert stream.closed
    assert stream.pending == 0
    await asyncio.wait_for(reader, 5.0)  # the reader's loop ended
    assert [e.type for e in received] == [INTERIM]
    await asyncio.sleep(0.2)  # the cancelled final never comes
    assert [e.type for e in stream.events] == [INTERIM]
    stream.push(speech_like(0.3, 16000))  # ignored once closed
    stream.flush()
    assert (stream.pushed_samples, stream.flushes) == (4800, 1)
    assert [e async for e in stream] == []


def test_stt_rejects_negative_latency() -> None:
    with pytest.raises(ValueError, match="latency"):
        FakeSTT(latency=-1)
    with pytest.raises(ValueError, match="latency"):
        FakeTranscript("hi", latency=-0.5)


# -- FakeLLM ------------------------------------------------------------------------------
USER = [ChatMessage("system", "You are a receptionist."), ChatMessage("user", "Hi there")]


async def test_llm_streams_text_as_tokens_then_usage() -> None:
    llm = FakeLLM(["Hello, how can I  help you today?"])
    chunks = await collect(llm.chat(USER))
    texts = [c.text for c in chunks if c.text]
    assert texts == ["Hello,", " how", " can", " I", "  help", " you", " today?"]
    assert "".join(texts) == "Hello, how can I  help you today?"
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (6, 7)
    assert chunks[-1].text == "" and not chunks[-1].tool_calls
    assert llm.calls[0].completed and not llm.calls[0].cancelled


async def test_llm_tool_calls_have_ids_and_valid_json() -> None:
    raw = ToolCall("my-id", "broken", "{not json")
    llm = FakeLLM(
        [
            FakeReply(
                "Let me check.",
                tool_calls=[("check_calendar", {"day": "monday", "slots": [9, 10]}), raw],
            ),
            FakeReply(tool_calls=[("end_call", {})]),
        ]
    )
    first = await collect(llm.chat(USER))
    second = await collect(llm.chat(USER))
    assert "".join(c.text for c in first) == "Let me check."
    calls = [call for c in first + second for call in c.tool_calls]
    assert [c.name for c in calls] == ["check_calendar", "broken", "end_call"]
    assert calls[0].parsed_arguments() == {"day": "monday", "slots": [9, 10]}
    assert json.loads(calls[2].arguments) == {}
    assert calls[1] is raw
    with pytest.raises(ValueError, match="not valid JSON"):
        calls[1].parsed_arguments()
    ids = [c.id for c in calls]
    assert len(set(ids)) == 3
    # The tool calls come after all the text, before the usage.
    kinds = ["text" if c.text else "tools" if c.tool_calls else "usage" for c in first]
    assert kinds == ["text", "text", "text", "tools", "usage"]


async def test_llm_records_what_the_model_saw() -> None:
    tools = [ToolSpec("check_calendar", "Free slots of a day", {"type": "object"})]
    messages = [*USER]
    llm = FakeLLM(["Sure."])
    await collect(llm.chat(messages, tools))
    messages.append(ChatMessage("assistant", "Sure."))  # the runtime keeps going
    messages[1].content = "changed later"
    call = llm.calls[0]
    assert call.tools == ["check_calendar"]
    assert call.tool_specs == tools
    assert call.system_prompt == "You are a receptionist."
    assert call.user_text == "Hi there"
    assert len(call.messages) == 2
    assert call.reply == FakeReply("Sure.")


async def test_llm_callable_replies_see_the_conversation() -> None:
    def after_tool(messages: list[ChatMessage]) -> str:
        result = json.loads(messages[-1].content)
        return f"You're booked at {result['time']}."

    async def slow_echo(messages: list[ChatMessage]) -> FakeReply:
        await asyncio.sleep(0)
        return FakeReply(f"echo {messages[-1].content}")

    llm = FakeLLM([after_tool, slow_echo])
    tool_result = ChatMessage("tool", '{"time": "9:00"}', tool_call_id="call_1", name="book")
    reply = await collect(llm.chat([*USER, tool_result]))
    assert "".join(c.text for c in reply) == "You're booked at 9:00."
    assert llm.calls[0].tool_results == [tool_result]
    echoed = await collect(llm.chat([ChatMessage("user", "ping")]))
    assert "".join(c.text for c in echoed) == "echo ping"


async def test_llm_callable_must_return_a_reply() -> None:
    llm = FakeLLM([lambda messages: 42])  # type: ignore[list-item,return-value]
    with pytest.raises(TypeError, match="str or FakeReply"):
        await collect(llm.chat(USER))


async def test_llm_exhausted_names_the_script_length() -> None:
    llm = FakeLLM(["one", "two"])
    await collect(llm.chat(USER))
    await collect(llm.chat(USER))
    assert llm.remaining == 0
    stream = llm.chat(USER)  # the error comes from the stream, like a provider's
    with pytest.raises(FakeLLMExhausted, match=r"call #3 but only 2 replies were scripted"):
        await collect(stream)
    assert len(llm.calls) == 3
    assert llm.cancelled == 0


async def test_llm_default_reply_answers_once_the_script_runs_out() -> None:
    llm = FakeLLM(["scripted"], default_reply="I'm not sure.")
    answers = ["".join(c.text for c in await collect(llm.chat(USER))) for _ in range(3)]
    assert answers == ["scripted", "I'm not sure.", "I'm not sure."]


async def test_llm_honours_latencies() -> None:
    llm = FakeLLM(["one two three four"], first_token_latency=0.15, token_latency=0.05)
    started = now()
    stamps: list[float] = []
    async for chunk in llm.chat(USER):
        stamps.append(now() - started)
        if chunk.usage:
            break
    assert 0.15 - EARLY <= stamps[0] < 0.15 + SLACK
    # Three more tokens, then the usage chunk, each token_latency apart.
    assert 0.15 + 4 * 0.05 - EARLY <= stamps[-1] < 0.35 + SLACK
    override = FakeLLM([FakeReply("fast", first_token_latency=0.0)], first_token_latency=5.0)
    started = now()
    await collect(override.chat(USER))
    assert now() - started < SLACK


async def test_llm_reply_error_is_raised_after_the_text() -> None:
    llm = FakeLLM([FakeReply("Sorry, I", error=ConnectionError("provider went away"))])
    texts: list[str] = []
    with pytest.raises(ConnectionError, match="went away"):
        async for chunk in llm.chat(USER):
            texts.append(chunk.text)
    assert texts == ["Sorry,", " I"]
    assert not llm.calls[0].completed
    assert llm.cancelled == 0


async def test_llm_stream_cancelled_mid_way_just_stops() -> None:
    llm = FakeLLM(["a long answer that the caller interrupts"], token_latency=0.05)
    received: list[str] = []
    two_tokens = asyncio.Event()

    async def consume() -> None:
        async for chunk in llm.chat(USER):
            received.append(chunk.text)
            if len(received) == 2:
                two_tokens.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(two_tokens.wait(), 5.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 2 <= len(received) < 7
    assert llm.cancelled == 1
    assert llm.calls[0].cancelled and not llm.calls[0].completed


async def test_llm_stream_closed_by_its_consumer_counts_as_cancelled() -> None:
    llm = FakeLLM(["one two three"])
    stream = llm.chat(USER)
    assert isinstance(stream, AsyncIterator)
    assert (await anext(stream)).text == "one"
    await stream.aclose()  # type: ignore[attr-defined]
    assert llm.cancelled == 1
    assert llm.calls[0].cancelled


# -- FakeTTS ------------------------------------------------------------------------------
async def test_tts_audio_length_chunks_and_level() -> None:
    tts = FakeTTS(chars_per_second=20.0, chunk_ms=40)
    text = "Your table is booked for eight."  # 31 characters -> 1.55 s
    chunks = [c async for c in tts.synthesize(text)]
    assert all(c.dtype == np.int16 for c in chunks)
    assert [len(c) for c in chunks[:-1]] == [640] * (len(chunks) - 1)
    audio = np.concatenate(chunks)
    assert len(audio) == round(1.55 * 16000)
    assert tts.duration(text) == pytest.approx(1.55)
    assert dbfs(audio) > -20
    assert np.array_equal(audio, tts.render(text))
    assert tts.requests == [text]
    assert (tts.completed, tts.cancelled) == (1, 0)


async def test_tts_tone_pitch_depends_on_the_phrase() -> None:
    tts = FakeTTS(sample_rate=8000)
    phrases = ["Hello.", "How can I help?", "Goodbye."]
    for phrase in phrases:
        audio = np.concatenate([c async for c in tts.synthesize(phrase)])
        spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
        peak = np.fft.rfftfreq(len(audio), 1 / 8000)[int(np.argmax(spectrum))]
        assert 300 <= tts.frequency(phrase) <= 900
        assert peak == pytest.approx(tts.frequency(phrase), abs=3)
    assert len({tts.frequency(p) for p in phrases}) == 3
    assert np.array_equal(tts.render("Hello."), FakeTTS(sample_rate=8000).render("Hello."))


async def test_tts_speech_waveform_is_taken_for_speech() -> None:
    tts = FakeTTS(sample_rate=8000, waveform="speech", chars_per_second=10.0)
    audio = np.concatenate([c async for c in tts.synthesize("Please hold the line.")])
    stream = FakeVAD().stream()
    assert min(stream.probability(f) for f in frames(audio, 160, pad=False)) == 1.0


async def test_tts_blank_text_gives_no_audio() -> None:
    tts = FakeTTS()
    assert [c async for c in tts.synthesize("")] == []
    assert [c async for c in tts.synthesize("   ")] == []
    assert tts.requests == ["", "   "]


async def test_tts_first_chunk_latency_and_fast_mode() -> None:
    tts = FakeTTS(first_chunk_latency=0.1, chars_per_second=10.0)
    started = now()
    stream = tts.synthesize("Two seconds of it.")  # 18 chars -> 1.8 s of audio
    await anext(stream)
    first = now() - started
    async for _ in stream:
        pass
    total = now() - started
    assert 0.1 - EARLY <= first < 0.1 + SLACK
    assert total < 0.1 + SLACK  # far faster than the 1.8 s it lasts


async def test_tts_realtime_paces_chunks() -> None:
    tts = FakeTTS(chars_per_second=20.0, chunk_ms=20, realtime=True)
    started = now()
    chunks = [c async for c in tts.synthesize("half a second")]  # 13 chars -> 0.65 s
    elapsed = now() - started
    # The last chunk starts once the others have played: 0.65 s minus one chunk.
    assert len(chunks) == 33
    assert 0.63 - EARLY <= elapsed < 0.63 + SLACK


async def test_tts_cancelled_mid_way() -> None:
    tts = FakeTTS(chunk_ms=20, realtime=True)
    received: list[np.ndarray] = []
    three_chunks = asyncio.Event()

    async def play() -> None:
        async for chunk in tts.synthesize("This sentence is long enough to interrupt."):
            received.append(chunk)
            if len(received) == 3:
                three_chunks.set()

    task = asyncio.create_task(play())
    await asyncio.wait_for(three_chunks.wait(), 5.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (tts.cancelled, tts.completed) == (1, 0)
    assert len(received) < tts.duration(tts.requests[0]) / 0.02

    stream = tts.synthesize("Stopped by its consumer.")
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert tts.cancelled == 2


def test_tts_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="waveform"):
        FakeTTS(waveform="square")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chars_per_second"):
        FakeTTS(chars_per_second=0)
    with pytest.raises(ValueError, match="chunk_ms"):
        FakeTTS(chunk_ms=0)
