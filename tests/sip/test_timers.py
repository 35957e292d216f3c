"""SipTimers: RFC 3261 Table 4 values derived from T1, T2, T4 (plus RFC 6026 L and M)."""

from __future__ import annotations

import math

import pytest

from siphon.sip.timers import RETRANSMISSION_TIMERS, SipTimers, TimerName


def test_defaults_are_rfc_3261_values() -> None:
    timers = SipTimers()
    assert (timers.t1, timers.t2, timers.t4) == (0.5, 4.0, 5.0)
    assert timers.transaction_timeout == 32.0


@pytest.mark.parametrize(
    ("name", "unreliable", "reliable"),
    [
        (TimerName.A, 0.5, 0.5),
        (TimerName.B, 32.0, 32.0),
        (TimerName.D, 32.0, 0.0),
        (TimerName.E, 0.5, 0.5),
        (TimerName.F, 32.0, 32.0),
        (TimerName.G, 0.5, 0.5),
        (TimerName.H, 32.0, 32.0),
        (TimerName.I, 5.0, 0.0),
        (TimerName.J, 32.0, 0.0),
        (TimerName.K, 5.0, 0.0),
        (TimerName.L, 32.0, 32.0),
        (TimerName.M, 32.0, 32.0),
        (TimerName.TRYING, 0.1, 0.1),  # §17.2.1: within 200 ms, whatever the transport
    ],
)
def test_default_durations(name: TimerName, unreliable: float, reliable: float) -> None:
    timers = SipTimers()
    assert timers.for_timer(name, reliable=False) == unreliable
    assert timers.for_timer(name, reliable=True) == reliable


def test_every_timer_has_a_duration() -> None:
    timers = SipTimers()
    for name in TimerName:
        assert timers.for_timer(name, False) > 0


def test_letters_are_accepted() -> None:
    assert SipTimers().for_timer("b", reliable=False) == 32.0
    assert SipTimers().for_timer("K", reliable=True) == 0.0
    with pytest.raises(ValueError):
        SipTimers().for_timer("C", reliable=False)


def test_derived_values_follow_t1_and_t4() -> None:
    timers = SipTimers(t1=1.0, t2=8.0, t4=10.0)
    assert timers.for_timer(TimerName.B, False) == 64.0
    assert timers.for_timer(TimerName.F, False) == 64.0
    assert timers.for_timer(TimerName.H, False) == 64.0
    assert timers.for_timer(TimerName.J, False) == 64.0
    assert timers.for_timer(TimerName.L, False) == 64.0
    assert timers.for_timer(TimerName.M, False) == 64.0
    assert timers.for_timer(TimerName.I, False) == 10.0
    assert timers.for_timer(TimerName.K, False) == 10.0
    assert timers.for_timer(TimerName.A, False) == 1.0
    # Timer D covers the server's retransmission window, 64*T1.
    assert timers.for_timer(TimerName.D, False) == 64.0


def test_timer_d_is_at_least_32_seconds() -> None:
    timers = SipTimers(t1=0.1, t2=0.4, t4=0.5)
    assert timers.for_timer(TimerName.B, False) == pytest.approx(6.4)
    assert timers.for_timer(TimerName.D, False) == 32.0
    assert timers.for_timer(TimerName.D, True) == 0.0


def test_backoff() -> None:
    timers = SipTimers()
    assert timers.backoff(TimerName.A, 0.5) == 1.0
    assert timers.backoff(TimerName.A, 16.0) == 32.0  # A is not capped
    assert timers.backoff(TimerName.E, 0.5) == 1.0
    assert timers.backoff(TimerName.E, 2.0) == 4.0
    assert timers.backoff(TimerName.E, 4.0) == 4.0  # capped at T2
    assert timers.backoff("g", 4.0) == 4.0
    with pytest.raises(ValueError, match="only A, E and G"):
        timers.backoff(TimerName.B, 32.0)


def test_retransmission_timers() -> None:
    assert frozenset({TimerName.A, TimerName.E, TimerName.G}) == RETRANSMISSION_TIMERS


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"t1": 0}, "t1 must be a positive"),
        ({"t1": -0.5}, "t1 must be a positive"),
        ({"t1": math.nan}, "t1 must be a positive"),
        ({"t1": math.inf}, "t1 must be a positive"),
        ({"t4": 0}, "t4 must be a positive"),
        ({"t2": 0.25}, r"t2 \(0.25\) must be >= t1 \(0.5\): raise t2 or lower t1"),
        ({"t1": "0.5"}, "t1 must be a number of seconds"),
        ({"t2": True}, "t2 must be a number of seconds"),
        ({"trying": 0.25}, r"trying must be 0 to 0.2 seconds \(RFC 3261 §17.2.1"),
        ({"trying": -0.01}, "trying must be 0 to 0.2 seconds"),
        ({"trying": math.nan}, "trying must be 0 to 0.2 seconds"),
        ({"trying": True}, "trying must be 0 to 0.2 seconds"),
        ({"trying": "0.1"}, "trying must be 0 to 0.2 seconds"),
    ],
)
def test_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SipTimers(**kwargs)  # type: ignore[arg-type]


def test_trying_zero_and_the_rfc_bound_are_accepted() -> None:
    assert SipTimers(trying=0).for_timer(TimerName.TRYING, False) == 0.0
    assert SipTimers(trying=0.2).for_timer("trying", True) == 0.2
    # Independent of T1: a fast test's T1 leaves the 100 Trying where §17.2.1 puts it.
    assert SipTimers(t1=0.05, t2=0.4).for_timer(TimerName.TRYING, False) == 0.1


def test_t2_equal_to_t1_is_fine() -> None:
    timers = SipTimers(t1=2.0, t2=2.0)
    assert timers.backoff(TimerName.G, 2.0) == 2.0


def test_frozen() -> None:
    timers = SipTimers()
    with pytest.raises(AttributeError):
        timers.t1 = 1.0  # type: ignore[misc]
