"""The agent side of ``benchmarks/voice_offline.py``: examples/receptionist.py, as served.

Not meant to be run by hand; ``voice_offline.py`` starts it pinned to one core::

    _voice_agent.py --metrics turns.jsonl --sip-port P --rtp-ports A-B --transport udp [...]

It imports ``examples/receptionist.py`` (pocketsphinx STT with its phrases, Piper
TTS, ``RulesLLM``), adds an ``on_agent_turn`` hook that appends each answered
turn to ``--metrics`` as a JSON line, and serves the agent with ``agent.dev()``:
the same server, event loop (uvloop when installed), garbage-collector settings
and readable INFO logs as ``siphon dev examples/receptionist.py``. Every other
flag is ``siphon dev``'s (``--sip-port``, ``--rtp-ports``, ``--no-record``...).

The first line describes the agent (its turn-taking options and providers); then
each line has a turn's ``TurnMetrics`` (``as_dict()`` and the raw instants, in
loop time), what the agent heard (the caller's turn as the STT transcribed it)
and said, the offset between the loop's clock and ``time.monotonic()`` (the
clock the caller process stamps packets with), and the process's threads by
native id, so the parent can split the CPU it reads from /proc by thread.

The line is written from the hook, after the answer has played out: never on
the path of the turn it describes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import inspect
import json
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from siphon.agent import Agent
    from siphon.voice.session import AgentSession
    from siphon.voice.transcript import Turn

ROOT = Path(__file__).resolve().parent.parent
RECEPTIONIST = ROOT / "examples" / "receptionist.py"


def load_receptionist(path: Path = RECEPTIONIST) -> Any:
    """Import the example as ``siphon dev`` would (its folder on sys.path)."""
    spec = importlib.util.spec_from_file_location("receptionist", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    sys.path.insert(0, str(path.parent))
    spec.loader.exec_module(module)
    return module


def clock_offset_ms() -> float:
    """loop.time() - time.monotonic(), in ms.

    Both read CLOCK_MONOTONIC; uvloop's loop time is libuv's cached millisecond
    clock (truncated, updated once per loop pass), so it reads 0-1 ms early.
    """
    return 1000.0 * (asyncio.get_running_loop().time() - time.monotonic())


class TurnLog:
    """The ``on_agent_turn`` hook: one JSON line per answered caller turn.

    It never awaits: the hook runs in a task of the call's session, and after the
    goodbye the receptionist hangs up at once, which ends the session's task group
    and cancels the hook at its first suspension point (a hook that awaits loses
    the last turn of every call that the agent ends).
    """

    def __init__(self, path: Path) -> None:
        self._out = path.open("a", buffering=1)  # line-buffered: readable while it runs

    async def on_agent_turn(self, session: AgentSession, turn: Turn) -> None:
        m = turn.metrics
        if m is None:  # the greeting or a silence prompt: no caller turn behind it
            return
        heard = [t.text for t in session.transcript.by("user") if t.turn_id == turn.turn_id]
        record: dict[str, Any] = {
            "call": session.call_id,
            **m.as_dict(),
            "speech_ended_at": m.speech_ended_at,
            "endpoint_at": m.endpoint_at,
            "stt_final_at": m.stt_final_at,
            "llm_first_token_at": m.llm_first_token_at,
            "tts_first_audio_at": m.tts_first_audio_at,
            "first_rtp_at": m.first_rtp_at,
            "heard": " ".join(heard),
            "said": turn.text,
            "tools": [call.name for call in turn.tool_calls],
            "vad": repr(session.vad),
            "clock_offset_ms": clock_offset_ms(),
            "threads": {str(t.native_id): t.name for t in threading.enumerate()},
        }
        self._out.write(json.dumps(record) + "\n")


def instrument(agent: Agent, log: TurnLog) -> None:
    """Run ``log``, then whatever the agent's ``on_agent_turn`` hook was."""
    own = agent.hook("on_agent_turn")

    async def on_agent_turn(session: AgentSession, turn: Turn) -> None:
        await log.on_agent_turn(session, turn)  # first: ``own`` may suspend
        result = own(session, turn)
        if inspect.isawaitable(result):
            await result

    agent.set_hook("on_agent_turn", on_agent_turn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("--metrics", type=Path, required=True, help="turn metrics (JSON lines)")
    args, dev_argv = parser.parse_known_args()
    agent = load_receptionist().agent
    header = {
        "agent": {
            "options": dataclasses.asdict(agent.options),
            "stt": repr(agent.stt),
            "tts": repr(agent.tts),
            "llm": repr(agent.llm),
        }
    }
    args.metrics.write_text(json.dumps(header) + "\n")
    instrument(agent, TurnLog(args.metrics))
    agent.dev(dev_argv)  # raises SystemExit when the server stops


if __name__ == "__main__":
    main()
