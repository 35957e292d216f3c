"""The caller side of ``benchmarks/voice_offline.py``: scripted questions, spoken and timed.

Not meant to be run by hand; ``voice_offline.py`` starts it pinned to one core::

    _voice_callers.py --target-port P --turns 20 --per-call 5 --rtp-ports A-B

Before dialling it synthesises every question once with Piper (the same offline
``TTS`` the agent uses, resampled to 8 kHz) and trims the leading and trailing
silence, so that the last frame of a question carries its last sound. Each
question is also run offline through the codec and a ``VoiceActivity`` with the
agent's VAD settings (``--vad-silence``): where the VAD puts the end of speech
relative to the end of the question's last frame (its ``overhang``: the detector
holds on past the last sound), and how long after that it reports it. Then, with
siphon's own ``UserAgent`` and ``SimulatedCaller`` (a real far end: SIP over UDP,
RTP in real time through its own media clock):

1. a warm-up call (not measured): the greeting and one question, so that the
   agent has loaded its Piper voice and made its first decoder;
2. ``--idle`` seconds with no call (the parent samples the agent's idle CPU);
3. the measured calls, one after another: wait for the greeting to play out,
   then per question: speak it, listen to the answer until ``--quiet`` s of
   silence, pause ``--pause`` s. The last question of each call is a goodbye
   (the receptionist says "Goodbye!" and hangs up); no other says goodbye.

Each turn's times are ``time.monotonic()`` (CLOCK_MONOTONIC, as the agent's loop
clock): the last frame of the question went out (``SentSpeech.ended``), the first
packet of the answer (its payload is not the codec's silence) and its first
audible packet arrived (``HeardSpeech.started``). Events go to stdout as JSON lines
as they happen (``call_start``/``call_end`` let the parent read the agent's CPU at
the edges of each call); ``result`` ends the output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import time
from typing import Any

import numpy as np
from _common import emit, event_loop_runner, loopback_user_agent, parse_port_range

from siphon.io.call import CallFailed
from siphon.io.user_agent import UaConfig, UserAgent
from siphon.plugins.base import PcmArray
from siphon.plugins.local import TTS
from siphon.plugins.local.vad import WebRtcVAD
from siphon.rtp.codecs import codec_for
from siphon.rtp.resample import Resampler
from siphon.testing import SimulatedCaller, dbfs
from siphon.voice.vad import SpeechEnded, VoiceActivity

RATE = 8000
FRAME = RATE // 50  # 20 ms
TRIM_WINDOW = 80  # 10 ms at 8 kHz
TRIM_DBFS = -55.0  # quieter 10 ms windows at either end are cut (Piper's silence: -80..-92)
GREETING_TIMEOUT = 20.0  # the warm-up call's greeting waits for Piper to load
ANSWER_TIMEOUT = 10.0

# One script per call, used in turn; each ends with a goodbye. The booking pair
# comes first: the receptionist asks for a day and time, the next turn gives them.
# Every sentence is one of the receptionist's CALLER_PHRASES (its STT vocabulary).
SCRIPTS: tuple[tuple[str, ...], ...] = (
    (
        "what are your opening hours",
        "where are you located",
        "do you take insurance",
        "do you see children",
        "thank you goodbye",
    ),
    (
        "i would like to book an appointment",
        "book me in for tuesday at ten am",
        "what is your address",
        "are you open on saturday",
        "that is all thanks bye",
    ),
    (
        "can i book an appointment on monday at three pm",
        "when are you open",
        "do you see children",
        "where are you located",
        "thank you goodbye",
    ),
    (
        "do you take insurance",
        "what is your address",
        "what are your opening hours",
        "are you open on saturday",
        "that is all thanks bye",
    ),
)
WARMUP_QUESTION = "what are your opening hours"


def plan(turns: int, per_call: int) -> list[list[str]]:
    """``turns`` questions in calls of at most ``per_call``, each call ending with its goodbye."""
    if per_call < 1:
        raise ValueError(f"per_call must be >= 1, not {per_call}")
    calls: list[list[str]] = []
    while turns > 0:
        script = SCRIPTS[len(calls) % len(SCRIPTS)]
        n = min(turns, per_call, len(script))
        if n < len(script):
            script = SCRIPTS[0]  # cut short: the script with no booking pair to split
        calls.append([*script[: n - 1], script[-1]])
        turns -= n
    return calls


def trim(pcm: PcmArray) -> PcmArray:
    """Cut the quiet 10 ms windows off both ends."""
    loud = [
        i
        for i in range(0, len(pcm) - TRIM_WINDOW + 1, TRIM_WINDOW)
        if dbfs(pcm[i : i + TRIM_WINDOW]) > TRIM_DBFS
    ]
    if not loud:
        return pcm
    return pcm[loud[0] : loud[-1] + TRIM_WINDOW]


async def synthesise(sentences: set[str]) -> dict[str, PcmArray]:
    """Each sentence spoken by Piper, at 8 kHz, trimmed."""
    tts = TTS()
    audio: dict[str, PcmArray] = {}
    for text in sorted(sentences):
        resampler = Resampler(tts.sample_rate, RATE)
        chunks = [resampler.process(chunk) async for chunk in tts.synthesize(text)]
        chunks.append(resampler.flush())
        audio[text] = trim(np.concatenate(chunks).astype(np.int16))
    return audio


def vad_end(pcm: PcmArray, codec_name: str, min_silence: float) -> dict[str, float]:
    """The agent's VAD on this question, offline: where it ends the speech (ms).

    ``overhang``: the VAD's end of speech after the end of the question's last
    20 ms frame (the audio the caller sends, padded to whole frames); ``report``:
    how much later it says so (``min_silence_duration``, to the frame).
    """
    codec = codec_for(codec_name)
    lead, tail = 1.0, min_silence + 1.0  # seconds of silence around it
    frames = -(-len(pcm) // FRAME)
    audio = np.zeros(int(lead * RATE) + frames * FRAME + int(tail * RATE), dtype=np.int16)
    audio[int(lead * RATE) : int(lead * RATE) + len(pcm)] = pcm
    audio = codec.decode(codec.encode(audio)).astype(np.int16)
    activity = VoiceActivity(WebRtcVAD(), min_silence_duration=min_silence)
    end = lead + frames * FRAME / RATE
    for n in range(len(audio) // FRAME):
        for event in activity.process(audio[n * FRAME : (n + 1) * FRAME], n * FRAME / RATE):
            if isinstance(event, SpeechEnded) and event.time > end - 0.3:
                return {
                    "overhang": 1000.0 * (event.time - end),
                    "report": 1000.0 * (event.detected_at - event.time),
                }
    return {"overhang": math.nan, "report": math.nan}


def first_answer_packet(caller: SimulatedCaller, begin: int, after: float) -> float | None:
    """Arrival of the first packet from ``begin`` on, after ``after``, that is not silence."""
    negotiated = caller.call.negotiated
    assert negotiated is not None
    codec = codec_for(negotiated.codec.name, negotiated.codec.clock_rate)
    silent = codec.decode(codec.silence(RATE // 50))
    for packet in caller.heard[begin:]:
        if (
            packet.arrival >= after
            and len(packet.pcm)
            and not np.array_equal(packet.pcm, silent[: len(packet.pcm)])
        ):
            return packet.arrival
    return None


class Callers:
    def __init__(self, args: argparse.Namespace, audio: dict[str, PcmArray]) -> None:
        self.args = args
        self.audio = audio
        self.target = f"sip:receptionist@127.0.0.1:{args.target_port}"
        self.problems: list[str] = []
        self.ua: UserAgent | None = None
        self.codec = ""  # negotiated on the first call

    async def __aenter__(self) -> Callers:
        self.ua = await loopback_user_agent(
            UserAgent,
            "siphon-voice-caller",
            self.args.rtp_ports,
            UaConfig(record=False, accept_refer=False),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ua is not None:
            self.ua.stack.close()

    async def dial(self, label: str) -> SimulatedCaller | None:
        assert self.ua is not None
        try:
            call = await self.ua.call(self.target, from_user="caller", timeout=10)
        except (CallFailed, OSError) as exc:
            self.problems.append(f"{label}: call failed: {exc}")
            return None
        if call.negotiated is not None:
            self.codec = call.negotiated.codec.name
        caller = SimulatedCaller(call, ua=self.ua)
        caller.start()
        return caller

    async def greeting(self, caller: SimulatedCaller, answered: float) -> float | None:
        """Wait for the greeting to play out; ms from the answer to its first audible packet."""
        heard = await caller.listen(quiet=self.args.quiet, start_timeout=GREETING_TIMEOUT)
        return None if heard is None else 1000.0 * (heard.started - answered)

    async def ask(self, caller: SimulatedCaller, question: str) -> dict[str, Any]:
        begin = len(caller.heard)
        said = await caller.say(self.audio[question])
        # The answer ends after --quiet s of silence, longer than the pauses within one
        # (between sentences, around a tool call): the next question never barges in
        # (the parent reports an interrupted agent turn if one does).
        heard = await caller.listen(quiet=self.args.quiet, start_timeout=ANSWER_TIMEOUT)
        turn: dict[str, Any] = {
            "call": caller.call.call_id,
            "question": question,
            "said_started": said.started,
            "said_ended": said.ended,
            "said_seconds": len(self.audio[question]) / RATE,
            "first_packet": first_answer_packet(caller, begin, said.ended),
            "heard_started": heard.started if heard else None,
            "heard_ended": heard.ended if heard else None,
            "heard_seconds": heard.duration if heard else None,
            "latency_ms": 1000.0 * (heard.started - said.ended) if heard else None,
            "call_ended": caller.call.ended,
        }
        return turn

    async def warm_up(self) -> None:
        caller = await self.dial("warm-up")
        if caller is None:
            return
        answered = time.monotonic()
        try:
            greeting_ms = await self.greeting(caller, answered)
            turn = await self.ask(caller, WARMUP_QUESTION)
            emit("warmup", greeting_ms=greeting_ms, latency_ms=turn["latency_ms"])
        finally:
            await caller.close()
        await asyncio.sleep(0.5)  # the agent's session finishes

    async def converse(self, index: int, questions: list[str]) -> None:
        emit("call_start", index=index)
        caller = await self.dial(f"call {index}")
        if caller is None:
            emit("call_end", index=index, call=None)
            return
        began = time.monotonic()
        try:
            greeting_ms = await self.greeting(caller, began)
            if greeting_ms is None:
                self.problems.append(f"call {index}: no greeting")
            for number, question in enumerate(questions, 1):
                if caller.call.ended:
                    self.problems.append(f"call {index}: ended before question {number}")
                    break
                await asyncio.sleep(self.args.pause)
                turn = await self.ask(caller, question)
                turn.update(index=index, number=number, greeting_ms=greeting_ms)
                emit("turn", **turn)
                if turn["latency_ms"] is None:
                    self.problems.append(f"call {index}: no answer to {question!r}")
            with contextlib.suppress(TimeoutError):
                await caller.wait_ended(timeout=5.0)  # the receptionist hangs up after goodbye
            hung_up_by_agent = caller.call.ended
        finally:
            await caller.close()
        await asyncio.sleep(0.3)  # the agent's session finishes (on_exit, recording closed)
        emit(
            "call_end",
            index=index,
            call=caller.call.call_id,
            seconds=time.monotonic() - began,
            hung_up_by_agent=hung_up_by_agent,
        )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    calls = plan(args.turns, args.per_call)
    audio = await synthesise({q for call in calls for q in call} | {WARMUP_QUESTION})
    emit(
        "audio",
        questions=len(audio),
        seconds={q: round(len(pcm) / RATE, 2) for q, pcm in audio.items()},
    )
    async with Callers(args, audio) as callers:
        await callers.warm_up()
        emit(
            "vad",
            codec=callers.codec,
            questions={
                q: vad_end(pcm, callers.codec or "PCMU", args.vad_silence)
                for q, pcm in audio.items()
            },
        )
        emit("idle_start")
        await asyncio.sleep(args.idle)
        emit("idle_end")
        for index, questions in enumerate(calls, 1):
            await callers.converse(index, questions)
    return {"calls": len(calls), "problems": callers.problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument(
        "--per-call", type=int, default=5, help="questions per call (goodbye incl.)"
    )
    parser.add_argument("--quiet", type=float, default=1.0, help="silence that ends an answer, s")
    parser.add_argument("--pause", type=float, default=0.5, help="caller's pause before asking, s")
    parser.add_argument("--vad-silence", type=float, default=0.5, help="the agent's VAD's, s")
    parser.add_argument("--idle", type=float, default=3.0, help="idle interval before the calls, s")
    parser.add_argument("--rtp-ports", type=parse_port_range, default=(32400, 32498))
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        emit("result", **event_loop_runner()(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
