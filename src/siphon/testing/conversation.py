"""A scripted conversation with any SIP agent: what ``siphon call`` runs.

``simulated_call(uri, ["What are your opening hours?", ...])`` dials ``uri`` with
SIPHON's own user agent, waits for the greeting, speaks each line with the offline
TTS, transcribes each answer with the offline STT, and hangs up after the last
answer (or when the agent hangs up). Latency is what the caller hears: from the
last frame of the caller's question to the first audible packet of the answer.

Recognition of the agent is only as good as pocketsphinx on telephone audio:
pass ``expect`` (sentences the agent may say) to build a small language model,
which lifts word accuracy from roughly half to nearly all.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from siphon.io.call import CallFailed
from siphon.io.ports import RtpPortAllocator
from siphon.io.recording import recording_writer
from siphon.io.sip_stack import SipStack
from siphon.io.user_agent import UaConfig, UserAgent
from siphon.plugins.base import STT, TTS, PcmArray, SpeechEventType
from siphon.rtp.resample import Resampler
from siphon.testing.caller import HeardSpeech, SimulatedCaller

# The caller's RTP ports: clear of an agent's default 10000-20000 on the same host.
CALLER_RTP_PORTS = (30000, 31998)
# An answer ends after this much quiet (the pauses between its sentences are shorter).
ANSWER_QUIET = 1.0
# Silence added around an utterance before recognition (seconds).
TRANSCRIBE_PADDING = 0.3


@dataclass(slots=True)
class ConversationTurn:
    role: str  # "caller" | "agent"
    text: str
    started: float  # seconds since the call was answered
    ended: float
    latency_ms: float | None = None  # agent turns: caller's last word -> first agent audio


@dataclass(slots=True)
class CallReport:
    uri: str
    ok: bool
    status: int | None = None  # SIP final status of the INVITE
    reason: str = ""
    turns: list[ConversationTurn] = field(default_factory=list)
    ended_by: str | None = None  # "caller" | "agent"
    end_reason: str | None = None
    duration: float = 0.0
    recording: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def synthesize_8k(tts: TTS, text: str) -> PcmArray:
    """The whole of ``text`` as 8 kHz int16 audio."""
    resampler = Resampler(tts.sample_rate, 8000) if tts.sample_rate != 8000 else None
    parts: list[PcmArray] = []
    async for chunk in tts.synthesize(text):
        parts.append(resampler.process(chunk) if resampler is not None else chunk)
    if resampler is not None:
        parts.append(resampler.flush())
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


async def transcribe_8k(stt: STT, pcm: PcmArray) -> str:
    """One utterance of 8 kHz audio through ``stt`` (resampled to its rate)."""
    if not len(pcm):
        return ""
    # listen() cuts the audio at the audible packets: recognisers want a little
    # silence around a word (a bare "Goodbye!" is otherwise misheard).
    pad = np.zeros(int(8000 * TRANSCRIBE_PADDING), dtype=np.int16)
    pcm = np.concatenate((pad, pcm, pad))
    stream = stt.stream()
    resampler = Resampler(8000, stt.sample_rate) if stt.sample_rate != 8000 else None
    audio = resampler.process(pcm) if resampler is not None else pcm
    if resampler is not None:
        audio = np.concatenate((audio, resampler.flush()))
    step = stt.sample_rate // 5  # 200 ms pushes, as audio would arrive
    for start in range(0, len(audio), step):
        stream.push(audio[start : start + step])
    stream.flush()
    text = ""
    try:
        async with asyncio.timeout(30):
            async for event in stream:
                if event.type is SpeechEventType.FINAL:
                    text = event.text
                    break
    finally:
        await stream.aclose()
    return text


async def simulated_call(
    uri: str,
    says: Sequence[str],
    *,
    tts: TTS,
    stt: STT,
    wait_greeting: bool = True,
    record: Path | None = None,
    timeout: float = 120.0,
    on_turn: Callable[[ConversationTurn], None] | None = None,
    bind_host: str = "127.0.0.1",
) -> CallReport:
    """Call ``uri``, speak ``says`` one answer at a time, and report the conversation."""
    report = CallReport(uri=uri, ok=False)
    # Speak what we will say before dialling: synthesis must not delay our turns.
    questions = [await synthesize_8k(tts, line) for line in says]
    stack = SipStack(user_agent="SIPHON-simulated-caller")
    await stack.listen(bind_host, 0, ("udp",))
    recordings = record.parent / f".{record.name}.tmp" if record is not None else None
    ua = UserAgent(
        stack,
        ports=RtpPortAllocator(*CALLER_RTP_PORTS, host=bind_host),
        config=UaConfig(
            media_host=bind_host,
            record=record is not None,
            recordings_dir=recordings,
            accept_refer=True,
        ),
    )
    caller: SimulatedCaller | None = None
    try:
        async with asyncio.timeout(timeout):
            try:
                call = await ua.call(uri, from_user="caller", timeout=min(30.0, timeout))
            except CallFailed as exc:
                report.status, report.reason = exc.status, exc.reason
                report.error = f"{exc.status} {exc.reason}"
                return report
            report.status, report.reason = 200, "OK"
            answered = time.monotonic()
            caller = SimulatedCaller(call, ua=ua)
            caller.start()

            async def agent_turn(after: float | None) -> bool:
                heard = await caller.listen(quiet=ANSWER_QUIET, start_timeout=10.0)
                if heard is None:
                    return False
                text = await transcribe_8k(stt, heard.pcm)
                _emit(report, on_turn, _agent_turn(text, heard, answered, after))
                return True

            if wait_greeting:
                await agent_turn(None)
            else:
                await asyncio.sleep(0.5)
            for line, pcm in zip(says, questions, strict=True):
                if call.ended:
                    break
                sent = await caller.say(pcm)
                _emit(
                    report,
                    on_turn,
                    ConversationTurn(
                        "caller", line, sent.started - answered, sent.ended - answered
                    ),
                )
                await agent_turn(sent.ended)
            report.ended_by = "agent" if call.ended else "caller"
            await caller.close()
            report.end_reason = call.end_reason
            report.duration = round(time.monotonic() - answered, 3)
            report.ok = True
    except TimeoutError:
        report.error = f"timed out after {timeout:.0f} s"
    finally:
        if caller is not None:
            await caller.close()
        stack.close()
        ua.ports.close()
        if record is not None and recordings is not None:
            report.recording = await asyncio.to_thread(_keep_recording, recordings, record)
    return report


def _agent_turn(
    text: str, heard: HeardSpeech, answered: float, after: float | None
) -> ConversationTurn:
    latency = None if after is None else round((heard.started - after) * 1000.0, 1)
    return ConversationTurn(
        "agent", text, heard.started - answered, heard.ended - answered, latency
    )


def _emit(
    report: CallReport,
    on_turn: Callable[[ConversationTurn], None] | None,
    turn: ConversationTurn,
) -> None:
    turn.started, turn.ended = round(turn.started, 3), round(turn.ended, 3)
    report.turns.append(turn)
    if on_turn is not None:
        on_turn(turn)


def _keep_recording(folder: Path, target: Path) -> str | None:
    """Move the call's WAV (written by the recording thread) to ``target``."""
    recording_writer().drain()
    files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    try:
        if not files:
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(files[-1]), target)
        return str(target)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
