"""The caller side of ``benchmarks/turn_overhead.py``: N simulated callers in one process.

Not meant to be run by hand; ``turn_overhead.py`` starts it pinned to its own core::

    _turn_callers.py --target-port P --calls N --rate 20 --settle 2 --duration 30

Each caller is a call placed with siphon's own ``UserAgent`` (the far end's full RTP
stack: media clock, jitter buffer, playout queue), set up at ``--rate`` calls/s.
It knows nothing of the agent's session; it only listens to the RTP it receives
(a packet whose payload is not the codec's encoded silence is the agent speaking):

    wait for the greeting to play out; then, until the window closes:
        speak ~1 s of speech_like audio (in real time, through its playout queue),
        wait for the agent's answer to start and then finish (``--quiet`` s silent),
        pause a random 0.5-1.5 s so that the calls do not fall into step.

Once every call is up (or has failed) and ``--settle`` seconds have passed, the
measurement window opens for ``--duration`` seconds. Events go to stdout as JSON
lines as they happen (``window_start``, ``window_end``, with ``time.monotonic()``,
the clock the agent's metrics use too), so the parent can sample the agent's CPU
at the window's edges. After the window each caller finishes the turn it is in
and hangs up; a ``result`` line ends the output, with every answer's first audible
packet (arrival time) and the moment the caller's jitter buffer played its first
audible frame (what the caller hears), and the jitter buffers' counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from _common import emit, event_loop_runner, loopback_user_agent, parse_port_range, ramp
from _turn_agent import first_frame_mode  # the agent's rule (this script's folder)

from siphon.io.call import CallFailed, SipCall
from siphon.io.playout import PcmFrame
from siphon.io.rtp_session import RtpSession
from siphon.io.user_agent import UaConfig, UserAgent
from siphon.rtp.codecs import codec_for
from siphon.rtp.jitter import JitterStats
from siphon.testing import speech_like

AUDIBLE_PEAK = 256  # a decoded frame with a louder sample is the agent speaking
ANSWER_TIMEOUT = 10.0  # seconds a caller waits for the agent to start answering
GREETING_TIMEOUT = 15.0
VOICES = 8  # distinct speech_like signals shared by the callers


@dataclass
class Totals:
    up: int = 0
    failed: int = 0
    spoken: int = 0  # caller turns spoken (all of them, window or not)
    answered: int = 0
    unanswered: int = 0  # no answer within ANSWER_TIMEOUT
    no_greeting: int = 0
    dropped: int = 0  # calls that ended before the caller hung up
    # The callers' jitter buffers, per first-frame mode: frames played, lost, skipped...
    jitter: dict[str, dict[str, int]] = field(default_factory=dict)


class EarSession(RtpSession):
    """A caller's RTP session that reports each frame its jitter buffer plays out.

    That is when the caller would *hear* the agent: packets are played by RTP
    timestamp, one frame per tick of this process's media clock, not on arrival.
    """

    on_frame: Callable[[PcmFrame, float], None] | None = None

    def on_tick(self, tick: int, now: float) -> None:
        inbound = self._inbound
        before = inbound[-1] if inbound else None
        super().on_tick(tick, now)
        if self.on_frame is not None and inbound and inbound[-1] is not before:
            self.on_frame(inbound[-1], time.monotonic())

    def jitter_stats(self) -> JitterStats | None:
        return self._jitter.stats if self._jitter is not None else None


class CallerAgent(UserAgent):
    """Siphon's user agent, with ``EarSession`` media."""

    def _new_media(self, call_id: str) -> RtpSession:
        return EarSession(self.ports, self.clock, media_timeout=self.config.media_timeout)


@dataclass
class Answer:
    call: str
    mode: str
    arrival: float  # time.monotonic(): the first audible packet of the answer arrived
    played: float | None = None  # ... and its first audible frame left the jitter buffer


class Listener:
    """Watches one call's incoming RTP: when did the agent last make a sound?"""

    def __init__(self, call: SipCall, mode: str) -> None:
        negotiated = call.negotiated
        assert negotiated is not None
        codec = codec_for(negotiated.codec.name, negotiated.codec.clock_rate)
        self._silence = codec.silence(160)
        self._payload_type = negotiated.codec.payload_type
        self.call_id = call.call_id
        self.mode = mode
        self.last_audible = 0.0  # time.monotonic() of the last audible packet
        self.answers: list[Answer] = []
        self._waiter: asyncio.Future[float] | None = None
        self._ear: Answer | None = None  # heard on the wire, not yet played out
        call.media.tap = self._on_packet
        if isinstance(call.media, EarSession):
            call.media.on_frame = self._on_frame

    def _on_packet(self, packet: bytes, arrival: float) -> None:
        if packet[1] & 0x7F != self._payload_type:
            return
        if packet[12 + 4 * (packet[0] & 0x0F) :] == self._silence:
            return
        self.last_audible = arrival
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(arrival)
            self._ear = Answer(self.call_id, self.mode, arrival)
            self.answers.append(self._ear)

    def _on_frame(self, pcm: PcmFrame, now: float) -> None:
        answer = self._ear
        if answer is not None and int(np.abs(pcm).max()) > AUDIBLE_PEAK:
            answer.played = now
            self._ear = None

    async def speech(self, timeout: float) -> float:
        """Wait for the next audible packet; its arrival time."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                return await self._waiter
        finally:
            self._waiter = None

    async def quiet(self, quiet: float) -> None:
        """Wait until nothing audible has arrived for ``quiet`` seconds."""
        while True:
            silent = time.monotonic() - self.last_audible
            if silent >= quiet:
                return
            await asyncio.sleep(quiet - silent)


async def speak(call: SipCall, pcm: np.ndarray[Any, Any]) -> None:
    """Send 8 kHz audio in real time; returns when its last frame went out (or the call ended)."""
    playout = call.media.playout
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def finished(*_: object) -> None:
        if not done.done():
            done.set_result(None)

    playout.put(pcm)
    playout.notify_played(playout.end_of_utterance(), finished)
    call.on_ended(finished)
    await done


async def converse(
    call: SipCall,
    index: int,
    args: argparse.Namespace,
    voices: list[np.ndarray[Any, Any]],
    stop: asyncio.Event,
    totals: Totals,
    listeners: list[Listener],
) -> None:
    rng = random.Random(args.seed * 100_003 + index)
    listener = Listener(call, first_frame_mode(args.first_frame, f"caller{index}"))
    listeners.append(listener)
    try:
        try:
            await listener.speech(GREETING_TIMEOUT)
        except TimeoutError:
            totals.no_greeting += 1
        await listener.quiet(args.quiet)
        while not stop.is_set() and not call.ended:
            await speak(call, voices[rng.randrange(len(voices))])
            totals.spoken += 1
            try:
                await listener.speech(ANSWER_TIMEOUT)
            except TimeoutError:
                totals.unanswered += 1
                continue
            await listener.quiet(args.quiet)
            totals.answered += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(rng.uniform(*args.pause)):
                    await stop.wait()
    finally:
        if isinstance(call.media, EarSession):
            stats = call.media.jitter_stats()
            if stats is not None:
                mode = totals.jitter.setdefault(listener.mode, {})
                for key in ("played", "lost", "late", "concealed", "skipped", "resyncs"):
                    mode[key] = mode.get(key, 0) + getattr(stats, key)
        if call.ended:
            totals.dropped += 1
        else:
            await call.hangup("caller done")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    ua = await loopback_user_agent(
        CallerAgent,
        "siphon-turn-callers",
        args.rtp_ports,
        UaConfig(record=False, media_timeout=60.0),
    )
    voices = [speech_like(args.speech, 8000, seed) for seed in range(VOICES)]
    target = f"sip:bench@127.0.0.1:{args.target_port}"
    stop = asyncio.Event()
    totals = Totals()
    failures: dict[str, int] = {}
    conversations: list[asyncio.Task[None]] = []
    listeners: list[Listener] = []

    async def place(index: int) -> None:
        try:
            call = await ua.call(target, from_user=f"caller{index}", timeout=30.0)
        except (CallFailed, OSError) as exc:
            totals.failed += 1
            failures[str(exc)] = failures.get(str(exc), 0) + 1
            return
        totals.up += 1
        conversations.append(
            asyncio.create_task(
                converse(call, index, args, voices, stop, totals, listeners), name=f"c{index}"
            )
        )

    cpu0 = os.times()
    try:
        began = time.monotonic()
        await ramp(args.calls, args.rate, place)
        emit("up", up=totals.up, failed=totals.failed, ramp_s=time.monotonic() - began)
        await asyncio.sleep(args.settle)
        clock = ua.clock
        window_cpu = os.times()
        lateness0 = clock.max_lateness
        clock.max_lateness = 0.0
        emit("window_start", live=sum(1 for t in conversations if not t.done()))
        await asyncio.sleep(args.duration)
        window_end = os.times()
        emit("window_end", live=sum(1 for t in conversations if not t.done()))
        stop.set()
        async with asyncio.timeout(ANSWER_TIMEOUT + 10.0):
            await asyncio.gather(*conversations, return_exceptions=True)
        await asyncio.sleep(0.5)  # the last BYEs' responses
        spent = (window_end.user + window_end.system) - (window_cpu.user + window_cpu.system)
        return {
            "calls": args.calls,
            "up": totals.up,
            "failed": totals.failed,
            "failures": failures,
            "spoken": totals.spoken,
            "answered": totals.answered,
            "unanswered": totals.unanswered,
            "no_greeting": totals.no_greeting,
            "dropped": totals.dropped,
            "cpu_pct": 100.0 * spent / max(1e-9, window_end.elapsed - window_cpu.elapsed),
            "clock_late_max_ms": 1000.0 * clock.max_lateness,
            "clock_late_max_before_ms": 1000.0 * lateness0,
            "clock_skipped": clock.skipped_ticks,
            "total_cpu_s": (window_end.user + window_end.system) - (cpu0.user + cpu0.system),
            "jitter": totals.jitter,
            "answers": [
                [a.call, a.mode, a.arrival, a.played] for lst in listeners for a in lst.answers
            ],
        }
    finally:
        stop.set()
        for task in conversations:
            task.cancel()
        ua.stack.close()


def _pause(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--rate", type=float, default=20.0, help="calls set up per second")
    parser.add_argument("--settle", type=float, default=2.0, help="wait after the last call")
    parser.add_argument("--duration", type=float, default=30.0, help="measurement window, s")
    parser.add_argument("--speech", type=float, default=1.0, help="seconds per caller turn")
    parser.add_argument("--pause", type=_pause, default=(0.5, 1.5), help="LOW-HIGH seconds")
    parser.add_argument("--quiet", type=float, default=0.3, help="silence that ends an answer")
    parser.add_argument("--rtp-ports", type=parse_port_range, default=(31600, 32200))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--first-frame", choices=("lead", "tick", "ab"), default="lead")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        emit("result", **event_loop_runner()(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
