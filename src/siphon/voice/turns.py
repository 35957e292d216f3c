"""Endpointing: deciding when the caller has finished their turn.

A strategy is a pure state machine fed the VAD's speech start/end, the STT's
events and the time; the runtime asks ``poll(now)`` at ``next_deadline()`` (and
after each input) and sends the decided text to the LLM. All times are on one
clock chosen by the runtime, in seconds; nothing here reads a clock or sleeps,
so each rule is tested with plain numbers. Write your own by implementing
``EndpointingStrategy``.

Text arriving while no turn is pending (the STT heard something the VAD did not
call speech) is kept and joins the next turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from siphon.plugins.base import SpeechEvent, SpeechEventType

__all__ = [
    "EndpointingStrategy",
    "SilenceEndpointing",
    "SttEndOfTurn",
    "TurnDecision",
    "endpointing_for",
]


@dataclass(frozen=True, slots=True)
class TurnDecision:
    text: str
    reason: str  # "silence+final", "max_delay", "stt_end_of_turn"
    decided_at: float
    speech_ended_at: float | None  # VAD end of speech, if it came before the decision
    final_at: float | None  # arrival of the last FINAL of the turn, if any


@runtime_checkable
class EndpointingStrategy(Protocol):
    def on_speech_start(self, now: float) -> None: ...

    def on_speech_end(self, now: float) -> None: ...

    def on_transcript(self, event: SpeechEvent, now: float) -> None: ...

    def poll(self, now: float) -> TurnDecision | None:
        """The decision due at ``now``, once; None while the turn is not over."""
        ...

    def next_deadline(self) -> float | None:
        """When ``poll`` may next return a decision (None: only after new input)."""
        ...

    def reset(self) -> None: ...


class _TurnText:
    """The caller's words for one turn: settled FINALs plus the latest INTERIM."""

    __slots__ = ("finals", "interim")

    def __init__(self) -> None:
        self.finals: list[str] = []
        self.interim = ""

    def add(self, event: SpeechEvent) -> None:
        text = event.text.strip()
        if event.type is SpeechEventType.FINAL:
            if text:
                self.finals.append(text)
            self.interim = ""  # the final supersedes the hypotheses before it
        elif event.type is SpeechEventType.INTERIM:
            self.interim = text

    def text(self, with_interim: bool = True) -> str:
        parts = [*self.finals, self.interim] if with_interim else self.finals
        return " ".join(p for p in parts if p)

    def clear(self) -> None:
        self.finals.clear()
        self.interim = ""


class SilenceEndpointing:
    """The turn ends a little after the VAD's end of speech, once the STT has settled.

    Rules, after the VAD reports the end of speech at ``t_end`` (it has already
    waited its ``min_silence_duration``):

    1. the STT has caught up (its last event since the speech started is a
       FINAL) and there is text: commit at ``max(t_end + min_endpointing_delay,
       final time)``, reason ``"silence+final"``;
    2. otherwise wait for that FINAL until ``t_end + max_endpointing_delay``,
       then commit the FINALs so far plus the latest INTERIM, reason
       ``"max_delay"``; if an INTERIM was committed, transcripts arriving
       before the caller speaks again, up to the first FINAL, are dropped
       (they settle the speech already committed);
    3. no text at all when due: nothing is committed (noise, a cough) and
       ``discarded_turns`` counts it;
    4. speech starting again before the commit cancels it (the caller was
       pausing) and the text so far stays in the turn; several FINALs are
       joined with spaces.
    """

    def __init__(
        self, min_endpointing_delay: float = 0.2, max_endpointing_delay: float = 0.6
    ) -> None:
        if not 0.0 <= min_endpointing_delay <= max_endpointing_delay:
            raise ValueError("need 0 <= min_endpointing_delay <= max_endpointing_delay")
        self.min_endpointing_delay = min_endpointing_delay
        self.max_endpointing_delay = max_endpointing_delay
        self.discarded_turns = 0
        self.dropped_late_transcripts = 0
        self._text = _TurnText()
        self.reset()

    def reset(self) -> None:
        self._text.clear()
        self._speaking = False
        self._ended_at: float | None = None  # pending end of speech
        self._final_at: float | None = None
        self._caught_up = False  # no INTERIM and no new speech since the last FINAL
        self._drop_late = False  # rule 2: the STT still owes the committed speech

    def on_speech_start(self, now: float) -> None:
        self._speaking = True
        self._ended_at = None
        self._caught_up = False
        self._drop_late = False

    def on_speech_end(self, now: float) -> None:
        self._speaking = False
        self._ended_at = now

    def on_transcript(self, event: SpeechEvent, now: float) -> None:
        if self._drop_late and event.type is not SpeechEventType.END_OF_TURN:
            self.dropped_late_transcripts += 1
            if event.type is SpeechEventType.FINAL:
                self._drop_late = False  # the FINAL closes what we committed
            return
        self._text.add(event)
        if event.type is SpeechEventType.FINAL:
            self._final_at = now
            self._caught_up = True
        elif event.type is SpeechEventType.INTERIM and event.text.strip():
            self._caught_up = False

    def next_deadline(self) -> float | None:
        if self._ended_at is None or self._speaking:
            return None
        if self._caught_up:
            assert self._final_at is not None
            return max(self._ended_at + self.min_endpointing_delay, self._final_at)
        return self._ended_at + self.max_endpointing_delay

    def poll(self, now: float) -> TurnDecision | None:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return None
        caught_up = self._caught_up
        owed = bool(self._text.interim)  # committed a hypothesis whose FINAL is to come
        text = self._text.text()
        decision = TurnDecision(
            text=text,
            reason="silence+final" if caught_up else "max_delay",
            decided_at=now,
            speech_ended_at=self._ended_at,
            final_at=self._final_at,
        )
        self.reset()
        if not text:
            self.discarded_turns += 1
            return None
        self._drop_late = owed
        return decision


class SttEndOfTurn:
    """Commit as soon as the STT says END_OF_TURN (providers with their own turn model).

    The END_OF_TURN's text is used when it carries some, else the FINALs and
    INTERIM heard since the last commit. Everything is also fed to ``fallback``
    (default ``SilenceEndpointing`` with the given delays), whose decisions stand
    when the provider does not send END_OF_TURN for a turn.
    """

    def __init__(
        self,
        fallback: EndpointingStrategy | None = None,
        *,
        min_endpointing_delay: float = 0.2,
        max_endpointing_delay: float = 0.6,
    ) -> None:
        self.fallback = fallback or SilenceEndpointing(min_endpointing_delay, max_endpointing_delay)
        self._text = _TurnText()
        self._due: TurnDecision | None = None
        self._speech_ended_at: float | None = None
        self._final_at: float | None = None

    def reset(self) -> None:
        self.fallback.reset()
        self._text.clear()
        self._due = None
        self._speech_ended_at = None
        self._final_at = None

    def on_speech_start(self, now: float) -> None:
        self._speech_ended_at = None
        self.fallback.on_speech_start(now)

    def on_speech_end(self, now: float) -> None:
        self._speech_ended_at = now
        self.fallback.on_speech_end(now)

    def on_transcript(self, event: SpeechEvent, now: float) -> None:
        if event.type is not SpeechEventType.END_OF_TURN:
            self._text.add(event)
            if event.type is SpeechEventType.FINAL:
                self._final_at = now
            self.fallback.on_transcript(event, now)
            return
        text = event.text.strip() or self._text.text()
        ended_at, final_at = self._speech_ended_at, self._final_at
        self.reset()  # this turn is over for the fallback too
        if text:
            self._due = TurnDecision(text, "stt_end_of_turn", now, ended_at, final_at)

    def next_deadline(self) -> float | None:
        if self._due is not None:
            return self._due.decided_at
        return self.fallback.next_deadline()

    def poll(self, now: float) -> TurnDecision | None:
        if self._due is not None:
            due, self._due = self._due, None
            return due
        decision = self.fallback.poll(now)
        if decision is not None:
            self._text.clear()
            self._speech_ended_at = None
            self._final_at = None
        return decision


def endpointing_for(
    stt: object, min_delay: float = 0.2, max_delay: float = 0.6
) -> EndpointingStrategy:
    """``SttEndOfTurn`` for an STT with a truthy ``provides_end_of_turn``, else silence."""
    if getattr(stt, "provides_end_of_turn", False):
        return SttEndOfTurn(min_endpointing_delay=min_delay, max_endpointing_delay=max_delay)
    return SilenceEndpointing(min_delay, max_delay)
