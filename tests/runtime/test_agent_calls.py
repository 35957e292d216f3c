"""The voice runtime end to end over real SIP/RTP on loopback (``siphon.testing.AgentHarness``).

The simulated caller timestamps every RTP packet it receives, so the figures
asserted here (barge-in silence, response times) are measured on the wire.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from siphon.agent import Agent, RunContext, ToolError, end_call, function_tool
from siphon.plugins.base import ChatMessage
from siphon.testing import AgentHarness, FakeLLM, FakeReply, FakeSTT, FakeTTS, speech_like

LONG = "This greeting goes on for quite a while, so that there is time to interrupt it. " * 3


def make_agent(llm: FakeLLM, stt: FakeSTT | None = None, **options: Any) -> Agent:
    options.setdefault("silence_timeout", None)
    return Agent(
        agent_name="bot",
        llm=llm,
        stt=stt or FakeSTT(),
        tts=FakeTTS(),
        system_instructions="You are a test agent.",
        **options,
    )


async def test_greeting_turn_reply_with_transcript_and_metrics() -> None:
    llm = FakeLLM(["Hello, how can I help?", "We open at nine."])
    agent = make_agent(llm, FakeSTT(["what are your hours"]))
    async with AgentHarness(agent) as harness, harness.call() as caller:
        greeting_heard = await caller.wait_for_agent_speech()
        await caller.wait_for_agent_silence()
        said = await caller.say(speech_like(1.2))
        answer_heard = await caller.wait_for_agent_speech()
        await caller.wait_for_agent_silence()
        session = caller.session
    assert greeting_heard < said.started < answer_heard
    assert [(t.role, t.text, t.interrupted) for t in session.transcript] == [
        ("agent", "Hello, how can I help?", False),
        ("user", "what are your hours", False),
        ("agent", "We open at nine.", False),
    ]
    # The model saw the system prompt, the greeting and the caller's words.
    last = llm.calls[-1]
    assert last.system_prompt == "You are a test agent."
    assert [m.content for m in last.messages if m.role == "user"] == ["what are your hours"]
    (metrics,) = session.metrics
    stamps = [
        metrics.speech_ended_at,
        metrics.endpoint_at,
        metrics.llm_first_token_at,
        metrics.tts_first_audio_at,
        metrics.first_rtp_at,
    ]
    assert all(s is not None for s in stamps), metrics
    assert stamps == sorted(stamps), metrics  # type: ignore[type-var]
    assert metrics.endpoint_reason == "silence+final"
    # Endpointing: the VAD's silence (0.5 s) + min_endpointing_delay (0.2 s), not much more.
    assert 0.6 <= (metrics.endpointing_ms or 0) / 1000 <= 1.0
    # The answer's first packet reached the caller soon after the session sent it.
    assert answer_heard - metrics.first_rtp_at < 0.1  # type: ignore[operator]
    assert session.transcript[2].metrics is metrics


async def test_barge_in_silences_the_agent_within_the_budget() -> None:
    llm = FakeLLM([LONG, "Sorry, go ahead."])
    agent = make_agent(llm, FakeSTT(["wait a moment"]), min_interruption_duration=0.3)
    async with AgentHarness(agent) as harness, harness.call() as caller:
        await caller.wait_for_agent_speech()
        await asyncio.sleep(1.0)
        said = await caller.say(speech_like(1.0))
        await caller.wait_for_agent_speech()  # the reply to the interruption
        await caller.wait_for_agent_silence()
        session = caller.session
    last_greeting_packet = caller.last_audible(before=said.ended)
    assert last_greeting_packet is not None
    silent_after = last_greeting_packet - said.started
    # Budget: min_interruption_duration + 150 ms, VAD detection included.
    assert silent_after <= 0.3 + 0.15, f"agent still audible {silent_after * 1000:.0f} ms in"
    # ...and nothing of the old turn after that.
    assert not caller.audible_between(last_greeting_packet + 0.001, said.ended)
    greeting = session.transcript[0]
    assert greeting.role == "agent" and greeting.interrupted
    assert greeting.text and LONG.startswith(greeting.text)
    assert len(greeting.text) < len(LONG) / 2
    # The model is told only what the caller heard.
    history = llm.calls[-1].messages
    assert history[1] == ChatMessage("assistant", greeting.text)
    assert session.transcript[-1].text == "Sorry, go ahead."
    assert session.metrics[0].first_rtp_at is not None


async def test_without_interruptions_the_agent_holds_the_floor() -> None:
    llm = FakeLLM(["Please listen to this whole message before you answer.", "Go on."])
    agent = make_agent(llm, FakeSTT(["hello"]), allow_interruptions=False)
    async with AgentHarness(agent) as harness, harness.call() as caller:
        start = await caller.wait_for_agent_speech()
        said = await caller.say(speech_like(1.0))
        await caller.wait_for_agent_speech()
        await caller.wait_for_agent_silence()
        session = caller.session
    greeting = session.transcript[0]
    assert not greeting.interrupted
    assert greeting.text == "Please listen to this whole message before you answer."
    # Audio kept flowing while the caller talked over it.
    assert caller.audible_between(said.started + 0.5, said.ended)
    assert [t.role for t in session.transcript] == ["agent", "user", "agent"]
    assert start < said.started


async def test_end_call_hangs_up_after_the_goodbye_has_played() -> None:
    llm = FakeLLM(
        [
            "Hi.",
            FakeReply("Goodbye, have a nice day!", tool_calls=[("end_call", {})]),
            "",  # after the tool result: nothing more to say
        ]
    )
    hooked: list[str] = []

    async def on_agent_turn(session: Any, turn: Any) -> None:
        await asyncio.sleep(0.2)  # a hook that awaits still sees the last turn
        hooked.append(turn.text)

    agent = make_agent(llm, FakeSTT(["bye"]), tools=[end_call], on_agent_turn=on_agent_turn)
    async with AgentHarness(agent) as harness, harness.call() as caller:
        await caller.wait_for_agent_silence()
        await caller.say(speech_like(0.8))
        reason = await caller.wait_ended()
        session = caller.session
    assert reason == "remote hangup"
    assert hooked == ["Hi.", "Goodbye, have a nice day!"]
    goodbye = session.transcript[-1]
    assert goodbye.text == "Goodbye, have a nice day!" and not goodbye.interrupted
    assert [c.name for c in goodbye.tool_calls] == ["end_call"]
    segments = caller.agent_segments()
    start, end = segments[-1]
    # All of it played (FakeTTS: 15 chars/s), and the BYE came after the last packet.
    assert end - start >= len("Goodbye, have a nice day!") / 15 - 0.15
    assert caller.ended_at is not None and caller.ended_at >= end


async def test_tools_fail_block_and_await_without_ending_the_call() -> None:
    ran_in: dict[str, int] = {}

    @function_tool
    def slow_lookup(item: str) -> str:
        """Look an item up in a slow legacy system."""
        ran_in["slow"] = threading.get_ident()
        time.sleep(0.8)
        return f"{item}: in stock"

    @function_tool
    async def fast_lookup(item: str, ctx: RunContext) -> str:
        """Look an item up quickly."""
        return f"{item}: aisle 4 (call {ctx.call_id[:4]})"

    @function_tool
    def broken(item: str) -> str:
        """Always fails."""
        raise RuntimeError("database offline")

    @function_tool
    def refuses(item: str) -> str:
        """Fails with a message for the model."""
        raise ToolError("no such item")

    def after_tools(messages: list[ChatMessage]) -> str:
        results = [m.content for m in messages if m.role == "tool"]
        return "Results: " + " | ".join(results)

    llm = FakeLLM(
        [
            "Hi.",
            FakeReply(
                "One moment.",
                tool_calls=[
                    ("slow_lookup", {"item": "milk"}),
                    ("fast_lookup", {"item": "milk"}),
                    ("broken", {"item": "milk"}),
                    ("refuses", {"item": "milk"}),
                ],
            ),
            after_tools,
        ]
    )
    agent = make_agent(
        llm, FakeSTT(["do you have milk"]), tools=[slow_lookup, fast_lookup, broken, refuses]
    )
    lags: list[float] = []

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)

    async with AgentHarness(agent) as harness, harness.call() as caller:
        await caller.wait_for_agent_silence()
        probing = asyncio.create_task(probe())
        await caller.say(speech_like(0.8))
        await caller.wait_for_agent_speech()
        await asyncio.sleep(1.5)
        await caller.wait_for_agent_silence()
        probing.cancel()
        session = caller.session
        assert not caller.call.ended  # the call went on
    assert ran_in["slow"] != threading.get_ident()
    reply = session.transcript[-1]
    # One utterance: the words before the tool calls, then the answer using their results.
    assert reply.text.startswith("One moment. Results: milk: in stock | milk: aisle 4")
    errors = {c.name: (c.is_error, c.result) for c in reply.tool_calls}
    assert errors["broken"][0] and "database offline" in errors["broken"][1]
    assert errors["refuses"] == (True, "no such item")
    assert not errors["slow_lookup"][0] and not errors["fast_lookup"][0]
    # The 0.8 s sync tool never blocked the loop (media ticks kept their 20 ms).
    assert lags and max(lags) < 0.05, f"loop lag up to {max(lags) * 1000:.0f} ms"


async def test_dtmf_reaches_on_dtmf_and_send_dtmf_goes_out() -> None:
    seen: list[str] = []

    async def on_dtmf(session: Any, event: Any) -> None:
        seen.append(event.digit)
        if event.digit == "#":
            session.send_dtmf("42")

    agent = make_agent(FakeLLM(["Hi."]), on_dtmf=on_dtmf)
    async with AgentHarness(agent) as harness, harness.call() as caller:
        await caller.wait_for_agent_silence()
        received: list[str] = []
        both = asyncio.Event()

        def heard(event: Any) -> None:
            received.append(event.digit)
            if len(received) == 2:
                both.set()

        caller.call.media.on_dtmf = heard
        caller.send_dtmf("1#")
        await asyncio.wait_for(both.wait(), 5)
    assert seen == ["1", "#"]
    assert received == ["4", "2"]
    assert caller.session.dtmf_digits == ["1", "#"]


async def test_silence_timeout_prompts_then_hangs_up() -> None:
    llm = FakeLLM(["Hi."])
    agent = make_agent(
        llm, silence_timeout=0.6, silence_prompt="Still there?", goodbye_message="Bye."
    )
    async with AgentHarness(agent) as harness, harness.call() as caller:
        reason = await caller.wait_ended(timeout=15)
        session = caller.session
    assert reason == "remote hangup"
    assert [t.text for t in session.transcript] == ["Hi.", "Still there?", "Bye."]


async def test_max_call_duration_ends_the_call() -> None:
    agent = make_agent(FakeLLM(["Hi."]), max_call_duration=1.0, goodbye_message=None)
    async with AgentHarness(agent) as harness, harness.call() as caller:
        started = time.monotonic()
        await caller.wait_ended(timeout=10)
        assert 0.9 <= time.monotonic() - started <= 3.0


async def test_hooks_as_callables_and_on_exit_runs_after_a_failing_llm() -> None:
    events: list[str] = []

    def on_user_turn(session: Any, turn: Any) -> bool:
        events.append(f"user:{turn.text}")
        return True

    async def on_agent_turn(session: Any, turn: Any) -> None:
        events.append(f"agent:{turn.text}")

    def on_exit(session: Any) -> None:
        events.append("exit")

    llm = FakeLLM(["Hi.", FakeReply("Partial", error=RuntimeError("provider down")), "Recovered."])
    agent = make_agent(
        llm,
        FakeSTT(["one", "two"]),
        on_user_turn=on_user_turn,
        on_agent_turn=on_agent_turn,
        on_exit=on_exit,
    )
    async with AgentHarness(agent) as harness, harness.call() as caller:
        await caller.wait_for_agent_silence()
        await caller.say(speech_like(0.8))
        await asyncio.sleep(1.5)  # a pause: two turns, not one
        await caller.say(speech_like(0.8))
        await caller.wait_for_agent_speech()
        await caller.wait_for_agent_silence()
        session = caller.session
    assert session.errors == 1  # the failing reply, logged; the call went on
    assert events[0] == "agent:Hi."
    assert "user:one" in events and "user:two" in events and "agent:Recovered." in events
    assert events[-1] == "exit"


async def test_unknown_agent_arguments_name_the_accepted_ones() -> None:
    with pytest.raises(TypeError) as info:
        Agent(agent_name="x", system_prompt="hi")  # type: ignore[call-arg]
    message = str(info.value)
    assert "system_prompt" in message and "system_instructions" in message
    assert "accepted:" in message and "min_endpointing_delay" in message


class _DeadStream:
    """An STT stream whose connection drops at once."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def push(self, pcm: Any) -> None:
        self.inner.push(pcm)

    def flush(self) -> None:
        self.inner.flush()

    def __aiter__(self) -> Any:
        return self._events()

    async def _events(self) -> Any:
        raise ConnectionError("websocket closed by the provider")
        yield  # an async generator

    async def aclose(self) -> None:
        await self.inner.aclose()


class FlakySTT:
    """The first stream fails; the next ones work."""

    def __init__(self, inner: FakeSTT) -> None:
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.opened = 0

    def stream(self, *, language: str | None = None) -> Any:
        self.opened += 1
        stream = self.inner.stream(language=language)
        return _DeadStream(stream) if self.opened == 1 else stream


async def test_a_failed_stt_stream_is_reopened_and_the_call_goes_on() -> None:
    stt = FlakySTT(FakeSTT(["are you there"]))
    agent = make_agent(FakeLLM(["Hi.", "Yes, I am."]), stt)  # type: ignore[arg-type]
    async with AgentHarness(agent) as harness, harness.call() as caller:
        await caller.wait_for_agent_silence()
        await caller.say(speech_like(0.8))
        await caller.wait_for_agent_speech()
        await caller.wait_for_agent_silence()
        session = caller.session
    assert stt.opened == 2 and session.stt_restarts == 1
    assert session.transcript[-1].text == "Yes, I am."


async def test_an_stt_end_of_turn_ends_the_turn() -> None:
    llm = FakeLLM(["Hi.", "Sure."])
    agent = make_agent(llm, FakeSTT(["book a table"], end_of_turn=True))
    async with AgentHarness(agent) as harness, harness.call() as caller:
        await caller.wait_for_agent_silence()
        await caller.say(speech_like(0.8))
        await caller.wait_for_agent_speech()
        await caller.wait_for_agent_silence()
        session = caller.session
    assert session.metrics[0].endpoint_reason == "stt_end_of_turn"
    assert session.transcript[-1].text == "Sure."
