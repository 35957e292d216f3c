"""RTP data packets (RFC 3550 §5.1): parse, serialise, and hot-path helpers.

``parse_rtp`` is strict and raises only :class:`~siphon.errors.RtpParseError`;
``RtpPacket.to_bytes`` writes the packet back byte for byte (padding octets and
the header extension included), so a parsed packet can be relayed unchanged.

For the per-packet hot path, ``peek_header`` reads the fixed header with one
``struct`` call and ``build_rtp`` writes a plain packet (no CSRCs, extension or
padding) with one ``struct.pack``.

RTP and RTCP may share a port (RFC 5761): ``is_rtcp`` tells them apart by the
second octet, and ``parse_rtp`` refuses payload types 72-76, whose second octet
(with the marker bit set) would read as RTCP packet types 200-204.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from siphon.errors import ConfigError, RtpParseError

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
# The largest datagram we accept as RTP or RTCP. Voice packets are a few hundred
# octets and senders keep RTP under the path MTU (~1500); 8192 leaves room for
# jumbo frames and loopback, while anything larger is not media we negotiated
# (or a reassembled fragment flood), so it is refused as "oversized" before any
# slicing or copying.
MAX_PACKET_SIZE = 8192

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")


class RtpExtension(NamedTuple):
    """An RFC 3550 §5.3.1 header extension: 16-bit profile word and its data.

    ``data`` is a whole number of 32-bit words (the length field counts words).
    """

    profile: int
    data: bytes


def padding_bytes(length: int) -> bytes:
    """RTP/RTCP padding of ``length`` octets: zeros, then the count octet (1..255)."""
    if not 1 <= length <= 255:
        raise ConfigError("padding length must be 1..255")
    return bytes(length - 1) + bytes((length,))


def _check_padding(padding: bytes) -> None:
    # The count octet is at most 255, so this also caps the length.
    if padding and padding[-1] != len(padding):
        raise ConfigError("the last padding octet must equal the padding length (1..255)")


@dataclass(slots=True)
class RtpPacket:
    """One RTP data packet.

    ``padding`` is the raw trailing padding (empty when the P bit is clear); its
    last octet is its own length, as on the wire. Build it with
    :func:`padding_bytes`. ``extension`` is the header extension or None (X bit).
    """

    version: ClassVar[int] = RTP_VERSION

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: bytes = b""

    @property
    def has_padding(self) -> bool:
        """The P bit."""
        return bool(self.padding)

    @property
    def padding_length(self) -> int:
        """Octets of padding after the payload (0 when the P bit is clear)."""
        return len(self.padding)

    def to_bytes(self) -> bytes:
        """Serialise; raises ConfigError for out-of-range fields."""
        if not 0 <= self.payload_type <= 127:
            raise ConfigError("payload type must be 0..127")
        if len(self.csrcs) > 15:
            raise ConfigError("at most 15 CSRCs")
        _check_padding(self.padding)
        b0 = 0x80 | len(self.csrcs)
        if self.padding:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        b1 = self.payload_type | (0x80 if self.marker else 0)
        try:
            parts = [_HEADER.pack(b0, b1, self.sequence, self.timestamp, self.ssrc)]
            if self.csrcs:
                parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
            if self.extension is not None:
                profile, data = self.extension
                if len(data) % 4:
                    raise ConfigError("extension data must be a whole number of 32-bit words")
                parts.append(_EXT_HEADER.pack(profile, len(data) // 4))
                parts.append(data)
        except struct.error as exc:
            raise ConfigError(f"RTP field out of range: {exc}") from None
        parts.append(self.payload)
        parts.append(self.padding)
        return b"".join(parts)


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP datagram; raises only RtpParseError."""
    n = len(data)
    if n < RTP_HEADER_SIZE:
        raise RtpParseError("too short")
    if n > MAX_PACKET_SIZE:
        raise RtpParseError("oversized")
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        raise RtpParseError("bad version")
    pt = b1 & 0x7F
    if 72 <= pt <= 76:
        raise RtpParseError("payload type in RTCP range")
    cc = b0 & 0x0F
    pos = RTP_HEADER_SIZE + 4 * cc
    if pos > n:
        raise RtpParseError("CSRC list beyond packet")
    csrcs: tuple[int, ...] = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
    extension = None
    if b0 & 0x10:
        if pos + 4 > n:
            raise RtpParseError("extension header beyond packet")
        profile, words = _EXT_HEADER.unpack_from(data, pos)
        start = pos + 4
        pos = start + 4 * words
        if pos > n:
            raise RtpParseError("extension beyond packet")
        extension = RtpExtension(profile, bytes(data[start:pos]))
    end = n
    padding = b""
    if b0 & 0x20:
        count = data[-1]
        if count == 0:
            raise RtpParseError("zero padding length")
        if count > n - pos:
            raise RtpParseError("padding beyond payload")
        end = n - count
        padding = bytes(data[end:])
    return RtpPacket(
        pt,
        seq,
        ts,
        ssrc,
        bytes(data[pos:end]),
        bool(b1 & 0x80),
        csrcs,
        extension,
        padding,
    )


def peek_header(data: bytes) -> tuple[int, bool, int, int, int] | None:
    """``(payload_type, marker, sequence, timestamp, ssrc)``, or None if not RTP.

    A cheap pre-check for the hot path: length, version and the RTCP payload-type
    range only. CSRC, extension and padding consistency is left to ``parse_rtp``.
    """
    if len(data) < RTP_HEADER_SIZE or len(data) > MAX_PACKET_SIZE:
        return None
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
    pt = b1 & 0x7F
    if b0 >> 6 != RTP_VERSION or 72 <= pt <= 76:
        return None
    return pt, b1 > 0x7F, seq, ts, ssrc


def build_rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    """A plain RTP packet (no CSRCs, extension or padding), built with one struct.pack."""
    if not 0 <= pt <= 127 or 72 <= pt <= 76:
        raise ConfigError("payload type must be 0..127 and outside 72..76")
    try:
        return _HEADER.pack(0x80, pt | 0x80 if marker else pt, seq, ts, ssrc) + payload
    except struct.error as exc:
        raise ConfigError(f"RTP field out of range: {exc}") from None


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4 demultiplexing: True if this datagram is RTCP rather than RTP.

    The second octet of RTCP is its packet type (SR 200, RR 201, SDES 202, BYE 203,
    APP 204, RTPFB 205, PSFB 206, XR 207, ...); RFC 5761 reserves 192-223 for it,
    where RTP would have marker + payload type 64-95. The first octet must carry
    version 2 as well (which also keeps STUN and DTLS out, RFC 7983).
    """
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223
