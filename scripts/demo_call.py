"""``make demo``: a real phone call to the example receptionist, offline.

1. Starts ``siphon dev examples/receptionist.py`` (SIP and RTP in-process, on a
   free loopback port; pocketsphinx, Piper and the rules engine: no keys).
2. Calls it with the simulated caller (``siphon.testing.conversation``): SIPHON's
   own user agent places the call, speaks the questions with Piper, and
   transcribes what it hears with pocketsphinx.
3. Prints the conversation as the caller heard it with the answer latency per
   turn, the agent's own per-turn breakdown, and where the stereo recording is;
   then stops the agent with SIGTERM (graceful drain) and checks it exited.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "What are your opening hours?",
    "Where are you located?",
    "Can I book an appointment on Monday at three pm?",
    "Thank you, goodbye.",
]
# What the receptionist may say, in words: the caller's recogniser is built from it.
AGENT_PHRASES = [
    "hello thank you for calling bright smile dental how can i help you",
    "we are open monday to friday from nine in the morning to five in the evening",
    "we are at forty two elm street next to the library",
    "let me check the calendar",
    "you are booked for monday at three p m see you then",
    "goodbye",
]
console = Console(highlight=False, soft_wrap=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_agent(port: int, log_path: Path, recordings: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, SIPHON_RECORDINGS_DIR=str(recordings))
    with log_path.open("w") as log:
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "siphon.cli",
                "dev",
                str(ROOT / "examples/receptionist.py"),
                "--sip-port",
                str(port),
                "--transport",
                "udp",
                "--rtp-ports",
                "12000-12998",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 90  # first start: Piper's model loads (~2-4 s)
    while time.monotonic() < deadline:
        if "ready:" in log_path.read_text(errors="replace"):
            return agent
        if agent.poll() is not None:
            break
        time.sleep(0.1)
    agent.kill()
    raise SystemExit(f"the agent did not start:\n{log_path.read_text(errors='replace')}")


async def converse(port: int) -> int:
    from siphon.plugins.local import STT, TTS
    from siphon.testing.conversation import ConversationTurn, simulated_call

    def show(turn: ConversationTurn) -> None:
        if turn.role == "caller":
            console.print(f"  [bold cyan]caller[/]  {turn.text}")
        else:
            heard = turn.text or "[dim](not recognised)[/]"
            latency = "" if turn.latency_ms is None else f"  [dim]{turn.latency_ms:.0f} ms[/]"
            console.print(f"  [bold green]agent [/]  {heard}{latency}")

    tts = TTS()
    await tts.prewarm()
    report = await simulated_call(
        f"sip:receptionist@127.0.0.1:{port}",
        QUESTIONS,
        tts=tts,
        stt=STT(phrases=AGENT_PHRASES),
        wait_greeting=True,
        timeout=90,
        on_turn=show,
    )
    if not report.ok:
        console.print(f"[bold red]the call failed:[/] {report.error}")
        return 1
    latencies = [t.latency_ms for t in report.turns if t.latency_ms is not None]
    console.print(
        f"\n[dim]call ended by the {report.ended_by} after {report.duration:.1f} s; "
        f"answer latency as heard by the caller: "
        + ", ".join(f"{v:.0f} ms" for v in latencies)
        + "[/]"
    )
    return 0


def main() -> int:
    port = free_port()
    workdir = ROOT / ".demo"
    workdir.mkdir(exist_ok=True)
    recordings = workdir / "recordings"
    log_path = workdir / "agent.log"
    console.print("[bold]SIPHON demo[/]: a phone call to examples/receptionist.py, offline\n")
    started = time.monotonic()
    agent = start_agent(port, log_path, recordings)
    console.print(
        f"[dim]agent 'receptionist' listening on sip:127.0.0.1:{port} "
        f"(pocketsphinx, Piper, rules engine; ready in {time.monotonic() - started:.1f} s)[/]"
    )
    console.print("[dim]the simulated caller dials it over SIP/RTP and speaks with Piper...[/]\n")
    try:
        code = asyncio.run(converse(port))
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            exit_code = agent.wait(15)
        except subprocess.TimeoutExpired:
            agent.kill()
            exit_code = -9
    log = log_path.read_text(errors="replace")
    turns = re.findall(r"(turn \d+: response .*)", log)
    if turns:
        console.print("\n[bold]the agent's view[/] (end of caller speech -> first RTP packet):")
        for line in turns:
            console.print(f"  {escape(line)}")
    wavs = sorted(recordings.glob("*.wav"), key=lambda p: p.stat().st_mtime)
    if wavs:
        console.print(f"\nstereo recording (left: caller, right: agent): {wavs[-1]}")
    console.print(f"agent log: {log_path}")
    if exit_code != 0:
        console.print(f"[bold red]the agent did not shut down cleanly (exit {exit_code})[/]")
        return 1
    if "Traceback" in log:
        console.print("[bold red]the agent logged an error: see its log[/]")
        return 1
    console.print(f"[dim]done in {time.monotonic() - started:.0f} s[/]")
    return code


if __name__ == "__main__":
    sys.exit(main())
