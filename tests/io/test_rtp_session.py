"""Two RTP sessions on loopback: audio, DTMF, barge-in, latching, bad input, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from siphon.events import DtmfReceived
from siphon.io.media_clock import MediaClock
from siphon.io.ports import RtpPortAllocator
from siphon.io.recording import RecordingWriter
from siphon.io.rtp_session import RtpSession
from siphon.rtp.packet import build_rtp
from siphon.rtp.rtcp import Bye, SenderReport, SourceDescription, parse_rtcp
from siphon.sip.sdp import PCMA, TELEPHONE_EVENT, Direction, NegotiatedMedia
from tests.io.helpers import free_port_base


def _media(port: int) -> NegotiatedMedia:
    return NegotiatedMedia(
        remote_address="127.0.0.1",
        remote_port=port,
        remote_rtcp_port=port + 1,
        codec=PCMA,
        telephone_event_pt=TELEPHONE_EVENT.payload_type,
        ptime=20,
        direction=Direction.SENDRECV,
        media_index=0,
    )


@contextlib.asynccontextmanager
async def pair(
    *,
    media_timeout: float = 30.0,
    recorder: RecordingWriter | None = None,
    recording_path: Path | None = None,
) -> AsyncIterator[tuple[RtpSession, RtpSession]]:
    base = free_port_base(20)
    ports = RtpPortAllocator(base, base + 18)
    clock = MediaClock()
    a = RtpSession(
        ports, clock, media_timeout=media_timeout, recorder=recorder, recording_path=recording_path
    )
    b = RtpSession(ports, clock, media_timeout=media_timeout)
    await a.open()
    await b.open()
    a.start(_media(b.port))
    b.start(_media(a.port))
    try:
        yield a, b
    finally:
        a.close()
        b.close()
        ports.close()  # the pooled pairs too: a later test may draw the same base
        clock.close()


async def collect(session: RtpSession, frames: int) -> list[np.ndarray]:
    out = []
    async for frame in session.frames():
        out.append(frame)
        if len(out) >= frames:
            break
    return out


async def test_audio_flows_both_ways_on_the_clock() -> None:
    async with pair() as (a, b):
        a.play(np.full(160 * 25, 1000, dtype=np.int16))
        frames = await asyncio.wait_for(collect(b, 40), 3)
        levels = [int(np.abs(f).max()) for f in frames]
        assert max(levels) > 900  # the tone arrived (A-law: 1000 -> ~1008)
        await asyncio.sleep(0.2)
        assert a.refresh_stats().packets_out >= 40 and b.stats.packets_in >= 40
        assert b.stats.latched and b.stats.lost == 0


async def test_flush_means_nothing_old_reaches_the_wire() -> None:
    async with pair() as (a, b):
        a.play(np.full(160 * 200, 4000, dtype=np.int16))  # 4 s queued
        await asyncio.sleep(0.3)
        a.flush()
        sent_at_flush = a.stats.packets_out
        a.play(np.full(160 * 10, -4000, dtype=np.int16), a.playout.epoch)
        await asyncio.sleep(0.5)
        # Everything after the flush was the new (negative) audio or silence.
        frames = list(b._inbound)[-20:]
        assert all(int(f.max()) < 1000 for f in frames), "old audio played after flush"
        assert a.stats.packets_out > sent_at_flush


async def test_rfc4733_digits_between_sessions() -> None:
    got: list[DtmfReceived] = []
    async with pair() as (a, b):
        b.on_dtmf = got.append
        a.send_dtmf("5#", duration_ms=100)
        await asyncio.sleep(0.8)
    assert [e.digit for e in got] == ["5", "#"]
    assert all(90 <= e.duration_ms <= 130 for e in got)


async def test_bad_datagrams_are_dropped_counted_and_disturb_no_other_call() -> None:
    async with pair() as (_a, b), pair() as (c, d):
        c.play(np.full(160 * 50, 2000, dtype=np.int16))
        await asyncio.sleep(0.2)  # b latches to a
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for _ in range(200):
                attacker.sendto(os.urandom(secrets.randbelow(200) + 1), ("127.0.0.1", b.port))
            attacker.sendto(b"\x80" + b"\x00" * 2000, ("127.0.0.1", b.port))  # oversized
            # A well-formed packet from the wrong source: RTP injection.
            attacker.sendto(build_rtp(8, 1, 160, 1234, b"\xd5" * 160), ("127.0.0.1", b.port))
            await asyncio.sleep(0.3)
        finally:
            attacker.close()
        stats = b.stats
        assert stats.dropped_foreign >= 200  # latched: everything from elsewhere is dropped
        frames = await asyncio.wait_for(collect(d, 20), 2)
        assert max(int(np.abs(f).max()) for f in frames) > 1500  # the other call is fine


async def test_unknown_payload_type_and_garbage_before_latching() -> None:
    async with pair() as (a, b):
        a._sending = False  # b has not latched yet
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sender.sendto(build_rtp(18, 1, 160, 99, b"\x00" * 20), ("127.0.0.1", b.port))
            sender.sendto(b"\x00\x01", ("127.0.0.1", b.port))
            await asyncio.sleep(0.1)
        finally:
            sender.close()
        assert b.stats.dropped_payload_type == 1
        assert b.stats.dropped_malformed == 1
        assert not b.stats.latched


async def test_media_timeout_fires_once() -> None:
    fired: list[int] = []
    async with pair(media_timeout=0.2) as (a, b):
        a._sending = False
        b._sending = False
        b.on_timeout = lambda: fired.append(1)
        await asyncio.sleep(0.5)
    assert fired == [1]


async def test_recording_is_stereo_and_aligned(tmp_path: Path) -> None:
    writer = RecordingWriter()
    path = tmp_path / "call.wav"
    async with pair(recorder=writer, recording_path=path) as (a, b):
        b.play(np.full(160 * 25, 3000, dtype=np.int16))  # caller side of a's recording
        a.play(np.full(160 * 25, -3000, dtype=np.int16))  # a's own (agent) side
        await asyncio.sleep(0.8)
    assert writer.drain()
    import wave

    with wave.open(str(path)) as wav:
        assert wav.getnchannels() == 2 and wav.getframerate() == 8000
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    left, right = samples[0::2], samples[1::2]
    assert left.max() > 2500 and right.min() < -2500
    assert len(left) >= 160 * 30


async def test_an_utterance_starts_at_once_and_the_stream_falls_back_onto_the_clock() -> None:
    import struct
    import time

    async with pair() as (a, b):
        packets: list[tuple[float, int, int, bytes]] = []

        markers: list[int] = []

        def tap(packet: bytes, arrival: float) -> None:
            seq, ts = struct.unpack("!HI", packet[2:8])
            packets.append((arrival, seq, ts, packet[12:]))
            if packet[1] & 0x80:
                markers.append(len(packets) - 1)

        b.tap = tap
        await asyncio.sleep(0.3)  # comfort silence on the clock
        delays = []
        for _ in range(3):
            before = len(packets)
            queued_at = time.monotonic()
            a.play(np.full(160 * 5, 3000, dtype=np.int16))  # 100 ms utterance
            await asyncio.sleep(0.25)
            first_audio = next(p for p in packets[before:] if p[3] != packets[0][3])
            delays.append(first_audio[0] - queued_at)
        # The first frame left without waiting for a tick (a tick is up to 20 ms away).
        assert max(delays) < 0.008, delays
        # Sequence numbers and timestamps stay contiguous through every lead and fallback.
        for (_, seq1, ts1, _), (_, seq2, ts2, _) in itertools.pairwise(packets):
            assert (seq2 - seq1) % 65536 == 1
            assert (ts2 - ts1) % 2**32 == 160
        # ...and the stream is back on the clock: one packet per 20 ms on average.
        span = packets[-1][0] - packets[0][0]
        assert abs(span / (len(packets) - 1) - 0.020) < 0.002
        assert a.playout.played == 15
        # Each utterance's first packet carries the marker bit (a talkspurt starts).
        assert len(markers) == 3
        assert all(packets[i][3] != packets[0][3] for i in markers)


class _RtcpCatcher(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.packets.append(data)


async def _session_towards_catcher(
    ports: RtpPortAllocator, clock: MediaClock
) -> tuple[RtpSession, _RtcpCatcher, asyncio.DatagramTransport]:
    loop = asyncio.get_running_loop()
    catcher = _RtcpCatcher()
    transport, _ = await loop.create_datagram_endpoint(lambda: catcher, local_addr=("127.0.0.1", 0))
    rtcp_port = transport.get_extra_info("sockname")[1]
    session = RtpSession(ports, clock)
    await session.open()
    # The RTP port is never read here; only RTCP (port + 1 in the SDP) is caught.
    media = _media(rtcp_port - 1)
    session.start(media)
    return session, catcher, transport


async def test_rtcp_bye_only_after_we_sent_something() -> None:
    """RFC 3550 §6.3.7: a participant that never sent RTP or RTCP MUST NOT send a BYE."""
    base = free_port_base(20)
    ports = RtpPortAllocator(base, base + 18)
    clock = MediaClock()
    try:
        # Closed before its first tick: nothing sent, so no BYE either.
        quiet, quiet_catcher, quiet_transport = await _session_towards_catcher(ports, clock)
        quiet.close()
        await asyncio.sleep(0.1)
        assert quiet.stats.packets_out == 0
        assert quiet_catcher.packets == []
        quiet_transport.close()

        # After a few ticks of (comfort) audio the BYE goes out, after SR and SDES.
        talker, catcher, transport = await _session_towards_catcher(ports, clock)
        await asyncio.sleep(0.15)
        assert talker.stats.packets_out > 0
        talker.close()
        await asyncio.sleep(0.1)
        transport.close()
        assert catcher.packets, "no RTCP BYE after RTP was sent"
        kinds = [type(packet) for packet in parse_rtcp(catcher.packets[-1])]
        # A compound packet: SR first (RFC 3550 §6.1), SDES, then our BYE.
        assert kinds == [SenderReport, SourceDescription, Bye]
    finally:
        ports.close()
        clock.close()
