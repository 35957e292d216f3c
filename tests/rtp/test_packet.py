"""siphon.rtp.packet: RTP parse/serialise (RFC 3550 §5), fast paths, RFC 5761 demux."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siphon.errors import ConfigError, RtpParseError
from siphon.rtp.packet import (
    MAX_PACKET_SIZE,
    RtpExtension,
    RtpPacket,
    build_rtp,
    is_rtcp,
    padding_bytes,
    parse_rtp,
    peek_header,
)
from siphon.rtp.seq import seq_diff, ts_diff

PCAP_DIR = Path("/usr/share/sip-tester")


def read_pcap_udp(path: Path) -> list[bytes]:
    """UDP payloads from a classic pcap file (Ethernet / IPv4 / UDP only)."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    endian = {0xA1B2C3D4: "<", 0xD4C3B2A1: ">"}[magic]
    (linktype,) = struct.unpack_from(endian + "I", data, 20)
    assert linktype == 1, "Ethernet captures only"
    payloads = []
    offset = 24
    while offset + 16 <= len(data):
        incl_len = struct.unpack_from(endian + "I", data, offset + 8)[0]
        frame = data[offset + 16 : offset + 16 + incl_len]
        offset += 16 + incl_len
        if struct.unpack_from("!H", frame, 12)[0] != 0x0800:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        total_len = struct.unpack_from("!H", ip, 2)[0]
        if ip[9] != 17:
            continue
        udp = ip[ihl:total_len]
        udp_len = struct.unpack_from("!H", udp, 4)[0]
        payloads.append(bytes(udp[8:udp_len]))
    return payloads


def capture(name: str) -> list[bytes]:
    path = PCAP_DIR / name
    if not path.exists():
        pytest.skip(f"{path} not installed (package sip-tester)")
    return read_pcap_udp(path)


DTMF_CAPTURES = sorted(p.name for p in PCAP_DIR.glob("dtmf_2833_*.pcap")) or ["dtmf_2833_0.pcap"]

# --- fixtures ------------------------------------------------------------------

# First packet of /usr/share/sip-tester/dtmf_2833_0.pcap: marker, PT 101, RFC 4733
# event 0, volume 10, duration 0.
DTMF_FIRST = bytes.fromhex("80e52f30000044e00e05384e000a0000")
# The header of the second packet of g711a.pcap (PT 8, seq 0xe6fe, ts 0x1e0) with
# its 240-octet payload shortened.
G711_SHORT = bytes.fromhex("8008e6fe000001e0dee0ee8f" + "d5d5d5d5")

HAND_FIXTURES: list[tuple[str, str, RtpPacket]] = [
    (
        "minimal",
        "80000001 00000002 00000003",
        RtpPacket(0, 1, 2, 3),
    ),
    (
        "dtmf-marker",
        DTMF_FIRST.hex(),
        RtpPacket(101, 0x2F30, 0x44E0, 0x0E05384E, bytes.fromhex("000a0000"), marker=True),
    ),
    (
        "g711",
        G711_SHORT.hex(),
        RtpPacket(8, 0xE6FE, 0x1E0, 0xDEE0EE8F, b"\xd5" * 4),
    ),
    (
        "max-fields",
        "80ff ffff ffffffff ffffffff",  # PT 127 + marker, all other bits ones
        RtpPacket(127, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, marker=True),
    ),
    (
        "two-csrcs",
        "8260 0010 00000140 11111111 22222222 33333333 abcd",
        RtpPacket(96, 16, 320, 0x11111111, b"\xab\xcd", csrcs=(0x22222222, 0x33333333)),
    ),
    (
        "rfc8285-one-byte-extension",
        "9000 0001 000000a0 0000abcd bede0001 10ff0000 7f7f",
        RtpPacket(
            0,
            1,
            160,
            0xABCD,
            b"\x7f\x7f",
            extension=RtpExtension(0xBEDE, bytes.fromhex("10ff0000")),
        ),
    ),
    (
        "empty-extension",
        "9000 0001 000000a0 0000abcd 10000000 7f",
        RtpPacket(0, 1, 160, 0xABCD, b"\x7f", extension=RtpExtension(0x1000, b"")),
    ),
    (
        "padding",
        "a000 0001 000000a0 0000abcd 0102 000003",
        RtpPacket(0, 1, 160, 0xABCD, b"\x01\x02", padding=b"\x00\x00\x03"),
    ),
    (
        "padding-nonzero-filler",
        "a000 0001 000000a0 0000abcd 01 aabb03",
        RtpPacket(0, 1, 160, 0xABCD, b"\x01", padding=b"\xaa\xbb\x03"),
    ),
    (
        "all-padding",
        "a000 0001 000000a0 0000abcd 00000004",
        RtpPacket(0, 1, 160, 0xABCD, b"", padding=b"\x00\x00\x00\x04"),
    ),
    (
        "everything",
        "b1e2 fffe 12345678 9abcdef0 00000001 0001 0002 aaaaaaaa bbbbbbbb 68656c6c6f 0002",
        RtpPacket(
            98,
            0xFFFE,
            0x12345678,
            0x9ABCDEF0,
            b"hello",
            marker=True,
            csrcs=(1,),
            extension=RtpExtension(1, bytes.fromhex("aaaaaaaabbbbbbbb")),
            padding=b"\x00\x02",
        ),
    ),
]


@pytest.mark.parametrize(("name", "hexdata", "packet"), HAND_FIXTURES, ids=lambda v: v)
def test_hand_fixtures(name: str, hexdata: str, packet: RtpPacket) -> None:
    data = bytes.fromhex(hexdata)
    parsed = parse_rtp(data)
    assert parsed == packet, name
    assert parsed.to_bytes() == data
    assert packet.to_bytes() == data
    assert parsed.version == 2
    assert parsed.has_padding is bool(packet.padding)
    assert parsed.padding_length == len(packet.padding)
    assert peek_header(data) == (
        packet.payload_type,
        packet.marker,
        packet.sequence,
        packet.timestamp,
        packet.ssrc,
    )


# --- real captures ---------------------------------------------------------------


def test_g711_capture_round_trips() -> None:
    packets = capture("g711a.pcap")
    assert len(packets) > 200
    parsed = [parse_rtp(p) for p in packets]
    for raw, pkt in zip(packets, parsed, strict=True):
        assert pkt.to_bytes() == raw
        assert pkt.payload_type == 8
        assert len(pkt.payload) == 240  # 30 ms of 8 kHz A-law
        assert peek_header(raw) == (8, pkt.marker, pkt.sequence, pkt.timestamp, pkt.ssrc)
        assert not is_rtcp(raw)
    assert len({p.ssrc for p in parsed}) == 1
    for prev, cur in itertools.pairwise(parsed):
        assert seq_diff(cur.sequence, prev.sequence) == 1
        assert ts_diff(cur.timestamp, prev.timestamp) == 240
    assert parsed[0].marker and not any(p.marker for p in parsed[1:])


@pytest.mark.parametrize("name", DTMF_CAPTURES)
def test_dtmf_captures_round_trip(name: str) -> None:
    packets = capture(name)
    assert packets
    parsed = [parse_rtp(p) for p in packets]
    for raw, pkt in zip(packets, parsed, strict=True):
        assert pkt.to_bytes() == raw
        assert pkt.payload_type == 101
        assert len(pkt.payload) == 4  # RFC 4733 event payload
        assert not is_rtcp(raw)
    assert parsed[0].marker  # start of the event
    # One event: all packets share the event's timestamp.
    assert len({p.timestamp for p in parsed}) == 1


def test_dtmf_first_fixture_matches_capture() -> None:
    assert capture("dtmf_2833_0.pcap")[0] == DTMF_FIRST


# --- malformed input ---------------------------------------------------------------

MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "too short"),
    ("11-octets", bytes.fromhex("8000000100000002000000"), "too short"),
    ("version-0", bytes.fromhex("000000010000000200000003"), "bad version"),
    ("version-1", bytes.fromhex("400000010000000200000003"), "bad version"),
    ("version-3", bytes.fromhex("c00000010000000200000003"), "bad version"),
    ("csrc-beyond", bytes.fromhex("8f0000010000000200000003"), "CSRC list beyond packet"),
    ("csrc-short", bytes.fromhex("82000001000000020000000300000004"), "CSRC list beyond packet"),
    ("ext-header-beyond", bytes.fromhex("900000010000000200000003be"), "extension header beyond"),
    (
        "ext-beyond",
        bytes.fromhex("900000010000000200000003bede0002aaaaaaaa"),
        "extension beyond packet",
    ),
    ("padding-zero", bytes.fromhex("a00000010000000200000003aa00"), "zero padding length"),
    ("padding-beyond", bytes.fromhex("a00000010000000200000003aa03"), "padding beyond payload"),
    ("padding-into-header", bytes.fromhex("a0000001000000020000000d"), "padding beyond payload"),
    (
        "padding-into-extension",
        bytes.fromhex("b00000010000000200000003bede000100000005"),
        "padding beyond payload",
    ),
    ("oversized", b"\x80\x00" + bytes(MAX_PACKET_SIZE - 1), "oversized"),
] + [
    (f"rtcp-pt-{pt}{'-marker' if m else ''}", bytes((0x80, pt | m)) + bytes(10), "RTCP range")
    for pt in range(72, 77)
    for m in (0, 0x80)
]


@pytest.mark.parametrize(("name", "data", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(RtpParseError, match=reason):
        parse_rtp(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(11),
        bytes.fromhex("400000010000000200000003"),
        bytes.fromhex("80c80006000000020000000300000000"),  # an RTCP SR
        bytes.fromhex("80480001000000020000000300000000"),  # PT 72, no marker
        b"\x80" + bytes(MAX_PACKET_SIZE),
    ],
)
def test_peek_header_refuses(data: bytes) -> None:
    assert peek_header(data) is None


def test_largest_packet_accepted() -> None:
    data = b"\x80\x00" + bytes(MAX_PACKET_SIZE - 2)
    assert len(parse_rtp(data).payload) == MAX_PACKET_SIZE - 12


def test_parse_accepts_bytearray_and_memoryview() -> None:
    for data in (bytearray(G711_SHORT), memoryview(G711_SHORT)):
        packet = parse_rtp(data)  # type: ignore[arg-type]
        assert type(packet.payload) is bytes
        assert packet.to_bytes() == G711_SHORT


# --- builders --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pt", "seq", "ts", "ssrc", "payload", "marker", "hexdata"),
    [
        (0, 1, 2, 3, b"", False, "80000001 00000002 00000003"),
        (101, 0x2F30, 0x44E0, 0x0E05384E, bytes.fromhex("000a0000"), True, DTMF_FIRST.hex()),
        (8, 0xE6FE, 0x1E0, 0xDEE0EE8F, b"\xd5" * 4, False, G711_SHORT.hex()),
        (127, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, b"x", True, "80ffffffffffffffffffffff78"),
    ],
)
def test_build_rtp(
    pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool, hexdata: str
) -> None:
    data = build_rtp(pt, seq, ts, ssrc, payload, marker)
    assert data == bytes.fromhex(hexdata)
    assert data == RtpPacket(pt, seq, ts, ssrc, payload, marker).to_bytes()
    assert parse_rtp(data) == RtpPacket(pt, seq, ts, ssrc, payload, marker)


@pytest.mark.parametrize(
    ("pt", "seq", "ts", "ssrc"),
    [
        (128, 0, 0, 0),
        (-1, 0, 0, 0),
        (72, 0, 0, 0),
        (76, 0, 0, 0),
        (0, 65536, 0, 0),
        (0, -1, 0, 0),
        (0, 0, 1 << 32, 0),
        (0, 0, 0, 1 << 32),
    ],
)
def test_build_rtp_refuses_out_of_range(pt: int, seq: int, ts: int, ssrc: int) -> None:
    with pytest.raises(ConfigError):
        build_rtp(pt, seq, ts, ssrc, b"")


@pytest.mark.parametrize(
    "packet",
    [
        RtpPacket(128, 0, 0, 0),
        RtpPacket(0, 65536, 0, 0),
        RtpPacket(0, 0, 0, 0, csrcs=tuple(range(16))),
        RtpPacket(0, 0, 0, 0, csrcs=(1 << 32,)),
        RtpPacket(0, 0, 0, 0, extension=RtpExtension(0xBEDE, b"\x00\x00\x00")),
        RtpPacket(0, 0, 0, 0, extension=RtpExtension(0x10000, b"")),
        RtpPacket(0, 0, 0, 0, padding=b"\x00\x00"),
        RtpPacket(0, 0, 0, 0, padding=b"\x00" * 255 + b"\x00"),
    ],
)
def test_to_bytes_refuses_bad_fields(packet: RtpPacket) -> None:
    with pytest.raises(ConfigError):
        packet.to_bytes()


@pytest.mark.parametrize(("length", "hexdata"), [(1, "01"), (4, "00000004"), (255, None)])
def test_padding_bytes(length: int, hexdata: str | None) -> None:
    pad = padding_bytes(length)
    assert len(pad) == length and pad[-1] == length and not any(pad[:-1])
    if hexdata:
        assert pad == bytes.fromhex(hexdata)


@pytest.mark.parametrize("length", [0, 256, -1])
def test_padding_bytes_range(length: int) -> None:
    with pytest.raises(ConfigError):
        padding_bytes(length)


# --- RFC 5761 demultiplexing ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "rtcp"),
    [
        (bytes.fromhex("80c80006"), True),  # SR
        (bytes.fromhex("81c90007"), True),  # RR
        (bytes.fromhex("81ca0005"), True),  # SDES
        (bytes.fromhex("81cb0001"), True),  # BYE
        (bytes.fromhex("84cc0003"), True),  # APP
        (bytes.fromhex("81cd0003"), True),  # RTPFB
        (bytes.fromhex("81ce0002"), True),  # PSFB
        (bytes.fromhex("80cf0002"), True),  # XR
        (bytes.fromhex("80c00000"), True),  # 192: first of the RFC 5761 range
        (bytes.fromhex("80df0000"), True),  # 223: last of the range
        (bytes.fromhex("80e00000"), False),  # marker + PT 96
        (bytes.fromhex("80bf0000"), False),  # marker + PT 63
        (bytes.fromhex("8008e6fd"), False),  # PCMA
        (bytes.fromhex("8088e6fd"), False),  # PCMA + marker
        (DTMF_FIRST, False),
        (bytes.fromhex("00010000"), False),  # STUN binding request
        (bytes.fromhex("16fefd00"), False),  # DTLS handshake
        (bytes.fromhex("40c80006"), False),  # version 1
        (bytes.fromhex("80"), False),
        (b"", False),
    ],
)
def test_is_rtcp(data: bytes, rtcp: bool) -> None:
    assert is_rtcp(data) is rtcp


# --- properties -----------------------------------------------------------------------


@given(st.binary(max_size=200))
def test_random_bytes_raise_only_rtp_parse_error(data: bytes) -> None:
    peeked = peek_header(data)
    try:
        packet = parse_rtp(data)
    except RtpParseError:
        return
    # Anything accepted is written back identically, and peek_header agrees.
    assert packet.to_bytes() == data
    assert peeked == (
        packet.payload_type,
        packet.marker,
        packet.sequence,
        packet.timestamp,
        packet.ssrc,
    )


@given(
    st.builds(
        bytes,
        st.tuples(st.sampled_from([0x80, 0x90, 0xA0, 0xB0, 0x81, 0x93]), st.integers(0, 255)),
    ),
    st.binary(min_size=10, max_size=80),
)
def test_random_bodies_behind_valid_first_octets(head: bytes, rest: bytes) -> None:
    data = head + rest
    try:
        packet = parse_rtp(data)
    except RtpParseError:
        return
    assert packet.to_bytes() == data


payload_types = st.integers(0, 127).filter(lambda pt: not 72 <= pt <= 76)
u32 = st.integers(0, (1 << 32) - 1)


@st.composite
def rtp_packets(draw: st.DrawFn) -> RtpPacket:
    extension = draw(
        st.none()
        | st.builds(
            RtpExtension,
            st.integers(0, 0xFFFF),
            st.integers(0, 8).flatmap(lambda w: st.binary(min_size=4 * w, max_size=4 * w)),
        )
    )
    pad_len = draw(st.integers(0, 255))
    padding = b""
    if pad_len:
        filler = draw(st.binary(min_size=pad_len - 1, max_size=pad_len - 1))
        padding = filler + bytes((pad_len,))
    return RtpPacket(
        draw(payload_types),
        draw(st.integers(0, 0xFFFF)),
        draw(u32),
        draw(u32),
        draw(st.binary(max_size=400)),
        draw(st.booleans()),
        tuple(draw(st.lists(u32, max_size=15))),
        extension,
        padding,
    )


@given(rtp_packets())
def test_valid_packets_round_trip(packet: RtpPacket) -> None:
    data = packet.to_bytes()
    parsed = parse_rtp(data)
    assert parsed == packet
    assert parsed.to_bytes() == data
    assert peek_header(data) == (
        packet.payload_type,
        packet.marker,
        packet.sequence,
        packet.timestamp,
        packet.ssrc,
    )
    # RFC 5761: marker + PT 64..95 reads as RTCP, so a muxed session avoids them.
    assert is_rtcp(data) is (packet.marker and 64 <= packet.payload_type <= 95)
