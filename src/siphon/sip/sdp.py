"""SDP (RFC 8866, formerly RFC 4566): model, parser, serializer, and RFC 3264
offer/answer for one audio stream.

Sans-IO and stdlib only. ``parse_sdp`` raises nothing but ``RemoteProtocolError``
on any bytes or str input; the negotiation helpers raise ``RemoteProtocolError`` (400/488) for
bad remote SDP and ``LocalProtocolError`` for bad arguments from our caller.

Lines we do not model (unknown ``x=`` types) are kept verbatim and written back at
the end of their level; attributes are an ordered list of ``(name, value)`` pairs
kept exactly as received, so a well-formed CRLF body round-trips byte for byte.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import FrozenInstanceError, dataclass, field, replace
from enum import Enum
from itertools import islice

from siphon.errors import LocalProtocolError, RemoteProtocolError
from siphon.tokens import randbits

__all__ = [
    "DEFAULT_CODECS",
    "DEFAULT_PTIME",
    "MAX_FORMATS",
    "MAX_LINES",
    "MAX_LINE_LENGTH",
    "MAX_MEDIA",
    "MAX_SDP_BYTES",
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT",
    "AnswerResult",
    "Attribute",
    "Bandwidth",
    "Codec",
    "Connection",
    "Direction",
    "MediaDescription",
    "NegotiatedMedia",
    "Origin",
    "Rtcp",
    "SdpSession",
    "SessionDescription",
    "Timing",
    "build_offer",
    "negotiate_answer",
    "parse_answer",
    "parse_sdp",
    "serialize",
]

# Limits that bound the work a hostile body can cause. Real SDP, even WebRTC SDP
# full of ICE candidates, stays far below all of them.
MAX_SDP_BYTES = 65536  # a whole SIP message rarely exceeds this
MAX_LINES = 2048
MAX_LINE_LENGTH = 4096  # longest real lines (fingerprint, candidate, fmtp) are < 1 KiB
MAX_MEDIA = 64  # m= lines
MAX_FORMATS = 128  # RTP has 128 payload types (RFC 3550 §5.1)
_MAX_INT_DIGITS = 20  # 64-bit NTP times fit; also keeps int() cheap

DEFAULT_PTIME = 20  # ms; RFC 3551 §4.5 default packetization for G.711

Attribute = tuple[str, str | None]
"""One ``a=`` line: ``(name, value)``; value is ``None`` for a property attribute."""


# --------------------------------------------------------------------------- model


class Direction(Enum):
    """Media direction attributes (RFC 3264 §5.1, RFC 8866 §6.7)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, *, send: bool, recv: bool) -> Direction:
        if send:
            return cls.SENDRECV if recv else cls.SENDONLY
        return cls.RECVONLY if recv else cls.INACTIVE

    def reversed(self) -> Direction:
        """The same stream seen from the other end (sendonly <-> recvonly)."""
        return Direction.from_flags(send=self.receives, recv=self.sends)

    def intersect(self, other: Direction) -> Direction:
        """Send/receive only where both directions allow it."""
        return Direction.from_flags(
            send=self.sends and other.sends, recv=self.receives and other.receives
        )


_DIRECTIONS = {d.value: d for d in Direction}


@dataclass(frozen=True, slots=True)
class Codec:
    """An RTP payload format: ``a=rtpmap:<pt> <name>/<clock_rate>[/<channels>]``."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    @property
    def rtpmap(self) -> str:
        """The rtpmap encoding, e.g. ``PCMU/8000`` or ``opus/48000/2``."""
        base = f"{self.name}/{self.clock_rate}"
        return base if self.channels == 1 else f"{base}/{self.channels}"

    @property
    def is_telephone_event(self) -> bool:
        return self.name.casefold() == "telephone-event"

    def same_format(self, other: Codec) -> bool:
        """Same encoding regardless of payload type (names are case-insensitive,
        RFC 4855 §3)."""
        return (
            self.name.casefold() == other.name.casefold()
            and self.clock_rate == other.clock_rate
            and self.channels == other.channels
        )


def _renumbered(codec: Codec, payload_type: int, fmtp: str | None) -> Codec:
    """``replace(codec, payload_type=..., fmtp=...)`` without its per-call introspection."""
    if type(codec) is not Codec:  # a subclass may have fields of its own
        return replace(codec, payload_type=payload_type, fmtp=fmtp)
    return Codec(payload_type, codec.name, codec.clock_rate, codec.channels, fmtp)


PCMU = Codec(0, "PCMU", 8000)
PCMA = Codec(8, "PCMA", 8000)
TELEPHONE_EVENT = Codec(101, "telephone-event", 8000, fmtp="0-16")  # RFC 4733
DEFAULT_CODECS: tuple[Codec, ...] = (PCMU, PCMA, TELEPHONE_EVENT)

# Static audio payload types, usable without an rtpmap (RFC 3551 §6, table 4).
STATIC_PAYLOAD_TYPES: dict[int, Codec] = {
    c.payload_type: c
    for c in (
        PCMU,
        Codec(3, "GSM", 8000),
        Codec(4, "G723", 8000),
        Codec(5, "DVI4", 8000),
        Codec(6, "DVI4", 16000),
        Codec(7, "LPC", 8000),
        PCMA,
        Codec(9, "G722", 8000),
        Codec(10, "L16", 44100, 2),
        Codec(11, "L16", 44100),
        Codec(12, "QCELP", 8000),
        Codec(13, "CN", 8000),
        Codec(14, "MPA", 90000),
        Codec(15, "G728", 8000),
        Codec(16, "DVI4", 11025),
        Codec(17, "DVI4", 22050),
        Codec(18, "G729", 8000),
    )
}

# Payload formats that never carry the call's audio themselves.
_AUXILIARY = frozenset({"telephone-event", "cn", "red"})


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=`` (RFC 8866 §5.2). Ids are kept as the digit strings received."""

    username: str
    sess_id: str
    sess_version: str
    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return (
            f"{self.username} {self.sess_id} {self.sess_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


# A non-zero digit or a letter means an address is not all zeros, so not unspecified
# (nor, with a letter past f, an IP address); "%" starts an IPv6 zone, left to ipaddress.
_NOT_ALL_ZEROS_RE = re.compile(r"^[^%]*[1-9A-Za-z]")


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=`` (RFC 8866 §5.7); ttl/num only appear for multicast."""

    nettype: str
    addrtype: str
    address: str
    ttl: int | None = None
    num: int | None = None

    @property
    def is_unspecified(self) -> bool:
        """``0.0.0.0`` or ``::``: the RFC 2543 way of saying "do not send to me"."""
        if _NOT_ALL_ZEROS_RE.search(self.address):
            return False  # the common case, decided without parsing the address
        try:
            return ipaddress.ip_address(self.address).is_unspecified
        except ValueError:
            return False

    def __str__(self) -> str:
        text = f"{self.nettype} {self.addrtype} {self.address}"
        if self.ttl is not None:
            text += f"/{self.ttl}"
        if self.num is not None:
            text += f"/{self.num}"
        return text


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (RFC 8866 §5.8)."""

    bwtype: str
    bandwidth: int

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(frozen=True, slots=True)
class Timing:
    """``t=`` and the ``r=`` lines that follow it (RFC 8866 §5.9-5.10), r= verbatim."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rtcp:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605)."""

    port: int
    nettype: str | None = None
    addrtype: str | None = None
    address: str | None = None


def _uint(token: str, maximum: int) -> int | None:
    """An ASCII decimal in ``0..maximum``, else None.

    int() alone would also accept non-ASCII digits, '1_0' and surrounding spaces.
    """
    if not (0 < len(token) <= _MAX_INT_DIGITS and token.isascii() and token.isdigit()):
        return None
    value = int(token)
    return value if value <= maximum else None


def _parse_rtpmap(value: str) -> Codec | None:
    parts = value.split(None, 1)
    if len(parts) != 2:
        return None
    pt = _uint(parts[0], 127)
    enc = parts[1].strip().split("/")
    if pt is None or len(enc) not in (2, 3) or not enc[0]:
        return None
    rate = _uint(enc[1], 10_000_000)
    channels = _uint(enc[2], 255) if len(enc) == 3 else 1
    if rate is None or not rate or not channels:
        return None
    return Codec(pt, enc[0], rate, channels)


class _HasAttributes:
    """Attribute helpers shared by the session and media levels."""

    __slots__ = ()
    attributes: list[Attribute]

    def attribute(self, name: str) -> str | None:
        """Value of the first ``a=<name>`` line (None if absent or valueless)."""
        for key, value in self.attributes:
            if key == name:
                return value
        return None

    def attribute_values(self, name: str) -> list[str]:
        return [v for k, v in self.attributes if k == name and v is not None]

    def has_attribute(self, name: str) -> bool:
        return any(k == name for k, _ in self.attributes)

    @property
    def direction(self) -> Direction | None:
        """The direction attribute at this level, if any (first one wins)."""
        for key, value in self.attributes:
            if value is None and key in _DIRECTIONS:
                return _DIRECTIONS[key]
        return None

    def set_direction(self, direction: Direction) -> None:
        """Replace any direction attribute at this level (in place) or append one."""
        new: list[Attribute] = []
        placed = False
        for key, value in self.attributes:
            if value is None and key in _DIRECTIONS:
                if not placed:
                    new.append((direction.value, None))
                    placed = True
                continue
            new.append((key, value))
        if not placed:
            new.append((direction.value, None))
        self.attributes[:] = new


@dataclass(slots=True, kw_only=True)
class MediaDescription(_HasAttributes):
    """One ``m=`` section (RFC 8866 §5.14) and its i/c/b/k/a lines."""

    media: str
    port: int
    proto: str
    formats: list[str] = field(default_factory=list)
    port_count: int | None = None
    information: str | None = None
    connection: Connection | None = None
    extra_connections: list[Connection] = field(default_factory=list)  # layered multicast
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    unknown_lines: list[str] = field(default_factory=list)

    @property
    def rtpmaps(self) -> dict[int, Codec]:
        """``a=rtpmap`` by payload type (first one per PT), with fmtp attached.
        Malformed rtpmap lines are ignored."""
        maps: dict[int, Codec] = {}
        for key, value in self.attributes:
            if key == "rtpmap" and value is not None:
                codec = _parse_rtpmap(value)
                if codec is not None and codec.payload_type not in maps:
                    maps[codec.payload_type] = codec
        fmtps = self._fmtps()
        # The parsed codecs carry no fmtp yet: only those with an a=fmtp need a copy.
        return {
            pt: c if pt not in fmtps else _renumbered(c, pt, fmtps[pt]) for pt, c in maps.items()
        }

    def _fmtps(self) -> dict[int, str]:
        fmtps: dict[int, str] = {}
        for key, value in self.attributes:
            if key == "fmtp" and value is not None:
                parts = value.split(None, 1)
                pt = _uint(parts[0], 127) if parts else None
                if pt is not None and pt not in fmtps:
                    fmtps[pt] = parts[1].strip() if len(parts) == 2 else ""
        return fmtps

    def fmtp(self, payload_type: int) -> str | None:
        """The ``a=fmtp`` parameters for a payload type (RFC 8866 §6.15)."""
        return self._fmtps().get(payload_type)

    @property
    def codecs(self) -> list[Codec]:
        """The formats of the m= line that name a known payload format, in m= order:
        from rtpmap, else the RFC 3551 static table; others are skipped."""
        maps = self.rtpmaps
        fmtps = self._fmtps()
        out: list[Codec] = []
        seen: set[int] = set()
        for fmt in self.formats:
            pt = _uint(fmt, 127)
            if pt is None or pt in seen:
                continue
            seen.add(pt)
            codec = maps.get(pt)
            if codec is None and pt in STATIC_PAYLOAD_TYPES:
                static = STATIC_PAYLOAD_TYPES[pt]  # frozen, so it may be shared as it is
                codec = static if pt not in fmtps else _renumbered(static, pt, fmtps[pt])
            if codec is not None:
                out.append(codec)
        return out

    def codec(self, payload_type: int) -> Codec | None:
        for codec in self.codecs:
            if codec.payload_type == payload_type:
                return codec
        return None

    def _positive(self, name: str) -> int | None:
        value = self.attribute(name)
        number = _uint(value.strip(), 10_000) if value is not None else None
        return number or None

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in ms (RFC 8866 §6.4); None if absent or not a sane number."""
        return self._positive("ptime")

    @property
    def maxptime(self) -> int | None:
        return self._positive("maxptime")

    @property
    def rtcp(self) -> Rtcp | None:
        """``a=rtcp`` (RFC 3605); None if absent or malformed."""
        value = self.attribute("rtcp")
        parts = value.split() if value is not None else []
        port = _uint(parts[0], 65535) if parts else None
        if port is None:
            return None
        if len(parts) == 4:
            return Rtcp(port, parts[1], parts[2], parts[3])
        return Rtcp(port) if len(parts) == 1 else None

    @property
    def rtcp_mux(self) -> bool:
        """``a=rtcp-mux`` present (RFC 5761 §5.1.1)."""
        return self.has_attribute("rtcp-mux")


@dataclass(slots=True, kw_only=True)
class SessionDescription(_HasAttributes):
    """A whole SDP body (RFC 8866 §5)."""

    origin: Origin
    version: int = 0
    session_name: str = "-"
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=lambda: [Timing()])
    time_zones: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    unknown_lines: list[str] = field(default_factory=list)

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """A media-level c= overrides the session-level one (RFC 8866 §5.7)."""
        return media.connection or self.connection

    def direction_of(self, media: MediaDescription) -> Direction:
        """Media-level direction, else session-level, else sendrecv (RFC 3264 §5.1)."""
        return media.direction or self.direction or Direction.SENDRECV

    def to_bytes(self) -> bytes:
        """CRLF lines in RFC 8866 §5 order: v o s i u e p c b t r z k a, then m sections."""
        out = [
            f"v={self.version}",
            f"o={self.origin}",
            f"s={self.session_name}",
        ]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out += [f"e={e}" for e in self.emails]
        out += [f"p={p}" for p in self.phones]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"b={b}" for b in self.bandwidths]
        for timing in self.timings or [Timing()]:
            out.append(f"t={timing.start} {timing.stop}")
            out += [f"r={r}" for r in timing.repeats]
        if self.time_zones is not None:
            out.append(f"z={self.time_zones}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out += _attribute_lines(self.attributes)
        out += self.unknown_lines
        for m in self.media:
            out += _section_lines(m)
        return ("\r\n".join(out) + "\r\n").encode("utf-8", "surrogateescape")

    def __bytes__(self) -> bytes:
        return self.to_bytes()


def _attribute_lines(attributes: list[Attribute]) -> list[str]:
    return [f"a={k}" if v is None else f"a={k}:{v}" for k, v in attributes]


def _m_line_before_port(m: MediaDescription) -> str:
    return f"m={m.media} "


def _m_line_after_port(m: MediaDescription) -> str:
    fmts = "".join(f" {f}" for f in m.formats)
    count = f"/{m.port_count}" if m.port_count is not None else ""
    return f"{count} {m.proto}{fmts}"


def _section_lines(m: MediaDescription) -> list[str]:
    return [_m_line_before_port(m) + str(m.port) + _m_line_after_port(m), *_media_lines_after_m(m)]


def _media_lines_after_m(m: MediaDescription) -> list[str]:
    """The lines of a media section after its m= line, in RFC 8866 §5 order."""
    out: list[str] = []
    if m.information is not None:
        out.append(f"i={m.information}")
    if m.connection is not None:
        out.append(f"c={m.connection}")
    out += [f"c={c}" for c in m.extra_connections]
    out += [f"b={b}" for b in m.bandwidths]
    if m.key is not None:
        out.append(f"k={m.key}")
    out += _attribute_lines(m.attributes)
    out += m.unknown_lines
    return out


def serialize(sdp: SessionDescription) -> bytes:
    """Same as ``sdp.to_bytes()``."""
    return sdp.to_bytes()


# -------------------------------------------------------------------------- parser


def _bad(reason: str, detail: str) -> RemoteProtocolError:
    # The reason goes on a status line, so it never contains remote text.
    return RemoteProtocolError(f"{reason}: {detail}", status_hint=400, reason=reason)


def _show(line: str) -> str:
    return repr(line[:80])


def _decode(data: bytes | bytearray | memoryview | str) -> str:
    if isinstance(data, str):
        if len(data) > MAX_SDP_BYTES:
            raise _bad("Bad SDP: body too large", f"{len(data)} characters")
        try:  # must be writable back to bytes by to_bytes()
            data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            raise _bad("Bad SDP: invalid text", "unpaired surrogate") from exc
        return data
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"parse_sdp() needs bytes or str, not {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > MAX_SDP_BYTES:
        raise _bad("Bad SDP: body too large", f"{len(raw)} bytes")
    # RFC 8866 §5: text is UTF-8 unless a=charset says otherwise; undecodable
    # bytes are kept (surrogateescape) so they serialize back unchanged.
    return raw.decode("utf-8", "surrogateescape")


def _split_lines(text: str) -> list[tuple[int, str, str]]:
    """(line number, type letter, value); CRLF or bare LF, blank lines skipped."""
    out: list[tuple[int, str, str]] = []
    # Checked once for the whole body when that settles it for every line: no NUL,
    # no CR but those of CRLFs, nothing long enough to make a line too long.
    careful = (
        len(text) > MAX_LINE_LENGTH or "\x00" in text or text.count("\r") != text.count("\r\n")
    )
    for number, line in enumerate(text.split("\n"), 1):
        if line[-1:] == "\r":
            line = line[:-1]
        if not line or line.isspace():
            continue
        if careful:
            if len(line) > MAX_LINE_LENGTH:
                raise _bad("Bad SDP: line too long", f"line {number} has {len(line)} characters")
            if "\r" in line or "\x00" in line:
                raise _bad("Bad SDP: bad character", f"CR or NUL in line {number}")
        kind = line[0]
        if len(line) < 2 or line[1] != "=" or not ("a" <= kind <= "z"):
            raise _bad("Bad SDP: malformed line", f"line {number}: {_show(line)}")
        out.append((number, kind, line[2:]))
        if len(out) > MAX_LINES:
            raise _bad("Bad SDP: too many lines", f"more than {MAX_LINES}")
    return out


def _parse_origin(number: int, value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise _bad("Bad SDP: malformed o= line", f"line {number}: {_show(value)}")
    return Origin(*parts)


def _parse_connection(number: int, value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise _bad("Bad SDP: malformed c= line", f"line {number}: {_show(value)}")
    nettype, addrtype, address = parts
    address, *suffix = address.split("/")
    numbers = [_uint(s, 65535) for s in suffix]
    if not address or len(numbers) > 2 or None in numbers:
        raise _bad("Bad SDP: malformed c= line", f"line {number}: {_show(value)}")
    ttl: int | None = None
    num: int | None = None
    if addrtype.upper() == "IP6":  # IP6 multicast has no TTL (RFC 8866 §5.7)
        if len(numbers) > 1:
            raise _bad("Bad SDP: malformed c= line", f"line {number}: {_show(value)}")
        num = numbers[0] if numbers else None
    else:
        ttl = numbers[0] if numbers else None
        num = numbers[1] if len(numbers) == 2 else None
    return Connection(nettype, addrtype, address, ttl, num)


def _parse_bandwidth(number: int, value: str) -> Bandwidth:
    bwtype, sep, amount = value.partition(":")
    bandwidth = _uint(amount.strip(), 10**_MAX_INT_DIGITS)
    if not sep or not bwtype or bandwidth is None:
        raise _bad("Bad SDP: malformed b= line", f"line {number}: {_show(value)}")
    return Bandwidth(bwtype, bandwidth)


def _parse_timing(number: int, value: str) -> Timing:
    parts = value.split()
    times = [_uint(p, 10**_MAX_INT_DIGITS) for p in parts]
    if len(times) != 2 or times[0] is None or times[1] is None:
        raise _bad("Bad SDP: malformed t= line", f"line {number}: {_show(value)}")
    return Timing(times[0], times[1])


def _parse_media(number: int, value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise _bad("Bad SDP: malformed m= line", f"line {number}: {_show(value)}")
    media, port_text, proto, *formats = parts
    port_str, sep, count_str = port_text.partition("/")
    port = _uint(port_str, 65535)
    count = _uint(count_str, 65535) if sep else None
    if port is None or (sep and not count):
        raise _bad("Bad SDP: malformed m= line", f"line {number}: bad port {_show(port_text)}")
    if len(formats) > MAX_FORMATS:
        raise _bad("Bad SDP: too many formats", f"line {number} lists {len(formats)}")
    return MediaDescription(media=media, port=port, proto=proto, formats=formats, port_count=count)


def _parse_attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    return (name, rest if sep else None)


_SESSION_ONLY = frozenset("vosuepzrt")
_ONCE = {"v": "v=", "o": "o=", "s": "s=", "i": "i=", "u": "u=", "z": "z=", "k": "k="}


def parse_sdp(data: bytes | bytearray | memoryview | str) -> SessionDescription:
    """Parse an SDP body (CRLF or LF). Raises only ``RemoteProtocolError`` (400)."""
    text = _decode(data)
    sdp = _parse_common(text)
    return sdp if sdp is not None else _parse_full(text)


_T00 = Timing()  # frozen (repeats is a tuple), so every "t=0 0" may share it

# c= values seen lately: a trunk sends its few media addresses over and over, and a
# Connection is frozen, so calls may share one. Bounded (emptied when full) against
# offers that each bring a new address; only short values, as real c= lines are.
_CONNECTIONS: dict[str, Connection] = {}
_MAX_CONNECTIONS = 256
_MAX_CONNECTION_CHARS = 64  # "IN IP6 " and the longest IPv6 text fit


def _memo_connection(value: str) -> Connection:
    conn = _CONNECTIONS.get(value)
    if conn is None:
        conn = _parse_connection(0, value)
        if len(value) <= _MAX_CONNECTION_CHARS:
            if len(_CONNECTIONS) >= _MAX_CONNECTIONS:
                _CONNECTIONS.clear()
            _CONNECTIONS[value] = conn
    return conn


def _parse_common(text: str) -> SessionDescription | None:
    """One pass over the SDP that trunks and phones send on every call: CRLF lines of
    types v o s c t b m a, each where it belongs, nothing blank, long or duplicated.

    Returns None for anything else, and on any error, so that ``_parse_full`` alone
    decides what is unusual: it gives the same result or raises the error it always
    raises (the first bad line of the body, which this pass may not have reached).
    """
    # Every CR and LF is part of a CRLF ending a line; no NUL; no line can be too long.
    lines = text.split("\r\n")
    count = len(lines) - 1
    if (
        lines[count]
        or count > MAX_LINES
        or len(text) > MAX_LINE_LENGTH
        or text.count("\n") != count
        or text.count("\r") != count
        or "\x00" in text
        or lines[0] != "v=0"
    ):
        return None
    del lines[count]
    origin: Origin | None = None
    session_name: str | None = None
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = []
    timings: list[Timing] = []
    attributes: list[Attribute] = []
    media: list[MediaDescription] = []
    m: MediaDescription | None = None
    attrs = attributes  # the a= lines of the current level
    try:
        for line in islice(lines, 1, None):
            if line[1:2] != "=":
                return None
            kind = line[0]
            if kind == "a":  # as _parse_attribute(), in fewer steps
                colon = line.find(":")
                attrs.append((line[2:], None) if colon < 0 else (line[2:colon], line[colon + 1 :]))
            elif kind == "m":
                if len(media) >= MAX_MEDIA:
                    return None
                m = _parse_common_media(line)
                if m is None:
                    return None
                media.append(m)
                attrs = m.attributes
            elif kind == "c":
                if m is None:
                    if connection is not None:
                        return None
                    connection = _memo_connection(line[2:])
                elif m.connection is None:
                    m.connection = _memo_connection(line[2:])
                else:  # layered multicast: left to _parse_full
                    return None
            elif kind == "b":
                (bandwidths if m is None else m.bandwidths).append(_parse_bandwidth(0, line[2:]))
            elif m is not None:  # o s t belong before the first m=
                return None
            elif kind == "o" and origin is None:
                origin = _parse_origin(0, line[2:])
            elif kind == "t":
                timings.append(_T00 if line == "t=0 0" else _parse_timing(0, line[2:]))
            elif kind == "s" and session_name is None:
                session_name = line[2:]
            else:
                return None
    except RemoteProtocolError:
        return None
    if origin is None:
        return None
    return SessionDescription(
        origin=origin,
        session_name="-" if session_name is None else session_name,
        connection=connection,
        bandwidths=bandwidths,
        timings=timings or [_T00],
        attributes=attributes,
        media=media,
    )


def _parse_common_media(line: str) -> MediaDescription | None:
    """``m=<media> <port> <proto> <fmt>...`` without a port count; else None."""
    parts = line[2:].split()
    if len(parts) < 3 or len(parts) > MAX_FORMATS + 3:
        return None
    port = parts[1]
    # _uint(port, 65535), for at most 5 ASCII digits
    if not (0 < len(port) <= 5 and port.isascii() and port.isdigit()) or int(port) > 65535:
        return None
    return MediaDescription(media=parts[0], port=int(port), proto=parts[2], formats=parts[3:])


def _parse_full(text: str) -> SessionDescription:
    """Any SDP, with every check and the error of the first bad line."""
    lines = _split_lines(text)
    if not lines:
        raise _bad("Bad SDP: empty body", "no lines")
    number, kind, value = lines[0]
    if kind != "v":
        raise _bad("Bad SDP: missing v= line", f"line {number} is not v=")
    if value.strip() != "0":
        raise _bad("Bad SDP: unsupported version", f"v={_show(value)}")

    origin: Origin | None = None
    fields: dict[str, str] = {}
    emails: list[str] = []
    phones: list[str] = []
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = []
    timings: list[Timing] = []
    attributes: list[Attribute] = []
    unknown: list[str] = []
    media: list[MediaDescription] = []
    seen: set[str] = {"v"}
    m: MediaDescription | None = None

    for number, kind, value in lines[1:]:
        if kind == "m":
            if len(media) >= MAX_MEDIA:
                raise _bad("Bad SDP: too many m= lines", f"more than {MAX_MEDIA}")
            m = _parse_media(number, value)
            media.append(m)
            seen = set()
            continue
        if m is not None:  # media level: i c b k a (RFC 8866 §5)
            if kind in _SESSION_ONLY:
                raise _bad(
                    "Bad SDP: session line in media section", f"line {number}: {kind}= after m="
                )
            if kind in ("i", "k") and kind in seen:
                raise _bad(f"Bad SDP: duplicate {kind}= line", f"line {number}")
            seen.add(kind)
            if kind == "a":
                m.attributes.append(_parse_attribute(value))
            elif kind == "c":
                conn = _parse_connection(number, value)
                if m.connection is None:
                    m.connection = conn
                else:
                    m.extra_connections.append(conn)
            elif kind == "b":
                m.bandwidths.append(_parse_bandwidth(number, value))
            elif kind == "i":
                m.information = value
            elif kind == "k":
                m.key = value
            else:
                m.unknown_lines.append(f"{kind}={value}")
            continue
        # session level
        if kind in _ONCE or kind == "c":
            if kind in seen:
                raise _bad(f"Bad SDP: duplicate {kind}= line", f"line {number}")
            seen.add(kind)
        if kind == "a":
            attributes.append(_parse_attribute(value))
        elif kind == "o":
            origin = _parse_origin(number, value)
        elif kind == "c":
            connection = _parse_connection(number, value)
        elif kind == "b":
            bandwidths.append(_parse_bandwidth(number, value))
        elif kind == "t":
            timings.append(_parse_timing(number, value))
        elif kind == "r":
            if not timings:
                raise _bad("Bad SDP: r= line without t=", f"line {number}")
            last = timings[-1]
            timings[-1] = replace(last, repeats=(*last.repeats, value))
        elif kind == "e":
            emails.append(value)
        elif kind == "p":
            phones.append(value)
        elif kind in _ONCE:  # s i u z k (a second v= failed the duplicate check)
            fields[kind] = value
        else:
            unknown.append(f"{kind}={value}")  # RFC 8866 §5: ignore unknown types

    if origin is None:
        raise _bad("Bad SDP: missing o= line", "no o= line")
    return SessionDescription(
        origin=origin,
        session_name=fields.get("s", "-"),  # tolerated if missing
        information=fields.get("i"),
        uri=fields.get("u"),
        emails=emails,
        phones=phones,
        connection=connection,
        bandwidths=bandwidths,
        timings=timings or [Timing()],  # tolerated if missing: "t=0 0"
        time_zones=fields.get("z"),
        key=fields.get("k"),
        attributes=attributes,
        media=media,
        unknown_lines=unknown,
    )


# -------------------------------------------------------------------- offer/answer


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """What one offer/answer exchange agreed on for the audio stream.

    ``codec`` carries the payload type to send with (the peer's number), our
    canonical name, and the fmtp the peer declared. ``direction`` is from OUR
    point of view (``sends`` = we may send RTP).
    """

    remote_address: str
    remote_port: int
    remote_rtcp_port: int
    codec: Codec
    telephone_event_pt: int | None
    ptime: int
    direction: Direction
    media_index: int


_setattr = object.__setattr__  # AnswerResult's own __setattr__ refuses


class AnswerResult:
    """Our answer to an offer (``answer``) and what it agreed on (``media``).

    Immutable, with the equality, hash and repr of a frozen dataclass of those two
    fields. Not a dataclass so that ``SdpSession.answer`` can leave ``answer`` to be
    built on first use: it has already written the answer's bytes (``last_sent``),
    and a UAS answering an INVITE needs nothing else.
    """

    __slots__ = ("_answer", "_pending", "media")
    __match_args__ = ("answer", "media")
    _answer: SessionDescription | None
    _pending: _PendingAnswer | None
    media: NegotiatedMedia

    def __init__(self, answer: SessionDescription, media: NegotiatedMedia) -> None:
        _setattr(self, "_answer", answer)
        _setattr(self, "_pending", None)
        _setattr(self, "media", media)

    @classmethod
    def _deferred(cls, pending: _PendingAnswer, media: NegotiatedMedia) -> AnswerResult:
        result = cls.__new__(cls)
        _setattr(result, "_answer", None)
        _setattr(result, "_pending", pending)
        _setattr(result, "media", media)
        return result

    @property
    def answer(self) -> SessionDescription:
        answer = self._answer
        if answer is None:
            assert self._pending is not None  # one of the two is always set
            answer = _planned_answer(*self._pending)
            _setattr(self, "_answer", answer)
            _setattr(self, "_pending", None)
        return answer

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, AnswerResult)
        return (self.answer, self.media) == (other.answer, other.media)

    def __hash__(self) -> int:
        return hash((self.answer, self.media))  # TypeError: the answer is mutable

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(answer={self.answer!r}, media={self.media!r})"


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


# Never part of an address we write: white space (``\s`` is what str.isspace() sees),
# controls and "/"; nor of a codec name: white space and "/".
_BAD_ADDRESS_RE = re.compile(r"[\s\x00-\x1f/]")
_BAD_CODEC_NAME_RE = re.compile(r"[\s/]")
_WHITESPACE_RE = re.compile(r"\s")


def _check_address(address: str) -> None:
    if not address or _BAD_ADDRESS_RE.search(address):
        raise LocalProtocolError(f"bad SDP address {address!r}")


def _check_port(port: int) -> None:
    if not 0 < port <= 65535:
        raise LocalProtocolError(f"bad RTP port {port!r}")


def _check_codecs(codecs: Sequence[Codec]) -> None:
    if codecs is DEFAULT_CODECS:
        return  # an immutable tuple of frozen codecs, checked once at import
    _check_codec_list(codecs)


def _check_codec_list(codecs: Sequence[Codec]) -> None:
    pts = [c.payload_type for c in codecs]
    if len(set(pts)) != len(pts) or any(not 0 <= pt <= 127 for pt in pts):
        raise LocalProtocolError(f"codec payload types must be unique and 0-127: {pts}")
    for c in codecs:
        bad_name = not c.name or _BAD_CODEC_NAME_RE.search(c.name) is not None
        bad_fmtp = c.fmtp is not None and ("\r" in c.fmtp or "\n" in c.fmtp)
        if bad_name or bad_fmtp or c.clock_rate <= 0 or c.channels <= 0:
            raise LocalProtocolError(f"bad codec {c!r}")
    if not any(c.name.casefold() not in _AUXILIARY for c in codecs):
        raise LocalProtocolError("need at least one audio codec besides telephone-event/CN")


_check_codec_list(DEFAULT_CODECS)


def _new_origin(username: str, address: str, session_id: int | None, version: int | None) -> Origin:
    sid, ver = _origin_numbers(username, session_id, version)
    return Origin(username, str(sid), str(ver), "IN", _addrtype(address), address)


def _origin_numbers(username: str, session_id: int | None, version: int | None) -> tuple[int, int]:
    """Checked o= username, and the session id and version to use."""
    if username != "siphon" and (not username or _WHITESPACE_RE.search(username)):
        raise LocalProtocolError(f"bad SDP username {username!r}")
    # RFC 8866 §5.2: any unique number; kept below 2**31 for 32-bit peers.
    # randbits(30): uniform below 2**30 like randbelow(2**30), at half its cost.
    sid = session_id if session_id is not None else randbits(30) + 1
    ver = version if version is not None else sid
    if sid < 0 or ver < 0:
        raise LocalProtocolError("session id and version must be >= 0")
    return sid, ver


def _audio_section(
    *, port: int, proto: str, codecs: Sequence[Codec], ptime: int, direction: Direction
) -> MediaDescription:
    attributes: list[Attribute] = []
    for c in codecs:
        attributes.append(("rtpmap", f"{c.payload_type} {c.rtpmap}"))
        if c.fmtp is not None:
            attributes.append(("fmtp", f"{c.payload_type} {c.fmtp}"))
    attributes.append(("ptime", str(ptime)))
    attributes.append((direction.value, None))
    return MediaDescription(
        media="audio",
        port=port,
        proto=proto,
        formats=[str(c.payload_type) for c in codecs],
        attributes=attributes,
    )


def _session(origin: Origin, address: str, media: list[MediaDescription]) -> SessionDescription:
    return SessionDescription(
        origin=origin,
        connection=Connection("IN", _addrtype(address), address),
        media=media,
    )


def build_offer(
    *,
    address: str,
    port: int,
    codecs: Sequence[Codec] = DEFAULT_CODECS,
    ptime: int = DEFAULT_PTIME,
    direction: Direction = Direction.SENDRECV,
    session_id: int | None = None,
    session_version: int | None = None,
    username: str = "siphon",
) -> SessionDescription:
    """An audio offer (RFC 3264 §5): one RTP/AVP m= line listing ``codecs`` in our
    order of preference. ``session_version`` defaults to the session id."""
    _check_address(address)
    _check_port(port)
    _check_codecs(codecs)
    if not 0 < ptime <= 1000:
        raise LocalProtocolError(f"bad ptime {ptime!r}")
    origin = _new_origin(username, address, session_id, session_version)
    audio = _audio_section(
        port=port, proto="RTP/AVP", codecs=codecs, ptime=ptime, direction=direction
    )
    return _session(origin, address, [audio])


def _is_rtp_audio(m: MediaDescription) -> bool:
    # SRTP profiles (RTP/SAVP, .../SAVPF) are not supported: no keys to offer.
    return m.media.casefold() == "audio" and m.proto.upper() in ("RTP/AVP", "RTP/AVPF")


def _remote_direction(sdp: SessionDescription, m: MediaDescription) -> Direction:
    """The peer's direction for a stream, from the peer's point of view.

    RFC 3264 §8.4: c=0.0.0.0 (RFC 2543 hold) means the peer gives no address to
    send to, so we drop its "receive": sendrecv becomes sendonly (we answer
    recvonly) and recvonly becomes inactive.
    """
    direction = sdp.direction_of(m)
    conn = sdp.connection_for(m)
    if conn is not None and conn.is_unspecified:
        direction = direction.intersect(Direction.SENDONLY)
    return direction


def _match(offered: Codec, ours: Sequence[Codec]) -> Codec | None:
    for codec in ours:
        if codec.same_format(offered):
            return codec
    return None


def _pick_codecs(
    remote: MediaDescription, ours: Sequence[Codec]
) -> tuple[Codec, Codec, Codec | None, Codec | None] | None:
    """First remote codec (in the remote's order) that we support, plus the
    telephone-event at the same clock rate (RFC 4733 §7.1.1) if both sides have it.
    Returns (remote audio, our audio, remote telephone-event, our telephone-event)."""
    offered = remote.codecs
    for codec in offered:
        if codec.name.casefold() in _AUXILIARY:
            continue
        mine = _match(codec, ours)
        if mine is None:
            continue
        for te in offered:
            if te.is_telephone_event and te.clock_rate == codec.clock_rate:
                my_te = _match(te, ours)
                if my_te is not None:
                    return codec, mine, te, my_te
        return codec, mine, None, None
    return None


def _describe(sdp: SessionDescription, limit: int = 8) -> str:
    parts = []
    for m in sdp.media[:limit]:
        names = [c.rtpmap for c in m.codecs[:limit]] or m.formats[:limit]
        parts.append(f"m={m.media} {m.port} {m.proto} [{', '.join(names)}]")
    if len(sdp.media) > limit:
        parts.append("...")
    return "; ".join(parts) or "no m= lines"


def _connection_or_400(sdp: SessionDescription, m: MediaDescription, index: int) -> Connection:
    conn = sdp.connection_for(m)
    if conn is None:
        raise _bad("Bad SDP: missing c= line", f"no c= line for m= line {index}")
    return conn


def _rtcp_port(m: MediaDescription) -> int:
    rtcp = m.rtcp
    return rtcp.port if rtcp is not None else min(m.port + 1, 65535)  # RFC 3550 §11


def negotiate_answer(
    offer: SessionDescription,
    *,
    address: str,
    port: int,
    supported: Sequence[Codec] = DEFAULT_CODECS,
    direction: Direction = Direction.SENDRECV,
    origin: Origin | None = None,
) -> AnswerResult:
    """Answer an offer (RFC 3264 §6): the first usable audio stream is accepted with
    one codec (+ telephone-event), every other m= line is rejected with port 0.

    ``direction`` is what we want (e.g. SENDONLY to hold); the answer carries its
    intersection with the reverse of the offer's direction. ``origin`` is our o=
    line (keep it per dialog, see ``SdpSession``); a fresh one if None.
    Raises RemoteProtocolError 488 when no stream is usable.
    """
    _check_address(address)
    _check_port(port)
    _check_codecs(supported)
    if origin is None:
        origin = _new_origin("siphon", address, None, None)

    chosen: tuple[int, Codec, Codec, Codec | None, Codec | None] | None = None
    for index, m in enumerate(offer.media):
        if m.port == 0 or not _is_rtp_audio(m):
            continue
        picked = _pick_codecs(m, supported)
        if picked is not None:
            chosen = (index, *picked)
            break
    if chosen is None:
        ours = ", ".join(c.rtpmap for c in supported)
        raise RemoteProtocolError(
            f"No acceptable audio stream in offer ({_describe(offer)}); "
            f"we support RTP/AVP with {ours}",
            status_hint=488,
            reason="Not Acceptable Here",
        )

    index, remote_codec, my_codec, remote_te, my_te = chosen
    m = offer.media[index]
    conn = _connection_or_400(offer, m, index)
    ours_dir = _remote_direction(offer, m).reversed().intersect(direction)
    ptime = m.ptime or DEFAULT_PTIME
    # Answer with the offerer's payload type numbers (RFC 3264 §6.1).
    answer_codecs = [_renumbered(my_codec, remote_codec.payload_type, my_codec.fmtp)]
    te_pt: int | None = None
    if remote_te is not None and my_te is not None:
        te_pt = remote_te.payload_type
        fmtp = my_te.fmtp if my_te.fmtp is not None else remote_te.fmtp
        answer_codecs.append(_renumbered(my_te, te_pt, fmtp))

    sections: list[MediaDescription] = []
    for i, om in enumerate(offer.media):
        if i == index:
            sections.append(
                _audio_section(
                    port=port, proto=m.proto, codecs=answer_codecs, ptime=ptime, direction=ours_dir
                )
            )
        else:  # RFC 3264 §6: reject with port 0, keep media, proto and a format
            sections.append(
                MediaDescription(media=om.media, port=0, proto=om.proto, formats=om.formats[:1])
            )

    negotiated = NegotiatedMedia(
        remote_address=conn.address,
        remote_port=m.port,
        remote_rtcp_port=_rtcp_port(m),
        codec=_renumbered(my_codec, remote_codec.payload_type, remote_codec.fmtp),
        telephone_event_pt=te_pt,
        ptime=ptime,
        direction=ours_dir,
        media_index=index,
    )
    return AnswerResult(_session(origin, address, sections), negotiated)


def parse_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """Check the peer's answer to ``offer`` (ours) and extract the agreed audio.

    RFC 3264 §6: same number of m= lines; the answer must pick a codec we offered
    (matched by name/rate, the answer's payload type numbers are used to send).
    """
    index = next((i for i, m in enumerate(offer.media) if m.port != 0 and _is_rtp_audio(m)), None)
    if index is None:
        raise LocalProtocolError("our offer has no RTP/AVP audio stream")
    if len(answer.media) != len(offer.media):
        raise _bad(
            "Bad SDP: m= line count mismatch",
            f"answer has {len(answer.media)} m= lines, offer had {len(offer.media)}",
        )
    ours = offer.media[index]
    theirs = answer.media[index]
    if theirs.media.casefold() != ours.media.casefold():
        raise _bad("Bad SDP: m= line mismatch", f"answer m= line {index} is {theirs.media!r}")
    if theirs.port == 0:
        raise RemoteProtocolError(
            f"answer rejected our audio stream (m= line {index})",
            status_hint=488,
            reason="Not Acceptable Here",
        )
    picked = _pick_codecs(theirs, ours.codecs)
    if picked is None:
        raise RemoteProtocolError(
            f"answer picks no codec we offered ({_describe(answer)}); "
            f"we offered {', '.join(c.rtpmap for c in ours.codecs)}",
            status_hint=488,
            reason="Not Acceptable Here",
        )
    their_codec, my_codec, their_te, _ = picked
    conn = _connection_or_400(answer, theirs, index)
    direction = _remote_direction(answer, theirs).reversed().intersect(offer.direction_of(ours))
    return NegotiatedMedia(
        remote_address=conn.address,
        remote_port=theirs.port,
        remote_rtcp_port=_rtcp_port(theirs),
        codec=_renumbered(my_codec, their_codec.payload_type, their_codec.fmtp),
        telephone_event_pt=their_te.payload_type if their_te is not None else None,
        ptime=theirs.ptime or DEFAULT_PTIME,
        direction=direction,
        media_index=index,
    )


# ------------------------------------------------------------- answers by offer shape

# A trunk or phone sends the same codec lines on every call; what changes is o=, the
# c= address and the m= port. So SdpSession.answer keeps, per offer *shape*, what
# negotiate_answer decided, and fills in the per-call values. The shape is every
# input negotiate_answer reads except those values: m= media, proto, formats and
# whether the port is 0, the a= lines of _SHAPE_ATTRIBUTES (a=rtcp is read per call),
# the direction attributes and whether each c= is present and unspecified.
_SHAPE_ATTRIBUTES = frozenset({"rtpmap", "fmtp", "ptime", *_DIRECTIONS})
# Bounded so that offers of ever new shapes (a hostile peer, or many distinct
# devices) cost a bounded memory; real traffic has a handful of shapes. FIFO, not
# LRU: a hit then costs one dict lookup, and a busy shape evicted comes back on its
# next call.
_MAX_ANSWER_PLANS = 256
_MAX_SHAPE_MEDIA = 8
_MAX_SHAPE_CHARS = 4096  # text kept per shape; a G.711 trunk offer keeps ~100

_Section = tuple[str, str, tuple[str, ...], tuple[Attribute, ...]]


@dataclass(frozen=True, slots=True)
class _AnswerPlan:
    """negotiate_answer's result for one offer shape, without the per-call values:
    our o= line, address and port, the offerer's address and ports."""

    index: int
    codec: Codec
    telephone_event_pt: int | None
    ptime: int
    direction: Direction
    sections: tuple[_Section, ...]  # media, proto, formats, attributes of each m=
    before_port: str  # the answer's text from its first m= line to our port
    after_port: str  # and from there to its end


_ANSWER_PLANS: dict[tuple[object, ...], _AnswerPlan] = {}


def _connection_shape(conn: Connection | None) -> bool | None:
    return None if conn is None else conn.is_unspecified


def _answer_key(
    offer: SessionDescription, direction: Direction, codecs: Sequence[Codec]
) -> tuple[object, ...] | None:
    """The shape of ``offer`` with our side's inputs; None if not worth keeping."""
    if len(offer.media) > _MAX_SHAPE_MEDIA:
        return None
    shape: list[object] = [
        direction._value_,  # str: Enum.__hash__ is Python code, str's is not
        # DEFAULT_CODECS is immutable, so its identity stands for its value.
        None if codecs is DEFAULT_CODECS else tuple(codecs),
        tuple([a for a in offer.attributes if a[0] in _DIRECTIONS]),
        _connection_shape(offer.connection),
    ]
    for m in offer.media:
        shape.append(
            (
                m.media,
                m.proto,
                m.port == 0,
                tuple(m.formats),
                tuple([a for a in m.attributes if a[0] in _SHAPE_ATTRIBUTES]),
                _connection_shape(m.connection),
            )
        )
    return tuple(shape)


def _shape_chars(key: tuple[object, ...]) -> int:
    """Roughly the text a key holds (how much memory keeping it costs)."""
    chars = 0
    for part in key:
        if isinstance(part, tuple):
            chars += len(repr(part))
    return chars


def _answer_plan(result: AnswerResult) -> _AnswerPlan:
    """The per-shape part of a negotiate_answer result, and its text around our port."""
    answer, media = result.answer, result.media
    index = media.media_index
    chosen = answer.media[index]
    before = [line for m in answer.media[:index] for line in _section_lines(m)]
    after = [_m_line_after_port(chosen), *_media_lines_after_m(chosen)]
    after += [line for m in answer.media[index + 1 :] for line in _section_lines(m)]
    return _AnswerPlan(
        index=index,
        codec=media.codec,
        telephone_event_pt=media.telephone_event_pt,
        ptime=media.ptime,
        direction=media.direction,
        sections=tuple(
            (m.media, m.proto, tuple(m.formats), tuple(m.attributes)) for m in answer.media
        ),
        before_port="".join(f"{line}\r\n" for line in before) + _m_line_before_port(chosen),
        after_port="".join(f"{line}\r\n" for line in after),
    )


def _remember(key: tuple[object, ...], result: AnswerResult) -> None:
    if _shape_chars(key) > _MAX_SHAPE_CHARS:
        return
    while len(_ANSWER_PLANS) >= _MAX_ANSWER_PLANS:
        _ANSWER_PLANS.pop(next(iter(_ANSWER_PLANS)), None)  # the oldest
    _ANSWER_PLANS[key] = _answer_plan(result)


# What an AnswerResult needs to build its answer: the plan, our o= username, session
# id and version when it was answered, our address and port.
_PendingAnswer = tuple[_AnswerPlan, str, int, int, str, int]


def _planned_answer(
    plan: _AnswerPlan, username: str, session_id: int, version: int, address: str, port: int
) -> SessionDescription:
    """The SessionDescription negotiate_answer builds for an offer of ``plan``'s shape."""
    addrtype = _addrtype(address)
    index = plan.index
    sections = [
        MediaDescription(
            media=media,
            port=port if i == index else 0,
            proto=proto,
            formats=list(formats),
            attributes=list(attributes),
        )
        for i, (media, proto, formats, attributes) in enumerate(plan.sections)
    ]
    origin = Origin(username, str(session_id), str(version), "IN", addrtype, address)
    return _session(origin, address, sections)


def _planned_bytes(
    plan: _AnswerPlan, username: str, session_id: int, version: int, address: str, port: int
) -> bytes:
    """``_planned_answer(...).to_bytes()``, written without building the answer."""
    addrtype = _addrtype(address)
    return (
        f"v=0\r\no={username} {session_id} {version} IN {addrtype} {address}\r\n"
        f"s=-\r\nc=IN {addrtype} {address}\r\nt=0 0\r\n"
        f"{plan.before_port}{port}{plan.after_port}"
    ).encode("utf-8", "surrogateescape")


class SdpSession:
    """Our side of a dialog's offer/answer exchanges.

    Keeps the o= line: the session id never changes and the version goes up by
    one only when an SDP we send differs from the previous one (RFC 3264 §8,
    RFC 8866 §5.2). ``address``/``port``/``codecs`` may be changed between
    exchanges.
    """

    __slots__ = (
        "_last_sent",
        "_offer",
        "_session_id",
        "_username",
        "_version",
        "address",
        "codecs",
        "negotiated",
        "port",
        "ptime",
    )

    def __init__(
        self,
        *,
        address: str,
        port: int,
        codecs: Sequence[Codec] = DEFAULT_CODECS,
        ptime: int = DEFAULT_PTIME,
        username: str = "siphon",
        session_id: int | None = None,
        session_version: int | None = None,
    ) -> None:
        _check_address(address)
        _check_port(port)
        _check_codecs(codecs)
        if not 0 < ptime <= 1000:
            raise LocalProtocolError(f"bad ptime {ptime!r}")
        self._session_id, self._version = _origin_numbers(username, session_id, session_version)
        self._username = username
        self._last_sent: bytes | None = None
        self._offer: SessionDescription | None = None
        self.address = address
        self.port = port
        self.codecs: tuple[Codec, ...] = tuple(codecs)
        self.ptime = ptime
        self.negotiated: NegotiatedMedia | None = None

    @property
    def origin(self) -> Origin:
        """The o= line of the last SDP we sent (or will send first)."""
        return Origin(
            self._username,
            str(self._session_id),
            str(self._version),
            "IN",
            _addrtype(self.address),
            self.address,
        )

    @property
    def last_sent(self) -> bytes | None:
        """The bytes of the last SDP we sent (offer or answer), for 2xx resends."""
        return self._last_sent

    @property
    def pending_offer(self) -> SessionDescription | None:
        """The offer we sent and whose answer we still wait for."""
        return self._offer

    def _stamp(self, sdp: SessionDescription) -> None:
        sdp.origin = self.origin
        if self._last_sent is not None and sdp.to_bytes() != self._last_sent:
            self._version += 1
            sdp.origin = self.origin
        self._last_sent = sdp.to_bytes()

    def create_offer(self, *, direction: Direction = Direction.SENDRECV) -> SessionDescription:
        """An (re-)offer; ``direction=SENDONLY`` puts the peer on hold (RFC 3264 §8.4)."""
        offer = build_offer(
            address=self.address,
            port=self.port,
            codecs=self.codecs,
            ptime=self.ptime,
            direction=direction,
            session_id=self._session_id,
            session_version=self._version,
            username=self._username,
        )
        self._stamp(offer)
        self._offer = offer
        return offer

    def accept_answer(self, answer: SessionDescription) -> NegotiatedMedia:
        """Apply the peer's answer to our pending offer."""
        if self._offer is None:
            raise LocalProtocolError("no offer is waiting for an answer")
        negotiated = parse_answer(self._offer, answer)
        self._offer = None
        self.negotiated = negotiated
        return negotiated

    def answer(
        self, offer: SessionDescription, *, direction: Direction = Direction.SENDRECV
    ) -> AnswerResult:
        """Answer an (re-)offer from the peer; see ``negotiate_answer``."""
        try:
            key = _answer_key(offer, direction, self.codecs)
            plan = _ANSWER_PLANS.get(key) if key is not None else None
        except TypeError:  # codecs that cannot be hashed: no shortcut
            key = plan = None
        result = self._answer_from_plan(offer, plan) if plan is not None else None
        if result is None:
            result = negotiate_answer(
                offer,
                address=self.address,
                port=self.port,
                supported=self.codecs,
                direction=direction,
                origin=self.origin,
            )
            self._stamp(result.answer)
            if key is not None:  # only now: offers that fail are never kept
                _remember(key, result)
        self.negotiated = result.media
        return result

    def _answer_from_plan(
        self, offer: SessionDescription, plan: _AnswerPlan
    ) -> AnswerResult | None:
        """What negotiate_answer + _stamp make of an offer of ``plan``'s shape."""
        address, port = self.address, self.port
        _check_address(address)
        _check_port(port)
        index = plan.index
        m = offer.media[index]
        conn = m.connection or offer.connection
        if conn is None:  # not with a plan: its shape has this c=
            return None
        username, session_id = self._username, self._session_id
        body = _planned_bytes(plan, username, session_id, self._version, address, port)
        if self._last_sent is not None and body != self._last_sent:
            self._version += 1  # RFC 3264 §8: a changed SDP gets the next version
            body = _planned_bytes(plan, username, session_id, self._version, address, port)
        self._last_sent = body
        pending = (plan, username, session_id, self._version, address, port)
        negotiated = NegotiatedMedia(
            conn.address,  # remote_address
            m.port,  # remote_port
            _rtcp_port(m),  # remote_rtcp_port
            plan.codec,
            plan.telephone_event_pt,
            plan.ptime,
            plan.direction,
            index,  # media_index
        )
        return AnswerResult._deferred(pending, negotiated)
