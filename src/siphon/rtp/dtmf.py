"""RFC 4733 telephone-events (formerly RFC 2833): DTMF digits carried in RTP.

Sans-IO: nothing here reads a clock or touches a socket. The media session feeds
received telephone-event payloads to a ``DtmfReceiver`` (with the RTP timestamp,
the marker bit and ``now``) and asks a ``DtmfSender`` on every packetisation tick
whether a DTMF packet replaces the audio packet of that tick.

Payload (RFC 4733 §2.3, 4 bytes, network order)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     event     |E|R| volume    |          duration             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Event codes (RFC 4733 §3.2): 0-9 the digits, 10 ``*``, 11 ``#``, 12-15 ``A``-``D``
and 16 hook flash, written ``!`` here (the symbol SIP INFO ``dtmf-relay`` bodies
use for it).
"""

from __future__ import annotations

import math
import struct
from collections import deque
from dataclasses import dataclass

from siphon.errors import ConfigError
from siphon.events import DtmfReceived

__all__ = [
    "DIGITS",
    "DIGIT_TO_EVENT",
    "EVENT_TO_DIGIT",
    "FLASH",
    "DtmfPacket",
    "DtmfReceiver",
    "DtmfSender",
    "TelephoneEvent",
    "digit_to_event",
    "event_to_digit",
    "parse_event",
]

FLASH = "!"
"""The symbol used for event 16, hook flash."""

DIGITS = "0123456789*#ABCD"
"""The sixteen DTMF keys, in event-code order (event code = index)."""

EVENT_TO_DIGIT: dict[int, str] = {code: key for code, key in enumerate(DIGITS)} | {16: FLASH}
DIGIT_TO_EVENT: dict[str, int] = {key: code for code, key in EVENT_TO_DIGIT.items()}

MAX_DURATION = 0xFFFF
"""The largest duration field, in timestamp units (~8.2 s at 8 kHz)."""

END_PACKETS = 3
"""How many times the final (end-bit) packet of an event is sent (RFC 4733 §2.5.1.4)."""

_PAYLOAD = struct.Struct("!BBH")
_TS_MASK = 0xFFFFFFFF


def event_to_digit(event: int) -> str | None:
    """``"0"``-``"9"``, ``"*"``, ``"#"``, ``"A"``-``"D"`` or ``"!"``; None for other events."""
    return EVENT_TO_DIGIT.get(event)


def digit_to_event(digit: str) -> int:
    """The event code of a key (``a``-``d`` accepted); ConfigError naming the valid keys."""
    code = DIGIT_TO_EVENT.get(digit.upper()) if len(digit) == 1 else None
    if code is None:
        raise ConfigError(
            f"invalid DTMF digit {digit!r}: use one of 0-9 * # A-D, or {FLASH!r} for hook flash"
        )
    return code


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 event payload.

    ``volume`` is the power level in -dBm0 (0-63; larger is quieter), ``duration``
    is in RTP timestamp units since the event's start (its RTP timestamp).
    """

    event: int
    end: bool
    volume: int
    duration: int

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 0xFF:
            raise ConfigError(f"event code {self.event} out of range 0-255")
        if not 0 <= self.volume <= 63:
            raise ConfigError(f"volume {self.volume} out of range 0-63 (-dBm0)")
        if not 0 <= self.duration <= MAX_DURATION:
            raise ConfigError(f"duration {self.duration} out of range 0-{MAX_DURATION}")

    @property
    def digit(self) -> str | None:
        return event_to_digit(self.event)

    def to_bytes(self) -> bytes:
        """The 4-byte payload; the reserved bit R is sent as zero."""
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def parse_event(payload: bytes) -> TelephoneEvent | None:
    """Decode a telephone-event payload; None when it is shorter than 4 bytes.

    Never raises: the caller counts the None. Only the first event block is read
    (RFC 4733 §2.5.1.5 allows several, later ones being for the same instant), and
    the reserved bit is ignored as §2.3 requires of receivers.
    """
    if len(payload) < 4:
        return None
    event, flags, duration = _PAYLOAD.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


# --------------------------------------------------------------------------- receiver


@dataclass(slots=True)
class _Event:
    timestamp: int
    code: int
    duration: int
    last_seen: float


class DtmfReceiver:
    """Turns received telephone-event packets into one ``DtmfReceived`` per key press.

    An event is identified by its RTP timestamp (its start, constant over all of its
    packets) and event code. Packets of one event carry a growing duration; the one
    with the end bit (sent three times) ends it, and the press is reported then,
    with ``duration_ms`` taken from that final duration field.

    Loss tolerance:

    * start packet lost (no marker ever seen): the first packet seen, be it an
      update or an end packet, opens the event, so it is still reported;
    * all end packets lost: the event is reported when a packet of a *different*
      event arrives, or by ``poll(now)`` once no packet of it has been seen for
      ``end_timeout`` seconds (0.3 s by default: senders update at least every
      50 ms or so, so six missed updates in a row mean the end packets were lost);
      ``duration_ms`` is then the largest duration seen;
    * redundant or duplicated end packets, and late packets of an event already
      reported (kept in a short memory of recent events) are dropped.

    A press reported by timeout is not reported again when its end packets do turn
    up late. Two presses of the same key are two events (two timestamps). Events
    other than 0-16 (tones, modem signals) are ignored and counted in ``ignored``;
    payloads shorter than 4 bytes are counted in ``invalid``.

    ``on_packet`` returns at most one press. In the rare case where one packet both
    closes a pending event (its end packets lost) and is itself the end of a new
    event (everything but its end lost too), the second press is queued and
    returned by the next ``poll`` call, which the media session makes every tick.

    Long events split into segments (RFC 4733 §2.5.1.3, > 8 s at 8 kHz) are
    reported once per segment.
    """

    def __init__(
        self, clock_rate: int = 8000, *, end_timeout: float = 0.3, source: str = "rtp"
    ) -> None:
        if clock_rate <= 0:
            raise ConfigError(f"clock_rate must be positive, not {clock_rate}")
        if end_timeout <= 0:
            raise ConfigError(f"end_timeout must be positive, not {end_timeout}")
        self.clock_rate = clock_rate
        self.end_timeout = end_timeout
        self.source = source
        self.invalid = 0
        self.ignored = 0
        self._current: _Event | None = None
        self._done: deque[tuple[int, int]] = deque(maxlen=32)
        self._pending: deque[DtmfReceived] = deque()

    @property
    def active(self) -> bool:
        """Whether a key press is in progress (started, not yet reported)."""
        return self._current is not None

    def reset(self) -> None:
        """Forget all state, e.g. when the peer's SSRC changes; nothing is reported."""
        self._current = None
        self._done.clear()
        self._pending.clear()

    def on_packet(
        self, timestamp: int, marker: bool, payload: bytes, now: float
    ) -> DtmfReceived | None:
        """Feed one telephone-event RTP packet (its header timestamp and marker bit).

        The marker bit only says that the sender believes this is the first packet
        of an event; events are keyed on the timestamp, so it is not needed.
        """
        del marker
        ev = parse_event(payload)
        if ev is None:
            self.invalid += 1
            return None
        if ev.event not in EVENT_TO_DIGIT:
            self.ignored += 1
            return None
        key = (timestamp & _TS_MASK, ev.event)
        if key in self._done:
            return None  # redundant end packet or a late one of a reported press
        cur = self._current
        if cur is not None and (cur.timestamp, cur.code) == key:
            cur.duration = max(cur.duration, ev.duration)
            cur.last_seen = now
            return self._finish() if ev.end else None
        if cur is not None and _ts_before(key[0], cur.timestamp):
            return None  # reordered packet of an older event we never saw: too late
        flushed = self._finish() if cur is not None else None
        self._current = _Event(key[0], ev.event, ev.duration, now)
        if ev.end:
            ended = self._finish()
            if flushed is None:
                return ended
            self._pending.append(ended)
        return flushed

    def poll(self, now: float) -> DtmfReceived | None:
        """A press whose end packets were all lost (after ``end_timeout``), or a queued one."""
        if self._pending:
            return self._pending.popleft()
        cur = self._current
        if cur is not None and now - cur.last_seen >= self.end_timeout:
            return self._finish()
        return None

    def _finish(self) -> DtmfReceived:
        cur = self._current
        assert cur is not None
        self._current = None
        self._done.append((cur.timestamp, cur.code))
        duration_ms = round(cur.duration * 1000 / self.clock_rate)
        return DtmfReceived(EVENT_TO_DIGIT[cur.code], duration_ms, self.source)


def _ts_before(a: int, b: int) -> bool:
    """RTP timestamp ``a`` precedes ``b`` (serial-number arithmetic, RFC 1982)."""
    return a != b and ((b - a) & _TS_MASK) < 0x80000000


# --------------------------------------------------------------------------- sender


@dataclass(frozen=True, slots=True)
class DtmfPacket:
    """One telephone-event packet for the media session to send on this tick.

    The session sends ``payload`` with ``payload_type`` (the negotiated
    telephone-event type), ``marker`` and RTP timestamp ``timestamp`` (the event's
    start, the same for all its packets), under its own next sequence number, and
    sends no audio packet for this tick (RFC 4733 §2.5.1.3).
    """

    payload: bytes
    marker: bool
    timestamp: int
    end: bool
    payload_type: int


@dataclass(frozen=True, slots=True)
class _Press:
    code: int
    duration: int  # timestamp units


class DtmfSender:
    """Queues key presses and emits their RFC 4733 packets, one per media tick.

    The media session calls ``next_packet(timestamp)`` on every packetisation tick
    (every ``ptime_ms``) with the RTP timestamp its audio packet would carry. If it
    returns a ``DtmfPacket``, the session sends that instead of audio; if None, it
    sends audio as usual. Per key press:

    * the first packet, sent on the tick the press starts, has the marker bit and
      takes that tick's timestamp as the event timestamp, kept by all its packets;
    * each tick the duration grows by one ptime (160, 320, ... at 8 kHz, 20 ms);
    * on the tick the duration reaches the press's length the end bit is set, and
      that final packet is sent three times in all, on three consecutive ticks;
    * then ``gap_ms`` (rounded up to whole ticks) of audio before the next press.

    The press length is rounded up to a whole number of ticks. ``volume`` is the
    power level in -dBm0 (10 means -10 dBm0).
    """

    def __init__(
        self,
        payload_type: int,
        clock_rate: int = 8000,
        volume: int = 10,
        ptime_ms: int = 20,
        *,
        gap_ms: int = 60,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise ConfigError(f"payload_type must be 0-127, not {payload_type}")
        if clock_rate <= 0:
            raise ConfigError(f"clock_rate must be positive, not {clock_rate}")
        if not 0 <= volume <= 63:
            raise ConfigError(f"volume must be 0-63 (-dBm0), not {volume}")
        if ptime_ms <= 0 or clock_rate * ptime_ms % 1000:
            raise ConfigError(
                f"ptime_ms={ptime_ms} must be positive and a whole number of samples "
                f"at {clock_rate} Hz"
            )
        if gap_ms < 0:
            raise ConfigError(f"gap_ms must not be negative, not {gap_ms}")
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.volume = volume
        self.ptime_ms = ptime_ms
        self.gap_ms = gap_ms
        self._step = clock_rate * ptime_ms // 1000
        self._gap_ticks = math.ceil(gap_ms / ptime_ms)
        self._queue: deque[_Press] = deque()
        self._press: _Press | None = None
        self._event_ts = 0
        self._elapsed = 0  # duration sent so far, timestamp units
        self._ends_sent = 0
        self._gap_left = 0

    def send(self, digits: str, duration_ms: int = 100) -> None:
        """Queue one key press per character of ``digits`` (0-9 * # A-D, ``!`` flash).

        ``duration_ms`` is the tone length of each press, at least one ptime and
        at most what the 16-bit duration field holds at this clock rate.
        """
        if not digits:
            raise ConfigError("no DTMF digit to send: use one of 0-9 * # A-D")
        codes = [digit_to_event(d) for d in digits]
        max_ms = MAX_DURATION * 1000 // self.clock_rate
        if not self.ptime_ms <= duration_ms <= max_ms:
            raise ConfigError(
                f"DTMF duration_ms={duration_ms} must be between {self.ptime_ms} and {max_ms}"
            )
        ticks = math.ceil(duration_ms / self.ptime_ms)
        duration = min(ticks * self._step, MAX_DURATION)
        self._queue.extend(_Press(code, duration) for code in codes)

    @property
    def active(self) -> bool:
        """Whether a press is being sent (audio is suspended on its ticks)."""
        return self._press is not None

    @property
    def busy(self) -> bool:
        """Whether anything is in progress, queued, or in an inter-digit gap."""
        return self._press is not None or bool(self._queue) or self._gap_left > 0

    @property
    def pending(self) -> int:
        """Presses queued and not yet started."""
        return len(self._queue)

    def cancel(self) -> None:
        """Drop the queued presses; a press already started is still ended properly."""
        self._queue.clear()

    def next_packet(self, timestamp: int) -> DtmfPacket | None:
        """The DTMF packet for this tick, or None to send audio on it.

        ``timestamp`` is the RTP timestamp of this tick on the session's media
        clock; it becomes the event timestamp when a press starts on this tick.
        """
        if self._press is None:
            if self._gap_left > 0:
                self._gap_left -= 1
                return None
            if not self._queue:
                return None
            self._press = self._queue.popleft()
            self._event_ts = timestamp & _TS_MASK
            self._elapsed = 0
            self._ends_sent = 0
        press = self._press
        marker = self._elapsed == 0 and self._ends_sent == 0
        if self._elapsed < press.duration:
            self._elapsed = min(self._elapsed + self._step, press.duration)
        end = self._elapsed >= press.duration
        if end:
            self._ends_sent += 1
            if self._ends_sent >= END_PACKETS:
                self._press = None
                self._gap_left = self._gap_ticks
        payload = TelephoneEvent(press.code, end, self.volume, self._elapsed).to_bytes()
        return DtmfPacket(payload, marker, self._event_ts, end, self.payload_type)
