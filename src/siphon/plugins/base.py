"""The four provider protocols: VAD, STT, LLM and TTS.

A provider is a small class with a few methods, not a subclass of anything here:
these are ``typing.Protocol``s, checked structurally. Audio is mono int16 PCM in
numpy arrays at the rate the provider declares (``sample_rate``); the runtime
resamples the caller's 8 kHz G.711 audio up for VAD/STT and the synthesised audio
down to 8 kHz, so a provider never deals with telephony rates it does not want.

Times in STT events are seconds of *audio* since the stream began (the caller's
speech timeline), so they stay exact however late the provider answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

PcmArray = npt.NDArray[np.int16]

__all__ = [
    "LLM",
    "STT",
    "TTS",
    "VAD",
    "ChatMessage",
    "LLMChunk",
    "PcmArray",
    "Role",
    "STTStream",
    "SpeechEvent",
    "SpeechEventType",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "VADStream",
]


# -- VAD ------------------------------------------------------------------------------
class VADStream(Protocol):
    """Per-call VAD state (models such as silero carry context between windows)."""

    def probability(self, frame: PcmArray) -> float:
        """Speech probability in [0, 1] of one window of exactly ``frame_samples`` samples."""
        ...


@runtime_checkable
class VAD(Protocol):
    sample_rate: int  # the rate its windows are at (8000 or 16000 for webrtcvad/silero)
    frame_samples: int  # window length: 160/320 for webrtcvad (20 ms), 512 for silero at 16 kHz

    def stream(self) -> VADStream:
        """A fresh detector for one call; the model itself is shared by all calls."""
        ...


# -- STT ------------------------------------------------------------------------------
class SpeechEventType(Enum):
    INTERIM = "interim"  # a hypothesis that may still change
    FINAL = "final"  # settled text for a stretch of speech
    END_OF_TURN = "end_of_turn"  # the provider's own verdict that the caller has finished


@dataclass(frozen=True, slots=True)
class SpeechEvent:
    type: SpeechEventType
    text: str = ""
    start_time: float | None = None  # audio seconds since the stream began
    end_time: float | None = None
    language: str | None = None  # BCP 47 when the provider knows it
    confidence: float | None = None


class STTStream(Protocol):
    """One call's recognition stream.

    ``push`` never blocks (providers queue; CPU-heavy local models decode in an
    executor while the events are iterated). ``flush`` tells the provider the
    caller has stopped talking (VAD), so it should finalise what it heard now
    rather than wait for its own silence detection.
    """

    def push(self, pcm: PcmArray) -> None: ...

    def flush(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[SpeechEvent]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class STT(Protocol):
    sample_rate: int

    def stream(self, *, language: str | None = None) -> STTStream: ...


# -- LLM ------------------------------------------------------------------------------
Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it (it may be invalid: the runtime says so)

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises ValueError with a message fit for the model."""
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments are not valid JSON: {exc.msg}") from None
        if not isinstance(value, dict):
            raise ValueError("arguments must be a JSON object")
        return value


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it: name, description, JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(slots=True)
class ChatMessage:
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)  # assistant messages
    tool_call_id: str | None = None  # tool messages: which call this answers
    name: str | None = None  # tool messages: the tool's name


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class LLMChunk:
    """One step of a streamed reply: a text delta, complete tool calls, or the usage.

    Providers that stream tool-call arguments in fragments assemble them and emit
    each ``ToolCall`` once, whole.
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None


@runtime_checkable
class LLM(Protocol):
    def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMChunk]:
        """Stream the reply to ``messages``; ``tools`` are the functions it may call."""
        ...


# -- TTS ------------------------------------------------------------------------------
@runtime_checkable
class TTS(Protocol):
    sample_rate: int  # of the PCM it yields; the runtime resamples to 8 kHz

    def synthesize(self, text: str) -> AsyncIterator[PcmArray]:
        """Stream the audio of ``text`` in chunks, first chunk as early as possible.

        The runtime cuts the LLM's streamed reply into phrases and synthesises them
        one after another, so the first phrase plays while the model still writes
        and the text actually played is known when the caller interrupts.
        """
        ...
