"""Drive an agent through a real call on loopback: SIP signalling, RTP audio, the works.

``AgentHarness`` serves an ``Agent`` on 127.0.0.1 (a random port) in the test's
own event loop, and ``harness.call()`` dials it with SIPHON's own user agent, so
the agent under test runs exactly as it would for a phone: VAD, endpointing,
barge-in, tools, playout, RTP. The simulated caller speaks scripted audio and
listens: every RTP packet it receives is timestamped on arrival and its level
measured, so a test can say when the agent spoke and when it went silent::

    from siphon.testing import AgentHarness, FakeLLM, FakeSTT, FakeTTS, speech_like

    async def test_my_agent():
        agent = make_agent(stt=FakeSTT(["what are your hours"]),
                           llm=FakeLLM(["Hello!", "We open at nine."]), tts=FakeTTS())
        async with AgentHarness(agent) as harness, harness.call() as caller:
            await caller.wait_for_agent_silence()          # the greeting has played
            await caller.say(speech_like(1.2))              # the caller speaks
            await caller.wait_for_agent_speech()            # ...and gets an answer
            await caller.wait_for_agent_silence()
        assert caller.session.transcript.by("agent")[-1].text == "We open at nine."

The harness needs no network beyond loopback and no Debian packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from siphon.app import ServerConfig, SipServer
from siphon.io.call import SipCall
from siphon.io.ports import RtpPortAllocator
from siphon.io.sip_stack import SipStack
from siphon.io.user_agent import UaConfig, UserAgent
from siphon.sip.timers import SipTimers
from siphon.testing.caller import SimulatedCaller

if TYPE_CHECKING:
    from siphon.agent.agent import Agent
    from siphon.voice.session import AgentSession

# Short timers: a failed test should not wait 32 s for a SIP transaction to time out.
HARNESS_TIMERS = SipTimers(t1=0.1, t2=0.8, t4=1.0)


class _SessionCapture:
    """A call handler that runs the agent and keeps each call's session for the test."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.auth = getattr(agent, "auth", None)
        self.realm = getattr(agent, "realm", "siphon")
        self.sessions: dict[str, AgentSession] = {}
        self.arrived: dict[str, asyncio.Event] = {}

    def _event(self, call_id: str) -> asyncio.Event:
        return self.arrived.setdefault(call_id, asyncio.Event())

    async def handle_call(self, call: SipCall) -> None:
        session = self.agent.create_session(call)
        self.sessions[call.call_id] = session
        self._event(call.call_id).set()
        await call.answer()
        self.agent.sessions.add(session)
        try:
            await session.run()
        finally:
            self.agent.sessions.discard(session)


class AgentHarness:
    """An agent served on loopback plus a caller user agent to dial it."""

    def __init__(
        self,
        agent: Agent,
        *,
        record: bool = False,
        rtp_ports: tuple[int, int] | None = None,
        timers: SipTimers = HARNESS_TIMERS,
    ) -> None:
        self.agent = agent
        self.record = record
        self.timers = timers
        # Below the kernel's ephemeral range (32768+), where other tools bind.
        base = 20000 + secrets.randbelow(110) * 100
        self._server_ports = rtp_ports or (base, base + 48)
        self._client_ports = (base + 50, base + 98) if rtp_ports is None else None
        self._capture = _SessionCapture(agent)
        self.server: SipServer | None = None
        self.caller_ua: UserAgent | None = None
        self._server_task: asyncio.Task[None] | None = None

    @property
    def sessions(self) -> dict[str, AgentSession]:
        """The agent's session of every call so far, by Call-ID (also calls from other peers)."""
        return self._capture.sessions

    @property
    def port(self) -> int:
        assert self.server is not None, "use 'async with AgentHarness(agent)'"
        return self.server.sip_port

    async def __aenter__(self) -> AgentHarness:
        start, end = self._server_ports
        self.server = SipServer(
            self._capture,
            ServerConfig(
                host="127.0.0.1",
                sip_port=0,
                transports=("udp",),
                rtp_port_start=start,
                rtp_port_end=end,
                # Pairs bound as calls come, as the caller's are: a test's few calls
                # need no pool, and harnesses on nearby ranges must not take each
                # other's ports at start.
                rtp_prefill=0,
                timers=self.timers,
                record=self.record,
                drain_timeout=1.0,
            ),
        )
        ready = asyncio.Event()
        self._server_task = asyncio.create_task(
            self.server.serve(lambda _: ready.set()), name="harness:server"
        )
        await asyncio.wait_for(ready.wait(), 5)
        stack = SipStack(timers=self.timers, user_agent="SIPHON-simulated-caller")
        await stack.listen("127.0.0.1", 0, ("udp",))
        ports = self._client_ports or (self._server_ports[1] + 2, self._server_ports[1] + 50)
        self.caller_ua = UserAgent(
            stack,
            ports=RtpPortAllocator(*ports),
            config=UaConfig(record=False, accept_refer=True),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.caller_ua is not None:
            self.caller_ua.stack.close()
            self.caller_ua.ports.close()
        if self.server is not None:
            self.server.stop()
        if self._server_task is not None:
            await asyncio.wait_for(self._server_task, 10)

    @contextlib.asynccontextmanager
    async def call(self, user: str | None = None) -> AsyncIterator[SimulatedCaller]:
        """Dial the agent; hangs up (if the agent has not) when the block ends."""
        assert self.caller_ua is not None, "use 'async with AgentHarness(agent)'"
        target = f"sip:{user or self.agent.agent_name}@127.0.0.1:{self.port}"
        call = await self.caller_ua.call(target, from_user="caller", timeout=10)
        await asyncio.wait_for(self._capture._event(call.call_id).wait(), 5)
        caller = SimulatedCaller(call, self._capture.sessions[call.call_id], ua=self.caller_ua)
        caller.start()
        try:
            yield caller
        finally:
            await caller.close()
