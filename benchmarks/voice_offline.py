"""Voice-to-voice latency of the offline receptionist as the caller hears it, and its CPU cost.

    python benchmarks/voice_offline.py [--turns 20] [--per-call 5] [--no-record] [--quick]
                                       [--json FILE] [--keep DIR]

The agent is ``examples/receptionist.py`` (pocketsphinx STT with its phrases,
Piper TTS, ``RulesLLM``, the default WebRtcVAD), served as ``siphon dev`` serves
it (``benchmarks/_voice_agent.py``: uvloop, UDP, recording on unless
``--no-record``) in its own process pinned to core 0, with an ``on_agent_turn``
hook that writes each turn's ``TurnMetrics``. The caller
(``benchmarks/_voice_callers.py``, pinned to core 1) is siphon's own
``UserAgent`` + ``SimulatedCaller``: it synthesises the questions with Piper
(8 kHz) before dialling, makes a warm-up call (not counted), then calls of
``--per-call`` questions (the last one a goodbye: the receptionist hangs up), one
call at a time, speaking each question in real time and listening to the answer.

Per turn, all on CLOCK_MONOTONIC (both processes; the agent's loop clock is
checked against ``time.monotonic()`` and printed):

  heard        the caller's last frame of the question went out -> the first audible
               packet of the answer arrived (> -45 dBFS): the voice-to-voice latency.
               It is the sum of the four parts below (exactly, turn by turn):
  in           last frame sent -> the agent's VAD end of speech (TurnMetrics.speech_ended_at),
               split into the VAD's overhang past the last sound (the same audio through
               the same VAD offline) and the rest: packet transit, the agent's jitter
               buffer and waiting for its 20 ms tick
  response     the agent's TurnMetrics.response_ms: VAD end of speech -> first RTP packet
               of the answer, split into
                 endpointing  -> endpoint decision: the VAD's min_silence_duration (it
                              reports the end that much later) + min_endpointing_delay,
                              both by design (the knobs are printed)
                 LLM          endpoint decision -> first token (RulesLLM: ~instant, so this
                              is the runtime handing the turn to the reply)
                 TTS          first token -> first audio (Piper synthesises the first phrase
                              whole, so this grows with its length)
                 framework    first audio -> first RTP packet, plus what the four parts
                              do not cover of response_ms (rounding: ~0)
  out          first RTP packet -> its arrival at the caller (loopback)
  onset        first packet of the answer -> its first audible packet: the TTS audio
               starting quietly (Piper leads some sentences with near-silence)
  wire delta   heard - response = in + out + onset: what TurnMetrics does not see
  STT          end of speech -> final transcript: runs alongside endpointing, off the
               critical path unless it finishes after min_endpointing_delay; "after the
               VAD" subtracts the VAD's reporting delay (the STT is flushed then)

CPU: the agent's user+system time (/proc/PID/stat) from each call's INVITE to its
end, per minute of those calls (callers talk about half the time, the agent the
rest), split by thread (/proc/PID/task: the event loop, the STT worker, the TTS
worker, the recording writer); the idle agent's CPU before the calls; and how
busy core 0 was during the calls, whatever ran there (more than the agent's own
share: something else shared the core, and the latencies may show it).

STT accuracy: the agent's transcripts against the questions asked (word accuracy,
1 - word edit distance / words), so a recognition regression shows up here.

Percentiles are nearest-rank over the turns (p95 of 20 turns is the 19th); the
parts' percentiles do not add up to the total's. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
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
    core_times,
    cpu_seconds,
    free_port,
    percentile,
    pinned,
    spawn,
    stat_cpu_seconds,
    stop,
    stop_all,
)

HERE = Path(__file__).resolve().parent
AGENT = HERE / "_voice_agent.py"
CALLERS = HERE / "_voice_callers.py"
AGENT_CORE = "0"
CALLER_CORE = "1"
# Above turn_overhead.py's ranges (31000-32200), below the ephemeral range (32768).
AGENT_RTP = "32300-32398"
CALLER_RTP = "32400-32498"
QUICK_TURNS = 4
THREAD_GROUPS = (
    ("event loop", ("MainThread",)),
    ("STT", ("siphon-stt",)),
    ("TTS", ("siphon-tts",)),
    ("recording", ("siphon-recordings",)),
)


# -- processes ---------------------------------------------------------------------------
def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of each live thread of ``pid``, by thread id."""
    found: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            seconds = stat_cpu_seconds(task / "stat")
            if not math.isnan(seconds):
                found[task.name] = seconds
    return found


def wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> bool:
    """``siphon dev`` logs "ready: sip:..." once it serves."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if b"ready: sip:" in log.read_bytes():
            return True
        time.sleep(0.1)
    return False


# -- figures ------------------------------------------------------------------------------
def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Word edit distance (substitutions + deletions + insertions)."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1]


@dataclass
class Run:
    agent: dict[str, Any] = field(default_factory=dict)  # options and providers
    records: list[dict[str, Any]] = field(default_factory=list)  # agent turns
    turns: list[dict[str, Any]] = field(default_factory=list)  # caller turns
    vad: dict[str, Any] = field(default_factory=dict)  # offline VAD per question
    warmup: dict[str, Any] = field(default_factory=dict)
    idle_cpu_pct: float = math.nan
    call_cpu: float = 0.0  # agent CPU seconds within the calls
    call_seconds: float = 0.0
    thread_cpu: dict[str, float] = field(default_factory=dict)  # tid -> seconds in calls
    core_busy: float = 0.0  # jiffies core 0 was busy during the calls, whatever ran there
    core_total: float = 0.0
    calls: int = 0
    hung_up_by_agent: int = 0
    problems: list[str] = field(default_factory=list)


def ms(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else 1000.0 * (later - earlier)


def match(run: Run) -> list[dict[str, Any]]:
    """Each caller turn with the agent turn that answered it, and their figures (ms)."""
    rows: list[dict[str, Any]] = []
    for turn in run.turns:
        end = turn["heard_started"] or turn["said_ended"] + 10.0
        candidates = [
            r
            for r in run.records
            if r["call"] == turn["call"]
            and r["speech_ended_at"] is not None
            and turn["said_started"] - 0.1 <= r["speech_ended_at"] <= end
        ]
        if len(candidates) > 1:
            run.problems.append(
                f"call {turn['index']} question {turn['number']} became "
                f"{len(candidates)} agent turns"
            )
        record = max(candidates, key=lambda r: r["speech_ended_at"], default=None)
        if record is None:
            run.problems.append(f"call {turn['index']} question {turn['number']}: no agent turn")
        elif record["interrupted"]:
            run.problems.append(f"call {turn['index']} question {turn['number']}: answer cut off")
        row: dict[str, Any] = {
            "call": turn["index"],
            "number": turn["number"],
            "question": turn["question"],
            "heard_text": record["heard"] if record else None,
            "said": record["said"] if record else None,
            "heard": turn["latency_ms"],
        }
        vad = run.vad.get(turn["question"], {})
        if record is not None:
            parts = ("endpointing_ms", "llm_ttft_ms", "tts_ttfa_ms", "playout_ms")
            known = [record[k] for k in parts]
            residual = (
                record["response_ms"] - sum(known)
                if record["response_ms"] is not None and None not in known
                else None
            )
            inbound = ms(record["speech_ended_at"], turn["said_ended"])
            row.update(
                reason=record["endpoint_reason"],
                response=record["response_ms"],
                endpointing=record["endpointing_ms"],
                llm=record["llm_ttft_ms"],
                tts=record["tts_ttfa_ms"],
                framework=(
                    record["playout_ms"] + residual
                    if record["playout_ms"] is not None and residual is not None
                    else None
                ),
                residual=residual,
                stt=record["stt_final_ms"],
                stt_after_vad=(
                    record["stt_final_ms"] - vad["report"]
                    if record["stt_final_ms"] is not None and "report" in vad
                    else None
                ),
                inbound=inbound,
                overhang=vad.get("overhang"),
                transit=(
                    inbound - vad["overhang"]
                    if inbound is not None and vad.get("overhang") is not None
                    else None
                ),
                outbound=ms(turn["first_packet"], record["first_rtp_at"]),
                onset=ms(turn["heard_started"], turn["first_packet"]),
                wire=(
                    turn["latency_ms"] - record["response_ms"]
                    if turn["latency_ms"] is not None and record["response_ms"] is not None
                    else None
                ),
                interrupted=record["interrupted"],
                tools=record["tools"],
            )
        rows.append(row)
    return rows


LINES: tuple[tuple[str, str], ...] = (
    ("heard", "heard: last frame sent -> first audible answer packet"),
    ("inbound", "  in: last frame sent -> agent's VAD end of speech"),
    ("overhang", "      VAD overhang past the last sound (offline)"),
    ("transit", "      rest: jitter buffer, tick, transit"),
    ("response", "  response: VAD end -> first RTP (response_ms)"),
    ("endpointing", "      endpointing: -> endpoint decision"),
    ("llm", "      LLM: endpoint -> first token"),
    ("tts", "      TTS: first token -> first audio"),
    ("framework", "      framework: first audio -> first RTP (+resid.)"),
    ("outbound", "  out: first RTP -> arrival at the caller"),
    ("onset", "  onset: first answer packet -> first audible"),
    ("wire", "wire delta: heard - response (in + out + onset)"),
    ("stt", "STT: end of speech -> final (parallel)"),
    ("stt_after_vad", "      STT after the VAD's report"),
)


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, _ in LINES:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = {
            "n": len(values),
            "p50": percentile(values, 0.50),
            "p95": percentile(values, 0.95),
            "max": max(values, default=math.nan),
        }
    return out


def accuracy(rows: list[dict[str, Any]]) -> tuple[float, int, int, list[dict[str, Any]]]:
    """Word accuracy over all turns, exact sentences, turns, and the misrecognised ones."""
    errors = total = exact = 0
    wrong: list[dict[str, Any]] = []
    for row in rows:
        ref, hyp = words(row["question"]), words(row["heard_text"] or "")
        e = word_errors(ref, hyp)
        errors, total = errors + e, total + len(ref)
        exact += e == 0
        if e:
            wrong.append(row)
    return 1.0 - errors / max(1, total), exact, len(rows), wrong


def cpu_split(run: Run) -> dict[str, float]:
    """CPU seconds within the calls by thread group (names from the agent's records)."""
    names: dict[str, str] = {}
    for record in run.records:
        names.update(record.get("threads", {}))
    groups = {label: 0.0 for label, _ in THREAD_GROUPS}
    for tid, seconds in run.thread_cpu.items():
        name = names.get(tid, "")
        label = next((lb for lb, prefixes in THREAD_GROUPS if name.startswith(prefixes)), None)
        if label is not None:
            groups[label] += seconds
    groups["other"] = run.call_cpu - sum(groups.values())
    return groups


# -- the run --------------------------------------------------------------------------------
def run_benchmark(args: argparse.Namespace, workdir: Path) -> Run:
    run = Run()
    port = free_port()
    metrics, agent_log = workdir / "turns.jsonl", workdir / "agent.log"
    cmd = [
        sys.executable,
        str(AGENT),
        "--metrics",
        str(metrics),
        "--sip-port",
        str(port),
        "--transport",
        "udp",
        "--rtp-ports",
        AGENT_RTP,
    ]
    if args.no_record:
        cmd.append("--no-record")
    env = {**os.environ, "SIPHON_RECORDINGS_DIR": str(workdir / "recordings")}
    with agent_log.open("wb") as log:
        agent = spawn(pinned(AGENT_CORE, cmd), workdir, stdout=log, stderr=log, env=env)
    try:
        if not wait_ready(agent, agent_log):
            run.problems.append(f"agent did not start: {agent_log.read_text()[-1500:]}")
            return run
        header = json.loads(metrics.read_text().splitlines()[0])
        run.agent = header["agent"]
        drive_callers(port, agent.pid, args, workdir, run)
    finally:
        stop(agent)
    lines = metrics.read_text().splitlines()[1:]
    run.records = [json.loads(line) for line in lines if line.strip()]
    errors = [
        line
        for line in agent_log.read_text(errors="replace").splitlines()
        if " ERROR " in line or "Traceback" in line
    ]
    if errors:
        run.problems.append(f"agent logged {len(errors)} errors, first: {errors[0][:300]}")
    return run


def drive_callers(
    port: int, agent_pid: int, args: argparse.Namespace, workdir: Path, run: Run
) -> None:
    silence = run.agent.get("options", {}).get("min_silence_duration", 0.5)
    cmd = [
        sys.executable,
        str(CALLERS),
        "--target-port",
        str(port),
        "--turns",
        str(args.turns),
        "--per-call",
        str(args.per_call),
        "--rtp-ports",
        CALLER_RTP,
        "--vad-silence",
        str(silence),
    ]
    log = workdir / "callers.log"
    limit = time.monotonic() + 120.0 + 15.0 * args.turns
    with log.open("wb") as err:
        proc = spawn(pinned(CALLER_CORE, cmd), workdir, stdout=subprocess.PIPE, stderr=err)
    reader = LineReader(proc)
    idle: tuple[float, float] = (math.nan, math.nan)
    call: tuple[float, float, dict[str, float], list[int]] | None = None  # t, cpu, threads, core
    try:
        while True:
            line = reader.next(limit)
            if line is None:
                run.problems.append("callers timed out")
                return
            if not line:
                run.problems.append(f"callers exited ({proc.wait()}): {log.read_text()[-1500:]}")
                return
            event = json.loads(line)
            kind = event.pop("event")
            if kind == "warmup":
                run.warmup = event
            elif kind == "vad":
                run.vad = event["questions"]
                run.agent["codec"] = event["codec"]
            elif kind == "idle_start":
                idle = (time.monotonic(), cpu_seconds(agent_pid))
            elif kind == "idle_end":
                spent = cpu_seconds(agent_pid) - idle[1]
                run.idle_cpu_pct = 100.0 * spent / max(1e-9, time.monotonic() - idle[0])
            elif kind == "call_start":
                call = (
                    event["t"],
                    cpu_seconds(agent_pid),
                    thread_cpu(agent_pid),
                    core_times(AGENT_CORE),
                )
            elif kind == "call_end" and call is not None:
                began, cpu0, threads0, core0 = call
                core = [b - a for a, b in zip(core0, core_times(AGENT_CORE), strict=False)]
                if len(core) >= 8:
                    run.core_total += sum(core[:8])
                    run.core_busy += sum(core[:8]) - core[3] - core[4]  # minus idle, iowait
                run.calls += 1
                run.hung_up_by_agent += bool(event.get("hung_up_by_agent"))
                run.call_cpu += cpu_seconds(agent_pid) - cpu0
                run.call_seconds += event["t"] - began
                for tid, seconds in thread_cpu(agent_pid).items():
                    delta = seconds - threads0.get(tid, 0.0)
                    run.thread_cpu[tid] = run.thread_cpu.get(tid, 0.0) + delta
                call = None
            elif kind == "turn":
                run.turns.append(event)
            elif kind == "result":
                run.problems.extend(event["problems"])
                proc.wait(10)
                return
    finally:
        stop(proc)


# -- output ----------------------------------------------------------------------------------
def _f(value: float | None, width: int = 0) -> str:
    text = "-" if value is None or value != value else f"{value:.0f}"
    return f"{text:>{width}}"


def print_turns(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'call/q':>6} {'heard':>5} {'in':>4} {'resp':>4} {'endp':>4} {'llm':>3} {'tts':>4} "
        f"{'fw':>3} {'out':>3} {'onset':>5} {'stt':>4}  question -> what the agent heard"
    )
    for r in rows:
        heard_text = r["heard_text"] if r["heard_text"] is not None else "(no agent turn)"
        same = words(heard_text) == words(r["question"])
        print(
            f"{r['call']:>4}/{r['number']:<1} {_f(r['heard'], 5)} {_f(r.get('inbound'), 4)} "
            f"{_f(r.get('response'), 4)} {_f(r.get('endpointing'), 4)} {_f(r.get('llm'), 3)} "
            f"{_f(r.get('tts'), 4)} {_f(r.get('framework'), 3)} {_f(r.get('outbound'), 3)} "
            f"{_f(r.get('onset'), 5)} {_f(r.get('stt'), 4)}  {r['question']}"
            + ("" if same else f" -> {heard_text!r}")
        )


def print_report(run: Run, rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    options = run.agent.get("options", {})
    vad = next((r["vad"] for r in run.records if r.get("vad")), "WebRtcVAD (default)")
    tts = re.sub(r"voice='[^']*/([^'/]+)'", r"voice='\1'", str(run.agent.get("tts")))
    print(
        f"agent: {run.agent.get('stt')}, {run.agent.get('llm')}, {tts}, {vad}; "
        f"codec {run.agent.get('codec') or '?'}"
    )
    print(
        "endpointing knobs: VAD min_silence_duration "
        f"{options.get('min_silence_duration')} s, min_endpointing_delay "
        f"{options.get('min_endpointing_delay')} s, max_endpointing_delay "
        f"{options.get('max_endpointing_delay')} s (endpointing ~ their sum by design)"
    )
    offsets = [r["clock_offset_ms"] for r in run.records if "clock_offset_ms" in r]
    if offsets:
        print(
            f"clocks: agent loop.time() - time.monotonic() = {min(offsets):.2f}..."
            f"{max(offsets):.2f} ms (both CLOCK_MONOTONIC; uvloop's cached ms clock reads early)"
        )
    if run.warmup:
        print(
            f"warm-up call (not counted, the agent's first): greeting heard "
            f"{_f(run.warmup.get('greeting_ms'))} ms after the answer, its one answer "
            f"{_f(run.warmup.get('latency_ms'))} ms after the question"
        )
    print_turns(rows)
    stats = summary(rows)
    n = stats["heard"]["n"]
    print(f"\n{'ms over ' + str(n) + ' turns':<52} {'p50':>6} {'p95':>6} {'max':>6}")
    for key, label in LINES:
        s = stats[key]
        print(f"{label:<52} {_f(s['p50'], 6)} {_f(s['p95'], 6)} {_f(s['max'], 6)}")
    reasons: dict[str, int] = {}
    for r in rows:
        if r.get("reason"):
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    print(f"endpoint decisions: {', '.join(f'{k} {v}' for k, v in sorted(reasons.items()))}")

    per_minute = run.call_cpu / max(1e-9, run.call_seconds / 60.0)
    split = cpu_split(run)
    print(
        f"\nagent CPU: {per_minute:.2f} CPU-s per call-minute "
        f"({100.0 * run.call_cpu / max(1e-9, run.call_seconds):.1f}% of core {AGENT_CORE} "
        f"over {run.calls} calls, {run.call_seconds:.0f} s); "
        + ", ".join(f"{k} {100.0 * v / max(1e-9, run.call_cpu):.0f}%" for k, v in split.items())
    )
    core_pct = 100.0 * run.core_busy / run.core_total if run.core_total else math.nan
    print(
        f"agent idle (no call): {run.idle_cpu_pct:.1f}% of a core; core {AGENT_CORE} busy "
        f"{core_pct:.1f}% during the calls, whatever ran there (above the agent's share: "
        "other work shared the core)"
    )
    word_acc, exact, total, wrong = accuracy(rows)
    print(
        f"STT word accuracy: {100.0 * word_acc:.1f}% ({exact}/{total} questions transcribed "
        "exactly)"
    )
    for row in wrong:
        print(f"    {row['question']!r} -> {row['heard_text']!r}")
    recording = "off (--no-record)" if args.no_record else "on (stereo WAV per call)"
    print(f"recording {recording}; calls ended by the agent's goodbye: {run.hung_up_by_agent}")
    for problem in run.problems:
        print(f"  ! {problem}")
    heard = stats["heard"]
    print("\n== result ==")
    print(
        f"voice-to-voice as heard by the caller: p50 {_f(heard['p50'])} ms, p95 "
        f"{_f(heard['p95'])} ms over {n} turns (agent response_ms p50 "
        f"{_f(stats['response']['p50'])}); agent CPU {per_minute:.2f} s per call-minute; "
        f"STT word accuracy {100.0 * word_acc:.1f}%"
    )
    return {
        "turns": rows,
        "summary": stats,
        "cpu_per_call_minute_s": per_minute,
        "cpu_split_s": split,
        "idle_cpu_pct": run.idle_cpu_pct,
        "core_busy_pct": 100.0 * run.core_busy / run.core_total if run.core_total else math.nan,
        "word_accuracy": word_acc,
        "agent": run.agent,
        "warmup": run.warmup,
        "problems": run.problems,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=None, help="questions in all (default 20)")
    parser.add_argument(
        "--per-call", type=int, default=5, help="questions per call, goodbye included (max 5)"
    )
    parser.add_argument("--no-record", action="store_true", help="agent without recordings")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_TURNS} turns")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", type=Path, help="keep the raw files (turns, logs) here")
    args = parser.parse_args()
    if args.turns is None:
        args.turns = QUICK_TURNS if args.quick else 20
    if args.turns < 1 or not 1 <= args.per_call <= 5:
        parser.error("--turns must be >= 1 and --per-call 1-5 (a call script has 5 questions)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    print(
        f"offline receptionist (examples/receptionist.py) on core {AGENT_CORE}, "
        f"simulated caller on core {CALLER_CORE}; {args.turns} turns, "
        f"{args.per_call} per call",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="siphon-voice-") as tmp:
            workdir = Path(tmp)
            run = run_benchmark(args, workdir)
            if args.keep:
                shutil.copytree(workdir, args.keep, dirs_exist_ok=True)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the agent and the caller", file=sys.stderr)
        return 130
    finally:
        stop_all()
    figures = print_report(run, match(run), args)
    print(f"({time.monotonic() - began:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
