"""SIP transaction timer values (RFC 3261 §17, Table 4; RFC 6026 for L and M).

One ``SipTimers`` value holds the three base constants and derives every named timer
from them, so changing T1 (for a slow satellite link, or a fast test) moves all of
them together:

======  ============================  =====================  ============
Timer   Purpose                       Unreliable (UDP)       Reliable
======  ============================  =====================  ============
A       INVITE retransmit (doubles)   T1 initially           not started
B       INVITE transaction timeout    64*T1                  64*T1
D       wait for response retransmit  max(32 s, 64*T1)       0
E       non-INVITE retransmit         T1, doubling to T2     not started
F       non-INVITE timeout            64*T1                  64*T1
G       INVITE response retransmit    T1, doubling to T2     not started
H       wait for ACK receipt          64*T1                  64*T1
I       wait for ACK retransmits      T4                     0
J       wait for request retransmit   64*T1                  0
K       wait for response retransmit  T4                     0
L       Accepted: wait for INVITE     64*T1                  64*T1
        retransmits (RFC 6026)
M       Accepted: wait for 2xx        64*T1                  64*T1
        retransmits (RFC 6026)
Trying  wait for the TU's first       ``trying`` (0.1 s)     ``trying``
        INVITE response, then send
        100 Trying (§17.2.1)
======  ============================  =====================  ============

Timer D must be *at least* 32 s on unreliable transports (§17.1.1.2); it also never
drops below 64*T1, the time a server may keep retransmitting its final response.

The Trying timer is not named by the RFC; it carries the 200 ms of §17.2.1: the server
transaction MUST send 100 Trying unless the TU sends a response within 200 ms. A TU
that rings or answers at once saves a datagram each way per call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

__all__ = ["RETRANSMISSION_TIMERS", "SipTimers", "TimerName"]


class TimerName(Enum):
    """The named timers of RFC 3261 §17 (A-K), RFC 6026 (L, M) and §17.2.1's Trying."""

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name
    J = "J"
    K = "K"
    L = "L"
    M = "M"
    TRYING = "TRYING"  # §17.2.1's 200 ms: 100 Trying unless the TU has responded

    # Members are singletons compared by identity: identity hashing (C) is equivalent
    # to Enum's hash of the name (Python), and timers are dictionary keys on hot paths.
    __hash__ = object.__hash__


# Timers that only retransmit: never started on reliable transports (§17.1.1.2,
# §17.1.2.2, §17.2.1).
RETRANSMISSION_TIMERS = frozenset({TimerName.A, TimerName.E, TimerName.G})

# Timers lasting 64*T1 whatever the transport.
_RUN_FOR_64_T1 = frozenset({TimerName.B, TimerName.F, TimerName.H, TimerName.L, TimerName.M})

# RFC 3261 §17.1.1.2: Timer D is at least 32 s on unreliable transports.
_TIMER_D_MINIMUM = 32.0

# RFC 3261 §17.2.1: 100 Trying within 200 ms unless the TU responds first.
_TRYING_MAXIMUM = 0.2


def _check(name: str, value: object, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"SipTimers.{name} must be a number of seconds (RFC 3261 default {default}), "
            f"got {value!r}"
        )
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(
            f"SipTimers.{name} must be a positive, finite number of seconds "
            f"(RFC 3261 default {default}), got {value!r}"
        )
    return number


@dataclass(frozen=True, slots=True)
class SipTimers:
    """The base timer constants (RFC 3261 §17.1.1.1, Table 4), in seconds.

    ``t1`` estimates the round-trip time, ``t2`` caps the retransmit interval of
    non-INVITE requests and INVITE responses, ``t4`` is how long a message may live
    in the network. ``trying`` is how long an INVITE server transaction waits for the
    TU's first response before it sends 100 Trying itself (0 sends it once the TU has
    seen the INVITE, unless it responded; at most 0.2 s, §17.2.1). Raises
    ``ValueError`` unless ``t1 > 0``, ``t2 >= t1``, ``t4 > 0`` and ``0 <= trying <= 0.2``.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    trying: float = 0.1

    def __post_init__(self) -> None:
        t1 = _check("t1", self.t1, 0.5)
        t2 = _check("t2", self.t2, 4.0)
        _check("t4", self.t4, 5.0)
        if t2 < t1:
            raise ValueError(
                f"SipTimers.t2 ({self.t2}) must be >= t1 ({self.t1}): raise t2 or lower t1"
            )
        trying = self.trying
        if (
            isinstance(trying, bool)
            or not isinstance(trying, int | float)
            or not 0 <= trying <= _TRYING_MAXIMUM
        ):
            raise ValueError(
                f"SipTimers.trying must be 0 to {_TRYING_MAXIMUM} seconds (RFC 3261 §17.2.1: "
                f"100 Trying within 200 ms unless the TU responds; default 0.1), got {trying!r}"
            )

    @property
    def transaction_timeout(self) -> float:
        """64*T1: Timers B, F, H, J (unreliable), L and M."""
        return 64 * self.t1

    def for_timer(self, name: TimerName | str, reliable: bool) -> float:
        """The initial duration of timer ``name`` (``TimerName`` or its letter).

        Returns 0 for timers that fire at once on reliable transports (D, I, J, K).
        For A, E and G it returns the first retransmit interval (T1); transactions do
        not start those on reliable transports at all (see ``RETRANSMISSION_TIMERS``).
        """
        timer = name if isinstance(name, TimerName) else TimerName(name.upper())
        # 64*T1 written out rather than read from transaction_timeout: every
        # transaction starts a timer or two through here.
        if timer in _RUN_FOR_64_T1:  # B, F, H, L, M
            return 64 * self.t1
        if timer in RETRANSMISSION_TIMERS:
            return self.t1
        if timer is TimerName.J:
            return 0.0 if reliable else 64 * self.t1
        if timer is TimerName.D:
            return 0.0 if reliable else max(_TIMER_D_MINIMUM, 64 * self.t1)
        if timer is TimerName.TRYING:
            return float(self.trying)
        # I, K
        return 0.0 if reliable else self.t4

    def backoff(self, name: TimerName | str, previous: float) -> float:
        """The next interval of a retransmission timer after one that lasted ``previous``.

        Timer A doubles without bound (§17.1.1.2); E and G double up to T2
        (§17.1.2.2, §17.2.1).
        """
        timer = name if isinstance(name, TimerName) else TimerName(name.upper())
        if timer is TimerName.A:
            return 2 * previous
        if timer in (TimerName.E, TimerName.G):
            return min(2 * previous, self.t2)
        raise ValueError(f"timer {timer.value} does not back off; only A, E and G do")
