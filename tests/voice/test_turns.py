"""Endpointing strategies, one test per decision rule, driven with plain numbers."""

from __future__ import annotations

import pytest

from siphon.plugins.base import SpeechEvent, SpeechEventType
from siphon.voice.turns import (
    EndpointingStrategy,
    SilenceEndpointing,
    SttEndOfTurn,
    TurnDecision,
    endpointing_for,
)

INTERIM, FINAL, EOT = SpeechEventType.INTERIM, SpeechEventType.FINAL, SpeechEventType.END_OF_TURN


def ev(kind: SpeechEventType, text: str = "") -> SpeechEvent:
    return SpeechEvent(kind, text)


def poll_until(strategy: EndpointingStrategy, until: float) -> TurnDecision | None:
    """Poll at every deadline up to ``until``, as the runtime does."""
    while (deadline := strategy.next_deadline()) is not None and deadline <= until:
        if (decision := strategy.poll(deadline)) is not None:
            return decision
    return None


# -- SilenceEndpointing -----------------------------------------------------------------
def test_final_before_speech_end_commits_min_delay_after_the_end() -> None:
    s = SilenceEndpointing(0.2, 0.6)
    s.on_speech_start(1.0)
    s.on_transcript(ev(INTERIM, "book a"), 1.5)
    s.on_transcript(ev(FINAL, "Book a table."), 1.9)
    s.on_speech_end(2.0)
    assert s.next_deadline() == pytest.approx(2.2)
    assert s.poll(2.19) is None
    assert s.poll(2.2) == TurnDecision("Book a table.", "silence+final", 2.2, 2.0, 1.9)


def test_final_after_the_min_delay_commits_when_it_arrives() -> None:
    s = SilenceEndpointing(0.2, 0.6)
    s.on_speech_start(1.0)
    s.on_transcript(ev(INTERIM, "hello"), 1.5)
    s.on_speech_end(2.0)
    assert s.next_deadline() == pytest.approx(2.6)  # waiting for the final
    s.on_transcript(ev(FINAL, "Hello."), 2.35)
    assert s.next_deadline() == pytest.approx(2.35)
    decision = s.poll(2.35)
    assert decision is not None
    assert (decision.text, decision.reason, decision.final_at) == ("Hello.", "silence+final", 2.35)


def test_no_final_by_max_delay_commits_finals_and_the_latest_interim() -> None:
    s = SilenceEndpointing(0.2, 0.6)
    s.on_speech_start(0.0)
    s.on_transcript(ev(FINAL, "I'd like"), 0.8)
    s.on_transcript(ev(INTERIM, "to pay"), 1.2)
    s.on_transcript(ev(INTERIM, "to pay my bill"), 1.4)
    s.on_speech_end(1.5)
    assert s.poll(2.09) is None
    assert s.poll(2.1) == TurnDecision("I'd like to pay my bill", "max_delay", 2.1, 1.5, 0.8)


def test_late_transcripts_of_a_committed_interim_are_dropped_until_its_final() -> None:
    s = SilenceEndpointing(0.2, 0.6)
    s.on_speech_start(0.0)
    s.on_transcript(ev(INTERIM, "yes please"), 0.5)
    s.on_speech_end(1.0)
    assert s.poll(1.6) is not None
    s.on_transcript(ev(INTERIM, "yes please"), 1.7)
    s.on_transcript(ev(FINAL, "Yes, please."), 1.8)  # settles what was committed
    s.on_transcript(ev(FINAL, "And a receipt."), 2.5)  # new text: kept
    assert s.dropped_late_transcripts == 2
    s.on_speech_start(3.0)
    s.on_speech_end(3.5)
    decision = poll_until(s, 5.0)
    assert decision is not None and decision.text == "And a receipt."


def test_speech_restart_clears_the_late_transcript_guard() -> None:
    s = SilenceEndpointing(0.2, 0.6)
    s.on_speech_start(0.0)
    s.on_transcript(ev(INTERIM, "one"), 0.5)
    s.on_speech_end(1.0)
    assert s.poll(1.6) is not None
    s.on_speech_start(2.0)
    s.on_transcript(ev(FINAL, "Two."), 2.4)
    s.on_speech_end(2.5)
    decision = poll_until(s, 5.0)
    assert decision is not None and decision.text == "Two."
    assert s.dropped_late_transcripts == 0


def test_no_text_at_all_is_discarded_and_counted() -> None:
    s = SilenceEndpointing(0.2, 0.6)
    s.on_speech_start(0.0)
    s.on_speech_end(0.3)  # a cough
    assert s.next_deadline() == pytest.approx(0.9)
    assert s.poll(0.9) is None
    assert s.discarded_turns == 1
    assert s.next_deadline() is None  # reset: nothing pending


def test_empty_final_settles_a_textless_turn_early() -> None:
    s = SilenceEndpointing(0.2, 0.6)
    s.on_speech_start(0.0)
    s.on_speech_end(0.3)
    s.on_transcript(ev(FINAL, ""), 0.35)  # the STT's answer to the flush: nothing heard
    assert s.next_deadline() == pytest.approx(0.5)
    assert s.poll(0.5) is None
    assert s.discarded_turns == 1


def test_speech_restarting_cancels_the_commit_and_keeps_the_text() -> None:
    s = SilenceEndpointing(0.2, 0.6)
    s.on_speech_start(0.0)
    s.on_transcript(ev(FINAL, "My number is"), 0.9)
    s.on_speech_end(1.0)
    s.on_speech_start(1.1)  # the caller was pausing
    assert s.next_deadline() is None
    assert s.poll(5.0) is None
    s.on_transcript(ev(FINAL, "five five five."), 2.0)
    s.on_speech_end(2.1)
    decision = poll_until(s, 5.0)
    assert decision == TurnDecision(
        "My number is five five five.", "silence+final", pytest.approx(2.3), 2.1, 2.0
    )


def test_speech_restart_needs_a_new_final_before_committing_early() -> None:
    s = SilenceEndpointing(0.2, 0.6)
    s.on_speech_start(0.0)
    s.on_transcript(ev(FINAL, "Hello."), 0.9)
    s.on_speech_start(1.0)  # more speech the STT has not answered yet
    s.on_speech_end(1.5)
    assert s.next_deadline() == pytest.approx(2.1)


def test_several_finals_are_joined_with_spaces() -> None:
    s = SilenceEndpointing(0.2, 0.6)
    s.on_speech_start(0.0)
    for k, text in enumerate(["  One. ", "Two.", "", "Three."]):
        s.on_transcript(ev(FINAL, text), 0.5 + k * 0.1)
    s.on_speech_end(1.0)
    decision = s.poll(1.2)
    assert decision is not None and decision.text == "One. Two. Three."


def test_final_supersedes_earlier_interims() -> None:
    s = SilenceEndpointing(0.2, 0.6)
    s.on_speech_start(0.0)
    s.on_transcript(ev(INTERIM, "wreck a nice"), 0.4)
    s.on_transcript(ev(FINAL, "Recognise speech."), 0.6)
    s.on_speech_end(1.0)
    decision = s.poll(1.2)
    assert decision is not None and decision.text == "Recognise speech."


def test_decides_once_and_nothing_while_speaking() -> None:
    s = SilenceEndpointing(0.2, 0.6)
    s.on_speech_start(0.0)
    s.on_transcript(ev(FINAL, "Hi."), 0.3)
    assert s.next_deadline() is None
    assert s.poll(10.0) is None
    s.on_speech_end(0.5)
    assert s.poll(0.7) is not None
    assert s.poll(0.8) is None
    assert s.next_deadline() is None


def test_reset_drops_the_turn() -> None:
    s = SilenceEndpointing(0.2, 0.6)
    s.on_speech_start(0.0)
    s.on_transcript(ev(FINAL, "Hi."), 0.3)
    s.on_speech_end(0.5)
    s.reset()
    assert s.next_deadline() is None and s.poll(5.0) is None


@pytest.mark.parametrize(("lo", "hi"), [(-0.1, 0.5), (0.7, 0.6)])
def test_bad_delays(lo: float, hi: float) -> None:
    with pytest.raises(ValueError):
        SilenceEndpointing(lo, hi)


# -- SttEndOfTurn ------------------------------------------------------------------------
def test_end_of_turn_commits_at_once_with_the_accumulated_text() -> None:
    s = SttEndOfTurn()
    s.on_speech_start(0.0)
    s.on_transcript(ev(FINAL, "Cancel my"), 0.6)
    s.on_transcript(ev(INTERIM, "order"), 0.8)
    s.on_transcript(ev(EOT), 0.9)  # before the VAD even saw the end
    assert s.next_deadline() == 0.9
    assert s.poll(0.9) == TurnDecision("Cancel my order", "stt_end_of_turn", 0.9, None, 0.6)
    assert s.poll(0.9) is None


def test_end_of_turn_text_wins_over_the_accumulated_text() -> None:
    s = SttEndOfTurn()
    s.on_speech_start(0.0)
    s.on_transcript(ev(INTERIM, "cancel my ordeal"), 0.8)
    s.on_speech_end(1.0)
    s.on_transcript(ev(EOT, "Cancel my order."), 1.1)
    decision = s.poll(1.1)
    assert decision is not None
    assert (decision.text, decision.speech_ended_at) == ("Cancel my order.", 1.0)


def test_end_of_turn_without_any_text_commits_nothing() -> None:
    s = SttEndOfTurn()
    s.on_speech_start(0.0)
    s.on_transcript(ev(EOT), 0.5)
    assert s.next_deadline() is None and s.poll(0.5) is None


def test_without_end_of_turn_the_fallback_decides() -> None:
    s = SttEndOfTurn(min_endpointing_delay=0.1, max_endpointing_delay=0.4)
    s.on_speech_start(0.0)
    s.on_transcript(ev(FINAL, "Hello."), 0.5)
    s.on_speech_end(0.6)
    assert s.next_deadline() == pytest.approx(0.7)
    decision = s.poll(0.7)
    assert decision is not None and (decision.text, decision.reason) == ("Hello.", "silence+final")


def test_end_of_turn_resets_the_fallback() -> None:
    s = SttEndOfTurn()
    s.on_speech_start(0.0)
    s.on_transcript(ev(FINAL, "Yes."), 0.4)
    s.on_transcript(ev(EOT), 0.45)
    assert s.poll(0.45) is not None
    s.on_speech_end(0.5)  # the VAD's end of the speech already committed
    assert poll_until(s, 5.0) is None  # no second commit of "Yes."


def test_fallback_commit_clears_the_end_of_turn_text() -> None:
    s = SttEndOfTurn()
    s.on_speech_start(0.0)
    s.on_transcript(ev(FINAL, "One."), 0.4)
    s.on_speech_end(0.5)
    assert poll_until(s, 5.0) is not None
    s.on_speech_start(6.0)
    s.on_transcript(ev(FINAL, "Two."), 6.4)
    s.on_transcript(ev(EOT), 6.5)
    decision = s.poll(6.5)
    assert decision is not None and decision.text == "Two."


def test_custom_fallback_is_used() -> None:
    class Never:
        def on_speech_start(self, now: float) -> None: ...
        def on_speech_end(self, now: float) -> None: ...
        def on_transcript(self, event: SpeechEvent, now: float) -> None: ...
        def poll(self, now: float) -> TurnDecision | None:
            return None

        def next_deadline(self) -> float | None:
            return None

        def reset(self) -> None: ...

    never = Never()
    assert isinstance(never, EndpointingStrategy)
    s = SttEndOfTurn(never)
    s.on_speech_start(0.0)
    s.on_transcript(ev(FINAL, "Hello."), 0.5)
    s.on_speech_end(0.6)
    assert s.fallback is never
    assert poll_until(s, 10.0) is None


# -- endpointing_for ------------------------------------------------------------------------
class PlainSTT:
    sample_rate = 16000


class TurnAwareSTT:
    sample_rate = 16000
    provides_end_of_turn = True


class OptedOutSTT:
    sample_rate = 16000
    provides_end_of_turn = False


@pytest.mark.parametrize(
    ("stt", "kind"),
    [
        (PlainSTT(), SilenceEndpointing),
        (TurnAwareSTT(), SttEndOfTurn),
        (OptedOutSTT(), SilenceEndpointing),
    ],
)
def test_endpointing_for_picks_by_provides_end_of_turn(stt: object, kind: type) -> None:
    strategy = endpointing_for(stt, 0.3, 0.9)
    assert isinstance(strategy, kind)
    silence = strategy.fallback if isinstance(strategy, SttEndOfTurn) else strategy
    assert isinstance(silence, SilenceEndpointing)
    assert (silence.min_endpointing_delay, silence.max_endpointing_delay) == (0.3, 0.9)
    assert isinstance(strategy, EndpointingStrategy)
