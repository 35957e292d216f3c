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
import math
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from siphon.app import ServerConfig, SipServer
from siphon.events import TransferRequested
from siphon.io.call import CallFailed, SipCall
from siphon.io.ports import RtpPortAllocator
from siphon.io.sip_stack import SipStack
from siphon.io.user_agent import UaConfig, UserAgent
from siphon.plugins.base import PcmArray
from siphon.rtp.codecs import Codec, codec_for
from siphon.rtp.packet import peek_header
from siphon.sip.timers import SipTimers
from siphon.testing.audio import dbfs

if TYPE_CHECKING:
    from siphon.agent.agent import Agent
    from siphon.voice.session import AgentSession

# Received audio louder than this is "the agent speaking" (comfort silence is -inf,
# the A-law idle pattern about -66 dBFS; synthetic and real speech sit well above).
SPEAKING_DBFS = -45.0
# Short timers: a failed test should not wait 32 s for a SIP transaction to time out.
HARNESS_TIMERS = SipTimers(t1=0.1, t2=0.8, t4=1.0)


@dataclass(slots=True)
class HeardPacket:
    arrival: float  # time.monotonic() when the packet arrived
    payload_type: int
    level_dbfs: float  # -inf for digital silence and telephone-event packets

    @property
    def audible(self) -> bool:
        return self.level_dbfs > SPEAKING_DBFS


@dataclass(slots=True)
class SentSpeech:
    started: float  # time.monotonic() when its first frame went out
    ended: float  # ... its last frame


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


class SimulatedCaller:
    """The far end of one call: speaks scripted audio and listens to the agent."""

    def __init__(
        self, call: SipCall, session: AgentSession, *, ua: UserAgent | None = None
    ) -> None:
        self.call = call
        self.session = session
        self._ua = ua
        # A cold transfer (REFER) is followed like a phone would: call the target and
        # report the outcome to the agent; the new call is kept here.
        self.transfers: list[tuple[str, int, str]] = []  # (target, status, reason)
        self.transferred_call: SipCall | None = None
        self._events_task: asyncio.Task[None] | None = None
        self.heard: list[HeardPacket] = []
        self.said: list[SentSpeech] = []
        self._changed = asyncio.Event()
        self._codec: Codec | None = None
        self._ended_at: float | None = None

    def start(self) -> None:
        negotiated = self.call.negotiated
        assert negotiated is not None
        self._codec = codec_for(negotiated.codec.name, negotiated.codec.clock_rate)
        self.call.media.tap = self._on_packet
        self.call.on_ended(self._on_ended)
        self._events_task = asyncio.create_task(
            self._follow_events(), name=f"caller-events:{self.call.call_id}"
        )

    async def _follow_events(self) -> None:
        async for event in self.call.iter_events():
            if isinstance(event, TransferRequested) and self._ua is not None:
                try:
                    new_call = await self._ua.call(event.target, from_user="caller", timeout=10)
                except CallFailed as exc:
                    self.transfers.append((event.target, exc.status, exc.reason))
                    await self.call.notify_transfer(exc.status, exc.reason)
                else:
                    self.transferred_call = new_call
                    self.transfers.append((event.target, 200, "OK"))
                    await self.call.notify_transfer(200, "OK")

    def _on_ended(self) -> None:
        self._ended_at = time.monotonic()
        self._changed.set()

    def _on_packet(self, packet: bytes, arrival: float) -> None:
        header = peek_header(packet)
        if header is None:
            return
        payload_type = header[0]
        level = -math.inf
        if self._codec is not None and payload_type == self.call.media.payload_type:
            pcm = self._codec.decode(packet[12 + 4 * (packet[0] & 0x0F) :])
            level = dbfs(pcm)
        self.heard.append(HeardPacket(arrival, payload_type, level))
        self._changed.set()

    # -- speaking ---------------------------------------------------------------------
    async def say(self, pcm: PcmArray) -> SentSpeech:
        """Send 8 kHz audio in real time; returns when its last frame has gone out."""
        playout = self.call.media.playout
        loop = asyncio.get_running_loop()
        first_sent: asyncio.Future[float] = loop.create_future()
        last_sent: asyncio.Future[float] = loop.create_future()
        first = playout.queued
        playout.put(np.asarray(pcm, dtype=np.int16))
        last = playout.end_of_utterance()

        def resolver(future: asyncio.Future[float]) -> Any:
            def done(played: bool, now: float) -> None:
                if not future.done():
                    future.set_result(time.monotonic())

            return done

        playout.notify_played(first, resolver(first_sent))
        playout.notify_played(last, resolver(last_sent))
        self.call.on_ended(lambda: resolver(last_sent)(False, 0.0))
        self.call.on_ended(lambda: resolver(first_sent)(False, 0.0))
        sent = SentSpeech(await first_sent, await last_sent)
        self.said.append(sent)
        return sent

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def send_dtmf(self, digits: str) -> None:
        self.call.send_dtmf(digits)

    async def hangup(self) -> None:
        await self.call.hangup("caller hung up")

    # -- listening --------------------------------------------------------------------
    @property
    def agent_speaking(self) -> bool:
        """The last packets carried audible audio (looks back 100 ms)."""
        now = time.monotonic()
        return any(p.audible for p in self.heard[-5:] if now - p.arrival < 0.1)

    async def wait_for_agent_speech(self, timeout: float = 10.0) -> float:
        """Wait for audible audio from the agent; returns its arrival time."""
        start_index = len(self.heard)
        async with asyncio.timeout(timeout):
            while True:
                for packet in self.heard[start_index:]:
                    if packet.audible:
                        return packet.arrival
                start_index = len(self.heard)
                if self.call.ended:
                    raise AssertionError("the call ended before the agent spoke")
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_agent_silence(self, quiet: float = 0.4, timeout: float = 20.0) -> float:
        """Wait until the agent has been quiet for ``quiet`` s; returns when it went quiet."""
        async with asyncio.timeout(timeout):
            while True:
                last = self.last_audible()
                now = time.monotonic()
                since = last if last is not None else 0.0
                if self.call.ended or now - since >= quiet:
                    return since
                await asyncio.sleep(0.02)

    async def wait_ended(self, timeout: float = 20.0) -> str:
        async with asyncio.timeout(timeout):
            return await self.call.wait_ended()

    def last_audible(self, before: float | None = None) -> float | None:
        """Arrival time of the last audible packet (before ``before``)."""
        for packet in reversed(self.heard):
            if packet.audible and (before is None or packet.arrival <= before):
                return packet.arrival
        return None

    def audible_between(self, start: float, end: float) -> list[HeardPacket]:
        return [p for p in self.heard if start <= p.arrival <= end and p.audible]

    def agent_segments(self, gap: float = 0.2) -> list[tuple[float, float]]:
        """(start, end) arrival times of the agent's stretches of audible audio."""
        segments: list[tuple[float, float]] = []
        for packet in self.heard:
            if not packet.audible:
                continue
            if segments and packet.arrival - segments[-1][1] <= gap:
                segments[-1] = (segments[-1][0], packet.arrival)
            else:
                segments.append((packet.arrival, packet.arrival))
        return segments

    @property
    def ended_at(self) -> float | None:
        """time.monotonic() when the call ended (BYE received or sent)."""
        return self._ended_at

    async def close(self) -> None:
        if not self.call.ended:
            await self.call.hangup("harness done")
        if self.transferred_call is not None and not self.transferred_call.ended:
            await self.transferred_call.hangup("harness done")
        if self._events_task is not None:
            self._events_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._events_task
        # The agent's session finishes (on_exit...) shortly after the BYE.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self.session.finished.wait()
