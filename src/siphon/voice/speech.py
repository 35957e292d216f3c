"""One agent utterance and the phrases it is made of.

An utterance is synthesised phrase by phrase; each phrase remembers the playout
positions of its 20 ms frames. When the caller interrupts, the position of the
last frame that went out tells how much of each phrase was heard: whole phrases
before it, a share of the words of the phrase it cut, nothing after.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from siphon.plugins.base import ChatMessage
from siphon.voice.metrics import TurnMetrics
from siphon.voice.transcript import ToolCallRecord, Turn


@dataclass(slots=True)
class Phrase:
    text: str
    step: int  # which LLM step (assistant message) wrote it
    first: int = -1  # playout positions of its frames, inclusive; -1: none yet
    last: int = -1


@dataclass(eq=False, slots=True)
class Speech:
    """One agent utterance: a reply (LLM) or a fixed text (``say``)."""

    turn_id: int
    source: str  # "reply" | "say"
    allow_interruptions: bool
    epoch: int = 0
    phrases: list[Phrase] = field(default_factory=list)
    step_messages: list[ChatMessage] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    metrics: TurnMetrics | None = None
    interrupted: bool = False
    played_upto: int | None = None  # last position heard when interrupted
    first_position: int = -1  # playout position of its first frame
    started_at: float = 0.0
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    turn: Turn | None = None

    def played_text(self) -> str:
        return " ".join(t for t in (self.played_part(p) for p in self.phrases) if t)

    def played_part(self, phrase: Phrase) -> str:
        upto = self.played_upto
        if upto is None:
            return phrase.text
        if phrase.first < 0 or phrase.first > upto:
            return ""
        if phrase.last <= upto:
            return phrase.text
        # Cut off inside this phrase: keep the share of words its played frames carry.
        share = (upto - phrase.first + 1) / (phrase.last - phrase.first + 1)
        words = phrase.text.split()
        return " ".join(words[: int(len(words) * share)])
