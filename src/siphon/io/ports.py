"""RTP port allocation: even RTP ports, RTCP on the next odd one (RFC 3550 §11).

Ports are handed out round-robin over the range so a port just released is not
reused at once (late packets of the old call would land in the new one).
Exhaustion raises ``PortsExhausted``; the user agent answers the INVITE 503.
"""

from __future__ import annotations

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


# Non-blocking from birth where the OS allows it (Linux): one system call fewer per
# socket than ``setblocking(False)`` after ``socket()``, twice per call.
_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)
_DGRAM = socket.SOCK_DGRAM | _NONBLOCK


def _bound_socket(family: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, _DGRAM)
    try:
        if not _NONBLOCK:
            sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def bind_port_pair(allocator: RtpPortAllocator) -> tuple[int, socket.socket, socket.socket]:
    """Bind an even RTP port and RTCP on the next one; returns (port, rtp, rtcp) sockets.

    We bind the (non-blocking) sockets ourselves and hand them to the loop
    (``sock=``): given ``local_addr`` the loop resolves the address first, which
    costs more than the bind. A pair taken by another process is skipped.
    """
    host = allocator.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(min(allocator.capacity, 64)):
        port = allocator.allocate()
        try:
            rtp = _bound_socket(family, host, port)
        except OSError:
            allocator.release(port)
            continue
        try:
            rtcp = _bound_socket(family, host, port + 1)
        except OSError:
            rtp.close()
            allocator.release(port)
            continue
        return port, rtp, rtcp
    raise PortsExhausted("no bindable RTP port pair found in the configured range")
