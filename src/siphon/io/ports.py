"""RTP port allocation: even RTP ports, RTCP on the next odd one (RFC 3550 §11).

Ports are handed out round-robin over the range so a port just released is not
reused at once (late packets of the old call would land in the new one).
Exhaustion raises ``PortsExhausted``; the user agent answers the INVITE 503.
"""

from __future__ import annotations

import asyncio
import socket

from siphon.errors import ConfigError, SiphonError


class PortsExhausted(SiphonError):
    """No free RTP port pair is left in the configured range."""


class RtpPortAllocator:
    def __init__(self, start: int = 10000, end: int = 20000, host: str = "127.0.0.1") -> None:
        if start < 1024 or end > 65535 or end - start < 2:
            raise ConfigError(
                f"RTP port range {start}-{end} is invalid: use an even start >= 1024 and an "
                "end <= 65535 with room for at least one port pair"
            )
        self.start = start + (start % 2)
        self.end = end
        self.host = host
        self._in_use: set[int] = set()
        self._next = self.start

    @property
    def capacity(self) -> int:
        return (self.end - self.start) // 2

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def allocate(self) -> int:
        """An even port whose pair (port, port+1) is free now; bound-check by the caller."""
        for _ in range(self.capacity):
            port = self._next
            self._next += 2
            if self._next + 1 > self.end:
                self._next = self.start
            if port not in self._in_use:
                self._in_use.add(port)
                return port
        raise PortsExhausted(
            f"all {self.capacity} RTP port pairs in {self.start}-{self.end} are in use"
        )

    def release(self, port: int) -> None:
        self._in_use.discard(port)


class _CountingProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets = 0
        self.octets = 0
        self.last_source: tuple[str, int] | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets += 1
        self.octets += len(data)
        self.last_source = addr


class MediaEndpoint:
    """The UDP socket behind the port we put in our SDP.

    Until the RTP engine arrives this only receives and counts datagrams, so the
    address we advertise is real (no ICMP port-unreachable storms at the peer).
    """

    def __init__(self, allocator: RtpPortAllocator) -> None:
        self._allocator = allocator
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol = _CountingProtocol()

    @property
    def packets_received(self) -> int:
        return self._protocol.packets

    async def open(self) -> int:
        loop = asyncio.get_running_loop()
        host = self._allocator.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(min(self._allocator.capacity, 64)):
            port = self._allocator.allocate()
            # We bind the socket ourselves and hand it over: given local_addr instead,
            # the loop resolves the address first, which costs more than the bind.
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.bind((host, port))
            except OSError:
                sock.close()
                self._allocator.release(port)  # taken by another process: try the next pair
                continue
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: self._protocol, sock=sock
                )
            except OSError:
                sock.close()
                self._allocator.release(port)
                continue
            except BaseException:
                sock.close()
                self._allocator.release(port)
                raise
            self._transport = transport
            self.port = port
            return port
        raise PortsExhausted("no bindable RTP port found in the configured range")

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            self._allocator.release(self.port)
