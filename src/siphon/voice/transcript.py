"""The call's transcript: who said what, when, what was cut off, and which tools ran.

An agent turn records only the text the caller actually heard: when the caller
interrupts, the runtime knows how many 20 ms frames of each phrase went out and
keeps that much (``interrupted`` marks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from siphon.voice.metrics import TurnMetrics

Speaker = Literal["user", "agent"]


@dataclass(slots=True)
class ToolCallRecord:
    name: str
    arguments: str  # JSON as the model wrote it
    result: str  # what went back to the model
    is_error: bool
    started_at: float
    duration: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arguments": self.arguments,
            "result": self.result,
            "is_error": self.is_error,
            "duration_ms": round(self.duration * 1000.0, 1),
        }


@dataclass(slots=True)
class Turn:
    role: Speaker
    text: str
    started_at: float  # loop time
    ended_at: float | None = None
    interrupted: bool = False
    turn_id: int = 0
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    metrics: TurnMetrics | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "role": self.role,
            "text": self.text,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "interrupted": self.interrupted,
            "turn_id": self.turn_id,
        }
        if self.tool_calls:
            data["tool_calls"] = [c.as_dict() for c in self.tool_calls]
        if self.metrics is not None:
            data["metrics"] = self.metrics.as_dict()
        return data


class Transcript(list[Turn]):
    """The turns in order (a plain list, with helpers)."""

    def text(self) -> str:
        """``user: ...`` / ``agent: ...`` lines; cut-off turns end with ``[interrupted]``."""
        lines = []
        for turn in self:
            suffix = " [interrupted]" if turn.interrupted else ""
            lines.append(f"{turn.role}: {turn.text}{suffix}")
        return "\n".join(lines)

    def insert_in_order(self, turn: Turn) -> None:
        """Add a turn that is recorded when it ends, in the order the turns started.

        An agent utterance is written down when it finishes (only then is it known
        what was heard); a caller's turn committed meanwhile must stay after it.
        """
        index = len(self)
        while index > 0 and self[index - 1].started_at > turn.started_at:
            index -= 1
        self.insert(index, turn)

    def by(self, role: Speaker) -> list[Turn]:
        return [turn for turn in self if turn.role == role]
