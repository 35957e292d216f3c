"""Framework overhead per turn: endpoint decision -> first RTP packet of the answer.

With instant fake providers (STT, LLM and TTS answer at once), everything between
the turn detector deciding that the caller has finished and the first packet of
the agent's answer going out is SIPHON's own work and waiting: the turn loop, the
reply task taking the floor, the LLM stream, the phrase chunker, the TTS stream,
resampling, the playout queue and sending the first frame (at once when the
stream is idle, else on the media clock's next 20 ms tick). That is
``TurnMetrics.overhead_ms``.

    python benchmarks/turn_overhead.py [--calls 1,50,100,200] [--duration 30]
                                       [--no-record] [--first-frame lead|tick|ab] [--quick]

For each N, a fresh agent (``benchmarks/_turn_agent.py``: FakeSTT/FakeLLM/FakeTTS
with no latency, WebRtcVAD, SipServer on uvloop, recording on, INFO logs as
JSON) runs pinned to core 0, and N simulated callers (``benchmarks/_turn_callers.py``:
siphon's own UserAgent, in a process pinned to core 1) dial it at ``--rate``
calls/s. Each caller waits for the greeting, then speaks ~1 s, waits for the
answer to play out, pauses 0.5-1.5 s (random) and speaks again. Turns whose
endpoint decision falls in the ``--duration`` s window (opened ``--settle`` s after
the last call is up) are counted. The columns:

  turns      agent turns measured (caller turns answered in the window)
  overhead   endpoint decision -> first RTP packet, ms: p50 / p95 / p99 / max
  ready      endpoint decision -> first TTS audio handed to the playout queue
             (all the processing: turn loop, floor, LLM, chunker, TTS, resampler)
  tick wait  first audio queued -> its packet sent (0-20 ms when it waits for a tick)
  response   end of the caller's speech (VAD) -> first RTP packet, ms: p50 / p95
  endpt      end of speech -> endpoint decision, ms: p50 (0.5 s VAD silence + 0.2 s)
  lag        loop lag of the agent process (a 10 ms sleep's lateness), ms: p50/p99/max
  ticks      media clock ticks more than 2 ms late (% of ticks), worst lateness, skipped
  CPU        agent process user+system over the window (100% = the core); "clock":
             the share of it spent in media ticks
  core0      how busy the agent's core was, whatever ran there (above CPU: something
             else took the core, e.g. another process on a shared machine)
  gc n/max   garbage collections in the agent during the window / the longest pause, ms
             (the JSON output has them per generation)
  callers    the caller process's CPU and its own media clock's worst lateness

A second table is the caller's side of the same turns: when the answer's first
audible packet arrived, and when the caller's jitter buffer (siphon's own, which
plays by RTP timestamp) played its first audible frame ("heard"), both from the
agent's endpoint decision, with the frames the callers' jitter buffers dropped to
shrink their delay (skipped) or concealed.

``--first-frame tick`` makes the agent send an answer's first frame on the next
tick, as siphon did before it learnt to send it at once (``lead``, the default);
``ab`` runs half the calls each way in the same trial (rows ``100L``/``100T``).

Figures are event-loop times: uvloop's clock has 1 ms resolution and truncates, so
a decision may read up to 1 ms early. Nothing here asserts a time; the last line
compares p95 at 100 calls with the 15 ms target.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (  # shared benchmark helpers (this script's folder)
    LineReader,
    core_busy_pct,
    core_times,
    cpu_seconds,
    free_port,
    percentile_upper,
    pinned,
    rtp_port_ranges,
    spawn,
    stop,
    stop_all,
)

HERE = Path(__file__).resolve().parent
AGENT = HERE / "_turn_agent.py"
CALLERS = HERE / "_turn_callers.py"
AGENT_CORE = "0"
CALLER_CORE = "1"
TARGET_CALLS = 100
TARGET_P95_MS = 15.0
TICK_LATE_MS = 2.0  # a media tick later than this behind its deadline counts as late
# RTP ports: above the test harness's ranges (20000-31000), below the ephemeral range.
RTP_BASE = 31000
STOP_WAIT = 15.0  # seconds for the agent to drain and write its figures after SIGINT


@dataclass
class Trial:
    calls: int
    up: int = 0
    turns: list[dict[str, Any]] = field(default_factory=list)
    answers: list[list[Any]] = field(default_factory=list)  # caller side: [call, mode, ...]
    window: tuple[float, float] = (0.0, 0.0)
    agent_cpu_pct: float = float("nan")
    core_busy_pct: float = float("nan")  # the agent's core, whatever ran there
    lag_ms: list[float] = field(default_factory=list)
    tick_late_ms: list[float] = field(default_factory=list)
    skipped_ticks: int = 0
    tick_busy_pct: float = float("nan")
    gc_pauses: list[tuple[int, float]] = field(default_factory=list)  # (generation, ms)
    callers: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def modes(self) -> list[str]:
        return sorted({t.get("mode", "lead") for t in self.turns})

    def figures(self, mode: str | None = None) -> dict[str, Any]:
        turns = [t for t in self.turns if mode is None or t.get("mode", "lead") == mode]

        def column(key: str) -> list[float]:
            return [t[key] for t in turns if t.get(key) is not None]

        def ms_between(later: str, earlier: str) -> list[float]:
            return [
                1000.0 * (t[later] - t[earlier])
                for t in turns
                if t.get(later) is not None and t.get(earlier) is not None
            ]

        overhead = column("overhead_ms")
        ready = ms_between("tts_first_audio_at", "endpoint_at")
        wait = ms_between("first_rtp_at", "tts_first_audio_at")
        response = column("response_ms")
        wire, heard = self.caller_side(turns)
        late = [x for x in self.tick_late_ms if x > TICK_LATE_MS]
        jitter = self.callers.get("jitter", {})
        jb = (
            jitter.get(mode, {})
            if mode is not None
            else {k: sum(m.get(k, 0) for m in jitter.values()) for k in ("skipped", "concealed")}
        )
        return {
            "calls": self.calls,
            "mode": mode or "+".join(self.modes),
            "up": self.up,
            "turns": len(overhead),
            "overhead_p50_ms": percentile_upper(overhead, 0.50),
            "overhead_p95_ms": percentile_upper(overhead, 0.95),
            "overhead_p99_ms": percentile_upper(overhead, 0.99),
            "overhead_max_ms": max(overhead, default=float("nan")),
            "ready_p50_ms": percentile_upper(ready, 0.50),
            "ready_p95_ms": percentile_upper(ready, 0.95),
            "ready_p99_ms": percentile_upper(ready, 0.99),
            "tick_wait_p50_ms": percentile_upper(wait, 0.50),
            "tick_wait_p95_ms": percentile_upper(wait, 0.95),
            "response_p50_ms": percentile_upper(response, 0.50),
            "response_p95_ms": percentile_upper(response, 0.95),
            "endpointing_p50_ms": percentile_upper(column("endpointing_ms"), 0.50),
            "phase_p50_ms": percentile_upper(column("phase_ms"), 0.50),
            "answers_matched": len(heard),
            "wire_p50_ms": percentile_upper(wire, 0.50),
            "wire_p95_ms": percentile_upper(wire, 0.95),
            "heard_p50_ms": percentile_upper(heard, 0.50),
            "heard_p95_ms": percentile_upper(heard, 0.95),
            "heard_p99_ms": percentile_upper(heard, 0.99),
            "jb_skipped": jb.get("skipped", 0),
            "jb_concealed": jb.get("concealed", 0),
            "lag_p50_ms": percentile_upper(self.lag_ms, 0.50),
            "lag_p99_ms": percentile_upper(self.lag_ms, 0.99),
            "lag_max_ms": max(self.lag_ms, default=float("nan")),
            "ticks": len(self.tick_late_ms),
            "ticks_late": len(late),
            "ticks_late_pct": 100.0 * len(late) / max(1, len(self.tick_late_ms)),
            "tick_late_max_ms": max(self.tick_late_ms, default=float("nan")),
            "ticks_skipped": self.skipped_ticks,
            "tick_busy_pct": self.tick_busy_pct,
            "agent_cpu_pct": self.agent_cpu_pct,
            "core_busy_pct": self.core_busy_pct,
            "gc_collections": [sum(1 for g, _ in self.gc_pauses if g == n) for n in range(3)],
            "gc_max_ms": [
                max((ms for g, ms in self.gc_pauses if g == n), default=0.0) for n in range(3)
            ],
            "callers_cpu_pct": self.callers.get("cpu_pct", float("nan")),
            "callers_clock_late_max_ms": self.callers.get("clock_late_max_ms", float("nan")),
            "problems": self.problems,
        }

    def caller_side(self, turns: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
        """Endpoint decision -> the answer's first audible packet at the caller, and ->
        its first audible frame out of the caller's jitter buffer (heard), in ms.

        Each agent turn is matched with the caller's first audible packet after its
        first RTP packet (same call, within 100 ms: loopback takes microseconds).
        """
        arrivals: dict[str, list[tuple[float, float | None]]] = {}
        for call, _mode, arrival, played in self.answers:
            arrivals.setdefault(call, []).append((arrival, played))
        for found in arrivals.values():
            found.sort()
        wire: list[float] = []
        heard: list[float] = []
        for turn in turns:
            sent, decided = turn.get("first_rtp_at"), turn.get("endpoint_at")
            if sent is None or decided is None:
                continue
            for arrival, played in arrivals.get(turn["call"], []):
                if sent - 0.002 <= arrival <= sent + 0.1:
                    wire.append(1000.0 * (arrival - decided))
                    if played is not None:
                        heard.append(1000.0 * (played - decided))
                    break
        return wire, heard


def wait_ready(proc: subprocess.Popen[bytes], out: Path, timeout: float = 20.0) -> bool:
    """The agent prints "ready <port>" once it serves."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if out.read_bytes().startswith(b"ready"):
            return True
        time.sleep(0.05)
    return False


def in_window(samples: list[list[float]], window: tuple[float, float]) -> list[list[float]]:
    return [s for s in samples if window[0] <= s[0] <= window[1]]


def trial(calls: int, args: argparse.Namespace, workdir: Path) -> Trial:
    result = Trial(calls)
    agent_ports, caller_ports = rtp_port_ranges(RTP_BASE, max(args.calls))
    port = free_port()
    metrics, stats = workdir / f"turns-{calls}.jsonl", workdir / f"stats-{calls}.json"
    agent_out, agent_log = workdir / f"agent-{calls}.out", workdir / f"agent-{calls}.log"
    cmd = [
        sys.executable,
        str(AGENT),
        "--sip-port",
        str(port),
        "--rtp-ports",
        agent_ports,
        "--metrics",
        str(metrics),
        "--stats",
        str(stats),
        "--first-frame",
        args.first_frame,
        "--loop",
        args.agent_loop,
    ]
    if args.no_record:
        cmd.append("--no-record")
    recordings = workdir / f"recordings-{calls}"
    with agent_out.open("wb") as out, agent_log.open("wb") as err:
        agent = spawn(
            pinned(AGENT_CORE, cmd),
            workdir,
            stdout=out,
            stderr=err,
            env={**os.environ, "SIPHON_RECORDINGS_DIR": str(recordings)},
        )
    try:
        if not wait_ready(agent, agent_out):
            result.problems.append(f"agent did not start: {agent_log.read_text()[-1500:]}")
            return result
        caller_events = run_callers(calls, port, agent.pid, caller_ports, args, workdir, result)
        stop(agent, wait=STOP_WAIT)
        if caller_events is None:
            return result
    finally:
        stop(agent, wait=STOP_WAIT)
        shutil.rmtree(recordings, ignore_errors=True)
    collect(result, metrics, stats, agent_log)
    return result


def run_callers(
    calls: int,
    port: int,
    agent_pid: int,
    rtp_ports: str,
    args: argparse.Namespace,
    workdir: Path,
    result: Trial,
) -> dict[str, Any] | None:
    cmd = [
        sys.executable,
        str(CALLERS),
        "--target-port",
        str(port),
        "--calls",
        str(calls),
        "--rate",
        str(args.rate),
        "--settle",
        str(args.settle),
        "--duration",
        str(args.duration),
        "--rtp-ports",
        rtp_ports,
        "--first-frame",
        args.first_frame,
    ]
    log = workdir / f"callers-{calls}.log"
    limit = time.monotonic() + calls / args.rate + args.settle + args.duration + 90
    with log.open("wb") as err:
        proc = spawn(pinned(CALLER_CORE, cmd), workdir, stdout=subprocess.PIPE, stderr=err)
    reader = LineReader(proc)
    cpu_start = window_start = float("nan")
    core_start: list[int] = []
    try:
        while True:
            line = reader.next(limit)
            if line is None:
                result.problems.append("callers timed out")
                return None
            if not line:
                result.problems.append(
                    f"callers exited ({proc.wait()}) early: {log.read_text()[-1500:]}"
                )
                return None
            event = json.loads(line)
            kind = event.pop("event")
            if kind == "window_start":
                cpu_start, window_start = cpu_seconds(agent_pid), time.monotonic()
                core_start = core_times(AGENT_CORE)
                result.window = (event["t"], event["t"])
            elif kind == "window_end":
                spent = cpu_seconds(agent_pid) - cpu_start
                result.agent_cpu_pct = 100.0 * spent / max(1e-9, time.monotonic() - window_start)
                result.core_busy_pct = core_busy_pct(core_start, core_times(AGENT_CORE))
                result.window = (result.window[0], event["t"])
            elif kind == "result":
                (workdir / f"callers-{calls}.json").write_bytes(line)
                result.answers = event.pop("answers", [])
                result.callers = event
                result.up = int(event["up"])
                if event["failed"]:
                    result.problems.append(f"{event['failed']} calls failed: {event['failures']}")
                for key in ("unanswered", "no_greeting", "dropped"):
                    if event[key]:
                        result.problems.append(f"{event[key]} {key.replace('_', ' ')}")
                proc.wait(10)
                return event
    finally:
        stop(proc, wait=STOP_WAIT)


def collect(result: Trial, metrics: Path, stats_path: Path, agent_log: Path) -> None:
    """Read the agent's figures and keep those of the window."""
    low, high = result.window
    try:
        stats = json.loads(stats_path.read_text())
    except (OSError, ValueError):
        result.problems.append(f"agent wrote no figures: {agent_log.read_text()[-1500:]}")
        return
    result.agent = {k: v for k, v in stats.items() if k not in ("lag", "ticks", "clock", "gc")}
    for line in metrics.read_text().splitlines():
        turn = json.loads(line)
        at = turn.get("endpoint_at")
        if at is not None and low <= at <= high and not turn.get("interrupted"):
            result.turns.append(turn)
    result.lag_ms = [1000.0 * lag for _, lag in in_window(stats["lag"], result.window)]
    result.tick_late_ms = [1000.0 * late for _, late in in_window(stats["ticks"], result.window)]
    result.gc_pauses = [
        (int(generation), 1000.0 * pause)
        for _, generation, pause in in_window(stats.get("gc", []), result.window)
    ]
    counters = in_window(stats["clock"], result.window)
    if len(counters) >= 2:
        first, last = counters[0], counters[-1]
        result.skipped_ticks = int(last[2] - first[2])
        result.tick_busy_pct = 100.0 * (last[3] - first[3]) / max(1e-9, last[0] - first[0])
    if stats.get("stt_unscripted_turns"):
        result.problems.append(f"{stats['stt_unscripted_turns']} turns unheard by the STT")
    if stats.get("provider_errors"):
        result.problems.append(f"{stats['provider_errors']} provider errors")
    errors = [
        line for line in agent_log.read_text(errors="replace").splitlines() if '"error"' in line
    ]
    if errors:
        result.problems.append(f"agent logged {len(errors)} errors, first: {errors[0][:300]}")


HEADER = (
    f"{'N':>6} {'up':>4} {'turns':>5} | {'overhead p50/p95/p99/max ms':>27} | "
    f"{'ready p50/p95':>13} {'tick wait':>9} | {'response':>11} {'endpt':>5} | "
    f"{'lag p50/p99/max':>15} | {'ticks late/max/skip':>19} | {'CPU':>4} {'clock':>5} "
    f"{'core0':>5} "
    f"| {'gc n/max':>8} | {'callers':>11}"
)
EAR_HEADER = (
    f"{'N':>6} {'answers':>7} | {'at the caller p50/p95':>21} | {'heard p50/p95/p99':>17} | "
    f"{'jitter buffer: skipped, concealed frames':>40}"
)


def _f(value: float, width: int = 0) -> str:
    text = "-" if value != value else (f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}")
    return f"{text:>{width}}"


def _label(f: dict[str, Any], split: bool) -> str:
    return f"{f['calls']}{f['mode'][0].upper()}" if split else str(f["calls"])


def row(f: dict[str, Any], split: bool) -> str:
    ready = _f(f["ready_p50_ms"]) + "/" + _f(f["ready_p95_ms"])
    response = _f(f["response_p50_ms"]) + "/" + _f(f["response_p95_ms"])
    overhead = "/".join(_f(f[f"overhead_{k}_ms"]) for k in ("p50", "p95", "p99", "max"))
    lag = "/".join(_f(f[f"lag_{k}_ms"]) for k in ("p50", "p99", "max"))
    ticks = f"{f['ticks_late_pct']:.1f}%/{_f(f['tick_late_max_ms'])}/{f['ticks_skipped']}"
    callers = f"{_f(f['callers_cpu_pct'])}%/{_f(f['callers_clock_late_max_ms'])}ms"
    gc2 = f"{sum(f['gc_collections'])}/{_f(max(f['gc_max_ms']))}"
    return (
        f"{_label(f, split):>6} {f['up']:>4} {f['turns']:>5} | {overhead:>27} | "
        f"{ready:>13} {_f(f['tick_wait_p50_ms'], 9)} | {response:>11} "
        f"{_f(f['endpointing_p50_ms'], 5)} | {lag:>15} | {ticks:>19} | "
        f"{_f(f['agent_cpu_pct'], 3)}% {_f(f['tick_busy_pct'], 4)}% "
        f"{_f(f['core_busy_pct'], 4)}% | {gc2:>8} | {callers:>11}"
    )


def ear_row(f: dict[str, Any], split: bool) -> str:
    wire = _f(f["wire_p50_ms"]) + "/" + _f(f["wire_p95_ms"])
    heard = "/".join(_f(f[f"heard_{k}_ms"]) for k in ("p50", "p95", "p99"))
    jb = f"{f['jb_skipped']}, {f['jb_concealed']}"
    return f"{_label(f, split):>6} {f['answers_matched']:>7} | {wire:>21} | {heard:>17} | {jb:>40}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calls",
        type=lambda text: sorted({int(n) for n in text.split(",")}),
        default=None,
        help="comma list of concurrent call counts (default 1,50,100,200)",
    )
    parser.add_argument("--duration", type=float, default=None, help="window, s (default 30)")
    parser.add_argument("--settle", type=float, default=2.0, help="wait after the last call is up")
    parser.add_argument("--rate", type=float, default=20.0, help="calls set up per second")
    parser.add_argument("--no-record", action="store_true", help="agent without recordings")
    parser.add_argument("--quick", action="store_true", help="smoke run: N = 1,10 for 8 s")
    parser.add_argument("--json", type=Path, help="also write every trial's figures here")
    parser.add_argument("--keep", type=Path, help="keep the raw files (turns, logs) here")
    parser.add_argument(
        "--first-frame",
        choices=("lead", "tick", "ab"),
        default="lead",
        help="an answer's first frame goes out at once (lead, siphon's behaviour), on the "
        "next tick (tick: as before), or ab: half the calls each way, side by side",
    )
    parser.add_argument(
        "--agent-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the agent's event loop (asyncio's clock resolves below 1 ms; uvloop's does not)",
    )
    args = parser.parse_args()
    if args.calls is None:
        args.calls = [1, 10] if args.quick else [1, 50, 100, 200]
    if args.duration is None:
        args.duration = 8.0 if args.quick else 30.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    recording = "off (--no-record)" if args.no_record else "on (stereo WAV per call)"
    print(
        f"agent on core {AGENT_CORE}, callers on core {CALLER_CORE}; instant fake providers; "
        f"{args.duration:.0f} s window, calls set up at {args.rate:.0f}/s; recording {recording}",
        flush=True,
    )
    print(
        "overhead = endpoint decision -> first RTP packet; "
        "ready = -> first audio queued; tick wait = queued -> sent",
        flush=True,
    )
    figures: dict[str, dict[str, Any]] = {}
    split = args.first_frame == "ab"
    try:
        with tempfile.TemporaryDirectory(prefix="siphon-turns-") as tmp:
            workdir = Path(tmp)
            print(HEADER, flush=True)
            for calls in args.calls:
                result = trial(calls, args, workdir)
                for mode in result.modes if split else [None]:
                    f = result.figures(mode)
                    figures[_label(f, split)] = f
                    print(row(f, split), flush=True)
                figures[str(calls)] = result.figures() | {
                    "agent": result.agent,
                    "callers": result.callers,
                }
                for problem in result.problems:
                    print(f"      ! {problem}", flush=True)
            if args.keep:
                shutil.copytree(workdir, args.keep, dirs_exist_ok=True)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the agent and the callers", file=sys.stderr)
        return 130
    finally:
        stop_all()
    print(
        "\nWhat the caller gets, from the endpoint decision (ms): its first audible packet "
        "arrives, and its first\naudible frame leaves the caller's jitter buffer (siphon's "
        "own, playing by RTP timestamp: heard)"
    )
    print(EAR_HEADER)
    for label, f in figures.items():
        if (label[-1].isdigit()) != split:
            print(ear_row(f, split))
    print("\n== result ==")
    labels = [f"{TARGET_CALLS}L", f"{TARGET_CALLS}T"] if split else [str(TARGET_CALLS)]
    for label in labels:
        target = figures.get(label)
        name = f"{TARGET_CALLS} calls" + (f" ({target['mode']})" if split and target else "")
        if target is None or target["turns"] == 0:
            print(f"p95 overhead at {name}: not measured (target <= {TARGET_P95_MS:.0f} ms)")
            continue
        p95 = target["overhead_p95_ms"]
        verdict = "meets" if p95 <= TARGET_P95_MS else "misses"
        print(
            f"p95 overhead at {name}: {p95:.1f} ms, {verdict} the target "
            f"(<= {TARGET_P95_MS:.0f} ms); processing (ready) p95 {target['ready_p95_ms']:.1f} ms, "
            f"waiting to be sent p50 {target['tick_wait_p50_ms']:.1f} ms"
        )
    print(f"({time.monotonic() - began:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
