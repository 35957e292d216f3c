"""RFC 4733 telephone-events: payload codec, receiver (loss, duplicates), sender, round trip."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from siphon.errors import ConfigError
from siphon.events import DtmfReceived
from siphon.rtp.dtmf import (
    DIGIT_TO_EVENT,
    EVENT_TO_DIGIT,
    DtmfPacket,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    digit_to_event,
    event_to_digit,
    parse_event,
)

SIPP = Path("/usr/share/sip-tester")
TELEPHONE_EVENT_PT = 101  # what the SIPp captures use

# --------------------------------------------------------------------------- pcap


@dataclass(frozen=True)
class RtpRecord:
    time: float
    marker: bool
    payload_type: int
    seq: int
    timestamp: int
    payload: bytes


def read_rtp_pcap(path: Path) -> list[RtpRecord]:
    """RTP packets of a classic libpcap file: Ethernet / IPv4 / UDP / RTP."""
    data = path.read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise AssertionError(f"{path.name}: not a pcap file")
    frac = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    _major, _minor, _zone, _sigfigs, _snaplen, linktype = struct.unpack_from(
        endian + "HHiIII", data, 4
    )
    assert linktype == 1, f"{path.name}: link type {linktype}, expected 1 (Ethernet)"
    out = []
    pos = 24
    while pos + 16 <= len(data):
        sec, sub, incl, _orig = struct.unpack_from(endian + "IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        (ethertype,) = struct.unpack_from("!H", frame, 12)
        if ethertype != 0x0800:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        (total_len,) = struct.unpack_from("!H", ip, 2)
        udp = ip[ihl:total_len]
        (udp_len,) = struct.unpack_from("!H", udp, 4)
        rtp = udp[8:udp_len]
        b0, b1, seq, ts, _ssrc = struct.unpack_from("!BBHII", rtp)
        assert b0 >> 6 == 2, "RTP version 2"
        header = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:  # header extension
            (words,) = struct.unpack_from("!H", rtp, header + 2)
            header += 4 + 4 * words
        end = len(rtp) - (rtp[-1] if b0 & 0x20 else 0)
        out.append(
            RtpRecord(sec + sub * frac, bool(b1 & 0x80), b1 & 0x7F, seq, ts, rtp[header:end])
        )
    return out


CAPTURES = {
    **{str(d): SIPP / f"dtmf_2833_{d}.pcap" for d in range(10)},
    "#": SIPP / "dtmf_2833_pound.pcap",
    "*": SIPP / "dtmf_2833_star.pcap",
}

needs_captures = pytest.mark.skipif(
    not all(p.exists() for p in CAPTURES.values()), reason="SIPp captures (sip-tester) missing"
)


def feed(rx: DtmfReceiver, records: list[RtpRecord]) -> list[DtmfReceived]:
    got = []
    for r in records:
        if r.payload_type != TELEPHONE_EVENT_PT:
            continue
        ev = rx.on_packet(r.timestamp, r.marker, r.payload, r.time)
        if ev is not None:
            got.append(ev)
        while (ev := rx.poll(r.time)) is not None:
            got.append(ev)
    return got


# --------------------------------------------------------------------------- payload codec


# RFC 4733 §2.3 layout: event (8) | E (1) R (1) volume (6) | duration (16), network order.
# The first vectors follow the shape of the RFC's §5 example (digit "9", duration steps of
# 400 at 8 kHz); the last two are payloads read from the SIPp captures below.
VECTORS = [
    (TelephoneEvent(9, False, 7, 400), "09070190"),
    (TelephoneEvent(9, False, 7, 1600), "09070640"),
    (TelephoneEvent(9, True, 7, 1600), "09870640"),
    (TelephoneEvent(1, True, 0, 0), "01800000"),
    (TelephoneEvent(11, True, 63, 0xFFFF), "0bbfffff"),
    (TelephoneEvent(16, False, 10, 160), "100a00a0"),
    (TelephoneEvent(0, False, 10, 0), "000a0000"),
    (TelephoneEvent(0, True, 10, 2240), "008a08c0"),
]


@pytest.mark.parametrize(("event", "hexbytes"), VECTORS)
def test_payload_vectors(event: TelephoneEvent, hexbytes: str) -> None:
    assert event.to_bytes() == bytes.fromhex(hexbytes)
    assert parse_event(bytes.fromhex(hexbytes)) == event


def test_reserved_bit_is_ignored_and_extra_blocks_are_not_read() -> None:
    assert parse_event(bytes.fromhex("09470190")) == TelephoneEvent(9, False, 7, 400)
    two = bytes.fromhex("09870640") + bytes.fromhex("01070190")
    assert parse_event(two) == TelephoneEvent(9, True, 7, 1600)


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\x01\x02\x03"])
def test_short_payload_is_none_not_an_exception(payload: bytes) -> None:
    assert parse_event(payload) is None


def test_digit_mapping_both_ways() -> None:
    assert [EVENT_TO_DIGIT[i] for i in range(17)] == list("0123456789*#ABCD!")
    for code, digit in EVENT_TO_DIGIT.items():
        assert DIGIT_TO_EVENT[digit] == code
        assert digit_to_event(digit) == code
        assert event_to_digit(code) == digit
    assert digit_to_event("a") == 12 and digit_to_event("d") == 15
    assert event_to_digit(17) is None and event_to_digit(32) is None


@pytest.mark.parametrize("bad", ["E", "x", "", "12", " ", "é"])
def test_invalid_digit_names_the_valid_ones(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"0-9 \* # A-D"):
        digit_to_event(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"event": 256, "end": False, "volume": 0, "duration": 0},
        {"event": 1, "end": False, "volume": 64, "duration": 0},
        {"event": 1, "end": False, "volume": 0, "duration": 0x10000},
        {"event": 1, "end": False, "volume": 0, "duration": -1},
    ],
)
def test_telephone_event_field_ranges(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        TelephoneEvent(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- real captures


@needs_captures
@pytest.mark.parametrize("digit", list(CAPTURES))
def test_sipp_capture_yields_its_digit_exactly_once(digit: str) -> None:
    records = read_rtp_pcap(CAPTURES[digit])
    events = [r for r in records if r.payload_type == TELEPHONE_EVENT_PT]
    assert len(events) == 10  # start, 6 updates, end sent three times
    first, last = parse_event(events[0].payload), parse_event(events[-1].payload)
    assert first == TelephoneEvent(DIGIT_TO_EVENT[digit], False, 10, 0)
    assert last == TelephoneEvent(DIGIT_TO_EVENT[digit], True, 10, 2240)
    assert events[0].marker and not any(r.marker for r in events[1:])
    rx = DtmfReceiver()
    got = feed(rx, records)
    assert got == [DtmfReceived(digit, 280, "rtp")]
    assert rx.poll(records[-1].time + 10) is None
    assert not rx.active and rx.invalid == 0 and rx.ignored == 0


@needs_captures
def test_all_captures_through_one_receiver() -> None:
    rx = DtmfReceiver()
    records = [r for d in "0123456789*#" for r in read_rtp_pcap(CAPTURES[d])]
    assert "".join(e.digit for e in feed(rx, records)) == "0123456789*#"


@needs_captures
def test_capture_with_every_packet_duplicated() -> None:
    records = read_rtp_pcap(CAPTURES["7"])
    doubled = [r for r in records for _ in range(2)]
    assert [e.digit for e in feed(DtmfReceiver(), doubled)] == ["7"]


# --------------------------------------------------------------------------- receiver


def pkt(code: int, duration: int, end: bool = False, volume: int = 10) -> bytes:
    return TelephoneEvent(code, end, volume, duration).to_bytes()


def press(code: int, ts: int, steps: int = 5, step: int = 160) -> list[tuple[int, bool, bytes]]:
    """(timestamp, marker, payload) of a well-formed press: updates then 3 end packets."""
    out = [(ts, i == 0, pkt(code, (i + 1) * step)) for i in range(steps - 1)]
    out += [(ts, False, pkt(code, steps * step, end=True))] * 3
    return out


def run(
    rx: DtmfReceiver, packets: list[tuple[int, bool, bytes]], t0: float = 0.0
) -> tuple[list[DtmfReceived], float]:
    got = []
    now = t0
    for ts, marker, payload in packets:
        ev = rx.on_packet(ts, marker, payload, now)
        if ev is not None:
            got.append(ev)
        now += 0.02
    return got, now


def test_rfc_style_press_reported_once_at_its_end() -> None:
    rx = DtmfReceiver()
    packets = [(0, True, pkt(9, 400, volume=7))]
    packets += [(0, False, pkt(9, d, volume=7)) for d in (800, 1200, 1600)]
    got, _ = run(rx, packets)
    assert got == [] and rx.active
    got, now = run(rx, [(0, False, pkt(9, 1600, end=True, volume=7))] * 3)
    assert got == [DtmfReceived("9", 200, "rtp")]
    assert rx.poll(now + 5) is None and not rx.active


def test_start_packet_lost() -> None:
    got, _ = run(DtmfReceiver(), press(3, 1000)[1:])
    assert got == [DtmfReceived("3", 100)]


def test_only_end_packets_received() -> None:
    got, _ = run(DtmfReceiver(), press(4, 1000)[-3:])
    assert got == [DtmfReceived("4", 100)]


def test_only_one_end_packet_received() -> None:
    packets = press(5, 1000)
    got, _ = run(DtmfReceiver(), [*packets[:-3], packets[-1]])
    assert got == [DtmfReceived("5", 100)]


def test_all_end_packets_lost_reported_by_timeout() -> None:
    rx = DtmfReceiver()
    got, now = run(rx, press(6, 1000)[:-3])  # last update: duration 640, seen at t=0.06
    last_seen = now - 0.02
    assert got == []
    assert rx.poll(last_seen + 0.29) is None
    assert rx.poll(last_seen + 0.30) == DtmfReceived("6", 80)
    assert rx.poll(last_seen + 1.0) is None
    # the end packets turning up late do not report the press twice
    got, _ = run(rx, press(6, 1000)[-3:], t0=last_seen + 1.0)
    assert got == []


def test_end_timeout_is_configurable() -> None:
    rx = DtmfReceiver(end_timeout=1.0)
    run(rx, press(6, 1000)[:2])
    assert rx.poll(0.02 + 0.9) is None
    assert rx.poll(0.02 + 1.0) == DtmfReceived("6", 40)


def test_all_end_packets_lost_reported_when_next_press_starts() -> None:
    rx = DtmfReceiver()
    got, now = run(rx, press(1, 1000)[:-3])
    assert got == []
    got, now = run(rx, press(2, 3000), t0=now)
    assert got == [DtmfReceived("1", 80), DtmfReceived("2", 100)]
    assert rx.poll(now + 1) is None


def test_end_lost_then_next_press_has_only_its_end_packets() -> None:
    rx = DtmfReceiver()
    _, now = run(rx, press(1, 1000)[:-3])
    first = rx.on_packet(3000, False, pkt(2, 800, end=True), now)
    assert first == DtmfReceived("1", 80)
    assert rx.poll(now) == DtmfReceived("2", 100)  # queued, returned on the next poll
    got, _ = run(rx, press(2, 3000)[-2:], t0=now)
    assert got == [] and rx.poll(now + 1) is None


def test_two_of_three_end_packets_lost() -> None:
    packets = press(8, 1000)
    got, _ = run(DtmfReceiver(), packets[:-2])
    assert got == [DtmfReceived("8", 100)]


def test_every_packet_duplicated() -> None:
    doubled = [p for p in press(0, 1000) for _ in range(2)]
    got, _ = run(DtmfReceiver(), doubled)
    assert got == [DtmfReceived("0", 100)]


def test_reordered_end_before_update() -> None:
    packets = press(0, 1000)
    packets[3], packets[4] = packets[4], packets[3]
    got, _ = run(DtmfReceiver(), packets)
    assert got == [DtmfReceived("0", 100)]


def test_same_digit_twice_is_two_presses() -> None:
    got, _ = run(DtmfReceiver(), press(5, 1000) + press(5, 2600))
    assert got == [DtmfReceived("5", 100), DtmfReceived("5", 100)]


def test_same_digit_twice_with_first_end_lost() -> None:
    got, _ = run(DtmfReceiver(), press(5, 1000)[:-3] + press(5, 2600))
    assert got == [DtmfReceived("5", 80), DtmfReceived("5", 100)]


def test_timestamp_wraparound() -> None:
    got, _ = run(DtmfReceiver(), press(1, 0xFFFFFF00) + press(2, 0x00000200))
    assert [e.digit for e in got] == ["1", "2"]


def test_late_packet_of_unseen_older_event_is_dropped_while_a_press_is_active() -> None:
    rx = DtmfReceiver()
    assert rx.on_packet(5000, True, pkt(3, 160), 0.0) is None
    assert rx.on_packet(4000, False, pkt(9, 800, end=True), 0.01) is None
    got, _ = run(rx, press(3, 5000)[1:], t0=0.02)
    assert got == [DtmfReceived("3", 100)]


def test_duration_uses_clock_rate() -> None:
    rx = DtmfReceiver(clock_rate=16000)
    got, _ = run(rx, press(12, 0, steps=5, step=320))
    assert got == [DtmfReceived("A", 100)]


def test_flash_and_non_dtmf_events() -> None:
    rx = DtmfReceiver()
    got, _ = run(rx, press(16, 0))
    assert got == [DtmfReceived("!", 100)]
    got, _ = run(rx, press(32, 2000))  # ANS tone (RFC 4734): not a key press
    assert got == [] and rx.ignored == 7 and not rx.active


def test_invalid_payloads_are_counted() -> None:
    rx = DtmfReceiver()
    assert rx.on_packet(0, True, b"\x01\x02", 0.0) is None
    assert rx.on_packet(0, True, b"", 0.0) is None
    assert rx.invalid == 2 and not rx.active


def test_source_and_reset() -> None:
    rx = DtmfReceiver(source="rtp")
    run(rx, press(1, 1000)[:2])
    rx.reset()
    assert not rx.active and rx.poll(100.0) is None
    got, _ = run(rx, press(1, 1000))  # forgotten, so the same timestamp is new again
    assert got == [DtmfReceived("1", 100, "rtp")]


@pytest.mark.parametrize("kwargs", [{"clock_rate": 0}, {"end_timeout": 0}])
def test_receiver_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        DtmfReceiver(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- sender


def drive(tx: DtmfSender, ticks: int, ts0: int = 1000, step: int = 160) -> list[DtmfPacket | None]:
    return [tx.next_packet(ts0 + i * step) for i in range(ticks)]


def test_sender_vectors() -> None:
    tx = DtmfSender(payload_type=101)
    tx.send("5")  # 100 ms
    out = drive(tx, 12)
    dtmf = [p for p in out if p is not None]
    assert out[7:] == [None] * 5  # 60 ms gap, then nothing queued: audio resumes
    assert len(dtmf) == 7
    assert [p.marker for p in dtmf] == [True] + [False] * 6
    assert {p.timestamp for p in dtmf} == {1000}
    assert {p.payload_type for p in dtmf} == {101}
    events = [parse_event(p.payload) for p in dtmf]
    assert [e.duration for e in events if e] == [160, 320, 480, 640, 800, 800, 800]
    assert [p.end for p in dtmf] == [False] * 4 + [True] * 3
    assert [e.end for e in events if e] == [False] * 4 + [True] * 3
    assert {e.event for e in events if e} == {5} and {e.volume for e in events if e} == {10}
    assert dtmf[0].payload == bytes.fromhex("050a00a0")
    assert dtmf[4].payload == dtmf[5].payload == dtmf[6].payload == bytes.fromhex("058a0320")


def test_sender_inter_digit_gap_and_new_timestamps() -> None:
    tx = DtmfSender(payload_type=96, gap_ms=60)
    tx.send("12", duration_ms=60)
    out = drive(tx, 20, ts0=0)
    # press 1: ticks 0-4 (2 updates, 3 end packets), gap: ticks 5-7, press 2: ticks 8-12
    assert [p is not None for p in out[:14]] == [True] * 5 + [False] * 3 + [True] * 5 + [False]
    first, second = out[0], out[8]
    assert first is not None and second is not None
    assert first.marker and second.marker and first.timestamp == 0 and second.timestamp == 1280
    assert all(p is None or p.timestamp in (0, 1280) for p in out)
    assert [p.marker for p in out[8:13] if p] == [True, False, False, False, False]
    assert not tx.busy


def test_sender_state_and_audio_suspension() -> None:
    tx = DtmfSender(payload_type=101)
    assert not tx.busy and not tx.active and tx.next_packet(0) is None
    tx.send("#*")
    assert tx.busy and not tx.active and tx.pending == 2
    assert tx.next_packet(0) is not None
    assert tx.active and tx.pending == 1
    tx.cancel()
    assert tx.pending == 0 and tx.active  # the press already started still ends properly
    rest = drive(tx, 10, ts0=160)
    assert [p is not None for p in rest] == [True] * 6 + [False] * 4
    last = rest[5]
    assert last is not None and last.end
    assert not tx.busy


def test_sender_duration_rounds_up_to_whole_ticks_and_clock_rate() -> None:
    tx = DtmfSender(payload_type=101, clock_rate=16000)
    tx.send("A", duration_ms=90)
    events = [parse_event(p.payload) for p in drive(tx, 10) if p]
    assert [e.duration for e in events if e] == [320, 640, 960, 1280, 1600, 1600, 1600]


def test_sender_lowercase_and_flash() -> None:
    tx = DtmfSender(payload_type=101)
    tx.send("d!")
    codes = [e.event for p in drive(tx, 20) if p and (e := parse_event(p.payload))]
    assert sorted(set(codes)) == [15, 16]


@pytest.mark.parametrize(("digits", "duration"), [("E", 100), ("", 100), ("1", 10), ("1", 9000)])
def test_sender_rejects_bad_presses(digits: str, duration: int) -> None:
    tx = DtmfSender(payload_type=101)
    with pytest.raises(ConfigError):
        tx.send(digits, duration_ms=duration)
    assert tx.pending == 0


def test_sender_rejects_invalid_digit_in_a_string_atomically() -> None:
    tx = DtmfSender(payload_type=101)
    with pytest.raises(ConfigError, match=r"'x'.*0-9 \* # A-D"):
        tx.send("12x4")
    assert tx.pending == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"payload_type": 128},
        {"payload_type": 101, "volume": 64},
        {"payload_type": 101, "clock_rate": 0},
        {"payload_type": 101, "ptime_ms": 0},
        {"payload_type": 101, "clock_rate": 11025, "ptime_ms": 20},
        {"payload_type": 101, "gap_ms": -1},
    ],
)
def test_sender_config_errors(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        DtmfSender(**kwargs)


# --------------------------------------------------------------------------- round trip


def round_trip(digits: str, drop: random.Random | None = None) -> list[DtmfReceived]:
    tx = DtmfSender(payload_type=101)
    rx = DtmfReceiver()
    tx.send(digits)
    got: list[DtmfReceived] = []
    ts, now = 12345, 50.0
    while tx.busy or rx.active:
        p = tx.next_packet(ts)
        if p is not None and not (drop and drop.random() < 0.3):
            ev = rx.on_packet(p.timestamp, p.marker, p.payload, now)
            if ev is not None:
                got.append(ev)
        while (ev := rx.poll(now)) is not None:
            got.append(ev)
        ts += 160
        now += 0.02
    return got


def test_round_trip_all_keys() -> None:
    got = round_trip("0123456789*#ABCD")
    assert "".join(e.digit for e in got) == "0123456789*#ABCD"
    assert {e.duration_ms for e in got} == {100} and {e.source for e in got} == {"rtp"}


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_with_packet_loss(seed: int) -> None:
    got = round_trip("0123456789*#ABCD", random.Random(seed))
    assert "".join(e.digit for e in got) == "0123456789*#ABCD"
