"""In-process servers and raw SIP clients for the user-agent tests."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

from siphon.app import App, ServerConfig, SipServer
from siphon.io.call import SipCall
from siphon.io.ports import RtpPortAllocator
from siphon.io.sip_stack import SipStack
from siphon.io.user_agent import UaConfig, UserAgent
from siphon.sip.message import Response
from siphon.sip.parser import StreamParser, parse_datagram
from siphon.sip.timers import SipTimers

# The event loops a loop-sensitive test runs on: asyncio's, and uvloop's when installed.
LOOPS: list[Callable[[], asyncio.AbstractEventLoop]] = [asyncio.new_event_loop]
try:
    import uvloop
except ImportError:  # an optional extra: the default loop is tested either way
    pass
else:
    LOOPS.append(uvloop.new_event_loop)

# Short timers keep retransmission and timeout tests fast (T1 = 50 ms -> 64*T1 = 3.2 s).
FAST_TIMERS = SipTimers(t1=0.05, t2=0.4, t4=0.5)
SDP_OFFER = (
    "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
)


def free_port_base(span: int, low: int = 20000, high: int = 32700) -> int:
    """An even port where ``span`` consecutive UDP ports are free now, drawn at random.

    Below the kernel's ephemeral range (32768+), where clients and SIPp bind port 0; probed
    on the wildcard address, which conflicts with a bind on any address.
    """
    for _ in range(64):
        base = low + secrets.randbelow((high - low - span) // 2) * 2
        probes: list[socket.socket] = []
        try:
            for port in range(base, base + span):
                probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(probe)
                probe.bind(("0.0.0.0", port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return base
    raise RuntimeError(f"no {span} free consecutive UDP ports in {low}-{high}")


def _rtp_range(low: int, high: int) -> tuple[int, int]:
    # Free now, below the kernel's ephemeral range (32768+) where SIPp and clients bind.
    # Servers and clients draw from separate bands: a server binds its pool at start
    # (rtp_prefill), a client binds as it calls, so a client's range looks free.
    base = free_port_base(100, low, high)
    return base, base + 98


_SERVER_RTP_BAND = (20000, 26000)
_CLIENT_RTP_BAND = (26000, 32700)


@contextlib.asynccontextmanager
async def running_server(
    handler: Callable[[SipCall], Awaitable[None]], **config: object
) -> AsyncIterator[SipServer]:
    start, end = _rtp_range(*_SERVER_RTP_BAND)
    options: dict[str, object] = {
        "sip_port": 0,
        "rtp_port_start": start,
        "rtp_port_end": end,
        "timers": FAST_TIMERS,
        "drain_timeout": 1.0,
    }
    options.update(config)
    server = SipServer(App(handler), ServerConfig(**options))  # type: ignore[arg-type]
    ready = asyncio.Event()
    task = asyncio.create_task(server.serve(lambda _: ready.set()), name="test-server")
    await asyncio.wait_for(ready.wait(), 5)
    try:
        yield server
    finally:
        server.stop()
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def client_agent(timers: SipTimers = FAST_TIMERS) -> AsyncIterator[UserAgent]:
    stack = SipStack(timers=timers, user_agent="SIPHON-test-client")
    await stack.listen("127.0.0.1", 0, ("udp", "tcp"))
    start, end = _rtp_range(*_CLIENT_RTP_BAND)
    ua = UserAgent(stack, ports=RtpPortAllocator(start, end), config=UaConfig())
    try:
        yield ua
    finally:
        stack.close()
        ua.ports.close()


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait(data)


class RawUdpClient:
    """Sends hand-written SIP text and reads back parsed responses."""

    def __init__(self, transport: asyncio.DatagramTransport, collector: _Collector) -> None:
        self._transport = transport
        self._collector = collector
        self.port: int = transport.get_extra_info("sockname")[1]

    @classmethod
    async def open(cls, server_port: int) -> RawUdpClient:
        loop = asyncio.get_running_loop()
        transport, collector = await loop.create_datagram_endpoint(
            _Collector, local_addr=("127.0.0.1", 0), remote_addr=("127.0.0.1", server_port)
        )
        return cls(transport, collector)

    def send(self, data: bytes | str) -> None:
        self._transport.sendto(data.encode() if isinstance(data, str) else data)

    async def recv(self, timeout: float = 2.0) -> Response:
        data = await asyncio.wait_for(self._collector.queue.get(), timeout)
        message = parse_datagram(data)
        assert isinstance(message, Response), message
        return message

    async def recv_final(self, timeout: float = 2.0) -> Response:
        while True:
            response = await self.recv(timeout)
            if response.status >= 200:
                return response

    async def nothing(self, wait: float = 0.3) -> bool:
        try:
            await asyncio.wait_for(self._collector.queue.get(), wait)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self._transport.close()


async def tcp_exchange(
    port: int, data: bytes, *, expect: int = 1, timeout: float = 2.0
) -> list[Response]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    parser = StreamParser()
    out: list[Response] = []
    try:
        async with asyncio.timeout(timeout):
            while len(out) < expect:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                out.extend(m for m in parser.feed(chunk) if isinstance(m, Response))
    finally:
        writer.close()
    return out


def request(
    method: str,
    port: int,
    *,
    client_port: int = 5999,
    call_id: str | None = None,
    cseq: int = 1,
    to_tag: str | None = None,
    extra: str = "",
    body: str = "",
    branch: str | None = None,
    max_forwards: int = 70,
    transport: str = "UDP",
    ruri: str | None = None,
) -> str:
    call_id = call_id or secrets.token_hex(8)
    branch = branch or "z9hG4bK" + secrets.token_hex(6)
    to = f"<sip:agent@127.0.0.1:{port}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {ruri or f'sip:agent@127.0.0.1:{port}'} SIP/2.0",
        f"Via: SIP/2.0/{transport} 127.0.0.1:{client_port};branch={branch};rport",
        "From: <sip:caller@127.0.0.1>;tag=caller1",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:caller@127.0.0.1:{client_port}>",
        f"Max-Forwards: {max_forwards}",
    ]
    if extra:
        lines.extend(extra.strip("\r\n").split("\r\n"))
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(lines) + "\r\n\r\n" + body
