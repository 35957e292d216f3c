"""UDP and TCP transports for SIP (RFC 3261 §18): bytes in, parsed messages out.

Transports parse what they receive (datagram parser for UDP, stream framing for
TCP) and hand messages to a ``MessageSink``. They never interpret SIP beyond
framing. TCP connections are kept in one table keyed by the peer address, so a
response goes back on the connection its request came in on and a later request
to the same peer reuses it (RFC 3261 §18.2.2, §18.1.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Protocol

from siphon.errors import RemoteProtocolError
from siphon.sip.message import Request, Response
from siphon.sip.parser import StreamParser, parse_datagram

log = logging.getLogger("siphon.io.transport")

Address = tuple[str, int]

# Receive buffer asked for the SIP UDP socket (Linux doubles it for its bookkeeping):
# room for about 3000 requests.
UDP_RECEIVE_BUFFER = 2 * 1024 * 1024
# Queue-delay probes (siphon.io.overload): one in flight at a time. One not back after
# this long was dropped (a full receive buffer: congestion by any measure); another is sent.
PROBE_LOST_AFTER = 2.0
_PROBE = b"\r\n\r\n"  # a keep-alive: costs the parser nothing if it ever got that far
# Idle TCP connections are closed after this long (no SIP traffic, no pings).
TCP_IDLE_TIMEOUT = 600.0
# Open connections beyond this are refused: each holds a file descriptor, and running
# out of descriptors would fail every call's RTP socket too (Kamailio: 2048).
MAX_TCP_CONNECTIONS = 2048
# Bound on bytes queued for a connection that is still being opened.
MAX_PENDING_CONNECT_BYTES = 1 << 20


class MessageSink(Protocol):
    def message_received(
        self, message: Request | Response, source: Address, transport: SipTransport
    ) -> None: ...

    def bad_input(
        self, error: RemoteProtocolError, data: bytes, source: Address, transport: SipTransport
    ) -> None: ...

    def keepalive_received(self, source: Address, transport: SipTransport) -> None: ...


class SipTransport(Protocol):
    name: str  # "UDP" / "TCP" as written in Via
    reliable: bool

    @property
    def local_address(self) -> Address: ...

    def send(self, data: bytes, destination: Address) -> None: ...

    def has_connection(self, destination: Address) -> bool: ...

    def close(self) -> None: ...


_BLANKS = frozenset(b"\r\n\x00 ")


def _normalize(addr: tuple[object, ...]) -> Address:
    return (str(addr[0]), int(addr[1]))  # type: ignore[call-overload]


class UdpTransport(asyncio.DatagramProtocol):
    name = "UDP"
    reliable = False

    def __init__(self, sink: MessageSink) -> None:
        self._sink = sink
        self._transport: asyncio.DatagramTransport | None = None
        self._local: Address = ("0.0.0.0", 0)
        self.send_errors = 0
        self._probe: socket.socket | None = None
        self._probe_target: Address = ("127.0.0.1", 0)
        self._probe_source: Address | None = None
        self._probe_sent: float | None = None
        self._probe_delay = 0.0
        # Until a first probe is back, a missing one proves nothing about the queue:
        # the path may be closed (a firewall dropping datagrams to our own port).
        self._probe_path: bool | None = None  # None: not known yet

    @classmethod
    async def listen(cls, sink: MessageSink, host: str, port: int) -> UdpTransport:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: cls(sink), local_addr=(host, port), reuse_port=False
        )
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                # Bursts, and our own pauses (a full garbage collection), must queue
                # in the kernel rather than be dropped: a dropped request costs the
                # peer a retransmission timeout (500 ms) and us the work twice. The
                # kernel caps the size at net.core.rmem_max.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        return protocol

    @property
    def local_address(self) -> Address:
        return self._local

    def queue_delay(self, now: float) -> float | None:
        """How long a datagram waits in this socket's receive queue (s), None if unknown.

        Measured with a probe: a keep-alive sent to ourselves from a loopback (or
        same-address) socket joins the queue behind the requests waiting there, and
        the time until ``datagram_received`` sees it is their queueing delay plus our
        time to work through them. One probe is in flight at a time; the value is the
        last one's delay, or the age of the one in flight when it is longer. ``now``
        is the loop's clock.
        """
        if self._probe_path is False:
            return None
        sent = self._probe_sent
        if sent is not None:
            age = now - sent
            if not self._probe_path:
                if age >= PROBE_LOST_AFTER:
                    self._probe_path = False
                    log.warning(
                        "queue-delay probes from %s to %s never arrive (a firewall?): overload "
                        "control goes by the event loop's lateness alone",
                        self._probe_source,
                        self._probe_target,
                    )
                return None
            if age < PROBE_LOST_AFTER:
                return max(self._probe_delay, age)
            self._probe_delay = age  # dropped: the buffer overflowed
        if not self._send_probe(now):
            return None
        return self._probe_delay if self._probe_path else None

    def _send_probe(self, now: float) -> bool:
        probe = self._probe
        if probe is None:
            if self._transport is None or self._transport.is_closing():
                return False
            try:
                probe, self._probe_target = _open_probe(self._local)
            except OSError as exc:
                log.debug("no queue-delay probe for %s: %s", self._local, exc)
                return False
            self._probe = probe
            self._probe_source = _normalize(probe.getsockname())
        try:
            probe.sendto(_PROBE, self._probe_target)
        except OSError:
            return False  # the kernel's buffers are full: try again next sample
        self._probe_sent = now
        return True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's: trust the protocol contract.
        self._transport = transport  # type: ignore[assignment]
        self._local = _normalize(transport.get_extra_info("sockname"))

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        source = _normalize(addr)
        # Only a datagram that starts with a blank can be all blanks: a message is
        # never copied by strip() to find out.
        if not data or (data[0] in _BLANKS and not data.strip(b"\r\n\x00 ")):
            if source == self._probe_source:
                self._probe_arrived()
                return
            # CRLF keep-alives (and empty datagrams) are not messages.
            self._sink.keepalive_received(source, self)
            return
        try:
            message = parse_datagram(data)
        except RemoteProtocolError as exc:
            self._sink.bad_input(exc, data, source, self)
            return
        self._sink.message_received(message, source, self)

    def _probe_arrived(self) -> None:
        sent = self._probe_sent
        if sent is not None and self._transport is not None:
            self._probe_delay = asyncio.get_running_loop().time() - sent
            self._probe_sent = None
            self._probe_path = True

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: the transaction layer retransmits or times out.
        self.send_errors += 1

    def send(self, data: bytes, destination: Address) -> None:
        if self._transport is None or self._transport.is_closing():
            self.send_errors += 1
            return
        try:
            self._transport.sendto(data, destination)
        except (OSError, ValueError) as exc:  # e.g. a hostname (uvloop) or wrong family
            self.send_errors += 1
            log.debug("UDP send to %s failed: %s", destination, exc)

    def has_connection(self, destination: Address) -> bool:
        return True  # datagrams need no connection

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._probe is not None:
            self._probe.close()
            self._probe = None


def _open_probe(local: Address) -> tuple[socket.socket, Address]:
    """A non-blocking socket to send probes from, and where to send them.

    From loopback to a wildcard listener, else from the listener's own address:
    Linux drops datagrams from outside that claim a loopback or local source
    address, so no other host can pass for the probe.
    """
    host, port = local
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host in ("0.0.0.0", "::"):
        host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.setblocking(False)
        probe.bind((host, 0))
    except OSError:
        probe.close()
        raise
    return probe, (host, port)


class _TcpConnection(asyncio.Protocol):
    def __init__(self, owner: TcpTransport, peer: Address | None = None) -> None:
        self._owner = owner
        self._parser = StreamParser()
        self.transport: asyncio.Transport | None = None
        self.peer: Address | None = peer
        self.last_activity = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = _normalize(transport.get_extra_info("peername"))
        self.last_activity = asyncio.get_running_loop().time()
        self._owner._register(self)

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        self.last_activity = asyncio.get_running_loop().time()
        pings_before = self._parser.pings
        try:
            messages = self._parser.feed(data)
        except RemoteProtocolError as exc:
            # Framing is lost: answer if we can, then close (RFC 3261 §18.3).
            self._owner.sink.bad_input(exc, data, self.peer, self._owner)
            if self.transport is not None:
                self.transport.close()
            return
        for _ in range(self._parser.pings - pings_before):
            # RFC 5626 §4.4.1: answer a CRLFCRLF ping with a CRLF pong.
            if self.transport is not None:
                self.transport.write(b"\r\n")
            self._owner.sink.keepalive_received(self.peer, self._owner)
        for message in messages:
            self._owner.sink.message_received(message, self.peer, self._owner)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._unregister(self)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.last_activity = asyncio.get_running_loop().time()
            self.transport.write(data)


class TcpTransport:
    """A TCP listener plus every connection to or from peers, keyed by peer address."""

    name = "TCP"
    reliable = True

    def __init__(self, sink: MessageSink) -> None:
        self.sink = sink
        self._server: asyncio.Server | None = None
        self._local: Address = ("0.0.0.0", 0)
        self._connections: dict[Address, _TcpConnection] = {}
        self._connecting: dict[Address, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle_timer: asyncio.TimerHandle | None = None
        self.send_errors = 0
        self.connections_opened = 0
        self.connections_refused = 0

    @classmethod
    async def listen(cls, sink: MessageSink, host: str, port: int) -> TcpTransport:
        self = cls(sink)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _TcpConnection(self), host, port, reuse_address=True
        )
        sockname = self._server.sockets[0].getsockname()
        self._local = _normalize(sockname)
        self._idle_timer = loop.call_later(TCP_IDLE_TIMEOUT / 4, self._close_idle)
        return self

    @property
    def local_address(self) -> Address:
        return self._local

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def _register(self, conn: _TcpConnection) -> None:
        assert conn.peer is not None
        if len(self._connections) >= MAX_TCP_CONNECTIONS:
            self.connections_refused += 1
            if conn.transport is not None:
                conn.transport.abort()
            return
        self._connections[conn.peer] = conn
        self.connections_opened += 1

    def _unregister(self, conn: _TcpConnection) -> None:
        # A connection may be listed under its peer name and the address we dialled.
        for key in [k for k, v in self._connections.items() if v is conn]:
            del self._connections[key]

    def has_connection(self, destination: Address) -> bool:
        conn = self._connections.get(destination)
        return conn is not None and conn.transport is not None and not conn.transport.is_closing()

    def send(self, data: bytes, destination: Address) -> None:
        conn = self._connections.get(destination)
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.write(data)
            return
        pending = self._connecting.get(destination)
        if pending is not None:
            if sum(map(len, pending)) + len(data) > MAX_PENDING_CONNECT_BYTES:
                self.send_errors += 1
                return
            pending.append(data)
            return
        self._connecting[destination] = [data]
        task = asyncio.get_running_loop().create_task(
            self._connect(destination), name=f"sip-tcp-connect-{destination[0]}:{destination[1]}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, destination: Address) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _TcpConnection(self), destination[0], destination[1]
                ),
                timeout=10.0,
            )
        except (OSError, TimeoutError) as exc:
            log.info("TCP connect to %s:%d failed: %s", destination[0], destination[1], exc)
            self.send_errors += len(self._connecting.pop(destination, []))
            return
        # Key the connection by the address we dialled, too (peername may differ in form).
        self._connections[destination] = conn
        for data in self._connecting.pop(destination, []):
            conn.write(data)

    def _close_idle(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn in list(self._connections.values()):
            if now - conn.last_activity > TCP_IDLE_TIMEOUT and conn.transport is not None:
                conn.transport.close()
        self._idle_timer = loop.call_later(TCP_IDLE_TIMEOUT / 4, self._close_idle)

    def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self._connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        self._connections.clear()
        for task in self._tasks:
            task.cancel()
