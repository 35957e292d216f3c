"""A session's set-up and tear-down: lazy parts, RTCP on a bare socket, freeing without GC."""

from __future__ import annotations

import asyncio
import functools
import gc
import socket
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from siphon.events import DtmfReceived
from siphon.io.media_clock import MediaClock
from siphon.io.ports import RtpPortAllocator, bind_port_pair
from siphon.io.rtp_session import RtpSession
from siphon.rtp.codecs import codec_for
from siphon.rtp.jitter import JitterBuffer
from siphon.rtp.packet import build_rtp
from siphon.rtp.rtcp import ReceiverReport, build_sr, parse_rtcp
from siphon.sip.sdp import PCMA, PCMU, TELEPHONE_EVENT, Direction, NegotiatedMedia
from tests.io.helpers import LOOPS, free_port_base

_ALLOCATORS: list[RtpPortAllocator] = []


def _ports() -> RtpPortAllocator:
    base = free_port_base(20)
    ports = RtpPortAllocator(base, base + 18)
    _ALLOCATORS.append(ports)
    return ports


@pytest.fixture(autouse=True)
def _close_port_pools() -> Iterator[None]:
    # A closed session's pair stays pooled (and bound) until its allocator closes: a later
    # test drawing the same random base must find its ports free.
    yield
    while _ALLOCATORS:
        _ALLOCATORS.pop().close()


def _media(port: int, *, dtmf: bool = True) -> NegotiatedMedia:
    return NegotiatedMedia(
        remote_address="127.0.0.1",
        remote_port=port,
        remote_rtcp_port=port + 1,
        codec=PCMU,
        telephone_event_pt=TELEPHONE_EVENT.payload_type if dtmf else None,
        ptime=20,
        direction=Direction.SENDRECV,
        media_index=0,
    )


@contextmanager
def _peer() -> Iterator[socket.socket]:
    """A UDP socket standing in for the far end."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    try:
        yield sock
    finally:
        sock.close()


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Owner:
    """Plays the SipCall: holds the session, which calls back into it."""

    def __init__(self, session: RtpSession) -> None:
        self.media = session
        self.events: list[object] = []
        session.on_dtmf = self.emit
        session.on_timeout = functools.partial(self.timed_out, "media timeout")
        session.tap = self.tapped

    def emit(self, event: DtmfReceived) -> None:
        self.events.append(event)

    def timed_out(self, reason: str) -> None:
        self.events.append(reason)

    def tapped(self, packet: bytes, arrival: float) -> None:
        self.events.append(len(packet))


async def _a_whole_call() -> tuple[weakref.ref[RtpSession], weakref.ref[_Owner], list[object]]:
    clock = MediaClock()
    session = RtpSession(_ports(), clock)
    owner = _Owner(session)
    await session.open()
    with _peer() as peer:
        session.start(_media(peer.getsockname()[1]))
        # Every lazily made part, and an app reading the caller's audio.
        session.play(np.full(160 * 3, 500, dtype=np.int16))
        session.flush()
        reader_task = asyncio.ensure_future(_read_frames(session))
        for seq in range(3):
            peer.sendto(build_rtp(0, seq, seq * 160, 7, b"\xff" * 160), ("127.0.0.1", session.port))
        peer.sendto(build_rtp(101, 3, 480, 7, b"\x05\x8a\x03\x20"), ("127.0.0.1", session.port))
        await asyncio.sleep(0.1)  # a few ticks: audio and RTCP both ways
        session.close()
        frames = await asyncio.wait_for(reader_task, 1)
    clock.close()
    await asyncio.sleep(0.05)  # the loop's transport callbacks run
    events = owner.events
    assert session._jitter is not None and session._dtmf_in is not None
    assert frames > 0 and session.stats.packets_in == 4
    return weakref.ref(session), weakref.ref(owner), events


async def _read_frames(session: RtpSession) -> int:
    count = 0
    async for _ in session.frames():
        count += 1
    return count


@pytest.mark.parametrize("new_loop", LOOPS)
def test_a_closed_session_and_its_owner_are_freed_without_the_cyclic_gc(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    with _no_cyclic_gc(), asyncio.Runner(loop_factory=new_loop) as runner:
        session_ref, owner_ref, events = runner.run(_a_whole_call())
        assert 172 in events  # the tap saw the RTP packets
        assert any(isinstance(e, DtmfReceived) for e in events)
        # Reference counting alone freed them: close() broke every cycle.
        assert session_ref() is None
        assert owner_ref() is None


async def test_close_drops_callbacks_and_the_playout_hook() -> None:
    clock = MediaClock()
    session = RtpSession(_ports(), clock)
    owner = _Owner(session)
    await session.open()
    session.start(_media(40000))
    playout = session.playout
    assert playout.on_start is not None
    session.close()
    assert session.on_dtmf is None and session.on_timeout is None and session.tap is None
    assert playout.on_start is None
    # Audio queued after the end goes nowhere, as before.
    session.play(np.full(160, 1, dtype=np.int16))
    assert session.stats.packets_out == 0
    assert owner.events == []
    clock.close()


async def test_parts_are_made_on_first_use_and_behave_as_if_made_at_start() -> None:
    clock = MediaClock()
    session = RtpSession(_ports(), clock)
    try:
        await session.open()
        session.start(_media(40000))
        assert session._jitter is None and session._dtmf_in is None
        assert session._playout is None and session._inbound_ready is None
        # Statistics before any use read as a fresh jitter buffer's would.
        fresh = JitterBuffer(codec_for("PCMU").decode)
        stats = session.refresh_stats()
        assert (stats.lost, stats.late, stats.concealed) == fresh.loss_counts() == (0, 0, 0)
        # Ticks before any packet make no jitter buffer and yield the frames a buffer
        # made at start would have (each its own array).
        session._sending = False
        for tick in range(1, 4):
            session.on_tick(tick, 100.0 + 0.02 * tick)
            expected = fresh.pop(100.0 + 0.02 * tick)
            assert np.array_equal(session._inbound[-1], expected.pcm)
            assert session._inbound[-1].dtype == expected.pcm.dtype
        assert session._jitter is None
        assert session._inbound[-1] is not session._inbound[-2]
        # The first packet makes it; from then on it is the buffer made at start.
        addr = ("127.0.0.1", 40000)
        for i in range(6):
            packet = build_rtp(0, 10 + i, 1600 + 160 * i, 7, bytes([i * 20]) * 160)
            session.datagram_received(packet, addr)
            fresh.push(10 + i, 1600 + 160 * i, 7, bytes([i * 20]) * 160, session._last_rx)
            assert session._jitter is not None and session._jitter.stats == fresh.stats
            session.on_tick(4 + i, session._last_rx)
            expected = fresh.pop(session._last_rx)
            assert np.array_equal(session._inbound[-1], expected.pcm)
        assert session._jitter.stats == fresh.stats and fresh.stats.played > 0
        # A DTMF packet makes the receiver; the digit is reported as before.
        got: list[DtmfReceived] = []
        session.on_dtmf = got.append
        addr = ("127.0.0.1", 40000)
        for i, end in enumerate((False, True, True, True)):
            payload = bytes([5, (0x80 if end else 0) | 10]) + (160 * (i + 1)).to_bytes(2, "big")
            packet = build_rtp(101, i, 16000, 9, payload, marker=i == 0)
            session.datagram_received(packet, addr)
        assert session._dtmf_in is not None
        assert [(e.digit, e.duration_ms) for e in got] == [("5", 40)]  # the first end packet
        # The playout queue, with its hook, on first access.
        assert session.playout.on_start is not None and session._playout is session.playout
    finally:
        session.close()
        clock.close()


async def test_rtp_before_start_is_dropped_and_the_first_packet_makes_the_buffer() -> None:
    clock = MediaClock()
    session = RtpSession(_ports(), clock)
    addr = ("127.0.0.1", 40000)
    try:
        session.datagram_received(build_rtp(0, 1, 160, 5, b"\xff" * 160), addr)
        assert session.stats.dropped_malformed == 1 and session._jitter is None
        session.start(_media(40000, dtmf=False))
        session.datagram_received(build_rtp(0, 2, 320, 5, b"\xff" * 160), addr)
        assert session._jitter is not None and session._jitter.stats.received == 1
        assert session.stats.packets_in == 1 and session.stats.latched
    finally:
        session.close()
        clock.close()


async def test_a_reinvite_to_another_codec_replaces_a_buffer_in_use_only() -> None:
    clock = MediaClock()
    session = RtpSession(_ports(), clock)
    try:
        session.start(_media(40000))
        pcma = NegotiatedMedia(
            remote_address="127.0.0.1",
            remote_port=40000,
            remote_rtcp_port=40001,
            codec=PCMA,
            telephone_event_pt=None,
            ptime=20,
            direction=Direction.SENDRECV,
            media_index=0,
        )
        session.start(pcma)
        assert session._jitter is None  # never used: still made on first use
        session.on_tick(1, 1.0)
        assert session._jitter is None  # a tick alone does not make it
        session.datagram_received(build_rtp(8, 1, 160, 5, b"\xd5" * 160), ("127.0.0.1", 40000))
        used = session._jitter
        assert used is not None
        session.start(_media(40000))
        assert session._jitter is not None and session._jitter is not used
        assert session.codec is not None and session.codec.name == "PCMU"
        assert session._silence == codec_for("PCMU").silence(160)
    finally:
        session.close()
        clock.close()


async def test_rtcp_is_read_from_the_bare_socket_and_the_port_is_pooled_on_close() -> None:
    clock = MediaClock()
    ports = _ports()
    session = RtpSession(ports, clock)
    await session.open()
    port = session.port
    with _peer() as peer:
        session.start(_media(peer.getsockname()[1] - 1))  # its RTCP port is the peer
        session._sending = False
        # RTP first (reception statistics start), then an SR and some garbage on RTCP.
        peer.sendto(build_rtp(0, 1, 160, 77, b"\xff" * 160), ("127.0.0.1", port))
        await asyncio.sleep(0.05)
        sr = build_sr(77, 0x11223344, 0x55667788, 160, 1, 160)
        peer.sendto(sr, ("127.0.0.1", port + 1))
        peer.sendto(b"\x00\x01", ("127.0.0.1", port + 1))
        await asyncio.sleep(0.05)
        assert session.stats.rtcp_in == 2
        assert session.stats.dropped_malformed == 1
        # Our next report echoes that SR (RFC 3550 §6.4.1 LSR: middle 32 bits of its NTP).
        session._send_rtcp()
        data, _ = peer.recvfrom(2048)
        report = parse_rtcp(data)[0]
        assert isinstance(report, ReceiverReport)
        assert report.blocks[0].lsr == 0x33445566
        assert session.stats.rtcp_out == 1
    session.close()
    clock.close()
    # The pair went back to the allocator's pool; closing the allocator closes both
    # sockets and frees the ports.
    assert ports.in_use == 0 and ports.pooled == 1
    ports.close()
    assert ports.pooled == 0
    for p in (port, port + 1):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", p))
        probe.close()


async def test_rtcp_to_a_name_is_not_sent_and_needs_no_dns() -> None:
    clock = MediaClock()
    session = RtpSession(_ports(), clock)
    await session.open()
    try:
        session.start(_media(40000))
        session.remote_rtcp = ("media.invalid", 40001)
        session._send_rtcp()
        assert session.stats.rtcp_out == 0
        session.remote_rtcp = ("::1", 40001)  # not our family: refused like a transport
        session._send_rtcp()
        assert session.stats.rtcp_out == 0
        session.remote_rtcp = ("127.0.0.1", 40001)
        session._send_rtcp()
        assert session.stats.rtcp_out == 1
    finally:
        session.close()
        clock.close()


async def test_closing_before_opening_gives_everything_back() -> None:
    clock = MediaClock()
    ports = _ports()
    session = RtpSession(ports, clock)
    opening = asyncio.ensure_future(session.open())
    session.close()
    port = await opening
    assert ports.in_use == 0 and session._rtcp_sock is None and session._rtp_sock is None
    assert ports.pooled == 1
    ports.close()
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", port + 1))
    probe.close()
    clock.close()


def test_bind_port_pair_gives_non_blocking_consecutive_sockets_and_skips_taken_pairs() -> None:
    ports = _ports()
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", ports.start + 1))  # the first pair's RTCP port is taken
    try:
        port, rtp, rtcp = bind_port_pair(ports)
        try:
            assert port == ports.start + 2
            assert rtp.getsockname()[1] == port and rtcp.getsockname()[1] == port + 1
            for sock in (rtp, rtcp):
                assert sock.gettimeout() == 0.0 and sock.type == socket.SOCK_DGRAM
            assert ports.in_use == 1  # the skipped pair was given back
            # ...and its RTP socket closed: the port binds again.
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind(("127.0.0.1", ports.start))
            probe.close()
        finally:
            rtp.close()
            rtcp.close()
    finally:
        blocker.close()


def test_the_random_stream_origins_are_drawn_fresh_per_session() -> None:
    clock = MediaClock()
    sessions = [RtpSession(_ports(), clock) for _ in range(50)]
    values: list[Any] = [(s.ssrc, s._seq, s._ts, s.cname) for s in sessions]
    assert len({v[0] for v in values}) == 50 and len({v[3] for v in values}) == 50
    assert all(
        0 <= ssrc < 2**32 and 0 <= seq < 2**16 and 0 <= ts < 2**32 for ssrc, seq, ts, _ in values
    )
    assert all(len(cname) == len("siphon-") + 8 for *_, cname in values)
    assert len({v[1] for v in values}) > 1 and len({v[2] for v in values}) > 1
