"""The simulated caller: the far end of a call, speaking and listening like a phone.

``SimulatedCaller`` wraps an answered outbound ``SipCall`` (placed with SIPHON's
own user agent). It sends audio in real time through the call's playout queue,
and timestamps every RTP packet it receives on arrival, keeping its decoded audio:
a test (or ``siphon call``) can tell when the agent spoke, when it went quiet,
what it said (``listen()`` returns the audio of one agent utterance), and how long
the agent took to answer, all measured on the wire. A REFER from the agent is
followed as a phone would: call the target, report the outcome in NOTIFYs.

It works against any SIP agent; ``AgentHarness`` also hands it the in-process
agent's session (``caller.session``) for assertions on transcript and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from siphon.events import TransferRequested
from siphon.io.call import CallFailed, SipCall
from siphon.plugins.base import PcmArray
from siphon.rtp.codecs import Codec, codec_for
from siphon.rtp.packet import peek_header
from siphon.testing.audio import dbfs

if TYPE_CHECKING:
    from siphon.io.user_agent import UserAgent
    from siphon.voice.session import AgentSession

# Received audio louder than this is "the agent speaking" (comfort silence is -inf,
# the A-law idle pattern about -66 dBFS; synthetic and real speech sit well above).
SPEAKING_DBFS = -45.0
_EMPTY = np.zeros(0, dtype=np.int16)


@dataclass(slots=True)
class HeardPacket:
    arrival: float  # time.monotonic() when the packet arrived
    payload_type: int
    level_dbfs: float  # -inf for digital silence and telephone-event packets
    pcm: PcmArray  # decoded 8 kHz audio (empty for telephone-events)

    @property
    def audible(self) -> bool:
        return self.level_dbfs > SPEAKING_DBFS


@dataclass(slots=True)
class SentSpeech:
    started: float  # time.monotonic() when its first frame went out
    ended: float  # ... its last frame


@dataclass(slots=True)
class HeardSpeech:
    """One utterance of the agent as the caller received it."""

    started: float  # arrival of its first audible packet
    ended: float  # arrival of its last audible packet
    pcm: PcmArray  # 8 kHz audio from start to end

    @property
    def duration(self) -> float:
        return len(self.pcm) / 8000


class SimulatedCaller:
    """The far end of one call: speaks scripted audio and listens to the agent."""

    def __init__(
        self,
        call: SipCall,
        session: AgentSession | None = None,
        *,
        ua: UserAgent | None = None,
    ) -> None:
        self.call = call
        self._session = session
        self._ua = ua
        self.heard: list[HeardPacket] = []
        self.said: list[SentSpeech] = []
        # A cold transfer (REFER) is followed like a phone would: call the target and
        # report the outcome to the agent; the new call is kept here.
        self.transfers: list[tuple[str, int, str]] = []  # (target, status, reason)
        self.transferred_call: SipCall | None = None
        self._events_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._codec: Codec | None = None
        self._ended_at: float | None = None

    @property
    def session(self) -> AgentSession:
        """The agent's session (only when the agent runs in this process: ``AgentHarness``)."""
        if self._session is None:
            raise RuntimeError("this caller called a remote agent: its session is not here")
        return self._session

    def start(self) -> None:
        negotiated = self.call.negotiated
        assert negotiated is not None, "start() wants an answered call"
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
        pcm = _EMPTY
        if self._codec is not None and payload_type == self.call.media.payload_type:
            pcm = self._codec.decode(packet[12 + 4 * (packet[0] & 0x0F) :])
            level = dbfs(pcm)
        self.heard.append(HeardPacket(arrival, payload_type, level, pcm))
        self._changed.set()

    # -- speaking ---------------------------------------------------------------------
    async def say(self, pcm: PcmArray) -> SentSpeech:
        """Send 8 kHz audio in real time; returns when its last frame has gone out."""
        playout = self.call.media.playout
        loop = asyncio.get_running_loop()
        first_sent: asyncio.Future[float] = loop.create_future()
        last_sent: asyncio.Future[float] = loop.create_future()

        def resolver(future: asyncio.Future[float]) -> Any:
            def done(played: bool, now: float) -> None:
                if not future.done():
                    future.set_result(time.monotonic())

            return done

        # Registered before queuing: the first frame may go out at once.
        playout.notify_played(playout.queued, resolver(first_sent))
        playout.put(np.asarray(pcm, dtype=np.int16))
        last = playout.end_of_utterance()
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

    async def listen(
        self, *, quiet: float = 0.8, timeout: float = 20.0, start_timeout: float = 10.0
    ) -> HeardSpeech | None:
        """Wait for the agent's next utterance and return it (None: it said nothing).

        The utterance ends after ``quiet`` seconds without audible audio (pauses
        between sentences are shorter) or when the call ends.
        """
        begin = len(self.heard)
        try:
            started = await self.wait_for_agent_speech(start_timeout)
        except (TimeoutError, AssertionError):
            return None
        ended = await self.wait_for_agent_silence(quiet, timeout)
        packets = [p for p in self.heard[begin:] if started <= p.arrival <= ended]
        pcm = np.concatenate([p.pcm for p in packets]) if packets else _EMPTY
        return HeardSpeech(started, ended, pcm)

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
        """Hang up what is still up and stop following events (idempotent)."""
        if not self.call.ended:
            await self.call.hangup("caller done")
        if self.transferred_call is not None and not self.transferred_call.ended:
            await self.transferred_call.hangup("caller done")
        if self._events_task is not None:
            self._events_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._events_task
            self._events_task = None
        # An in-process agent's session finishes (on_exit...) shortly after the BYE.
        if self._session is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._session.finished.wait()
