"""The agent side of ``benchmarks/turn_overhead.py``: an Agent with instant fake providers.

Not meant to be run by hand; ``turn_overhead.py`` starts it pinned to one core::

    _turn_agent.py --sip-port P --rtp-ports A-B --metrics turns.jsonl --stats stats.json

It serves one ``Agent`` (FakeSTT with latency 0 and a default transcript for every
turn, FakeLLM answering ``--reply`` at once, FakeTTS with no first-chunk latency,
the default WebRtcVAD, no silence timeout) with siphon's ``SipServer`` on UDP, on
uvloop when installed and with the CLI's garbage-collector settings, as
``siphon start`` would. Recording is on (a stereo WAV per call, as in production)
unless ``--no-record``, and so are INFO logs as JSON lines on stderr (``--log-level``).

What it measures, all on the monotonic clock the other processes share:

- every agent turn's ``TurnMetrics`` (from the ``on_agent_turn`` hook), appended
  as JSON lines to ``--metrics`` by a background thread once a second (and at exit);
- the loop lag: a task sleeps 10 ms over and over and notes how late it woke;
- the media clock: a listener on the process-wide clock notes each tick's lateness
  behind its absolute deadline; the clock's own counters are sampled every 0.5 s;
- garbage collections: when, which generation, and how long the loop stood still.

``--first-frame tick`` makes every call (``ab``: every other call) send an answer's
first frame on the next media tick instead of at once.

On SIGINT/SIGTERM the server drains, and the lag, tick and counter samples go to
``--stats`` as one JSON object. "ready <port>" on stdout says it is serving.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import event_loop_runner, parse_port_range  # shared helpers (this folder)

from siphon.agent import Agent
from siphon.app import ServerConfig, SipServer
from siphon.cli import _setup_logging, tune_gc
from siphon.io.media_clock import MediaClock
from siphon.testing import FakeLLM, FakeSTT, FakeTTS
from siphon.voice.session import AgentSession
from siphon.voice.transcript import Turn

if TYPE_CHECKING:
    from siphon.io.call import SipCall

LAG_INTERVAL = 0.010  # the loop-lag probe's sleep
SAMPLE_INTERVAL = 0.5  # media clock counters
FLUSH_INTERVAL = 1.0  # turn metrics to disk (off the loop)


class MetricsFile:
    """JSON lines written by a thread, so the event loop never waits on the disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: list[str] = []
        self._lock = threading.Lock()
        path.write_text("")

    def add(self, record: dict[str, Any]) -> None:
        self._pending.append(json.dumps(record))

    def _write(self, lines: list[str]) -> None:
        with self._lock, self.path.open("a") as out:
            out.write("".join(line + "\n" for line in lines))

    async def flush(self) -> None:
        lines, self._pending = self._pending, []
        if lines:
            await asyncio.to_thread(self._write, lines)

    def flush_now(self) -> None:
        lines, self._pending = self._pending, []
        if lines:
            self._write(lines)


def first_frame_mode(setting: str, from_uri: str) -> str:
    """ "lead" (the first frame of an answer goes out at once) or "tick" (on the next tick).

    ``ab`` alternates by the caller's number (``sip:caller7@...``), so that both run
    side by side in one trial, on the same clocks; ``_turn_callers.py`` applies the
    same rule.
    """
    if setting != "ab":
        return setting
    digits = "".join(ch for ch in from_uri.split("@")[0] if ch.isdigit())
    return "tick" if digits and int(digits) % 2 else "lead"


class BenchAgent(Agent):
    """The agent under test; its hooks record each reply's metrics and each call's totals."""

    def __init__(
        self,
        metrics: MetricsFile,
        clock: MediaClock | None = None,
        first_frame: str = "lead",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.metrics_file = metrics
        self.first_frame = first_frame
        self.modes: dict[str, str] = {}  # call id -> first-frame mode
        self.clock = clock  # set once the server exists: for the tick phase of decisions
        self.calls_ended = 0
        self.provider_errors = 0
        self.turns_per_call: list[int] = []

    def create_session(self, call: SipCall) -> AgentSession:
        mode = self.modes[call.call_id] = first_frame_mode(self.first_frame, call.from_uri)
        if mode == "tick":
            # What RtpSession did before it learnt to send an answer's first frame at
            # once: no early send, so the frame waits for the next 20 ms tick.
            playout = call.media.playout
            if not hasattr(playout, "on_start"):
                raise SystemExit("--first-frame tick: this siphon has no PlayoutQueue.on_start")
            playout.on_start = None
        return super().create_session(call)

    async def on_agent_turn(self, session: AgentSession, turn: Turn) -> None:
        m = turn.metrics
        if m is None:  # the greeting: no caller turn to measure from
            return
        assert isinstance(self.llm, FakeLLM)
        self.llm.calls.clear()  # it keeps a copy of every conversation: memory stays flat
        record: dict[str, Any] = {
            "call": session.call_id,
            "turn": m.turn_id,
            "speech_ended_at": m.speech_ended_at,
            "endpoint_at": m.endpoint_at,
            "reason": m.endpoint_reason,
            "llm_first_token_at": m.llm_first_token_at,
            "tts_first_audio_at": m.tts_first_audio_at,
            "first_rtp_at": m.first_rtp_at,
            "overhead_ms": m.overhead_ms,
            "response_ms": m.response_ms,
            "endpointing_ms": m.endpointing_ms,
            "interrupted": m.interrupted,
            "live_calls": len(self.sessions),
            "mode": self.modes.get(session.call_id, self.first_frame),
        }
        clock = self.clock
        if clock is not None and m.endpoint_at is not None:
            # Where in the 20 ms tick the decision fell (0: right on a tick). The private
            # start is the grid's origin; a permanent listener keeps it fixed.
            record["phase_ms"] = ((m.endpoint_at - clock._start) % clock.interval) * 1000
        self.metrics_file.add(record)

    async def on_exit(self, session: AgentSession) -> None:
        self.calls_ended += 1
        self.provider_errors += session.errors
        self.turns_per_call.append(len(session.metrics))
        self.modes.pop(session.call_id, None)


class TickProbe:
    """A media clock listener: the lateness of every tick behind its absolute deadline."""

    def __init__(self, clock: MediaClock) -> None:
        self.clock = clock
        self.samples: list[tuple[float, float]] = []  # (loop time, lateness s)

    def on_tick(self, tick: int, now: float) -> None:
        # After a skip the tick number jumped: the lateness is then measured against the
        # new deadline (the skipped ticks are counted by the clock itself).
        self.samples.append((now, now - (self.clock._start + tick * self.clock.interval)))


class GcProbe:
    """Garbage collections: (time.monotonic() at the start, generation, pause in s)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int, float]] = []
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            pause = time.perf_counter() - self._began
            self.samples.append((time.monotonic(), info["generation"], pause))


async def lag_probe(samples: list[tuple[float, float]]) -> None:
    while True:
        began = time.perf_counter()
        await asyncio.sleep(LAG_INTERVAL)
        late = time.perf_counter() - began - LAG_INTERVAL
        samples.append((time.monotonic(), late))


async def sample_clock(clock: MediaClock, agent: BenchAgent, samples: list[list[float]]) -> None:
    while True:
        samples.append(
            [
                time.monotonic(),
                clock.ticks,
                clock.skipped_ticks,
                clock.busy_seconds,
                clock.listener_count - 1,  # minus the tick probe
                len(agent.sessions),
            ]
        )
        await asyncio.sleep(SAMPLE_INTERVAL)


async def flush_metrics(metrics: MetricsFile) -> None:
    while True:
        await asyncio.sleep(FLUSH_INTERVAL)
        await metrics.flush()


def build_agent(args: argparse.Namespace, metrics: MetricsFile) -> BenchAgent:
    vad = None
    if args.vad == "fake":
        from siphon.testing import FakeVAD

        vad = FakeVAD()
    return BenchAgent(
        metrics,
        agent_name="bench",
        stt=FakeSTT(latency=0.0, default_transcript=args.transcript),
        llm=FakeLLM(default_reply=args.reply),
        tts=FakeTTS(first_chunk_latency=0.0),
        vad=vad,
        system_instructions="You are a benchmark agent.",
        greeting_instructions="Greet the caller.",
        silence_timeout=None,
        first_frame=args.first_frame,
    )


async def serve(args: argparse.Namespace) -> dict[str, Any]:
    metrics = MetricsFile(args.metrics)
    agent = build_agent(args, metrics)
    server = SipServer(
        agent,
        ServerConfig(
            host="127.0.0.1",
            sip_port=args.sip_port,
            transports=("udp",),
            rtp_port_start=args.rtp_ports[0],
            rtp_port_end=args.rtp_ports[1],
            record=not args.no_record,
            drain_timeout=2.0,
        ),
    )
    clock = server.ua.clock
    agent.clock = clock
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    lag: list[tuple[float, float]] = []
    counters: list[list[float]] = []
    probe = TickProbe(clock)

    def ready(s: SipServer) -> None:
        print(f"ready {s.sip_port}", flush=True)

    collections = GcProbe()
    gc.callbacks.append(collections)
    async with asyncio.TaskGroup() as group:
        clock.add(probe)  # from now on the clock ticks, calls or not: one fixed grid
        tasks = [
            group.create_task(lag_probe(lag), name="bench:lag"),
            group.create_task(sample_clock(clock, agent, counters), name="bench:clock"),
            group.create_task(flush_metrics(metrics), name="bench:metrics"),
        ]
        try:
            await server.serve(ready)
        finally:
            for task in tasks:
                task.cancel()
            clock.remove(probe)
            gc.callbacks.remove(collections)
    metrics.flush_now()
    stt = agent.stt
    assert isinstance(stt, FakeSTT)
    return {
        "uvloop": "uvloop" in type(loop).__module__,
        "lag": lag,
        "ticks": probe.samples,
        "clock": counters,
        "gc": collections.samples,
        "clock_errors": clock.errors,
        "calls_ended": agent.calls_ended,
        "provider_errors": agent.provider_errors,
        "turns_per_call": agent.turns_per_call,
        "stt_turns": stt.turns,
        "stt_unscripted_turns": stt.unscripted_turns,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sip-port", type=int, required=True)
    parser.add_argument("--rtp-ports", type=parse_port_range, default=(31000, 31600))
    parser.add_argument("--metrics", type=Path, required=True, help="turn metrics (JSON lines)")
    parser.add_argument("--stats", type=Path, required=True, help="lag/tick samples (JSON)")
    parser.add_argument("--no-record", action="store_true", help="no stereo WAV per call")
    parser.add_argument("--reply", default="Sure, I can help with that.")
    parser.add_argument("--transcript", default="I have a question about my order.")
    parser.add_argument("--vad", choices=("webrtc", "fake"), default="webrtc")
    parser.add_argument(
        "--first-frame",
        choices=("lead", "tick", "ab"),
        default="lead",
        help="an answer's first frame: at once (lead), on the next tick, or half and half",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="uvloop when installed (as the CLI); asyncio's own loop has a sub-ms clock",
    )
    parser.add_argument(
        "--log-level", default="info", help="JSON logs to stderr at this level (as siphon start)"
    )
    args = parser.parse_args()
    _setup_logging(args.log_level, json_logs=True)
    tune_gc()
    run = event_loop_runner() if args.loop == "uvloop" else asyncio.run
    stats = run(serve(args))
    args.stats.write_text(json.dumps(stats))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
