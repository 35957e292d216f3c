"""One call's RTP: socket, latching, jitter buffer, playout, DTMF, RTCP, recording, timeout.

Receiving is event driven (the loop says the RTP socket is readable, the port
pair's reader reads one datagram into ``datagram_received``); sending is driven by the
process-wide ``MediaClock``: on every 20 ms tick the session pulls the caller's
next frame out of the jitter buffer (for the app and the recording) and sends the
agent's next frame (or comfort silence, or a DTMF event packet). Per packet the
Python work is a 12-byte header peek, a table lookup and a few comparisons.

Set-up and tear-down are paid once per call, at call-setup rates of thousands a
second, so a session starts small: the jitter buffer, playout queue, DTMF
receiver and the frames() event are made on first use (the jitter buffer on the
first RTP packet: until then a tick yields silence, as an empty buffer would). RTP
and RTCP are bare sockets read when the loop says they are readable (no asyncio
transport), taken from and given back to the allocator's pool of bound pairs
(ports.py), whose readers hand datagrams to the session owning the pair: a call
binds, registers and closes no socket. ``close()`` drops every callback and hook,
so a closed session and its call are freed by reference counting, not by the
cyclic GC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siphon.events import DtmfReceived
from siphon.io.media_clock import MediaClock
from siphon.io.playout import FRAME_SAMPLES, PcmFrame, PlayoutQueue
from siphon.io.ports import MAX_RTP_DATAGRAM, RtpPortAllocator, RtpPortPair
from siphon.io.recording import Recording, RecordingWriter
from siphon.rtp.codecs import Codec, codec_for
from siphon.rtp.dtmf import DtmfReceiver, DtmfSender
from siphon.rtp.jitter import JitterBuffer
from siphon.rtp.packet import build_rtp, is_rtcp, peek_header
from siphon.rtp.recorder import interleave
from siphon.rtp.rtcp import (
    ReceptionStats,
    RtcpScheduler,
    SenderReport,
    build_bye,
    build_rr,
    build_sdes_cname,
    build_sr,
    ntp_from_unix,
    parse_rtcp,
)
from siphon.rtp.seq import SEQ_MOD, TS_MOD
from siphon.sip.sdp import NegotiatedMedia
from siphon.tokens import random_bytes

log = logging.getLogger("siphon.io.rtp")

Address = tuple[str, int]

# Frames of caller audio kept for an app that reads slowly (2 s); older ones drop.
MAX_INBOUND_FRAMES = 100


@dataclass(slots=True)
class MediaStats:
    """Call statistics, updated as packets flow (also exposed on the call)."""

    packets_in: int = 0
    packets_out: int = 0
    octets_in: int = 0
    octets_out: int = 0
    lost: int = 0
    late: int = 0
    concealed: int = 0
    jitter_ms: float = 0.0
    dtmf_events: int = 0
    dropped_foreign: int = 0  # from another source after latching (RTP injection)
    dropped_malformed: int = 0
    dropped_payload_type: int = 0
    rtcp_in: int = 0
    rtcp_out: int = 0
    latched: bool = False


class RtpSession(asyncio.DatagramProtocol):
    # Slots: ~40 attributes set per call; subclasses (test harnesses) may add their own.
    __slots__ = (
        "__weakref__",
        "_clock",
        "_closed",
        "_dtmf_in",
        "_dtmf_out",
        "_inbound",
        "_inbound_ready",
        "_jitter",
        "_last_rx",
        "_lead",
        "_lead_frame",
        "_pair",
        "_playout",
        "_ports",
        "_reception",
        "_recorder",
        "_remote_ssrc",
        "_rtcp_schedule",
        "_rtcp_sock",
        "_rtp_sock",
        "_sending",
        "_sent_to",
        "_seq",
        "_silence",
        "_silent_ticks",
        "_started",
        "_ts",
        "_wav",
        "cname",
        "codec",
        "dtmf_payload_type",
        "media_timeout",
        "on_dtmf",
        "on_timeout",
        "payload_type",
        "port",
        "recording_path",
        "remote",
        "remote_rtcp",
        "ssrc",
        "stats",
        "tap",
    )

    def __init__(
        self,
        ports: RtpPortAllocator,
        clock: MediaClock,
        *,
        media_timeout: float = 30.0,
        on_timeout: Callable[[], None] | None = None,
        on_dtmf: Callable[[DtmfReceived], None] | None = None,
        recorder: RecordingWriter | None = None,
        recording_path: Path | None = None,
    ) -> None:
        self._ports = ports
        self._clock = clock
        self.media_timeout = media_timeout
        self.on_timeout = on_timeout
        self.on_dtmf = on_dtmf
        self._recorder = recorder
        self.recording_path = recording_path
        self._wav: Recording | None = None
        self.port = 0
        self._pair: RtpPortPair | None = None
        self._rtp_sock: socket.socket | None = None
        self._rtcp_sock: socket.socket | None = None
        # The last ``remote`` found to be an address of our family (see _send_rtp).
        self._sent_to: Address | None = None
        self.stats = MediaStats()
        self._playout: PlayoutQueue | None = None  # see the ``playout`` property
        # One frame sent ahead of the clock (see _send_first_frame_now); it is recorded
        # on the tick it would have gone out, so the recording's channels stay aligned.
        self._lead = False
        self._lead_frame: PcmFrame | None = None
        self._inbound: deque[PcmFrame] = deque(maxlen=MAX_INBOUND_FRAMES)
        self._inbound_ready: asyncio.Event | None = None  # made by frames()
        # Negotiated in start():
        self.codec: Codec | None = None
        self.payload_type = -1
        self.dtmf_payload_type = -1
        self.remote: Address | None = None
        self.remote_rtcp: Address | None = None
        # Made on first use (the first packet, or tick): a call may end before either.
        self._jitter: JitterBuffer | None = None
        # Ticks answered with silence while no packet had made the jitter buffer.
        self._silent_ticks = 0
        self._dtmf_in: DtmfReceiver | None = None
        self._dtmf_out: DtmfSender | None = None
        self._reception: ReceptionStats | None = None
        self._rtcp_schedule: RtcpScheduler | None = None
        self._remote_ssrc: int | None = None
        # Our stream: random SSRC, sequence and timestamp origin (RFC 3550 §5.1), and
        # the CNAME's random part, in one draw from the CSPRNG buffer.
        rnd = random_bytes(14)
        self.ssrc = int.from_bytes(rnd[0:4], "big")
        self._seq = int.from_bytes(rnd[4:6], "big")
        self._ts = int.from_bytes(rnd[6:10], "big")
        self._silence = b""
        self._last_rx = 0.0
        self._sending = False
        self._started = False
        self._closed = False
        self.cname = f"siphon-{rnd[10:14].hex()}"
        # ``tap(packet, arrival_time)`` for each accepted RTP packet: test harnesses
        # measure what a caller hears on the packets themselves, before any buffering.
        self.tap: Callable[[bytes, float], None] | None = None

    # -- lifecycle -------------------------------------------------------------------
    async def open(self) -> int:
        """Take an even RTP port and the RTCP port above it; returns the RTP port."""
        # The pair's readers (registered once per pair, not per call) hand us what
        # arrives from now on: no transport to set up, no reader to swap.
        pair = self._ports.acquire(asyncio.get_running_loop(), self)
        self._pair = pair
        self.port = pair.port
        self._rtp_sock = pair.rtp
        self._rtcp_sock = pair.rtcp
        if self._closed:  # closed before it opened
            self._close_sockets()
        return pair.port

    def start(self, media: NegotiatedMedia, *, sending: bool = True) -> None:
        """Apply the negotiated media and join the media clock (idempotent, re-INVITE safe)."""
        codec = codec_for(media.codec.name, media.codec.clock_rate)
        if self.codec is None or codec.name != self.codec.name:
            if self._jitter is not None:  # re-INVITE to another codec: a new stream
                self._jitter = JitterBuffer(codec.decode)
            self._silent_ticks = 0  # (a buffer made later starts on the new codec)
            self._silence = codec.silence(FRAME_SAMPLES)
        self.codec = codec
        self.payload_type = media.codec.payload_type
        self.dtmf_payload_type = (
            media.telephone_event_pt if media.telephone_event_pt is not None else -1
        )
        if self.dtmf_payload_type >= 0 and self._dtmf_out is None:
            self._dtmf_out = DtmfSender(self.dtmf_payload_type)
        if not self.stats.latched:
            self.remote = (media.remote_address, media.remote_port)
            rtcp_port = media.remote_rtcp_port or media.remote_port + 1
            self.remote_rtcp = (media.remote_address, rtcp_port)
        self._sending = sending and media.direction.sends
        if not self._started and not self._closed:
            self._started = True
            self._last_rx = now = time.monotonic()
            self._rtcp_schedule = RtcpScheduler(now)
            if self._recorder is not None and self.recording_path is not None:
                self._wav = self._recorder.open(self.recording_path)
            self._clock.add(self)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._clock.remove(self)
        sent_anything = self.stats.packets_out or self.stats.rtcp_out
        if (
            sent_anything
            and self._rtcp_schedule is not None
            and self._rtcp_sock is not None
            and self.remote_rtcp is not None
        ):
            self._send_rtcp(bye=True)
        else:
            # RFC 3550 §6.3.7: a participant that never sent RTP or RTCP MUST NOT send BYE.
            self.refresh_stats()
        self._close_sockets()
        if self._wav is not None and self._recorder is not None:
            self._recorder.close(self._wav)
            self._wav = None
        if self._inbound_ready is not None:
            self._inbound_ready.set()
        # Break the reference cycles through our owner (its bound methods and partials
        # we call back) and through the playout hook (a bound method of ours), so that
        # the session and its call die by reference counting, not in a GC pass.
        self.on_timeout = None
        self.on_dtmf = None
        self.tap = None
        if self._playout is not None:
            self._playout.on_start = None

    def _close_sockets(self) -> None:
        pair = self._pair
        if pair is not None:
            self._pair = self._rtp_sock = self._rtcp_sock = None
            # Pooled (its readers discard from now on) or closed.
            self._ports.give_back(pair)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def playout(self) -> PlayoutQueue:
        """The agent's outbound audio queue, made on first use (many calls play nothing)."""
        playout = self._playout
        if playout is None:
            playout = self._playout = PlayoutQueue()
            if not self._closed:  # no hook (and no cycle) on a closed session
                playout.on_start = self._send_first_frame_now
        return playout

    # -- receiving -------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        stats = self.stats
        source = (str(addr[0]), int(addr[1]))
        codec = self.codec
        if len(data) > MAX_RTP_DATAGRAM or codec is None:  # None: not started yet
            stats.dropped_malformed += 1
            return
        if stats.latched and source != self.remote:
            stats.dropped_foreign += 1  # RTP injection protection
            return
        header = peek_header(data)
        if header is None:
            if is_rtcp(data):  # rtcp-mux peers (RFC 5761)
                self.rtcp_received(data, source)
            else:
                stats.dropped_malformed += 1
            return
        pt, marker, seq, ts, ssrc = header
        if pt != self.payload_type and pt != self.dtmf_payload_type:
            stats.dropped_payload_type += 1
            return
        if not stats.latched:
            # Symmetric RTP (RFC 4961): answer where the media really comes from (NAT).
            stats.latched = True
            if source != self.remote:
                log.debug("latched RTP to %s:%d (SDP said %s)", source[0], source[1], self.remote)
            self.remote = source
        now = time.monotonic()
        self._last_rx = now
        stats.packets_in += 1
        stats.octets_in += len(data)
        if ssrc != self._remote_ssrc:
            self._remote_ssrc = ssrc
            self._reception = ReceptionStats(ssrc, codec.clock_rate)
        if self._reception is not None:
            self._reception.on_packet(seq, ts, now)
        payload = _payload(data)
        if payload is None:
            stats.dropped_malformed += 1
            return
        if self.tap is not None:
            self.tap(data, now)
        if pt == self.dtmf_payload_type:
            dtmf_in = self._dtmf_in
            if dtmf_in is None:
                dtmf_in = self._dtmf_in = DtmfReceiver()
            event = dtmf_in.on_packet(ts, marker, payload, now)
            if event is not None:
                self._dtmf(event)
            return
        jitter = self._jitter
        if jitter is None:
            jitter = self._jitter = JitterBuffer(codec.decode)
            jitter.count_silence(self._silent_ticks)  # as if made at the first tick
        jitter.push(seq, ts, ssrc, payload, now, marker=marker)

    def rtcp_received(self, data: bytes, source: Address) -> None:
        self.stats.rtcp_in += 1
        try:
            packets = parse_rtcp(data, strict=False)
        except Exception:  # RtpParseError: counted, never fatal
            self.stats.dropped_malformed += 1
            return
        now = time.monotonic()
        for packet in packets:
            if isinstance(packet, SenderReport) and self._reception is not None:
                self._reception.on_sender_report(packet, now)

    def _dtmf(self, event: DtmfReceived) -> None:
        self.stats.dtmf_events += 1
        if self.on_dtmf is not None:
            self.on_dtmf(event)

    # -- the 20 ms tick ------------------------------------------------------------------
    def on_tick(self, tick: int, now: float) -> None:
        codec = self.codec
        if codec is None or self._closed:
            return
        # Caller side: the next 20 ms out of the jitter buffer.
        jitter = self._jitter
        if jitter is None:
            # Nothing received yet: silence, what an empty buffer pops. A call that never
            # receives RTP (a test tool, a call ended at once) makes no buffer (3.4 µs).
            self._silent_ticks += 1
            pcm = np.zeros(FRAME_SAMPLES, dtype=np.int16)  # the app's to keep
        else:
            pcm = jitter.pop(now).pcm
        # Every tick yields a frame, silence included: the app's audio clock is this
        # clock (a VAD must see the silence after speech even when the caller's
        # phone stops sending packets, as DTX and many test tools do).
        self._inbound.append(pcm)
        ready = self._inbound_ready
        if ready is not None:
            ready.set()
        dtmf_in = self._dtmf_in
        if dtmf_in is not None:
            late = dtmf_in.poll(now)
            if late is not None:
                self._dtmf(late)
        # Agent side: DTMF event packets replace audio while a digit plays (RFC 4733 §2.5.1.3).
        playout = self._playout
        agent = playout.pop(now) if playout is not None else None
        recorded = agent
        packet: bytes | None = None
        skip = False
        if self._lead:
            recorded, self._lead_frame = self._lead_frame, agent
            if agent is None:
                # The utterance is over: skip this tick's packet to fall back onto the clock.
                self._lead = False
                skip = True
        if self._sending and self.remote is not None and not skip:
            dtmf = self._dtmf_out.next_packet(self._ts) if self._dtmf_out is not None else None
            if dtmf is not None:
                packet = build_rtp(
                    dtmf.payload_type,
                    self._seq,
                    dtmf.timestamp,
                    self.ssrc,
                    dtmf.payload,
                    dtmf.marker,
                )
            else:
                payload = codec.encode(agent) if agent is not None else self._silence
                packet = build_rtp(self.payload_type, self._seq, self._ts, self.ssrc, payload)
        if packet is not None and self.remote is not None and self._send_rtp(packet, self.remote):
            self.stats.packets_out += 1
            self.stats.octets_out += len(packet)
            self._seq = (self._seq + 1) % SEQ_MOD
        if not skip:
            self._ts = (self._ts + FRAME_SAMPLES) % TS_MOD
        if self._wav is not None and self._recorder is not None:
            right = recorded if recorded is not None else _SILENT_FRAME
            self._recorder.write(self._wav, interleave(pcm, right))
        # Housekeeping, cheap enough to check every tick.
        if now - self._last_rx > self.media_timeout and self.on_timeout is not None:
            callback, self.on_timeout = self.on_timeout, None
            callback()
        schedule = self._rtcp_schedule
        if schedule is not None and schedule.due(now):
            schedule.sent(now)
            self._send_rtcp()

    def _send_first_frame_now(self) -> None:
        """Send the first frame of an utterance now rather than on the next tick.

        While the agent is silent the stream carries comfort silence on the clock;
        an answer that waited for the next tick would lose 0-20 ms (10 on average)
        on every turn. Its first frame goes out at once with the next tick's RTP
        timestamp, so the stream runs one frame ahead of the clock until the
        utterance ends, when one tick sends nothing and the stream is back on the
        clock. The far end sees the packets at most 20 ms early: its jitter
        buffer plays by timestamp (RFC 3550 §5.1), not by arrival.
        """
        codec = self.codec
        if (
            self._lead
            or not self._sending
            or codec is None
            or self._closed
            or self._rtp_sock is None
            or self.remote is None
            or (self._dtmf_out is not None and self._dtmf_out.busy)
        ):
            return
        frame = self.playout.pop(time.monotonic())
        if frame is None:
            return
        # Marker: the first packet of a talkspurt (RFC 3551 §4.1), so an adaptive
        # receiver may re-anchor its playout here and play the answer sooner.
        packet = build_rtp(
            self.payload_type, self._seq, self._ts, self.ssrc, codec.encode(frame), marker=True
        )
        if not self._send_rtp(packet, self.remote):
            return
        self.stats.packets_out += 1
        self.stats.octets_out += len(packet)
        self._seq = (self._seq + 1) % SEQ_MOD
        self._ts = (self._ts + FRAME_SAMPLES) % TS_MOD
        self._lead = True
        self._lead_frame = frame

    def _send_rtp(self, packet: bytes, remote: Address) -> bool:
        """Send on the RTP socket; False when nothing was (or could be) handed to it."""
        sock = self._rtp_sock
        if sock is None:
            return False
        if remote is not self._sent_to:
            # A name would make sendto() resolve it on the loop at every packet: names
            # and other families are refused, as uvloop's transport did (checked once
            # per remote address: from the SDP, a re-INVITE or latching).
            if not _numeric_address(sock.family, remote):
                return False
            self._sent_to = remote
        # A refusal by the kernel still counts as sent, as with a transport, which gives
        # an ICMP error to a no-op error_received (a full send buffer drops the packet
        # where a transport would queue it: it would be late). No contextlib.suppress:
        # it costs 0.2 µs a packet, a plain try nothing.
        try:
            sock.sendto(packet, remote)
        except OSError:
            return True
        return True

    def _send_rtcp(self, *, bye: bool = False) -> None:
        sock = self._rtcp_sock
        remote = self.remote_rtcp
        if sock is None or remote is None:
            return
        stats = self.stats
        blocks = []
        if self._reception is not None:
            blocks.append(self._reception.report_block(time.monotonic()))
            stats.jitter_ms = self._reception.jitter_ms
        if self._jitter is not None:
            stats.lost, stats.late, stats.concealed = self._jitter.loss_counts()
        parts: list[bytes] = []
        if stats.packets_out:
            sec, frac = ntp_from_unix(time.time())
            parts.append(
                build_sr(
                    self.ssrc, sec, frac, self._ts, stats.packets_out, stats.octets_out, blocks
                )
            )
        else:
            parts.append(build_rr(self.ssrc, blocks))
        parts.append(build_sdes_cname(self.ssrc, self.cname))
        if bye:
            parts.append(build_bye((self.ssrc,)))
        # Joined as they are: an unpadded SR or RR first, whole packets, which is all
        # build_compound would check (RFC 3550 §6.1).
        data = b"".join(parts)
        if not _numeric_address(sock.family, remote):
            return  # a name would need a DNS lookup on the loop (a transport refuses too)
        # A refusal by the kernel (a full buffer; ICMP errors are not reported on an
        # unconnected UDP socket) still counts, as with a transport, which reports it to
        # a no-op ``error_received``.
        with contextlib.suppress(OSError):
            sock.sendto(data, remote)
        stats.rtcp_out += 1

    # -- the app's side ------------------------------------------------------------------
    def play(self, pcm: PcmFrame, epoch: int | None = None) -> None:
        """Queue 8 kHz mono int16 PCM for the caller (any length)."""
        self.playout.put(pcm, epoch)

    def flush(self) -> int:
        """Barge-in: nothing queued so far reaches the wire; returns the new epoch."""
        return self.playout.flush(time.monotonic())

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        if self._dtmf_out is None:
            raise RuntimeError("the peer did not offer telephone-event: use SIP INFO")
        self._dtmf_out.send(digits, duration_ms)

    async def frames(self) -> AsyncIterator[PcmFrame]:
        """The caller's audio, 20 ms (160 samples at 8 kHz) at a time, until the call ends."""
        ready = self._inbound_ready
        if ready is None:
            ready = self._inbound_ready = asyncio.Event()
        while not self._closed:
            while self._inbound:
                yield self._inbound.popleft()
            ready.clear()
            if self._closed:
                return
            await ready.wait()

    def refresh_stats(self) -> MediaStats:
        if self._reception is not None:
            self.stats.jitter_ms = self._reception.jitter_ms
        if self._jitter is not None:
            stats = self.stats
            stats.lost, stats.late, stats.concealed = self._jitter.loss_counts()
        return self.stats


_SILENT_FRAME = np.zeros(FRAME_SAMPLES, dtype=np.int16)


def _numeric_address(family: int, address: Address) -> bool:
    """Whether ``address`` is an IP literal of ``family`` and a valid port."""
    try:
        socket.inet_pton(family, address[0])
    except (OSError, ValueError):
        return False
    return 0 <= address[1] <= 0xFFFF


def _payload(data: bytes) -> bytes | None:
    """The payload after the fixed header, CSRCs, extension and padding (RFC 3550 §5.1)."""
    first = data[0]
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    end = len(data)
    if first & 0x20:  # padding
        pad = data[-1]
        if pad == 0 or pad > end - offset:
            return None
        end -= pad
    if offset > end:
        return None
    return data[offset:end]
