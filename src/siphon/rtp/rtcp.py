"""RTCP (RFC 3550 §6): packets, reception statistics, and the report scheduler.

Parsing is strict and raises only :class:`~siphon.errors.RtpParseError`. With
``strict=True`` (the default) ``parse_rtcp`` applies the RFC 3550 Appendix A.2
validity checks to a compound packet:

- every packet has version 2;
- the first packet is an SR or RR and has the padding bit clear;
- only the last packet may carry padding, its count is a non-zero multiple of 4
  within the packet;
- the length fields add up to exactly the datagram length.

``strict=False`` drops the two first-packet checks, for RFC 5506 reduced-size
RTCP (e.g. a lone feedback packet). The compound-must-carry-CNAME rule of §6.1
is not enforced: peers that omit SDES still send useful reports. Packet types
we do not model (APP, RTPFB, PSFB, XR, ...) come back as ``UnknownRtcp``.

Every packet class serialises with ``to_bytes()`` back to the identical bytes it
was parsed from: the parser insists on the canonical encoding where RFC 3550
leaves no choice (SDES chunks end with 1-4 null octets, a BYE reason is padded
with null octets to a word boundary), and keeps everything else (padding
octets, SR/RR profile extensions, unknown packets) verbatim.
Builders raise :class:`~siphon.errors.ConfigError` for values that do not fit.

``ReceptionStats`` keeps the per-source receiver state behind a report block
(sequence tracking per A.1/A.3, interarrival jitter per A.8, LSR/DLSR), and
``RtcpScheduler`` decides when the next report is due (§6.3.1 randomisation).
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from siphon.errors import ConfigError, RtpParseError
from siphon.rtp.packet import MAX_PACKET_SIZE
from siphon.rtp.seq import MIN_SEQUENTIAL, SequenceTracker, ts_diff

RTCP_VERSION = 2

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

SDES_END = 0
SDES_CNAME = 1
SDES_NAME = 2
SDES_EMAIL = 3
SDES_PHONE = 4
SDES_LOC = 5
SDES_TOOL = 6
SDES_NOTE = 7
SDES_PRIV = 8

# Seconds between the NTP epoch (1900) and the Unix epoch (1970).
NTP_UNIX_OFFSET = 2_208_988_800

MAX_REPORT_BLOCKS = 31  # the 5-bit RC field

_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IIIIII")
_U32 = struct.Struct("!I")
# The builders' fixed parts in one pack each: header, SSRC (and sender info).
_SR_HEAD = struct.Struct("!BBHIIIIII")
_RR_HEAD = struct.Struct("!BBHI")
_SDES_HEAD = struct.Struct("!BBHIBB")

_U32_MAX = 0xFFFFFFFF
_LOST_MAX = 0x7FFFFF
_LOST_MIN = -0x800000


# --- NTP time ------------------------------------------------------------------


def ntp_from_unix(t: float) -> tuple[int, int]:
    """``(seconds, fraction)`` of the 64-bit NTP timestamp for Unix time ``t``.

    Seconds wrap modulo 2**32 (NTP era 1 begins in 2036).
    """
    sec = math.floor(t)
    frac = round((t - sec) * 4294967296.0)
    if frac >= 1 << 32:
        sec += 1
        frac = 0
    return (sec + NTP_UNIX_OFFSET) & _U32_MAX, frac


def ntp_to_unix(sec: int, frac: int) -> float:
    """Unix time of an NTP timestamp (RFC 4330 §3: MSB clear means era 1, 2036-2104)."""
    if not sec & 0x80000000:
        sec += 1 << 32
    return sec - NTP_UNIX_OFFSET + frac / 4294967296.0


def middle_32(ntp: tuple[int, int]) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR field of a report block."""
    sec, frac = ntp
    return ((sec & 0xFFFF) << 16) | ((frac >> 16) & 0xFFFF)


def to_dlsr(seconds: float) -> int:
    """A delay in seconds as a DLSR value (1/65536 s units), clamped to 32 bits."""
    return max(0, min(int(seconds * 65536.0), _U32_MAX))


def round_trip_time(block: ReportBlock, ntp_now: tuple[int, int]) -> float | None:
    """RTT in seconds from a report block about our stream (RFC 3550 §6.4.1, Figure 2).

    ``ntp_now`` is the arrival time of the block on the same NTP scale we used for
    our SR. None when the peer has not received an SR from us yet (LSR 0).
    """
    if block.lsr == 0:
        return None
    rtt = (middle_32(ntp_now) - block.lsr - block.dlsr) & _U32_MAX
    if rtt & 0x80000000:  # negative: clocks stepped or a bogus DLSR
        return 0.0
    return rtt / 65536.0


# --- packets -------------------------------------------------------------------


def _check_padding(padding: bytes) -> None:
    if not padding:
        return
    if padding[-1] != len(padding) or len(padding) % 4:
        raise ConfigError(
            "RTCP padding must be a multiple of 4 octets, at most 252, ending in its length"
        )


def _pack_header(count: int, pt: int, body_len: int, padding: bytes) -> bytes:
    _check_padding(padding)
    total = 4 + body_len + len(padding)
    if total % 4:
        raise ConfigError("RTCP packet body must be a whole number of 32-bit words")
    if total > 4 * 0x10000:
        raise ConfigError("RTCP packet too long")
    if not 0 <= count <= 31:
        raise ConfigError("RTCP count field must be 0..31")
    b0 = 0x80 | count | (0x20 if padding else 0)
    return _HEADER.pack(b0, pt, total // 4 - 1)


@dataclass(slots=True, frozen=True)
class ReportBlock:
    """A reception report block (RFC 3550 §6.4.1) about one source."""

    ssrc: int
    fraction_lost: int  # 0..255, in 1/256 units
    cumulative_lost: int  # signed 24-bit
    highest_seq: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, timestamp units
    lsr: int  # middle 32 bits of the last SR's NTP timestamp, 0 if none
    dlsr: int  # delay since that SR, 1/65536 s

    def to_bytes(self) -> bytes:
        if not 0 <= self.fraction_lost <= 255:
            raise ConfigError("fraction_lost must be 0..255")
        if not _LOST_MIN <= self.cumulative_lost <= _LOST_MAX:
            raise ConfigError("cumulative_lost must fit in signed 24 bits")
        lost_word = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        try:
            return _BLOCK.pack(
                self.ssrc, lost_word, self.highest_seq, self.jitter, self.lsr, self.dlsr
            )
        except struct.error as exc:
            raise ConfigError(f"report block field out of range: {exc}") from None


def _pack_blocks(blocks: tuple[ReportBlock, ...]) -> bytes:
    if len(blocks) > MAX_REPORT_BLOCKS:
        raise ConfigError("at most 31 report blocks per SR/RR; send another RR for the rest")
    return b"".join(block.to_bytes() for block in blocks)


def _pack_u32s(*values: int) -> bytes:
    try:
        return struct.pack(f"!{len(values)}I", *values)
    except struct.error as exc:
        raise ConfigError(f"RTCP field out of range: {exc}") from None


@dataclass(slots=True, frozen=True)
class SenderReport:
    """SR (PT 200): sender info plus reception report blocks.

    ``extension`` is the profile-specific extension after the blocks (usually empty).
    """

    packet_type: ClassVar[int] = RTCP_SR

    ssrc: int
    ntp_sec: int
    ntp_frac: int
    rtp_ts: int
    packet_count: int
    octet_count: int
    blocks: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    padding: bytes = b""

    @property
    def ntp(self) -> tuple[int, int]:
        return self.ntp_sec, self.ntp_frac

    def to_bytes(self) -> bytes:
        body = (
            _pack_u32s(
                self.ssrc,
                self.ntp_sec,
                self.ntp_frac,
                self.rtp_ts,
                self.packet_count,
                self.octet_count,
            )
            + _pack_blocks(self.blocks)
            + self.extension
        )
        return (
            _pack_header(len(self.blocks), RTCP_SR, len(body), self.padding) + body + self.padding
        )


@dataclass(slots=True, frozen=True)
class ReceiverReport:
    """RR (PT 201): reception report blocks from a participant that is not sending."""

    packet_type: ClassVar[int] = RTCP_RR

    ssrc: int
    blocks: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    padding: bytes = b""

    def to_bytes(self) -> bytes:
        body = _pack_u32s(self.ssrc) + _pack_blocks(self.blocks) + self.extension
        return (
            _pack_header(len(self.blocks), RTCP_RR, len(body), self.padding) + body + self.padding
        )


class SdesItem(NamedTuple):
    """One SDES item: type (``SDES_CNAME``, ...) and raw value (UTF-8 text for most)."""

    type: int
    value: bytes


@dataclass(slots=True, frozen=True)
class SdesChunk:
    """The SDES items about one SSRC/CSRC."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    def get(self, item_type: int) -> str | None:
        """The first item of ``item_type`` as text, or None."""
        for item in self.items:
            if item.type == item_type:
                return item.value.decode("utf-8", "replace")
        return None

    @property
    def cname(self) -> str | None:
        return self.get(SDES_CNAME)

    def to_bytes(self) -> bytes:
        parts = [_pack_u32s(self.ssrc)]
        size = 0
        for item_type, value in self.items:
            if not 1 <= item_type <= 255:
                raise ConfigError("SDES item type must be 1..255 (0 ends the list)")
            if len(value) > 255:
                raise ConfigError("an SDES item holds at most 255 octets")
            parts.append(bytes((item_type, len(value))))
            parts.append(value)
            size += 2 + len(value)
        parts.append(bytes(4 - size % 4))  # the null item, padded to a word boundary
        return b"".join(parts)


@dataclass(slots=True, frozen=True)
class SourceDescription:
    """SDES (PT 202): chunks of source description items (CNAME, NAME, ...)."""

    packet_type: ClassVar[int] = RTCP_SDES

    chunks: tuple[SdesChunk, ...] = ()
    padding: bytes = b""

    def to_bytes(self) -> bytes:
        body = b"".join(chunk.to_bytes() for chunk in self.chunks)
        return (
            _pack_header(len(self.chunks), RTCP_SDES, len(body), self.padding) + body + self.padding
        )


@dataclass(slots=True, frozen=True)
class Bye:
    """BYE (PT 203): the listed sources are leaving, optionally with a reason.

    The reason is decoded as UTF-8 with ``surrogateescape`` so that any octets
    round-trip unchanged.
    """

    packet_type: ClassVar[int] = RTCP_BYE

    ssrcs: tuple[int, ...] = ()
    reason: str | None = None
    padding: bytes = b""

    def to_bytes(self) -> bytes:
        body = _pack_u32s(*self.ssrcs) if self.ssrcs else b""
        if self.reason is not None:
            text = self.reason.encode("utf-8", "surrogateescape")
            if len(text) > 255:
                raise ConfigError("a BYE reason holds at most 255 octets")
            reason = bytes((len(text),)) + text
            body += reason + bytes(-len(reason) % 4)
        return (
            _pack_header(len(self.ssrcs), RTCP_BYE, len(body), self.padding) + body + self.padding
        )


@dataclass(slots=True, frozen=True)
class UnknownRtcp:
    """A packet type we do not model (APP, RTPFB, PSFB, XR, ...), kept as is.

    ``count`` is the 5-bit field after the padding bit (RC/SC/FMT/subtype) and
    ``data`` everything after the 4-octet header, padding excluded.
    """

    pt: int
    data: bytes
    count: int = 0
    padding: bytes = b""

    @property
    def packet_type(self) -> int:
        return self.pt

    def to_bytes(self) -> bytes:
        if not 0 <= self.pt <= 255:
            raise ConfigError("RTCP packet type must be 0..255")
        return (
            _pack_header(self.count, self.pt, len(self.data), self.padding)
            + self.data
            + self.padding
        )


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcp


# --- parsing -------------------------------------------------------------------


def _parse_blocks(body: bytes, pos: int, count: int) -> tuple[ReportBlock, ...]:
    blocks = []
    for _ in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(body, pos)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        blocks.append(ReportBlock(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr))
        pos += _BLOCK.size
    return tuple(blocks)


def _parse_sr(body: bytes, count: int, padding: bytes) -> SenderReport:
    end = _SENDER_INFO.size + _BLOCK.size * count
    if len(body) < end:
        raise RtpParseError("SR shorter than its report blocks")
    ssrc, ntp_sec, ntp_frac, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body)
    blocks = _parse_blocks(body, _SENDER_INFO.size, count)
    return SenderReport(
        ssrc, ntp_sec, ntp_frac, rtp_ts, packets, octets, blocks, body[end:], padding
    )


def _parse_rr(body: bytes, count: int, padding: bytes) -> ReceiverReport:
    end = 4 + _BLOCK.size * count
    if len(body) < end:
        raise RtpParseError("RR shorter than its report blocks")
    (ssrc,) = _U32.unpack_from(body)
    return ReceiverReport(ssrc, _parse_blocks(body, 4, count), body[end:], padding)


def _parse_sdes(body: bytes, count: int, padding: bytes) -> SourceDescription:
    chunks = []
    pos = 0
    n = len(body)
    for _ in range(count):
        if pos + 4 > n:
            raise RtpParseError("SDES chunk beyond packet")
        (ssrc,) = _U32.unpack_from(body, pos)
        pos += 4
        items = []
        while True:
            if pos >= n:
                raise RtpParseError("unterminated SDES chunk")
            item_type = body[pos]
            if item_type == SDES_END:
                # The null item, then null octets up to the word boundary (the
                # body is whole words, so the boundary is within it).
                end = (pos + 4) & ~3
                if any(body[pos:end]):
                    raise RtpParseError("non-null octets after the SDES end item")
                pos = end
                break
            if pos + 2 > n:
                raise RtpParseError("SDES item beyond packet")
            length = body[pos + 1]
            start = pos + 2
            pos = start + length
            if pos > n:
                raise RtpParseError("SDES item beyond packet")
            items.append(SdesItem(item_type, body[start:pos]))
        chunks.append(SdesChunk(ssrc, tuple(items)))
    if pos != n:
        raise RtpParseError("trailing data after SDES chunks")
    return SourceDescription(tuple(chunks), padding)


def _parse_bye(body: bytes, count: int, padding: bytes) -> Bye:
    pos = 4 * count
    n = len(body)
    if pos > n:
        raise RtpParseError("BYE SSRC list beyond packet")
    ssrcs: tuple[int, ...] = struct.unpack_from(f"!{count}I", body) if count else ()
    reason = None
    if pos < n:
        length = body[pos]
        end = pos + 1 + length
        if end > n:
            raise RtpParseError("BYE reason beyond packet")
        if (end + 3) & ~3 != n:
            raise RtpParseError("trailing data after BYE reason")
        if any(body[end:]):
            raise RtpParseError("BYE reason not padded with null octets")
        reason = body[pos + 1 : end].decode("utf-8", "surrogateescape")
    return Bye(ssrcs, reason, padding)


def parse_rtcp(data: bytes, *, strict: bool = True) -> list[RtcpPacket]:
    """Parse a compound RTCP datagram; raises only RtpParseError.

    See the module docstring for what ``strict`` checks.
    """
    n = len(data)
    if n < 4:
        raise RtpParseError("too short")
    if n > MAX_PACKET_SIZE:
        raise RtpParseError("oversized")
    if n % 4:
        raise RtpParseError("length not a multiple of 4")
    if strict and (data[0] & 0xE0 != 0x80 or data[1] not in (RTCP_SR, RTCP_RR)):
        # A.2: version 2, no padding, SR or RR in the first packet's header.
        if data[0] >> 6 != RTCP_VERSION:
            raise RtpParseError("bad version")
        if data[1] not in (RTCP_SR, RTCP_RR):
            raise RtpParseError("first packet is not SR or RR")
        raise RtpParseError("padding in first packet")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < n:
        b0, pt, length = _HEADER.unpack_from(data, offset)
        if b0 >> 6 != RTCP_VERSION:
            raise RtpParseError("bad version")
        end = offset + 4 * (length + 1)
        if end > n:
            raise RtpParseError("length beyond data")
        body_end = end
        padding = b""
        if b0 & 0x20:
            if end != n:
                raise RtpParseError("padding before last packet")
            pad = data[end - 1]
            if pad == 0 or pad % 4 or pad > end - offset - 4:
                raise RtpParseError("bad padding length")
            body_end = end - pad
            padding = bytes(data[body_end:end])
        body = bytes(data[offset + 4 : body_end])
        count = b0 & 0x1F
        packet: RtcpPacket
        if pt == RTCP_SR:
            packet = _parse_sr(body, count, padding)
        elif pt == RTCP_RR:
            packet = _parse_rr(body, count, padding)
        elif pt == RTCP_SDES:
            packet = _parse_sdes(body, count, padding)
        elif pt == RTCP_BYE:
            packet = _parse_bye(body, count, padding)
        else:
            packet = UnknownRtcp(pt, body, count, padding)
        packets.append(packet)
        offset = end
    return packets


# --- builders ------------------------------------------------------------------


def build_sr(
    ssrc: int,
    ntp_sec: int,
    ntp_frac: int,
    rtp_ts: int,
    packet_count: int,
    octet_count: int,
    blocks: Iterable[ReportBlock] = (),
) -> bytes:
    """An SR packet. Packet and octet counts wrap modulo 2**32 (RFC 3550 §6.4.1).

    The bytes of ``SenderReport(...).to_bytes()``, packed directly: every call sends
    one with its RTCP BYE (RFC 3550 §6.3.7), so call teardown pays for it.
    """
    listed = tuple(blocks)
    body = _pack_blocks(listed)  # at most 31 (checked there)
    count = len(listed)
    try:
        head = _SR_HEAD.pack(
            0x80 | count,
            RTCP_SR,
            6 + 6 * count,  # length in words minus one: SSRC, sender info, blocks
            ssrc,
            ntp_sec,
            ntp_frac,
            rtp_ts,
            packet_count & _U32_MAX,
            octet_count & _U32_MAX,
        )
    except struct.error as exc:
        raise ConfigError(f"RTCP field out of range: {exc}") from None
    return head + body


def build_rr(ssrc: int, blocks: Iterable[ReportBlock] = ()) -> bytes:
    """An RR packet (a participant that has not sent RTP since the last report)."""
    listed = tuple(blocks)
    body = _pack_blocks(listed)
    count = len(listed)
    try:
        head = _RR_HEAD.pack(0x80 | count, RTCP_RR, 1 + 6 * count, ssrc)
    except struct.error as exc:
        raise ConfigError(f"RTCP field out of range: {exc}") from None
    return head + body


def build_sdes_cname(ssrc: int, cname: str) -> bytes:
    """An SDES packet with one chunk carrying only the CNAME (RFC 3550 §6.5.1)."""
    value = cname.encode()
    if len(value) > 255:
        raise ConfigError("an SDES item holds at most 255 octets")
    size = 2 + len(value)  # the item; then the null item, padded to a word boundary
    nulls = 4 - size % 4
    try:
        head = _SDES_HEAD.pack(
            0x81, RTCP_SDES, (4 + size + nulls) // 4, ssrc, SDES_CNAME, len(value)
        )
    except struct.error as exc:
        raise ConfigError(f"RTCP field out of range: {exc}") from None
    return head + value + bytes(nulls)


def build_bye(ssrcs: Iterable[int], reason: str | None = None) -> bytes:
    """A BYE packet for ``ssrcs`` with an optional reason (at most 255 UTF-8 octets)."""
    listed = tuple(ssrcs)
    count = len(listed)
    if reason is not None or count > 31:  # a reason, or too many for the 5-bit SC field
        return Bye(listed, reason).to_bytes()
    try:
        return struct.pack(f"!BBH{count}I", 0x80 | count, RTCP_BYE, count, *listed)
    except struct.error as exc:
        raise ConfigError(f"RTCP field out of range: {exc}") from None


def build_compound(packets: Iterable[RtcpPacket | bytes], *, strict: bool = True) -> bytes:
    """Concatenate packets (objects or already-built bytes) into one compound packet.

    Checks what ``parse_rtcp`` checks on the structure: only the last packet may
    be padded, and with ``strict`` the first must be an SR or RR.
    """
    wire = [p if isinstance(p, bytes) else p.to_bytes() for p in packets]
    if not wire:
        raise ConfigError("a compound RTCP packet needs at least one packet")
    for i, raw in enumerate(wire):
        if len(raw) < 4 or len(raw) % 4 or raw[0] >> 6 != RTCP_VERSION:
            raise ConfigError("not an RTCP packet (version 2, whole 32-bit words)")
        if 4 * (((raw[2] << 8) | raw[3]) + 1) != len(raw):
            raise ConfigError("RTCP length field does not match the packet")
        if raw[0] & 0x20 and i != len(wire) - 1:
            raise ConfigError("only the last packet of a compound may be padded")
    if strict and (wire[0][1] not in (RTCP_SR, RTCP_RR) or wire[0][0] & 0x20):
        raise ConfigError("a compound RTCP packet starts with an unpadded SR or RR")
    return b"".join(wire)


# --- reception statistics --------------------------------------------------------


class ReceptionStats:
    """What we know about one remote source, for the report block we send about it.

    Sequence accounting is a :class:`SequenceTracker` (RFC 3550 A.1/A.3); jitter
    is the A.8 estimator ``J += (|D| - J) / 16`` in timestamp units, where D
    compares the spacing of arrival times (seconds times ``clock_rate``) with the
    spacing of RTP timestamps of consecutive packets. Packets the tracker refuses
    and duplicates do not feed the jitter; a sender restart starts a new pair.
    """

    __slots__ = (
        "_have_prev",
        "_lsr",
        "_prev_arrival",
        "_prev_ts",
        "_sr_arrival",
        "clock_rate",
        "jitter",
        "ssrc",
        "tracker",
    )

    def __init__(self, ssrc: int, clock_rate: int, *, min_sequential: int = MIN_SEQUENTIAL) -> None:
        if clock_rate <= 0:
            raise ConfigError("clock_rate must be positive")
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.tracker = SequenceTracker(min_sequential)
        self.jitter = 0.0  # timestamp units
        self._have_prev = False
        self._prev_arrival = 0.0
        self._prev_ts = 0
        self._lsr = 0
        self._sr_arrival: float | None = None

    def on_packet(self, seq: int, rtp_ts: int, arrival: float) -> bool:
        """Account for an RTP packet that arrived at ``arrival`` seconds; as ``update``."""
        tracker = self.tracker
        restarts = tracker.restarts
        duplicates = tracker.duplicates
        if not tracker.update(seq):
            return False
        if tracker.restarts != restarts:
            self._have_prev = False
        elif tracker.duplicates != duplicates:
            return True
        if self._have_prev:
            d = (arrival - self._prev_arrival) * self.clock_rate - ts_diff(rtp_ts, self._prev_ts)
            self.jitter += (abs(d) - self.jitter) / 16.0
        self._have_prev = True
        self._prev_arrival = arrival
        self._prev_ts = rtp_ts
        return True

    def on_sender_report(self, sr: SenderReport, arrival: float) -> None:
        """Remember an SR from this source: its LSR value and when it arrived (for DLSR)."""
        self._lsr = middle_32(sr.ntp)
        self._sr_arrival = arrival

    @property
    def lsr(self) -> int:
        """Middle 32 bits of the last SR's NTP timestamp, 0 if none yet."""
        return self._lsr

    @property
    def last_sr_arrival(self) -> float | None:
        return self._sr_arrival

    @property
    def jitter_ms(self) -> float:
        """The jitter estimate in milliseconds."""
        return self.jitter * 1000.0 / self.clock_rate

    def report_block(self, now: float) -> ReportBlock:
        """The report block to send now; starts a new fraction-lost interval."""
        tracker = self.tracker
        fraction = tracker.take_fraction_lost()
        lost = max(_LOST_MIN, min(tracker.lost, _LOST_MAX))
        if self._sr_arrival is None:
            lsr = dlsr = 0
        else:
            lsr = self._lsr
            dlsr = to_dlsr(now - self._sr_arrival)
        return ReportBlock(
            self.ssrc,
            fraction,
            lost,
            tracker.extended_max & _U32_MAX,
            min(int(self.jitter), _U32_MAX),
            lsr,
            dlsr,
        )


# Interval jitter needs spread, not secrecy: one generator for every session instead of
# seeding a new one (2.5 KB from the kernel) per call.
_INTERVAL_RNG = random.Random()


class RtcpScheduler:
    """When to send the next RTCP report (RFC 3550 §6.3.1, two-party simplification).

    The deterministic interval is ``interval`` seconds (the RFC's 5 s minimum,
    which dominates the bandwidth-based interval for a two-party voice call),
    halved for the first report; each actual interval is that times a uniform
    random factor in [0.5, 1.5] so that participants do not synchronise. Timer
    reconsideration (and its e - 3/2 compensation) is not needed for unicast.
    """

    __slots__ = ("_next", "_rng", "interval")

    def __init__(
        self, now: float, *, interval: float = 5.0, rng: random.Random | None = None
    ) -> None:
        if interval <= 0:
            raise ConfigError("RTCP interval must be positive")
        self.interval = interval
        self._rng = rng if rng is not None else _INTERVAL_RNG
        self._next = now + self._draw(interval / 2.0)

    def _draw(self, base: float) -> float:
        return base * self._rng.uniform(0.5, 1.5)

    @property
    def next_due(self) -> float:
        """When the next report is due (seconds, same scale as ``now``)."""
        return self._next

    def due(self, now: float) -> bool:
        return now >= self._next

    def sent(self, now: float) -> None:
        """A report went out at ``now``: schedule the next one."""
        self._next = now + self._draw(self.interval)
