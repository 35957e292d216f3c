"""``siphon call``: a simulated caller on the command line (see siphon.testing.conversation)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from rich.console import Console

from siphon.testing.conversation import CallReport, ConversationTurn, simulated_call

# Exit statuses: scripts tell a refused call from a hung one.
EXIT_OK, EXIT_CALL_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3


def run_call(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    console = Console(stderr=args.json, highlight=False, soft_wrap=True)
    if not args.say and not args.wait_greeting:
        print("siphon call: nothing to do: give --say LINE and/or --wait-greeting", file=sys.stderr)
        return EXIT_USAGE
    from siphon.errors import ConfigError
    from siphon.plugins.local import STT, TTS

    try:
        tts = TTS(engine=args.voice)
        stt = STT(phrases=args.expect) if args.expect else STT()
    except ConfigError as exc:
        print(f"siphon call: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def show(turn: ConversationTurn) -> None:
        if args.json:
            return
        if turn.role == "caller":
            console.print(f"[bold cyan]caller[/] {turn.text}")
        else:
            latency = "" if turn.latency_ms is None else f" [dim]({turn.latency_ms:.0f} ms)[/]"
            console.print(
                f"[bold green]agent [/] {turn.text or '[dim](not recognised)[/]'}{latency}"
            )

    if not args.json:
        console.print(f"[dim]calling {args.uri} ...[/]")
    report = asyncio.run(
        simulated_call(
            args.uri,
            args.say,
            tts=tts,
            stt=stt,
            wait_greeting=args.wait_greeting,
            record=args.record,
            timeout=args.timeout,
            on_turn=show,
        )
    )
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        _summary(console, report)
    if report.ok:
        return EXIT_OK
    if report.status is not None and report.status >= 300:
        if args.json:
            print(f"siphon call: {args.uri}: {report.error}", file=sys.stderr)
        return EXIT_CALL_FAILED
    return EXIT_TIMEOUT


def _summary(console: Console, report: CallReport) -> None:
    if not report.ok:
        hint = " (no such agent?)" if report.status == 404 else ""
        console.print(f"[bold red]call failed:[/] {report.error}{hint}")
        return
    latencies = [t.latency_ms for t in report.turns if t.latency_ms is not None]
    console.print(
        f"[dim]call ended by the {report.ended_by} ({report.end_reason}) after "
        f"{report.duration:.1f} s[/]"
    )
    if latencies:
        console.print(
            "[dim]answer latency as heard: "
            + ", ".join(f"{value:.0f} ms" for value in latencies)
            + "[/]"
        )
    if report.recording:
        console.print(f"[dim]recording: {report.recording}[/]")
