"""siphon.rtp.rtcp: RTCP packets (RFC 3550 §6), A.8 jitter, report blocks, scheduling."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siphon.errors import ConfigError, RtpParseError
from siphon.rtp.packet import MAX_PACKET_SIZE, is_rtcp
from siphon.rtp.rtcp import (
    NTP_UNIX_OFFSET,
    RTCP_APP,
    SDES_CNAME,
    SDES_NAME,
    SDES_TOOL,
    Bye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    RtcpPacket,
    RtcpScheduler,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    build_bye,
    build_compound,
    build_rr,
    build_sdes_cname,
    build_sr,
    middle_32,
    ntp_from_unix,
    ntp_to_unix,
    parse_rtcp,
    round_trip_time,
    to_dlsr,
)
from siphon.rtp.seq import SEQ_MOD, seq_add, ts_add

# --- fixtures ------------------------------------------------------------------
# SR, SDES, RR and BYE as captured from an RTSP session (Wireshark dissection in
# the comments). The SR+SDES and RR+BYE pairs travelled as compound packets.

SR_HEX = "80c80006 60ef152b e98aa31c 75cbee80 281c163c 00000080 000156ba"
SR_PACKET = SenderReport(
    ssrc=0x60EF152B,
    ntp_sec=3918177052,  # Feb 29, 2024 06:30:52.460142999 UTC
    ntp_frac=1976299136,
    rtp_ts=672929340,
    packet_count=128,
    octet_count=87738,
)
SDES_HEX = "81ca0005 60ef152b 010b 7368616f2d6c656e6f766f 000000"
SDES_PACKET = SourceDescription((SdesChunk(0x60EF152B, (SdesItem(SDES_CNAME, b"shao-lenovo"),)),))
RR_HEX = "81c90007 42298473 60ef152b 00ffffff 0001bc6f 00000041 a31f3980 0000adb3"
RR_BLOCK = ReportBlock(
    ssrc=0x60EF152B,
    fraction_lost=0,
    cumulative_lost=-1,  # one duplicate more than expected
    highest_seq=113775,  # 1 cycle, seq 48239
    jitter=65,
    lsr=0xA31F3980,
    dlsr=44467,  # 678 ms
)
RR_PACKET = ReceiverReport(0x42298473, (RR_BLOCK,))
BYE_HEX = "81cb0001 42298473"
BYE_PACKET = Bye((0x42298473,))

RR0 = "80c90001 42298473"  # an RR without blocks, to lead compound packets

ROUND_TRIPS: list[tuple[str, str, list[RtcpPacket]]] = [
    ("captured-sr", SR_HEX, [SR_PACKET]),
    ("captured-rr", RR_HEX, [RR_PACKET]),
    ("captured-sr-sdes", SR_HEX + SDES_HEX, [SR_PACKET, SDES_PACKET]),
    ("captured-rr-bye", RR_HEX + BYE_HEX, [RR_PACKET, BYE_PACKET]),
    ("rr-no-blocks", RR0, [ReceiverReport(0x42298473)]),
    (
        "sr-block-and-profile-extension",
        "81c8000d 00000001 e98aa31c 75cbee80 281c163c 00000080 000156ba"
        " 00000002 19000003 0001bc6f 00000041 a31c75cb 00010000 deadbeef",
        [
            SenderReport(
                1,
                0xE98AA31C,
                0x75CBEE80,
                672929340,
                128,
                87738,
                (ReportBlock(2, 25, 3, 113775, 65, 0xA31C75CB, 65536),),
                extension=bytes.fromhex("deadbeef"),
            )
        ],
    ),
    (
        "rr-lost-extremes",
        "82c9000d 00000009"
        " 00000001 ff7fffff ffffffff ffffffff ffffffff ffffffff"
        " 00000002 00800000 00000000 00000000 00000000 00000000",
        [
            ReceiverReport(
                9,
                (
                    ReportBlock(1, 255, 0x7FFFFF, 2**32 - 1, 2**32 - 1, 2**32 - 1, 2**32 - 1),
                    ReportBlock(2, 0, -0x800000, 0, 0, 0, 0),
                ),
            )
        ],
    ),
    (
        "sdes-items-and-empty-chunk",
        RR0 + "82ca0008 00000001 0103 614062 0202 416c 0606 73697068 6f6e 000000 00000002 00000000",
        [
            ReceiverReport(0x42298473),
            SourceDescription(
                (
                    SdesChunk(
                        1,
                        (
                            SdesItem(SDES_CNAME, b"a@b"),
                            SdesItem(SDES_NAME, b"Al"),
                            SdesItem(SDES_TOOL, b"siphon"),
                        ),
                    ),
                    SdesChunk(2),
                )
            ),
        ],
    ),
    ("sdes-no-chunks", RR0 + "80ca0000", [ReceiverReport(0x42298473), SourceDescription()]),
    (
        "bye-reason-fills-word",
        RR0 + "82cb0003 00000001 00000002 03627965",
        [ReceiverReport(0x42298473), Bye((1, 2), "bye")],
    ),
    (
        "bye-reason-padded",
        RR0 + "81cb0003 00000001 04646f6e 65000000",
        [ReceiverReport(0x42298473), Bye((1,), "done")],
    ),
    (
        "bye-empty-reason",
        RR0 + "80cb0001 00000000",
        [ReceiverReport(0x42298473), Bye((), "")],
    ),
    (
        "bye-non-utf8-reason",
        RR0 + "80cb0001 01ff0000",
        [ReceiverReport(0x42298473), Bye((), "\udcff")],
    ),
    ("bye-nothing", RR0 + "80cb0000", [ReceiverReport(0x42298473), Bye()]),
    (
        "app-kept-as-unknown",
        RR0 + "84cc0003 00000001 6e616d65 dadadada",
        [
            ReceiverReport(0x42298473),
            UnknownRtcp(RTCP_APP, bytes.fromhex("000000016e616d65dadadada"), 4),
        ],
    ),
    (
        "pli-kept-as-unknown",
        RR0 + "81ce0002 00000001 00000002",
        [ReceiverReport(0x42298473), UnknownRtcp(206, bytes.fromhex("0000000100000002"), 1)],
    ),
    (
        "padded-last-packet",
        RR0 + "a1cb0002 42298473 00000004",
        [ReceiverReport(0x42298473), Bye((0x42298473,), padding=bytes.fromhex("00000004"))],
    ),
    (
        "padding-filler-kept",
        RR0 + "a1cb0003 42298473 ffffffff ffffff08",
        [
            ReceiverReport(0x42298473),
            Bye((0x42298473,), padding=bytes.fromhex("ffffffffffffff08")),
        ],
    ),
    (
        "sr-sdes-bye",
        SR_HEX + SDES_HEX + "81cb0001 60ef152b",
        [SR_PACKET, SDES_PACKET, Bye((0x60EF152B,))],
    ),
]


@pytest.mark.parametrize(
    ("name", "hexdata", "packets"), ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS]
)
def test_round_trips(name: str, hexdata: str, packets: list[RtcpPacket]) -> None:
    data = bytes.fromhex(hexdata)
    parsed = parse_rtcp(data)
    assert parsed == packets
    assert build_compound(parsed) == data
    assert build_compound(packets) == data
    assert b"".join(p.to_bytes() for p in packets) == data
    assert is_rtcp(data)


def test_captured_values() -> None:
    (sr,) = parse_rtcp(bytes.fromhex(SR_HEX))
    assert isinstance(sr, SenderReport)
    when = datetime(2024, 2, 29, 6, 30, 52, 460143, tzinfo=UTC).timestamp()
    assert ntp_to_unix(*sr.ntp) == pytest.approx(when, abs=1e-6)
    (sdes,) = parse_rtcp(bytes.fromhex(RR0 + SDES_HEX))[1:]
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].cname == "shao-lenovo"
    assert sdes.chunks[0].get(SDES_NAME) is None
    assert RR_BLOCK.dlsr / 65536 == pytest.approx(0.678, abs=1e-3)
    assert RR_BLOCK.highest_seq // SEQ_MOD == 1 and RR_BLOCK.highest_seq % SEQ_MOD == 48239


# --- builders ------------------------------------------------------------------


def test_builders_match_captures() -> None:
    assert build_sr(0x60EF152B, 0xE98AA31C, 0x75CBEE80, 672929340, 128, 87738) == bytes.fromhex(
        SR_HEX
    )
    assert build_sdes_cname(0x60EF152B, "shao-lenovo") == bytes.fromhex(SDES_HEX)
    assert build_rr(0x42298473, [RR_BLOCK]) == bytes.fromhex(RR_HEX)
    assert build_bye([0x42298473]) == bytes.fromhex(BYE_HEX)
    assert build_bye([1, 2], "bye") == bytes.fromhex("82cb0003 00000001 00000002 03627965")
    compound = build_compound([SR_PACKET, build_sdes_cname(0x60EF152B, "shao-lenovo")])
    assert compound == bytes.fromhex(SR_HEX + SDES_HEX)


def test_direct_builders_match_the_packet_objects() -> None:
    """The builders pack directly (a call's teardown sends SR+SDES+BYE): same bytes."""
    rng = random.Random(3550)
    u32 = (0, 1, 0x7FFFFFFF, 0xFFFFFFFF)
    for _ in range(300):
        ssrc, sec, frac, ts, packets, octets = (
            rng.choice(u32) if rng.random() < 0.3 else rng.getrandbits(32) for _ in range(6)
        )
        blocks = tuple(
            ReportBlock(
                rng.getrandbits(32),
                rng.randrange(256),
                rng.randrange(-0x800000, 0x800000),
                rng.getrandbits(32),
                rng.getrandbits(32),
                rng.getrandbits(32),
                rng.getrandbits(32),
            )
            for _ in range(rng.choice((0, 0, 1, 2, 31)))
        )
        assert (
            build_sr(ssrc, sec, frac, ts, packets, octets, blocks)
            == SenderReport(ssrc, sec, frac, ts, packets, octets, blocks).to_bytes()
        )
        assert build_rr(ssrc, blocks) == ReceiverReport(ssrc, blocks).to_bytes()
        cname = "".join(rng.choice("aé-1") for _ in range(rng.randrange(0, 120)))
        chunk = SdesChunk(ssrc, (SdesItem(SDES_CNAME, cname.encode()),))
        assert build_sdes_cname(ssrc, cname) == SourceDescription((chunk,)).to_bytes()
        ssrcs = tuple(rng.getrandbits(32) for _ in range(rng.choice((0, 1, 1, 2, 31))))
        assert build_bye(ssrcs) == Bye(ssrcs).to_bytes()
        compound = build_compound(
            [build_sr(ssrc, sec, frac, ts, packets, octets, blocks), build_sdes_cname(ssrc, cname)]
        )
        assert b"".join(p.to_bytes() for p in parse_rtcp(compound)) == compound


def test_build_sr_wraps_counts() -> None:
    (sr,) = parse_rtcp(build_sr(1, 2, 3, 4, 2**32 + 5, 2**33 + 7))
    assert isinstance(sr, SenderReport)
    assert (sr.packet_count, sr.octet_count) == (5, 7)


@pytest.mark.parametrize("length", range(0, 9))
def test_sdes_cname_null_padding(length: int) -> None:
    """Each CNAME length needs 1-4 null octets to reach the word boundary."""
    cname = "x" * length
    data = build_sdes_cname(7, cname)
    nulls = 4 - (2 + length) % 4
    assert len(data) == 4 + 4 + 2 + length + nulls
    assert data[-nulls:] == bytes(nulls)
    assert int.from_bytes(data[2:4], "big") == len(data) // 4 - 1
    (_, sdes) = parse_rtcp(bytes.fromhex(RR0) + data)
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].cname == cname


@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, 5, 255])
def test_bye_reason_lengths(length: int) -> None:
    data = build_bye([1], "r" * length)
    assert len(data) % 4 == 0
    (_, bye) = parse_rtcp(bytes.fromhex(RR0) + data)
    assert bye == Bye((1,), "r" * length)


@pytest.mark.parametrize(
    "make",
    [
        lambda: build_rr(1, [RR_BLOCK] * 32),
        lambda: build_sr(1, 0, 0, 0, 0, 0, [RR_BLOCK] * 32),
        lambda: build_sdes_cname(1, "x" * 256),
        lambda: build_bye([1], "x" * 256),
        lambda: build_bye(range(32)),
        lambda: build_rr(1 << 32),
        lambda: build_sr(1, 1 << 32, 0, 0, 0, 0),
        lambda: ReportBlock(1, 256, 0, 0, 0, 0, 0).to_bytes(),
        lambda: ReportBlock(1, 0, 0x800000, 0, 0, 0, 0).to_bytes(),
        lambda: ReportBlock(1, 0, -0x800001, 0, 0, 0, 0).to_bytes(),
        lambda: ReportBlock(1, 0, 0, 1 << 32, 0, 0, 0).to_bytes(),
        lambda: SdesChunk(1, (SdesItem(0, b"x"),)).to_bytes(),
        lambda: UnknownRtcp(204, b"abc").to_bytes(),
        lambda: UnknownRtcp(204, b"", 32).to_bytes(),
        lambda: UnknownRtcp(256, b"").to_bytes(),
        lambda: UnknownRtcp(205, bytes(4 * 0x10000)).to_bytes(),
        lambda: Bye(padding=b"\x00\x00\x03").to_bytes(),
        lambda: Bye(padding=b"\x00\x00\x00\x05").to_bytes(),
        lambda: ReceiverReport(1, extension=b"ab").to_bytes(),
        lambda: build_compound([]),
        lambda: build_compound([build_sdes_cname(1, "a")]),
        lambda: build_compound([Bye((1,), padding=bytes.fromhex("00000004")), BYE_PACKET]),
        lambda: build_compound(
            [ReceiverReport(1, padding=bytes.fromhex("00000004")), BYE_PACKET], strict=False
        ),
        lambda: build_compound([bytes.fromhex("80c90002 42298473")]),
        lambda: build_compound([bytes.fromhex("80c9000142")]),
        lambda: build_compound([bytes.fromhex("40c90001 42298473")]),
    ],
)
def test_builders_refuse_bad_values(make: object) -> None:
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]


def test_packet_types() -> None:
    assert SR_PACKET.packet_type == 200
    assert RR_PACKET.packet_type == 201
    assert SDES_PACKET.packet_type == 202
    assert BYE_PACKET.packet_type == 203
    assert UnknownRtcp(206, b"").packet_type == 206
    # The largest packet the 16-bit length field can describe is still built.
    assert len(UnknownRtcp(205, bytes(4 * 0xFFFF)).to_bytes()) == 4 * 0x10000


def test_build_compound_non_strict_allows_any_first_packet() -> None:
    sdes = build_sdes_cname(1, "a")
    assert build_compound([sdes], strict=False) == sdes
    assert parse_rtcp(sdes, strict=False) == [
        SourceDescription((SdesChunk(1, (SdesItem(SDES_CNAME, b"a"),)),))
    ]


# --- malformed input ----------------------------------------------------------------

MALFORMED: list[tuple[str, str, str]] = [
    ("empty", "", "too short"),
    ("three-octets", "80c900", "too short"),
    ("not-word-aligned", "80c90001 422984", "multiple of 4"),
    ("version-1", "40c90001 42298473", "bad version"),
    ("version-0-later", RR0 + "00cb0000", "bad version"),
    ("first-is-sdes", "80ca0000", "first packet is not SR or RR"),
    ("first-is-bye", BYE_HEX, "first packet is not SR or RR"),
    ("first-is-app", "80cc0000", "first packet is not SR or RR"),
    ("first-padded", "a0c90002 42298473 00000004", "padding in first packet"),
    ("length-beyond", "80c90002 42298473", "length beyond data"),
    ("length-beyond-later", RR0 + "80cb0005 00000000", "length beyond data"),
    ("padding-not-last", RR0 + "a0ca0001 00000004 80cb0000", "padding before last packet"),
    ("padding-zero", RR0 + "a0cb0001 00000000", "bad padding length"),
    ("padding-odd", RR0 + "a0cb0001 00000003", "bad padding length"),
    ("padding-beyond", RR0 + "a0cb0001 00000008", "bad padding length"),
    ("sr-short", "80c80005 00000001 00000000 00000000 00000000 00000000", "SR shorter"),
    ("sr-blocks-beyond", SR_HEX.replace("80c8", "81c8", 1), "SR shorter"),
    ("rr-empty", "80c90000", "RR shorter"),
    ("rr-blocks-beyond", "81c90001 42298473", "RR shorter"),
    ("sdes-chunk-beyond", RR0 + "82ca0002 00000001 00000000", "SDES chunk beyond packet"),
    ("sdes-unterminated", RR0 + "81ca0001 00000001", "unterminated SDES chunk"),
    ("sdes-item-beyond", RR0 + "81ca0002 00000001 01056162", "SDES item beyond packet"),
    ("sdes-item-header-beyond", RR0 + "81ca0002 00000001 01016101", "SDES item beyond packet"),
    ("sdes-non-null-end", RR0 + "81ca0002 00000001 00000001", "non-null octets"),
    ("sdes-trailing", RR0 + "80ca0001 00000000", "trailing data after SDES"),
    (
        "sdes-unpadded-in-padded-packet",
        RR0 + "a1ca0003 00000001 01026162 00000004",
        "unterminated SDES chunk",
    ),
    ("bye-ssrcs-beyond", RR0 + "82cb0001 00000001", "BYE SSRC list beyond packet"),
    ("bye-reason-beyond", RR0 + "81cb0002 00000001 05616263", "BYE reason beyond packet"),
    ("bye-trailing", RR0 + "81cb0003 00000001 01610000 00000000", "trailing data after BYE"),
    ("bye-non-null-pad", RR0 + "81cb0002 00000001 016100ff", "not padded with null"),
    ("oversized", "80c9" + "%04x" % (MAX_PACKET_SIZE // 4) + "00" * MAX_PACKET_SIZE, "oversized"),
]


@pytest.mark.parametrize(("name", "hexdata", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed(name: str, hexdata: str, reason: str) -> None:
    with pytest.raises(RtpParseError, match=reason):
        parse_rtcp(bytes.fromhex(hexdata))


@pytest.mark.parametrize(
    ("hexdata", "packets"),
    [
        ("80ca0000", [SourceDescription()]),
        (
            "81ce0002 00000001 00000002 81cd0002 00000001 00000002",
            [
                UnknownRtcp(206, bytes.fromhex("0000000100000002"), 1),
                UnknownRtcp(205, bytes.fromhex("0000000100000002"), 1),
            ],
        ),
        (
            "a0c90002 42298473 00000004",
            [ReceiverReport(0x42298473, padding=bytes.fromhex("00000004"))],
        ),
    ],
)
def test_non_strict_accepts_reduced_size(hexdata: str, packets: list[RtcpPacket]) -> None:
    data = bytes.fromhex(hexdata)
    with pytest.raises(RtpParseError):
        parse_rtcp(data)
    assert parse_rtcp(data, strict=False) == packets
    assert build_compound(packets, strict=False) == data


# --- NTP time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unix", "ntp"),
    [
        (0.0, (NTP_UNIX_OFFSET, 0)),
        (0.25, (NTP_UNIX_OFFSET, 1 << 30)),
        (1.5, (NTP_UNIX_OFFSET + 1, 1 << 31)),
        (1709188252.5, (0xE98AA31C, 1 << 31)),
        (2085978496.0, (0, 0)),  # 2036-02-07: NTP era 1 begins
        (2085978497.75, (1, 3 << 30)),
    ],
)
def test_ntp_from_unix(unix: float, ntp: tuple[int, int]) -> None:
    assert ntp_from_unix(unix) == ntp
    assert ntp_to_unix(*ntp) == unix


def test_ntp_fraction_never_overflows() -> None:
    sec, frac = ntp_from_unix(1.0 - 1e-12)
    assert 0 <= frac < 1 << 32
    assert (sec, frac) in ((NTP_UNIX_OFFSET + 1, 0), (NTP_UNIX_OFFSET, (1 << 32) - 1))


@given(st.floats(0, 4e9))
def test_ntp_round_trip(unix: float) -> None:
    sec, frac = ntp_from_unix(unix)
    assert 0 <= sec < 1 << 32 and 0 <= frac < 1 << 32
    assert ntp_to_unix(sec, frac) == pytest.approx(unix, abs=1e-6)


@pytest.mark.parametrize(
    ("ntp", "middle"),
    [
        ((0xE98AA31C, 0x75CBEE80), 0xA31C75CB),
        ((0, 0), 0),
        ((0xFFFFFFFF, 0xFFFFFFFF), 0xFFFFFFFF),
        ((0x12345678, 0x9ABCDEF0), 0x56789ABC),
    ],
)
def test_middle_32(ntp: tuple[int, int], middle: int) -> None:
    assert middle_32(ntp) == middle


@pytest.mark.parametrize(
    ("seconds", "dlsr"),
    [(0.0, 0), (1.0, 65536), (0.678, 44433), (-1.0, 0), (1e6, 0xFFFFFFFF), (0.5, 32768)],
)
def test_to_dlsr(seconds: float, dlsr: int) -> None:
    assert to_dlsr(seconds) == dlsr


def test_round_trip_time() -> None:
    sent = 1709188252.460143
    lsr = middle_32(ntp_from_unix(sent))
    block = ReportBlock(1, 0, 0, 0, 0, lsr, to_dlsr(0.25))
    rtt = round_trip_time(block, ntp_from_unix(sent + 0.4))
    assert rtt == pytest.approx(0.15, abs=2 / 65536)
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, 0, 0), ntp_from_unix(sent)) is None
    # A DLSR longer than the whole round trip (clock step): clamp to 0.
    bogus = ReportBlock(1, 0, 0, 0, 0, lsr, to_dlsr(5.0))
    assert round_trip_time(bogus, ntp_from_unix(sent + 0.4)) == 0.0


# --- ReceptionStats: A.8 jitter ---------------------------------------------------

# 8 kHz, 20 ms packets (160 ticks), arrivals with network jitter. By hand, with
# D_i = (R_i - R_{i-1}) * 8000 - 160 and J += (|D| - J) / 16:
#   D = 0, 40, -40, 0, 80
#   J = 0, 2.5, 4.84375, 4.541015625, 9.2572021484375
ARRIVALS = [0.000, 0.020, 0.045, 0.060, 0.080, 0.110]
EXPECTED_JITTER = [0.0, 0.0, 2.5, 4.84375, 4.541015625, 9.2572021484375]


@pytest.mark.parametrize(
    ("seq0", "ts0"),
    [(1000, 0), (65533, 2**32 - 400), (0, 2**32 - 160), (32767, 2**31 - 1)],
)
def test_jitter_hand_computed(seq0: int, ts0: int) -> None:
    stats = ReceptionStats(1, 8000, min_sequential=1)
    for i, arrival in enumerate(ARRIVALS):
        assert stats.on_packet(seq_add(seq0, i), ts_add(ts0, 160 * i), arrival)
        assert stats.jitter == pytest.approx(EXPECTED_JITTER[i], abs=1e-9)
    assert stats.jitter_ms == pytest.approx(9.2572021484375 / 8, abs=1e-9)
    assert stats.report_block(1.0).jitter == 9


def test_jitter_clock_rate() -> None:
    """The same spacing at 48 kHz: D scales with the clock (960 ticks per 20 ms)."""
    stats = ReceptionStats(1, 48000, min_sequential=1)
    for i, arrival in enumerate(ARRIVALS):
        stats.on_packet(i, 960 * i, arrival)
    assert stats.jitter == pytest.approx(9.2572021484375 * 6, abs=1e-6)
    assert stats.jitter_ms == pytest.approx(9.2572021484375 / 8, abs=1e-9)


def test_jitter_out_of_order_packet_uses_arrival_order() -> None:
    stats = ReceptionStats(1, 8000, min_sequential=1)
    stats.on_packet(1, 0, 0.0)
    stats.on_packet(3, 320, 0.040)  # D = 320 - 320 = 0
    stats.on_packet(2, 160, 0.041)  # D = 8 - (-160) = 168
    assert stats.jitter == pytest.approx(168 / 16)
    assert stats.tracker.reordered == 1


def test_jitter_ignores_probation_duplicates_and_jumps() -> None:
    stats = ReceptionStats(1, 8000)  # MIN_SEQUENTIAL 2
    assert not stats.on_packet(1, 0, 0.0)  # probation: not a jitter reference
    assert stats.on_packet(2, 160, 0.100)
    assert stats.on_packet(3, 320, 0.120)
    assert stats.jitter == pytest.approx(0.0, abs=1e-9)
    assert stats.on_packet(3, 320, 0.500)  # a duplicate, much later
    assert stats.jitter == pytest.approx(0.0, abs=1e-9)
    assert not stats.on_packet(20000, 999, 0.600)  # a jump, dropped
    assert stats.jitter == pytest.approx(0.0, abs=1e-9)
    assert stats.on_packet(4, 480, 0.140)
    assert stats.jitter == pytest.approx(0.0, abs=1e-9)


def test_jitter_restart_starts_a_new_pair() -> None:
    stats = ReceptionStats(1, 8000, min_sequential=1)
    stats.on_packet(1, 0, 0.0)
    stats.on_packet(2, 160, 0.020)
    assert not stats.on_packet(40000, 777777, 0.040)
    assert stats.on_packet(40001, 777937, 0.060)  # restart: no D across it
    assert stats.tracker.restarts == 1
    assert stats.jitter == pytest.approx(0.0, abs=1e-9)
    stats.on_packet(40002, 778097, 0.085)  # D = 200 - 160
    assert stats.jitter == pytest.approx(2.5)


def test_clock_rate_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        ReceptionStats(1, 0)


# --- ReceptionStats: report blocks ---------------------------------------------------


def test_report_block() -> None:
    stats = ReceptionStats(0x60EF152B, 8000)
    t = 0.0
    for seq in range(100, 111):
        if seq != 105:
            stats.on_packet(seq, seq * 160, t)
        t += 0.020
    before_sr = stats.report_block(5.0)
    assert (before_sr.lsr, before_sr.dlsr) == (0, 0)
    assert before_sr.fraction_lost == 25  # 1 of 10 since base 101
    assert before_sr.cumulative_lost == 1
    assert before_sr.highest_seq == 110
    assert before_sr.jitter == 0

    stats.on_sender_report(SR_PACKET, 10.0)
    assert stats.lsr == 0xA31C75CB and stats.last_sr_arrival == 10.0
    block = stats.report_block(10.678)
    assert block == ReportBlock(0x60EF152B, 0, 1, 110, 0, 0xA31C75CB, 44433)
    data = build_rr(0x42298473, [block])
    assert parse_rtcp(data) == [ReceiverReport(0x42298473, (block,))]


def test_report_block_across_wrap_and_with_duplicates() -> None:
    stats = ReceptionStats(5, 8000)
    for i in range(10):
        stats.on_packet(seq_add(65530, i), 160 * i, 0.02 * i)
    stats.on_packet(3, 160 * 9, 0.2)  # duplicate of the latest
    block = stats.report_block(1.0)
    assert block.highest_seq == SEQ_MOD + 3
    assert block.cumulative_lost == -1
    assert block.fraction_lost == 0


def test_report_block_clamps() -> None:
    stats = ReceptionStats(1, 8000, min_sequential=1)
    stats.on_packet(0, 0, 0.0)
    stats.tracker.received = 10**9  # far more duplicates than expected packets
    assert stats.report_block(0.0).cumulative_lost == -0x800000
    stats.tracker.received = 1
    stats.tracker.cycles = 70_000 * SEQ_MOD  # more than 2**32 expected
    block = stats.report_block(0.0)
    assert block.cumulative_lost == 0x7FFFFF
    assert block.highest_seq == (70_000 * SEQ_MOD) & 0xFFFFFFFF
    assert block.fraction_lost == 255
    block.to_bytes()  # every field fits
    stats.jitter = 2.0**40
    assert stats.report_block(0.0).jitter == 0xFFFFFFFF


def test_report_block_dlsr_clamps() -> None:
    stats = ReceptionStats(1, 8000)
    stats.on_sender_report(SR_PACKET, 100.0)
    assert stats.report_block(99.0).dlsr == 0  # arrival in the future: clamp
    assert stats.report_block(100.0 + 2**16).dlsr == 0xFFFFFFFF


# --- RtcpScheduler ---------------------------------------------------------------


class FixedRandom(random.Random):
    """uniform(a, b) always at the same relative position."""

    def __init__(self, position: float) -> None:
        super().__init__(0)
        self.position = position

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.position


@pytest.mark.parametrize(
    ("position", "first", "next_"),
    [(0.0, 1.25, 2.5), (0.5, 2.5, 5.0), (1.0, 3.75, 7.5)],
)
def test_scheduler_bounds(position: float, first: float, next_: float) -> None:
    sched = RtcpScheduler(100.0, rng=FixedRandom(position))
    assert sched.next_due == pytest.approx(100.0 + first)
    assert not sched.due(100.0 + first - 1e-6)
    assert sched.due(100.0 + first)
    sched.sent(200.0)
    assert sched.next_due == pytest.approx(200.0 + next_)
    assert not sched.due(200.0 + next_ - 1e-6)
    assert sched.due(200.0 + next_ + 1e-6)


def test_scheduler_randomised_spread() -> None:
    sched = RtcpScheduler(0.0, rng=random.Random(1234))
    assert 1.25 <= sched.next_due <= 3.75
    gaps = []
    now = 0.0
    for _ in range(2000):
        sched.sent(now)
        gaps.append(sched.next_due - now)
        now = sched.next_due
    assert min(gaps) >= 2.5 and max(gaps) <= 7.5
    assert sum(gaps) / len(gaps) == pytest.approx(5.0, abs=0.15)
    assert min(gaps) < 2.7 and max(gaps) > 7.3  # really spread over the range


def test_scheduler_interval_and_default_rng() -> None:
    sched = RtcpScheduler(0.0, interval=1.0)
    assert 0.25 <= sched.next_due <= 0.75
    sched.sent(10.0)
    assert 10.5 <= sched.next_due <= 11.5
    with pytest.raises(ConfigError):
        RtcpScheduler(0.0, interval=0.0)


# --- properties ----------------------------------------------------------------------


@given(st.binary(max_size=120), st.booleans())
def test_random_bytes_raise_only_rtp_parse_error(data: bytes, strict: bool) -> None:
    try:
        packets = parse_rtcp(data, strict=strict)
    except RtpParseError:
        return
    assert build_compound(packets, strict=strict) == data


@st.composite
def framed_compounds(draw: st.DrawFn) -> bytes:
    """Random bodies behind correct common headers: reaches the per-type parsers."""
    parts = []
    for i in range(draw(st.integers(1, 4))):
        pt = draw(
            st.sampled_from([200, 201, 202, 203, 204, 206]) if i else st.sampled_from([200, 201])
        )
        count = draw(st.integers(0, 3))
        words = draw(st.integers(0, 12))
        body = draw(st.binary(min_size=4 * words, max_size=4 * words))
        body = bytes(b if draw(st.booleans()) else 0 for b in body)  # zeros are structure
        parts.append(bytes((0x80 | count, pt)) + words.to_bytes(2, "big") + body)
    return b"".join(parts)


@given(framed_compounds())
def test_framed_random_bodies(data: bytes) -> None:
    try:
        packets = parse_rtcp(data)
    except RtpParseError:
        return
    assert build_compound(packets) == data


u32 = st.integers(0, 2**32 - 1)
blocks = st.builds(
    ReportBlock,
    u32,
    st.integers(0, 255),
    st.integers(-0x800000, 0x7FFFFF),
    u32,
    u32,
    u32,
    u32,
)
words = st.integers(0, 4).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))
reasons = st.none() | st.binary(max_size=255).map(lambda b: b.decode("utf-8", "surrogateescape"))
sdes_items = st.builds(SdesItem, st.integers(1, 255), st.binary(max_size=40))
sdes_chunks = st.builds(SdesChunk, u32, st.lists(sdes_items, max_size=4).map(tuple))
reports = st.one_of(
    st.builds(
        SenderReport, u32, u32, u32, u32, u32, u32, st.lists(blocks, max_size=3).map(tuple), words
    ),
    st.builds(ReceiverReport, u32, st.lists(blocks, max_size=3).map(tuple), words),
)
others = st.one_of(
    reports,
    st.builds(SourceDescription, st.lists(sdes_chunks, max_size=3).map(tuple)),
    st.builds(Bye, st.lists(u32, max_size=4).map(tuple), reasons),
    st.builds(
        UnknownRtcp,
        st.integers(0, 255).filter(lambda pt: not 200 <= pt <= 203),
        words,
        st.integers(0, 31),
    ),
)


@given(reports, st.lists(others, max_size=4), st.integers(0, 63))
def test_valid_compounds_round_trip(
    first: RtcpPacket, rest: list[RtcpPacket], pad_words: int
) -> None:
    packets = [first, *rest]
    if pad_words:
        if len(packets) == 1:
            packets.append(SourceDescription())  # padding is refused on the first packet
        pad = bytes(4 * pad_words - 1) + bytes((4 * pad_words,))
        packets[-1] = dataclasses.replace(packets[-1], padding=pad)
    data = build_compound(packets)
    assert len(data) % 4 == 0
    assert parse_rtcp(data) == packets
    assert build_compound(parse_rtcp(data)) == data
