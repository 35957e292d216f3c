"""An agent with fake providers answering SIPp: speech from a pcap, RFC 4733 both ways.

The agent runs in the test's event loop (``AgentHarness``); SIPp runs in a worker
thread, so the assertions can look at the agent's session itself.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from siphon.agent import Agent, transfer_call
from siphon.events import DtmfReceived
from siphon.plugins.base import ChatMessage
from siphon.testing import AgentHarness, FakeLLM, FakeReply, FakeSTT, FakeTTS, speech_like
from siphon.voice.session import AgentSession
from tests.conftest import SIPP_DIR, run_sipp
from tests.integration.sipp_async import start_sipp, wait_sipp

pytestmark = pytest.mark.sipp

PCAPS = Path("/usr/share/sip-tester")


async def only_session(harness: AgentHarness) -> AgentSession:
    sessions = list(harness.sessions.values())
    assert len(sessions) == 1, sessions
    session = sessions[0]
    await asyncio.wait_for(session.finished.wait(), 5)
    return session


async def test_sipp_caller_is_greeted_endpointed_and_answered(tmp_path: Path) -> None:
    llm = FakeLLM(["Hello, thanks for calling. How can I help?", "Certainly, a table for two."])
    agent = Agent(
        agent_name="receptionist",
        llm=llm,
        stt=FakeSTT(["I would like to book a table"]),
        tts=FakeTTS(),
        silence_timeout=None,
    )
    async with AgentHarness(agent, record=True) as harness:
        result = await asyncio.to_thread(
            run_sipp,
            harness.port,
            tmp_path,
            "-sf",
            str(SIPP_DIR / "agent_pcap.xml"),
            "-s",
            "receptionist",
            "-m",
            "1",
        )
        assert result.ok, result.errors[-3000:] + result.output[-3000:]
        session = await only_session(harness)
    assert [(t.role, t.text, t.interrupted) for t in session.transcript] == [
        ("agent", "Hello, thanks for calling. How can I help?", False),
        ("user", "I would like to book a table", False),
        ("agent", "Certainly, a table for two.", False),
    ]
    user = session.transcript[1]
    # g711a.pcap: ~6.5 s of speech after the 3 s the scenario leaves for the greeting.
    assert 5.0 <= user.ended_at - user.started_at <= 8.0  # type: ignore[operator]
    (metrics,) = session.metrics
    assert metrics.endpoint_reason == "silence+final"
    assert metrics.first_rtp_at is not None and metrics.response_ms is not None
    assert metrics.response_ms < 1500
    stats = session.call.stats
    assert stats.packets_in >= 230 and stats.lost == 0  # the pcap holds 236 packets
    assert session.call.recording_path is not None
    assert session.call.end_reason == "remote hangup"


@pytest.mark.parametrize("name,digit", [("1", "1"), ("pound", "#"), ("star", "*")])
async def test_sipp_digits_reach_on_dtmf(tmp_path: Path, name: str, digit: str) -> None:
    seen: list[DtmfReceived] = []

    async def on_dtmf(session: Any, event: DtmfReceived) -> None:
        seen.append(event)

    agent = Agent(
        agent_name="ivr",
        llm=FakeLLM(default_reply=""),
        stt=FakeSTT(),
        tts=FakeTTS(),
        send_greeting=False,
        silence_timeout=None,
        on_dtmf=on_dtmf,
    )
    scenario = tmp_path / "uac_dtmf.xml"
    scenario.write_text(
        (SIPP_DIR / "uac_dtmf.xml")
        .read_text()
        .replace("[dtmf_pcap]", str(PCAPS / f"dtmf_2833_{name}.pcap"))
    )
    async with AgentHarness(agent) as harness:
        result = await asyncio.to_thread(
            run_sipp, harness.port, tmp_path, "-sf", str(scenario), "-s", "ivr", "-m", "1"
        )
        assert result.ok, result.errors[-3000:] + result.output[-3000:]
        session = await only_session(harness)
    assert [e.digit for e in seen] == [digit]
    assert seen[0].source == "rtp" and 100 <= seen[0].duration_ms <= 400
    assert session.dtmf_digits == [digit]


async def test_send_dtmf_reaches_sipp_as_rfc4733_events(tmp_path: Path) -> None:
    """SIPp echoes every RTP packet it receives (-rtp_echo): the agent hears its own digits."""
    heard: list[str] = []

    async def on_enter(session: AgentSession) -> None:
        await asyncio.sleep(0.3)
        session.send_dtmf("159#")

    async def on_dtmf(session: Any, event: DtmfReceived) -> None:
        heard.append(event.digit)

    agent = Agent(
        agent_name="dialer",
        llm=FakeLLM(default_reply=""),
        stt=FakeSTT(),
        tts=FakeTTS(),
        silence_timeout=None,
        on_enter=on_enter,
        on_dtmf=on_dtmf,
    )
    async with AgentHarness(agent) as harness:
        result = await asyncio.to_thread(
            run_sipp,
            harness.port,
            tmp_path,
            "-sf",
            str(SIPP_DIR / "uac_listen.xml"),
            "-s",
            "dialer",
            "-m",
            "1",
            "-rtp_echo",
        )
        assert result.ok, result.errors[-3000:] + result.output[-3000:]
        session = await only_session(harness)
    assert heard == ["1", "5", "9", "#"]
    assert session.call.stats.dtmf_events == 4


@pytest.mark.parametrize("target_answers", [True, False], ids=["answered", "declined-603"])
async def test_transfer_call_refers_the_caller_and_reports_the_outcome(
    tmp_path: Path, target_answers: bool
) -> None:
    """The caller (our UA, following REFER like a phone) is sent to a SIPp UAS."""
    if target_answers:
        sipp, port = await start_sipp(tmp_path, "-sn", "uas")
    else:
        sipp, port = await start_sipp(tmp_path, "-sf", str(SIPP_DIR / "refer_uas_603.xml"))
    billing = f"sip:billing@127.0.0.1:{port}"

    def after_transfer(messages: list[ChatMessage]) -> str:
        result = next(m.content for m in reversed(messages) if m.role == "tool")
        return "Billing is busy, can I help instead?" if "603" in result else "Done."

    llm = FakeLLM(
        [
            "Hello.",
            FakeReply(
                "Transferring you to billing.",
                tool_calls=[("transfer_call", {"destination": billing})],
            ),
            after_transfer,
        ]
    )
    agent = Agent(
        agent_name="front-desk",
        llm=llm,
        stt=FakeSTT(["billing please"]),
        tts=FakeTTS(),
        tools=[transfer_call],
        silence_timeout=None,
    )
    await asyncio.sleep(0.3)  # SIPp binding its port
    async with AgentHarness(agent) as harness, harness.call() as caller:
        await caller.wait_for_agent_silence()
        said = await caller.say(speech_like(0.8))
        if target_answers:
            await caller.wait_ended(timeout=15)  # the agent leaves after the transfer
        else:
            await caller.wait_for_agent_speech()
            await caller.wait_for_agent_silence(quiet=1.0)
        session = caller.session
        transferred = caller.transferred_call
        # The REFER came only after "Transferring you to billing." had played.
        request_heard = caller.last_audible()
        assert request_heard is not None and request_heard > said.ended
    await wait_sipp(sipp, port, tmp_path)
    (status,) = [t[1] for t in caller.transfers]
    reply = next(t for t in session.transcript if t.tool_calls)
    (record,) = reply.tool_calls
    assert record.name == "transfer_call" and not record.is_error
    if target_answers:
        assert status == 200 and transferred is not None
        assert session.call.end_reason == "transferred"
        assert "succeeded" in record.result or "transferred" in record.result
    else:
        assert status == 603 and transferred is None
        assert "603" in record.result
        # The model was told, and said so: a failed transfer is spoken about, not silent.
        assert session.transcript[-1].text.endswith("Billing is busy, can I help instead?")
        assert not session.call.end_reason or session.call.end_reason != "transferred"
