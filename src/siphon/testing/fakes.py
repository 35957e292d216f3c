"""Scripted, deterministic providers for testing agents without models or network.

Each fake implements one of the provider protocols of ``siphon.plugins.base``
structurally, exactly like a real provider, so an agent takes it wherever it
takes ``openai.LLM()`` or ``deepgram.STT()``:

- ``FakeVAD``: energy detector; speech is whatever is louder than a threshold.
- ``FakeSTT``: "hears" the transcripts you script, one per caller turn.
- ``FakeLLM``: answers with the replies you script (text and tool calls), and
  records every conversation it was shown.
- ``FakeTTS``: turns text into a tone or speech-shaped noise of plausible length.

Example: test that a receptionist books an appointment::

    from siphon.testing import FakeLLM, FakeReply, FakeSTT, FakeTTS

    llm = FakeLLM([
        "Hello, how can I help?",                                  # the greeting
        FakeReply(tool_calls=[("book_appointment", {"day": "monday"})]),
        "You're booked for Monday.",                               # after the tool ran
    ])
    agent = Agent(
        agent_name="Receptionist", llm=llm, tts=FakeTTS(),
        stt=FakeSTT(["I'd like an appointment on Monday"]),
        tools=[book_appointment],
    )
    ...  # run a call, the caller "speaking" speech_like() audio
    assert llm.calls[2].tool_results[0].content == "booked"   # what the model saw

The fakes keep what happened (``FakeSTTStream.pushed_samples``,
``FakeLLM.calls``, ``FakeTTS.requests``, cancellation counts...) so tests can
assert on it. Timers are asyncio timers, so latencies are real (and small by
default); nothing polls or busy-waits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import math
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np

from siphon.plugins.base import (
    LLM,
    STT,
    TTS,
    VAD,
    ChatMessage,
    LLMChunk,
    PcmArray,
    SpeechEvent,
    SpeechEventType,
    STTStream,
    ToolCall,
    ToolSpec,
    Usage,
    VADStream,
)
from siphon.testing.audio import dbfs, speech_like

__all__ = [
    "FakeLLM",
    "FakeLLMCall",
    "FakeLLMExhausted",
    "FakeReply",
    "FakeSTT",
    "FakeSTTStream",
    "FakeTTS",
    "FakeTranscript",
    "FakeVAD",
    "FakeVADStream",
]


def _check_non_negative(name: str, value: float) -> None:
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{name} must be >= 0, got {value}")


# -- VAD ------------------------------------------------------------------------------
class FakeVADStream:
    """One call's ``FakeVAD`` detector; it keeps no state but counts the frames it saw."""

    def __init__(self, vad: FakeVAD) -> None:
        self._vad = vad
        self.frames = 0  # windows scored so far
        self.last_dbfs = -math.inf  # level of the last window

    def probability(self, frame: PcmArray) -> float:
        """Speech probability of one window from its RMS level (see ``FakeVAD``)."""
        if len(frame) != self._vad.frame_samples:
            raise ValueError(
                f"FakeVAD wants windows of exactly {self._vad.frame_samples} samples "
                f"({self._vad.sample_rate} Hz), got {len(frame)}"
            )
        self.frames += 1
        self.last_dbfs = dbfs(frame)
        return self._vad.probability_of_level(self.last_dbfs)


class FakeVAD:
    """Energy VAD: a window is speech when its RMS level is above ``threshold_dbfs``.

    The probability ramps linearly from 0 at ``threshold_dbfs - ramp_db / 2`` to
    1 at ``threshold_dbfs + ramp_db / 2`` (``ramp_db=0`` gives a hard 0/1 step),
    so it is exactly 0.5 at the threshold. Digital silence is always 0; the
    ``speech_like`` and ``tone`` helpers (about -25 and -13 dBFS) are always 1.

    >>> from siphon.testing import silence, speech_like
    >>> stream = FakeVAD().stream()
    >>> stream.probability(speech_like(0.02)), stream.probability(silence(0.02))
    (1.0, 0.0)
    """

    def __init__(
        self,
        threshold_dbfs: float = -40.0,
        sample_rate: int = 8000,
        frame_samples: int = 160,
        *,
        ramp_db: float = 6.0,
    ) -> None:
        if sample_rate <= 0 or frame_samples <= 0:
            raise ValueError("sample_rate and frame_samples must be > 0")
        _check_non_negative("ramp_db", ramp_db)
        self.threshold_dbfs = threshold_dbfs
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples
        self.ramp_db = ramp_db
        self.streams: list[FakeVADStream] = []  # every stream() handed out, in order

    def stream(self) -> FakeVADStream:
        """A fresh detector for one call (recorded in ``streams``)."""
        stream = FakeVADStream(self)
        self.streams.append(stream)
        return stream

    def probability_of_level(self, level_dbfs: float) -> float:
        """The speech probability this VAD gives a window whose RMS level is ``level_dbfs``."""
        if self.ramp_db == 0.0:
            return 1.0 if level_dbfs >= self.threshold_dbfs else 0.0
        position = (level_dbfs - self.threshold_dbfs) / self.ramp_db + 0.5
        return min(1.0, max(0.0, position))


# -- STT ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FakeTranscript:
    """One scripted caller turn for ``FakeSTT``, with optional per-turn overrides.

    ``latency`` replaces the recogniser's delay between ``flush()`` and the
    final transcript; ``language`` the language reported with it.
    """

    text: str
    latency: float | None = None
    language: str | None = None

    def __post_init__(self) -> None:
        if self.latency is not None:
            _check_non_negative("FakeTranscript.latency", self.latency)


_CLOSED: Any = object()  # queue sentinel: the stream was closed


class FakeSTTStream:
    """One recognition stream of a ``FakeSTT`` (see there for the behaviour).

    Attributes kept for assertions: ``pushed_samples`` (all samples pushed),
    ``flushes`` (calls to ``flush()``), ``events`` (every event emitted, in
    order), ``language`` (the stream's language) and ``closed``.

    It is also an async context manager that closes itself on exit.
    """

    def __init__(self, stt: FakeSTT, language: str) -> None:
        self._stt = stt
        self.language = language
        self.pushed_samples = 0
        self.flushes = 0
        self.events: list[SpeechEvent] = []
        self.closed = False
        self._queue: asyncio.Queue[SpeechEvent] = asyncio.Queue()
        self._timers: set[asyncio.TimerHandle] = set()
        self._voice_start: float | None = None  # audio seconds: first voiced push of the turn
        self._voice_end = 0.0  # audio seconds: end of the last voiced push of the turn
        self._last_due = 0.0  # loop time of the last scheduled final: keeps turns in order

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio pushed so far (the stream's audio clock)."""
        return self.pushed_samples / self._stt.sample_rate

    @property
    def pending(self) -> int:
        """Turns flushed whose final transcript has not been emitted yet."""
        return len(self._timers)

    def push(self, pcm: PcmArray) -> None:
        """Feed caller audio; ignored once the stream is closed.

        The first voiced chunk after a flush starts a turn (and emits the
        interim, when enabled); silent chunks only advance the audio clock.
        """
        if self.closed:
            return
        start = self.audio_seconds
        self.pushed_samples += len(pcm)
        if len(pcm) == 0 or dbfs(pcm) < self._stt.voice_threshold_dbfs:
            return
        self._voice_end = self.audio_seconds
        if self._voice_start is None:
            self._voice_start = start
            self._emit_interim()

    def flush(self) -> None:
        """The caller stopped talking: after the latency, emit the next scripted transcript.

        A flush with no voiced audio since the previous one is not a turn and
        emits nothing. Turns past the end of the script are heard as
        ``FakeSTT.default_transcript``; without one they emit nothing either
        and are counted in ``FakeSTT.unscripted_turns``.
        """
        if self.closed:
            return
        self.flushes += 1
        if self._voice_start is None:
            return
        start, end = self._voice_start, self._voice_end
        self._voice_start = None
        entry = self._stt._take()
        if entry is None:
            return
        latency = self._stt.latency if entry.latency is None else entry.latency
        language = entry.language or self.language
        events = [SpeechEvent(SpeechEventType.FINAL, entry.text, start, end, language, 1.0)]
        if self._stt.provides_end_of_turn:
            events.append(SpeechEvent(SpeechEventType.END_OF_TURN, "", start, end, language))

        loop = asyncio.get_running_loop()
        due = max(loop.time() + latency, self._last_due)
        self._last_due = due
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            assert handle is not None
            self._timers.discard(handle)
            for event in events:
                self._emit(event)

        handle = loop.call_at(due, fire)
        self._timers.add(handle)

    def _emit_interim(self) -> None:
        if not self._stt.interim:
            return
        entry = self._stt._peek()
        words = entry.text.split() if entry is not None else []
        if not words:
            return
        text = " ".join(words[: max(1, len(words) // 2)])
        language = entry.language if entry is not None and entry.language else self.language
        self._emit(
            SpeechEvent(SpeechEventType.INTERIM, text, self._voice_start, None, language, 0.5)
        )

    def _emit(self, event: SpeechEvent) -> None:
        self.events.append(event)
        self._queue.put_nowait(event)

    def __aiter__(self) -> FakeSTTStream:
        return self

    async def __anext__(self) -> SpeechEvent:
        if self.closed:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # wake any other reader too
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """Stop the stream: pending transcripts are dropped, iteration ends. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._queue.put_nowait(_CLOSED)

    async def __aenter__(self) -> FakeSTTStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class FakeSTT:
    """Scripted speech recogniser: each caller turn "is heard" as the next scripted text.

    A turn is a stretch of voiced audio (louder than ``voice_threshold_dbfs``)
    pushed into a stream and ended by ``flush()`` (the runtime flushes when its
    VAD says the caller stopped). For each turn the stream emits, in order:

    1. ``INTERIM`` with the first half of the words, as soon as voiced audio
       arrives (when ``interim=True``);
    2. ``FINAL`` with the whole text, ``latency`` seconds after ``flush()``,
       with ``start_time``/``end_time`` = audio seconds of the turn's voiced
       stretch, and the language;
    3. ``END_OF_TURN`` right after the final (when ``end_of_turn=True``; then
       ``provides_end_of_turn`` is True).

    The script is shared by all streams of one ``FakeSTT`` and consumed in
    order, one entry per turn; once it runs out, every further turn is heard
    as ``default_transcript`` when one is given (many concurrent calls sharing
    one agent, as in a load test), else it emits nothing and is counted in
    ``unscripted_turns``. Use one ``FakeSTT`` per simulated call when the
    script matters.

    >>> import asyncio
    >>> from siphon.testing import silence, speech_like
    >>> async def hear() -> list[tuple[str, str, float | None]]:
    ...     stt = FakeSTT(["book a table for two"], latency=0.01)
    ...     async with stt.stream() as stream:
    ...         stream.push(silence(0.5, stt.sample_rate))
    ...         stream.push(speech_like(1.5, stt.sample_rate))
    ...         stream.flush()
    ...         events = [await anext(stream), await anext(stream)]
    ...     return [(e.type.value, e.text, e.start_time) for e in events]
    >>> asyncio.run(hear())
    [('interim', 'book a', 0.5), ('final', 'book a table for two', 0.5)]
    """

    provides_end_of_turn: bool = False  # True when built with end_of_turn=True

    def __init__(
        self,
        transcripts: Sequence[str | FakeTranscript] = (),
        *,
        latency: float = 0.05,
        interim: bool = True,
        end_of_turn: bool = False,
        sample_rate: int = 16000,
        language: str = "en",
        voice_threshold_dbfs: float = -50.0,
        default_transcript: str | FakeTranscript | None = None,
    ) -> None:
        _check_non_negative("latency", latency)
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
        self.transcripts: list[FakeTranscript] = [
            t if isinstance(t, FakeTranscript) else FakeTranscript(t) for t in transcripts
        ]
        self.default_transcript: FakeTranscript | None = (
            FakeTranscript(default_transcript)
            if isinstance(default_transcript, str)
            else default_transcript
        )
        self.latency = latency
        self.interim = interim
        self.provides_end_of_turn = end_of_turn
        self.sample_rate = sample_rate
        self.language = language
        self.voice_threshold_dbfs = voice_threshold_dbfs
        self.streams: list[FakeSTTStream] = []  # every stream() handed out, in order
        self.turns = 0  # turns heard (flushes after voiced audio), scripted or not
        self.unscripted_turns = 0  # turns heard after the script ran out, with no default

    @property
    def remaining(self) -> int:
        """Scripted transcripts not used yet."""
        return max(0, len(self.transcripts) - self.turns)

    def stream(self, *, language: str | None = None) -> FakeSTTStream:
        """A new recognition stream (``language`` overrides the default for its events)."""
        stream = FakeSTTStream(self, language or self.language)
        self.streams.append(stream)
        return stream

    def _peek(self) -> FakeTranscript | None:
        if self.turns < len(self.transcripts):
            return self.transcripts[self.turns]
        return self.default_transcript

    def _take(self) -> FakeTranscript | None:
        entry = self._peek()
        self.turns += 1
        if entry is None:
            self.unscripted_turns += 1
        return entry


# -- LLM ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FakeReply:
    """One scripted ``FakeLLM`` answer: text, then tool calls, optionally an error.

    ``tool_calls`` are ``(name, arguments)`` pairs, turned into ``ToolCall``s with
    generated ids (``call_1``, ``call_2``...) and JSON arguments; pass a
    ``ToolCall`` instead to control its id or send arguments that are not valid
    JSON. ``error`` is raised after the text streamed (a provider failing
    mid-reply). The latencies override the ``FakeLLM``'s for this reply.

    >>> reply = FakeReply("Let me check.", tool_calls=[("check_calendar", {"day": "monday"})])
    >>> reply.tool_calls
    (('check_calendar', {'day': 'monday'}),)
    """

    text: str = ""
    tool_calls: Sequence[tuple[str, Mapping[str, Any]] | ToolCall] = ()
    error: BaseException | None = None
    first_token_latency: float | None = None
    token_latency: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))


ReplyScript: TypeAlias = (
    "str | FakeReply | Callable[[list[ChatMessage]], str | FakeReply | Awaitable[str | FakeReply]]"
)
"""One ``FakeLLM`` script entry: a reply, or a function of the messages returning one (or
an awaitable of one)."""


class FakeLLMExhausted(RuntimeError):
    """``FakeLLM`` was asked for more replies than were scripted (and no default_reply)."""


@dataclass(slots=True)
class FakeLLMCall:
    """What ``FakeLLM`` was shown in one ``chat()`` call, and how the call ended.

    ``messages`` is a copy taken when ``chat()`` was called, so later changes to
    the conversation do not alter it.
    """

    messages: list[ChatMessage]
    tools: list[str]  # names of the tools offered
    tool_specs: list[ToolSpec] = field(default_factory=list)
    reply: FakeReply | None = None  # what it answered (None until the stream starts)
    completed: bool = False  # streamed to the end (usage chunk included)
    cancelled: bool = False  # the consumer stopped or cancelled it mid-way

    @property
    def system_prompt(self) -> str:
        """Content of the system messages, joined by blank lines."""
        return "\n\n".join(m.content for m in self.messages if m.role == "system")

    @property
    def last_message(self) -> ChatMessage | None:
        return self.messages[-1] if self.messages else None

    @property
    def user_text(self) -> str:
        """Content of the last user message ('' when there is none)."""
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")

    @property
    def tool_results(self) -> list[ChatMessage]:
        """The tool messages of the conversation (results of earlier tool calls)."""
        return [m for m in self.messages if m.role == "tool"]


_TOKEN = re.compile(r"\s*\S+|\s+")


def _tokens(text: str) -> list[str]:
    """Split text into word-ish tokens that keep their leading spaces: they join back exactly."""
    return _TOKEN.findall(text)


def _count_tokens(text: str) -> int:
    return len(text.split())


def _copy_message(message: ChatMessage) -> ChatMessage:
    return dataclasses.replace(message, tool_calls=list(message.tool_calls))


class FakeLLM:
    """Scripted language model: each ``chat()`` call answers with the next scripted reply.

    An entry is a ``str`` (streamed as word-ish tokens), a ``FakeReply`` (text and
    tool calls) or a callable that receives the messages and returns either (it
    may be async), for replies that depend on the conversation, such as the
    result of a tool. After the text and tool calls, the stream ends with a chunk
    carrying ``Usage`` (token counts are word counts).

    ``first_token_latency`` delays the first chunk, ``token_latency`` each
    following one. When the script runs out, ``default_reply`` answers, or the
    stream raises ``FakeLLMExhausted``.

    Every call is recorded in ``calls``; ``cancelled`` counts streams the
    consumer stopped early (barge-in).

    >>> import asyncio
    >>> from siphon.plugins.base import ChatMessage
    >>> llm = FakeLLM(["Hello there!", lambda messages: f"You said {messages[-1].content}."])
    >>> async def ask(text: str) -> str:
    ...     chunks = [c async for c in llm.chat([ChatMessage("user", text)])]
    ...     return "".join(c.text for c in chunks)
    >>> asyncio.run(ask("hi")), asyncio.run(ask("bye"))
    ('Hello there!', 'You said bye.')
    >>> llm.calls[1].user_text
    'bye'
    """

    def __init__(
        self,
        replies: Sequence[ReplyScript] = (),
        *,
        first_token_latency: float = 0.0,
        token_latency: float = 0.0,
        default_reply: str | FakeReply | None = None,
    ) -> None:
        _check_non_negative("first_token_latency", first_token_latency)
        _check_non_negative("token_latency", token_latency)
        self.replies: list[ReplyScript] = list(replies)
        self.first_token_latency = first_token_latency
        self.token_latency = token_latency
        self.default_reply = default_reply
        self.calls: list[FakeLLMCall] = []
        self.cancelled = 0  # streams stopped before their end
        self._tool_call_ids = 0

    @property
    def remaining(self) -> int:
        """Scripted replies not used yet."""
        return max(0, len(self.replies) - len(self.calls))

    def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMChunk]:
        """Record the call and stream the next scripted reply (see the class docstring)."""
        call = FakeLLMCall(
            messages=[_copy_message(m) for m in messages],
            tools=[t.name for t in tools],
            tool_specs=list(tools),
        )
        index = len(self.calls)
        self.calls.append(call)
        return self._stream(call, index)

    async def _stream(self, call: FakeLLMCall, index: int) -> AsyncIterator[LLMChunk]:
        # CancelledError: the consuming task was cancelled while we waited;
        # GeneratorExit: the consumer stopped iterating and closed us (or we were
        # garbage-collected). Either way the stream just stops, and is counted.
        try:
            reply = await self._reply_for(call, index)
            call.reply = reply
            first = self.first_token_latency
            if reply.first_token_latency is not None:
                first = reply.first_token_latency
            between = self.token_latency if reply.token_latency is None else reply.token_latency

            delay = first
            completion_tokens = 0
            for token in _tokens(reply.text):
                await self._pause(delay)
                delay = between
                completion_tokens += _count_tokens(token)
                yield LLMChunk(text=token)
            if reply.error is not None:
                raise reply.error
            if reply.tool_calls:
                tool_calls = tuple(self._tool_call(spec) for spec in reply.tool_calls)
                await self._pause(delay)
                delay = between
                completion_tokens += sum(
                    _count_tokens(f"{c.name} {c.arguments}") for c in tool_calls
                )
                yield LLMChunk(tool_calls=tool_calls)
            prompt_tokens = sum(_count_tokens(m.content) for m in call.messages)
            await self._pause(delay)
            yield LLMChunk(usage=Usage(prompt_tokens, completion_tokens))
            call.completed = True
        except (asyncio.CancelledError, GeneratorExit):
            call.cancelled = True
            self.cancelled += 1
            raise

    async def _reply_for(self, call: FakeLLMCall, index: int) -> FakeReply:
        if index < len(self.replies):
            entry = self.replies[index]
        elif self.default_reply is not None:
            entry = self.default_reply
        else:
            raise FakeLLMExhausted(
                f"FakeLLM got chat() call #{index + 1} but only {len(self.replies)} "
                f"repl{'y was' if len(self.replies) == 1 else 'ies were'} scripted; "
                f"script more replies or pass default_reply=... "
                f"(last message: {call.last_message!r})"
            )
        if callable(entry):
            result = entry([_copy_message(m) for m in call.messages])
            if inspect.isawaitable(result):
                result = await result
            entry = result
        if isinstance(entry, str):
            return FakeReply(entry)
        if isinstance(entry, FakeReply):
            return entry
        raise TypeError(f"a FakeLLM reply must be a str or FakeReply, got {entry!r}")

    def _tool_call(self, spec: tuple[str, Mapping[str, Any]] | ToolCall) -> ToolCall:
        if isinstance(spec, ToolCall):
            return spec
        name, arguments = spec
        self._tool_call_ids += 1
        return ToolCall(f"call_{self._tool_call_ids}", name, json.dumps(dict(arguments)))

    @staticmethod
    async def _pause(seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)


# -- TTS ------------------------------------------------------------------------------
class FakeTTS:
    """Speech synthesiser that makes a deterministic, clearly audible signal for any text.

    The audio lasts ``len(text) / chars_per_second`` seconds (blank text gives
    none) and comes in ``chunk_ms`` int16 chunks at ``sample_rate``. With
    ``waveform="tone"`` it is a sine whose frequency (300-900 Hz) depends on the
    text, so a test can tell phrases apart by pitch; ``waveform="speech"`` gives
    ``speech_like`` noise, which voice detectors take for speech (use it when
    the agent's audio is fed back to a VAD or a simulated caller). ``amplitude``
    is the peak level as a fraction of full scale.

    The first chunk comes after ``first_chunk_latency``; the rest follow as fast
    as possible, or at the pace of playback with ``realtime=True``.
    ``requests`` records the texts asked for; ``cancelled`` counts syntheses
    stopped before their end.

    >>> import asyncio
    >>> tts = FakeTTS(chars_per_second=10)
    >>> async def speak(text: str) -> float:
    ...     chunks = [chunk async for chunk in tts.synthesize(text)]
    ...     return sum(len(c) for c in chunks) / tts.sample_rate
    >>> asyncio.run(speak("Hello."))
    0.6
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        first_chunk_latency: float = 0.0,
        chars_per_second: float = 15.0,
        chunk_ms: int = 40,
        realtime: bool = False,
        waveform: Literal["tone", "speech"] = "tone",
        amplitude: float = 0.3,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
        if not chars_per_second > 0:
            raise ValueError(f"chars_per_second must be > 0, got {chars_per_second}")
        if chunk_ms <= 0 or sample_rate * chunk_ms // 1000 == 0:
            raise ValueError(f"chunk_ms must give at least one sample per chunk, got {chunk_ms}")
        if waveform not in ("tone", "speech"):
            raise ValueError(f"waveform must be 'tone' or 'speech', got {waveform!r}")
        if not 0.0 <= amplitude <= 1.0:
            raise ValueError(f"amplitude is a fraction of full scale in [0, 1], got {amplitude}")
        _check_non_negative("first_chunk_latency", first_chunk_latency)
        self.sample_rate = sample_rate
        self.first_chunk_latency = first_chunk_latency
        self.chars_per_second = chars_per_second
        self.chunk_ms = chunk_ms
        self.realtime = realtime
        self.waveform = waveform
        self.amplitude = amplitude
        self.requests: list[str] = []
        self.completed = 0  # syntheses streamed to the end
        self.cancelled = 0  # syntheses stopped before their end

    def duration(self, text: str) -> float:
        """Seconds of audio ``synthesize(text)`` yields (up to one sample of rounding)."""
        return len(text) / self.chars_per_second if text.strip() else 0.0

    def frequency(self, text: str) -> float:
        """Pitch in Hz of the tone for ``text`` (``waveform="tone"``): 300-900, from its CRC."""
        return 300.0 + zlib.crc32(text.encode()) % 601

    def render(self, text: str) -> PcmArray:
        """All the audio of ``text`` at once (what the chunks of ``synthesize`` add up to)."""
        seconds = self.duration(text)
        if self.waveform == "speech":
            seed = zlib.crc32(text.encode())
            return speech_like(seconds, self.sample_rate, seed, amplitude=self.amplitude)
        n = round(seconds * self.sample_rate)
        t = np.arange(n, dtype=np.float64) / self.sample_rate
        wave = np.sin(2.0 * math.pi * self.frequency(text) * t)
        ramp = min(n // 2, self.sample_rate // 200)  # 5 ms fades: no clicks between phrases
        if ramp > 0:
            fade = np.linspace(0.0, 1.0, ramp, endpoint=False)
            wave[:ramp] *= fade
            wave[n - ramp :] *= fade[::-1]
        return np.round(wave * self.amplitude * 32767).astype(np.int16)

    def synthesize(self, text: str) -> AsyncIterator[PcmArray]:
        """Record the request and stream its audio (see the class docstring)."""
        self.requests.append(text)
        return self._stream(text)

    async def _stream(self, text: str) -> AsyncIterator[PcmArray]:
        audio = self.render(text)
        step = self.sample_rate * self.chunk_ms // 1000
        try:
            if self.first_chunk_latency > 0:
                await asyncio.sleep(self.first_chunk_latency)
            loop = asyncio.get_running_loop()
            started = loop.time()
            for index, start in enumerate(range(0, len(audio), step)):
                if self.realtime:
                    # Absolute deadlines: chunk i is ready when i chunks have played.
                    due = started + index * step / self.sample_rate
                    await asyncio.sleep(max(0.0, due - loop.time()))
                else:
                    await asyncio.sleep(0)  # let other tasks (and cancellation) in
                yield audio[start : start + step].copy()
            self.completed += 1
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise


if TYPE_CHECKING:  # mypy proves the fakes satisfy the protocols
    _vad: VAD = FakeVAD()
    _vad_stream: VADStream = FakeVADStream(FakeVAD())
    _stt: STT = FakeSTT()
    _stt_stream: STTStream = FakeSTT().stream()
    _llm: LLM = FakeLLM()
    _tts: TTS = FakeTTS()
