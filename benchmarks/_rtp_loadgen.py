"""Load generator (and trivial UDP reflector) for ``benchmarks/media_capacity.py``.

Not meant to be run by hand; ``media_capacity.py`` starts it pinned to its own core::

    _rtp_loadgen.py sip --target-port P --calls N ...   # N calls through our own UAC
    _rtp_loadgen.py raw --target-port P --calls N ...   # N streams, no SIP (baseline)
    _rtp_loadgen.py reflect --port P                    # echoes every datagram at once

``sip`` places N calls with siphon's ``UserAgent`` (in this process), ramping at
``--rate`` calls/s, offering PCMA. Each call's RTP session is a ``Probe``: it
binds the port pair the SDP offer advertises (so the server's latching accepts
our packets), never joins a media clock, and keeps every arriving packet with
the kernel's receive timestamp. One timer on absolute deadlines (like the
server's media clock) sends every call's next 20 ms packet from that port to the
address of the SDP answer.

Each payload carries the index of the tick that sent it, so the frames the server
echoes back (examples/echo.py plays the caller's audio 0.5 s later; G.711 decode
and re-encode give back the same octets) tell which of our frames it played.

After ``--settle`` seconds with all calls up, arrivals are recorded for
``--seconds``; then every call is hung up (BYE) and the server's file descriptors
must return to their idle count. The measurements go to stdout as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import secrets
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (  # shared benchmark helpers (this script's folder)
    CLK_TCK,
    core_times,
    event_loop_runner,
    loopback_user_agent,
    parse_port_range,
    percentile_upper,
    ramp,
)

from siphon.io.call import CallFailed, SipCall
from siphon.io.media_clock import MediaClock
from siphon.io.ports import RtpPortAllocator, bind_port_pair
from siphon.io.rtp_session import RtpSession
from siphon.io.user_agent import UaConfig, UserAgent
from siphon.rtp.packet import build_rtp, peek_header
from siphon.sip.sdp import PCMA, TELEPHONE_EVENT, NegotiatedMedia

FRAME = 0.020
SAMPLES = 160
LATE_AFTER = 0.010  # a packet later than this after its due time is late
# Payload: tick index, the index xor MAGIC (so a concealed, faded copy never reads
# as an echo), then A-law silence.
TAG = struct.Struct("!II")
MAGIC = 0x5A17C0DE
FILL = b"\xd5" * (SAMPLES - TAG.size)
# Linux <asm-generic/socket.h>; the socket module does not name them.
SO_TIMESTAMPNS = SCM_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("@qq")


# -- /proc ------------------------------------------------------------------------------
@dataclass
class ProcSample:
    cpu: float  # user + system seconds so far
    sys: float  # system seconds so far
    rss_kb: int
    fds: int
    at: float


def proc_sample(pid: int | str) -> ProcSample:
    at = time.monotonic()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / CLK_TCK
        system = int(stat[12]) / CLK_TCK
        rss = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, IndexError, ValueError):
        return ProcSample(0.0, 0.0, 0, 0, at)
    return ProcSample(cpu, system, rss, fds, at)


def core_busy(a: list[int], b: list[int]) -> tuple[float, float]:
    """Share of the core busy between two samples, and the part in softirq."""
    if not a or not b:
        return 0.0, 0.0
    delta = [y - x for x, y in zip(a, b, strict=False)]
    total = sum(delta[:8]) or 1
    idle = delta[3] + delta[4]
    return (total - idle) / total, delta[6] / total


def cpu_share(a: ProcSample, b: ProcSample) -> float:
    return (b.cpu - a.cpu) / max(1e-9, b.at - a.at)


# -- one call's media -------------------------------------------------------------------
class Probe(RtpSession):
    """A call's RTP session in the generator: owns the port the offer advertised.

    It binds that port pair itself (no asyncio transport) so that every datagram
    comes with the kernel's receive timestamp (SO_TIMESTAMPNS: on loopback, taken
    when the sender's ``sendto`` queues it, so this process's own scheduling delays
    do not count), and reads it with ``recvmsg`` when the loop reports the socket
    readable. ``start()`` (called when the answer arrives) only takes the answer's
    address and payload type: no jitter buffer, no media clock. While ``measuring``,
    each packet costs one append; the analysis comes after the window.
    """

    def __init__(self, ports: RtpPortAllocator) -> None:
        super().__init__(ports, _UNUSED_CLOCK, media_timeout=1e9)
        self.allocator = ports
        self.sock: socket.socket | None = None
        self.rtcp_sock: socket.socket | None = None
        # (time.monotonic() when read, ancillary data with the kernel timestamp, packet)
        self.rx: list[tuple[float, list[tuple[int, int, bytes]], bytes]] = []
        self.measuring = False
        self.outside = 0  # packets that arrived outside the window
        self.send_errors = 0
        self.next_seq = secrets.randbits(16)
        self.next_ts = secrets.randbits(32)
        self._done = False

    async def open(self) -> int:
        loop = asyncio.get_running_loop()
        port, rtp, rtcp = bind_port_pair(self.allocator)
        rtp.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock, self.rtcp_sock, self.port = rtp, rtcp, port
        loop.add_reader(rtp.fileno(), self._readable)
        loop.add_reader(rtcp.fileno(), self._discard_rtcp)
        return port

    def start(self, media: NegotiatedMedia, *, sending: bool = True) -> None:
        self.remote = (media.remote_address, media.remote_port)
        self.payload_type = media.codec.payload_type

    @property
    def closed(self) -> bool:
        return self._done

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        loop = asyncio.get_running_loop()
        for sock in (self.sock, self.rtcp_sock):
            if sock is not None:
                loop.remove_reader(sock.fileno())
                sock.close()
        self.sock = self.rtcp_sock = None
        if self.port:
            self.allocator.release(self.port)

    def _readable(self) -> None:
        sock = self.sock
        while sock is not None:
            try:
                data, ancillary, _, _ = sock.recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:  # ICMP for an earlier send: keep reading
                continue
            except OSError:
                return
            if self.measuring:
                self.rx.append((time.monotonic(), ancillary, data))
            else:
                self.outside += 1

    def _discard_rtcp(self) -> None:
        sock = self.rtcp_sock
        while sock is not None:
            try:
                sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                continue
            except OSError:
                return

    def send(self, tick: int) -> None:
        if self.sock is None or self.remote is None:
            return
        payload = TAG.pack(tick, tick ^ MAGIC) + FILL
        packet = build_rtp(self.payload_type, self.next_seq, self.next_ts, self.ssrc, payload)
        try:
            self.sock.sendto(packet, self.remote)
        except OSError:  # a full socket buffer, or ICMP from an earlier send
            self.send_errors += 1
        self.next_seq = (self.next_seq + 1) & 0xFFFF
        self.next_ts = (self.next_ts + SAMPLES) & 0xFFFFFFFF


_UNUSED_CLOCK = MediaClock()


class LoadAgent(UserAgent):
    """Our UAC: every call's media is a ``Probe``."""

    def _new_media(self, call_id: str) -> RtpSession:
        return Probe(self.ports)


# -- one timer for every stream ------------------------------------------------------------
class Sender:
    """Sends every stream's next packet on absolute 20 ms deadlines; times itself."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.streams: list[Probe] = []
        self.tick = 0
        self.measuring = False
        self.lateness: list[float] = []  # this timer's own lateness, in the window
        self.skipped = 0
        self._start = self.loop.time()
        self._handle = self.loop.call_at(self._start + FRAME, self._on_timer)

    def _on_timer(self) -> None:
        self.tick += 1
        now = self.loop.time()
        lateness = now - (self._start + self.tick * FRAME)
        if self.measuring:
            self.lateness.append(lateness)
        behind = int(lateness / FRAME)
        if behind > 3:  # like the server's clock: skip rather than burst
            self.skipped += behind
            self.tick += behind
        for stream in self.streams:
            stream.send(self.tick)
        self._handle = self.loop.call_at(self._start + (self.tick + 1) * FRAME, self._on_timer)

    def stop(self) -> None:
        self._handle.cancel()
        self.streams.clear()


# -- analysis ----------------------------------------------------------------------------
@dataclass
class StreamFigures:
    received: int = 0
    late: int = 0  # by the kernel's receive timestamps
    late_app: int = 0  # by time.monotonic() when this process read the packet
    lost: int = 0
    duplicates: int = 0
    echo_expected: int = 0
    echo_missing: int = 0
    lateness_ms: list[float] = field(default_factory=list)


def kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            sec, nsec = TIMESPEC.unpack_from(data)
            return float(sec + nsec * 1e-9)
    return None


def analyse(
    rx: list[tuple[float, list[tuple[int, int, bytes]], bytes]], window: float
) -> StreamFigures:
    """Lateness against first arrival + seq * 20 ms (zero = smallest offset), seq gaps."""
    out = StreamFigures()
    offsets: list[float] = []
    app_offsets: list[float] = []
    seen: set[int] = set()
    echoed: set[int] = set()
    ext = last = None
    for read_at, ancillary, data in rx:
        header = peek_header(data)
        if header is None:
            continue
        seq = header[2]
        if ext is None or last is None:
            ext = 0
        else:
            step = (seq - last) & 0xFFFF
            ext += step - 0x10000 if step >= 0x8000 else step
        last = seq
        out.received += 1
        if ext in seen:
            out.duplicates += 1
            continue
        seen.add(ext)
        arrival = kernel_time(ancillary)
        offsets.append((read_at if arrival is None else arrival) - ext * FRAME)
        app_offsets.append(read_at - ext * FRAME)
        if len(data) >= 12 + TAG.size:
            tick, check = TAG.unpack_from(data, 12)
            if tick ^ MAGIC == check:
                echoed.add(tick)
    if not seen:
        out.lost = round(window / FRAME)  # a silent stream lost everything
        return out
    zero = min(offsets)
    out.lateness_ms = [(o - zero) * 1000 for o in offsets]
    out.late = sum(1 for o in offsets if o - zero > LATE_AFTER)
    app_zero = min(app_offsets)
    out.late_app = sum(1 for o in app_offsets if o - app_zero > LATE_AFTER)
    out.lost = max(seen) - min(seen) + 1 - len(seen)
    if echoed:
        out.echo_expected = max(echoed) - min(echoed) + 1
        out.echo_missing = out.echo_expected - len(echoed)
    return out


# -- the run -----------------------------------------------------------------------------
async def measure(
    args: argparse.Namespace, probes: list[Probe], sender: Sender, server_pid: int
) -> dict[str, Any]:
    await asyncio.sleep(args.settle)
    # A full collection over the arrivals kept so far takes tens of ms: that would be
    # our own send timer's lateness (the server's input), not the server's.
    gc.collect()
    gc.disable()
    server0, self0 = proc_sample(server_pid), proc_sample("self")
    core0 = core_times(args.server_core)
    sender.measuring = True
    for probe in probes:
        probe.measuring = True
    await asyncio.sleep(args.seconds)
    for probe in probes:
        probe.measuring = False
    sender.measuring = False
    server1, self1 = proc_sample(server_pid), proc_sample("self")
    busy, softirq = core_busy(core0, core_times(args.server_core))
    gc.enable()
    window = server1.at - server0.at
    figures = [analyse(p.rx, window) for p in probes]
    lateness = [x for f in figures for x in f.lateness_ms]
    received = sum(f.received for f in figures)
    late = sum(f.late for f in figures)
    echo_expected = sum(f.echo_expected for f in figures)
    return {
        "window_s": window,
        "window_monotonic": [server0.at, server1.at],  # to match against server-side logs
        "streams": len(probes),
        "silent_streams": sum(1 for f in figures if not f.received),
        "received": received,
        "late": late,
        "late_pct": 100 * late / max(1, received),
        "late_app_pct": 100 * sum(f.late_app for f in figures) / max(1, received),
        "send_errors": sum(p.send_errors for p in probes),
        "lost": sum(f.lost for f in figures),
        "duplicates": sum(f.duplicates for f in figures),
        "lateness_p99_ms": percentile_upper(lateness, 0.99, empty=0.0),
        "lateness_max_ms": max(lateness, default=0.0),
        "echo_frames": echo_expected,
        "echo_missing": sum(f.echo_missing for f in figures),
        "echo_missing_pct": 100 * sum(f.echo_missing for f in figures) / max(1, echo_expected),
        "server_cpu_pct": 100 * cpu_share(server0, server1),
        "server_sys_pct": 100 * (server1.sys - server0.sys) / max(1e-9, window),
        "server_rss_kb": server1.rss_kb,
        # Everything on the server's core: the server, softirq work (loopback delivery is
        # not charged to the process) and any other process that ran there.
        "core_busy_pct": 100 * busy,
        "core_softirq_pct": 100 * softirq,
        "gen_cpu_pct": 100 * cpu_share(self0, self1),
        "gen_tick_late_p99_ms": 1000 * percentile_upper(sender.lateness, 0.99, empty=0.0),
        "gen_tick_late_max_ms": 1000 * max(sender.lateness, default=0.0),
        "gen_ticks_skipped": sender.skipped,
    }


async def back_to_idle(server_pid: int, idle: ProcSample, timeout: float = 15.0) -> dict[str, Any]:
    """Wait until the server holds no more descriptors than at idle; then its CPU."""
    deadline = time.monotonic() + timeout
    sample = proc_sample(server_pid)
    while sample.fds > idle.fds and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        sample = proc_sample(server_pid)
    settled = time.monotonic()
    await asyncio.sleep(1.0)
    later = proc_sample(server_pid)
    return {
        "idle_fds": idle.fds,
        "after_fds": later.fds,
        "after_wait_s": settled - (deadline - timeout),
        "after_cpu_pct": 100 * cpu_share(sample, later),
        "after_rss_kb": later.rss_kb,
        "idle_ok": later.fds <= idle.fds,
    }


async def run_sip(args: argparse.Namespace) -> dict[str, Any]:
    idle = proc_sample(args.server_pid)
    ua = await loopback_user_agent(
        LoadAgent, "siphon-media-loadgen", args.rtp_ports, UaConfig(record=False, media_timeout=1e9)
    )
    sender = Sender()
    target = f"sip:echo@127.0.0.1:{args.target_port}"
    failures: dict[str, int] = {}

    async def place(_: int) -> SipCall | None:
        try:
            call = await ua.call(
                target, from_user="loadgen", timeout=30.0, codecs=(PCMA, TELEPHONE_EVENT)
            )
        except (CallFailed, OSError) as exc:
            failures[str(exc)] = failures.get(str(exc), 0) + 1
            return None
        assert isinstance(call.media, Probe)
        sender.streams.append(call.media)
        return call

    try:
        began = time.monotonic()
        calls = [c for c in await ramp(args.calls, args.rate, place) if c is not None]
        result: dict[str, Any] = {
            "calls": args.calls,
            "up": len(calls),
            "failures": failures,
            "ramp_s": time.monotonic() - began,
            "idle_rss_kb": idle.rss_kb,
        }
        probes = [c.media for c in calls if isinstance(c.media, Probe)]
        result.update(await measure(args, probes, sender, args.server_pid))
        sender.stop()
        await asyncio.gather(*(c.hangup("load generator done") for c in calls))
        result.update(await back_to_idle(args.server_pid, idle))
        result["outside_window"] = sum(p.outside for p in probes)
        return result
    finally:
        sender.stop()
        ua.stack.close()


async def run_raw(args: argparse.Namespace) -> dict[str, Any]:
    """The same streams without SIP, to a reflector: the measurement's own floor."""
    idle = proc_sample(args.server_pid)
    ports = RtpPortAllocator(args.rtp_ports[0], args.rtp_ports[1])
    sender = Sender()
    probes: list[Probe] = []

    async def open_one(_: int) -> Probe:
        probe = Probe(ports)
        await probe.open()
        probe.remote = ("127.0.0.1", args.target_port)
        probe.payload_type = PCMA.payload_type
        probes.append(probe)
        sender.streams.append(probe)
        return probe

    try:
        began = time.monotonic()
        await ramp(args.calls, args.rate, open_one)
        result: dict[str, Any] = {
            "calls": args.calls,
            "up": len(probes),
            "failures": {},
            "ramp_s": time.monotonic() - began,
            "idle_rss_kb": idle.rss_kb,
        }
        result.update(await measure(args, probes, sender, args.server_pid))
        return result
    finally:
        sender.stop()
        for probe in probes:
            probe.close()


class _Reflector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)


async def run_reflect(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", args.port))
    sock.setblocking(False)
    await asyncio.get_running_loop().create_datagram_endpoint(_Reflector, sock=sock)
    await asyncio.Event().wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("sip", "raw"):
        p = sub.add_parser(mode)
        p.add_argument("--target-port", type=int, required=True)
        p.add_argument("--server-pid", type=int, required=True)
        p.add_argument("--calls", type=int, required=True)
        p.add_argument("--rate", type=float, default=50.0, help="calls set up per second")
        p.add_argument("--settle", type=float, default=2.0)
        p.add_argument("--seconds", type=float, default=10.0)
        p.add_argument("--rtp-ports", type=parse_port_range, default=(24000, 27998))
        p.add_argument("--server-core", type=int, default=0, help="for its /proc/stat line")
    p = sub.add_parser("reflect")
    p.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    runner = {"sip": run_sip, "raw": run_raw, "reflect": run_reflect}[args.mode]
    with contextlib.suppress(KeyboardInterrupt):
        result = event_loop_runner()(runner(args))
        if result is not None:
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
