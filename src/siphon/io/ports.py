"""RTP port allocation: even RTP ports, RTCP on the next odd one (RFC 3550 §11).

Ports are handed out round-robin over the range so a port just released is not
reused at once (late packets of the old call would land in the new one, and an
unlatched session latches to the first RTP source it hears, RFC 4961).
Exhaustion raises ``PortsExhausted``; the user agent answers the INVITE 503.

A closed session's bound socket pair goes back to a FIFO pool here instead of
being closed: the next session takes the least recently released pair, so a call
costs no socket(), bind(), close() or poller registration. A pooled pair keeps its
port (nobody else binds it) and is reused only ``quarantine`` seconds after its
release, the same protection the round-robin gives. A pair's sockets are
registered with the loop once, when bound, with readers that hand each datagram to
the pair's current ``owner`` (a session): taking or giving back a pair only swaps
the owner, with no reader to replace. While pooled (no owner) whatever arrives is
read and discarded (counted in ``stale_discarded``), and once more on reuse, so a
new call never sees an old call's packets. When no pooled pair is old enough a
fresh pair is bound as before; only when every pair of the range is in use or
pooled is the oldest pooled pair reused early, which is what the round-robin
would do at that rate.
"""

from __future__ import annotations

import asyncio
import select
import socket
import time
import weakref
from collections import deque
from typing import Protocol

from siphon.errors import ConfigError, SiphonError

# Time a released pair waits before another call gets it. The old far end sends
# until it has our BYE (or its own 200): one way delay, plus 0.5 s and 1 s more when
# the BYE is lost once or twice (RFC 3261 §17.1.2.2, Timer E from T1 = 500 ms). 2 s
# covers that, and is what the round-robin of the default range gives at ~2500 calls/s.
REUSE_QUARANTINE = 2.0
# A pair pooled this long is closed when the pool is next touched (after a burst the
# pool would otherwise hold its sockets for good); at most this many per release.
POOL_MAX_IDLE = 30.0
_TRIM_PER_RELEASE = 2
# Pairs the idle timer closes per pass (~5 µs each: a pass must not stall the loop).
_TRIM_PER_TIMER = 256
# Stale datagrams read per wake-up of a pooled socket, and at most on reuse (a
# receive queue holds a few hundred small datagrams; a flood must not stall us).
_STALE_READS_PER_WAKEUP = 32
_STALE_READS_ON_REUSE = 1024
# Ports tried per bind before giving up (taken by other processes): bounded work per call.
_BIND_ATTEMPTS = 64
# A datagram this large is not telephony RTP (a 30 ms G.711 packet is 252 bytes).
MAX_RTP_DATAGRAM = 1500
# Read one byte more: a longer datagram comes truncated but still too long, and dropped.
_RTP_READ_SIZE = MAX_RTP_DATAGRAM + 1
# RTCP is read whole (a UDP datagram is at most 64 KiB).
_MAX_UDP_DATAGRAM = 65536
# RTCP datagrams read per wake-up: enough to drain a burst, bounded against a flood.
_RTCP_READS_PER_WAKEUP = 32


class PortsExhausted(SiphonError):
    """No free RTP port pair is left in the configured range."""


class PoolStats:
    """The pool's counters; shared with the pooled sockets' readers, not the allocator."""

    __slots__ = ("bound", "reused", "reused_early", "stale_discarded")

    def __init__(self) -> None:
        self.bound = 0  # fresh pairs bound
        self.reused = 0  # pairs taken from the pool
        self.reused_early = 0  # of which before their quarantine ended (range full)
        self.stale_discarded = 0  # datagrams that arrived on a pooled pair


class MediaReceiver(Protocol):
    """The owner of a pair (an RTP session): its readers hand it what arrives."""

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None: ...

    def rtcp_received(self, data: bytes, source: tuple[str, int]) -> None: ...


class RtpPortPair:
    """A bound RTP socket (even port) and RTCP socket (the next port)."""

    __slots__ = ("loop", "owner", "poller", "port", "released_at", "rtcp", "rtp")

    def __init__(
        self,
        port: int,
        rtp: socket.socket,
        rtcp: socket.socket,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.port = port
        self.rtp = rtp
        self.rtcp = rtcp
        # The loop whose poller the sockets are registered with (the pair's readers,
        # for its whole life): they are only reused there.
        self.loop = loop
        self.released_at = 0.0
        # Who gets the datagrams; None while pooled (or not yet handed out): discarded.
        self.owner: MediaReceiver | None = None
        # Made when first pooled: one poll(2) tells whether either socket has anything
        # queued on reuse (0.4 µs), where a recv() per socket that fails costs 2.2 µs.
        self.poller: select.poll | None = None


class RtpPortAllocator:
    def __init__(
        self,
        start: int = 10000,
        end: int = 20000,
        host: str = "127.0.0.1",
        *,
        quarantine: float = REUSE_QUARANTINE,
        max_pooled: int | None = None,
    ) -> None:
        if start < 1024 or end > 65535 or end - start < 2:
            raise ConfigError(
                f"RTP port range {start}-{end} is invalid: use an even start >= 1024 and an "
                "end <= 65535 with room for at least one port pair"
            )
        if quarantine < 0 or (max_pooled is not None and max_pooled < 0):
            raise ConfigError("the RTP pool's quarantine and size must not be negative")
        self.start = start + (start % 2)
        self.end = end
        self.host = host
        self._in_use: set[int] = set()  # sessions' pairs and pooled pairs
        self._next = self.start
        self.quarantine = quarantine
        self.max_pooled = (
            min(self.capacity, _fd_budget_pairs()) if max_pooled is None else max_pooled
        )
        self._pool: deque[RtpPortPair] = deque()
        self.stats = PoolStats()
        self._closed = False
        self._trim_timer: asyncio.TimerHandle | None = None
        # Closes pooled sockets if nobody called close() (no unclosed-socket warnings).
        self._finalizer = weakref.finalize(self, _close_pairs, self._pool)

    @property
    def capacity(self) -> int:
        return (self.end - self.start) // 2

    @property
    def in_use(self) -> int:
        """Pairs held by sessions (pooled pairs excluded)."""
        return len(self._in_use) - len(self._pool)

    @property
    def pooled(self) -> int:
        return len(self._pool)

    def allocate(self) -> int:
        """An even port whose pair (port, port+1) is free now; bound-check by the caller."""
        if len(self._in_use) < self.capacity:  # full (a steady state with a pool): no scan
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

    # -- the pool ------------------------------------------------------------------------
    def acquire(
        self, loop: asyncio.AbstractEventLoop, owner: MediaReceiver | None = None
    ) -> RtpPortPair:
        """A pair for ``owner`` on ``loop``: a pooled one past its quarantine, else a
        fresh one, else (the range is full) the oldest pooled one. From now on what
        arrives on it goes to ``owner`` (discarded while None)."""
        pool = self._pool
        if pool:
            now = time.monotonic()
            while pool:
                head = pool[0]
                if head.loop is not loop:  # pooled under another (closed) loop
                    self._close_pair(pool.popleft())
                    continue
                if now - head.released_at >= self.quarantine:
                    return self._reuse(pool.popleft(), owner)
                if len(self._in_use) >= self.capacity:  # no port left to bind
                    self.stats.reused_early += 1
                    return self._reuse(pool.popleft(), owner)
                break
        try:
            pair = self._bind(loop)
        except PortsExhausted:  # the free ports left are taken by other processes
            if not pool:
                raise
            self.stats.reused_early += 1
            return self._reuse(pool.popleft(), owner)
        pair.owner = owner
        return pair

    def _bind(self, loop: asyncio.AbstractEventLoop) -> RtpPortPair:
        port, rtp, rtcp = bind_port_pair(self)
        pair = RtpPortPair(port, rtp, rtcp, loop)
        try:
            # The pair's readers for its whole life: pooling and reuse swap the owner.
            loop.add_reader(rtp.fileno(), _rtp_readable, pair, self.stats)
            loop.add_reader(rtcp.fileno(), _rtcp_readable, pair, self.stats)
        except BaseException:
            self._close_pair(pair)
            raise
        self.stats.bound += 1
        return pair

    def prefill(self, loop: asyncio.AbstractEventLoop, count: int) -> int:
        """Bind up to ``count`` pairs into the pool now, ready for the first calls.

        A fresh pair costs ~18 µs (two sockets, binds, poller registrations) where a
        pooled one costs ~1.5 µs, and until the first pairs come out of quarantine
        every call needs a fresh one: a server started (or restarted) under load pays
        that when it is busiest. Bounded by the range and the pool's size; ports taken
        by other processes are skipped. Returns how many pairs were bound.
        """
        if self._closed:
            return 0
        pool = self._pool
        ready_at = time.monotonic() - self.quarantine  # never used: no stale packets
        bound: list[RtpPortPair] = []
        # Each failed _bind walked up to _BIND_ATTEMPTS ports taken by other processes
        # (another server on this range): walk on past them, once round the range.
        misses = 0
        while len(bound) < count and len(pool) + len(bound) < self.max_pooled:
            try:
                pair = self._bind(loop)
            except PortsExhausted:
                misses += _BIND_ATTEMPTS
                if misses >= self.capacity or len(self._in_use) >= self.capacity:
                    break
                continue
            if pair.poller is None and _POLL is not None:
                poller = pair.poller = _POLL()
                poller.register(pair.rtp, select.POLLIN)
                poller.register(pair.rtcp, select.POLLIN)
            pair.released_at = ready_at
            bound.append(pair)
        pool.extendleft(reversed(bound))  # ahead of any pair still in quarantine
        if bound and self._trim_timer is None and not self._closed:
            self._trim_timer = loop.call_later(POOL_MAX_IDLE, self._trim_idle)
        return len(bound)

    def give_back(self, pair: RtpPortPair) -> None:
        """The owner is done with ``pair``: pool it, or close it and free its port.

        Its readers now discard what arrives (no system call: the sockets stay
        registered), and hold no reference to the old owner.
        """
        pair.owner = None
        loop = pair.loop
        pool = self._pool
        if self._closed or loop.is_closed() or len(pool) >= self.max_pooled:
            self._close_pair(pair)
            return
        if pair.poller is None and _POLL is not None:
            poller = pair.poller = _POLL()
            poller.register(pair.rtp, select.POLLIN)
            poller.register(pair.rtcp, select.POLLIN)
        now = time.monotonic()
        pair.released_at = now
        pool.append(pair)
        for _ in range(_TRIM_PER_RELEASE):
            if now - pool[0].released_at <= POOL_MAX_IDLE:  # never the pair just added
                break
            self._close_pair(pool.popleft())
        if self._trim_timer is None:
            # Releases trim as they come; this timer trims a pool no call touches any
            # more (an idle server must not keep its ports and fds for good).
            self._trim_timer = loop.call_later(POOL_MAX_IDLE, self._trim_idle)

    def _trim_idle(self) -> None:
        self._trim_timer = None
        pool = self._pool
        now = time.monotonic()
        for _ in range(_TRIM_PER_TIMER):
            if not pool or now - pool[0].released_at <= POOL_MAX_IDLE:
                break
            self._close_pair(pool.popleft())
        if pool and not self._closed and not pool[0].loop.is_closed():
            # Next when the oldest pair expires (at once if this pass was cut short).
            delay = max(0.05, pool[0].released_at + POOL_MAX_IDLE - now)
            self._trim_timer = pool[0].loop.call_later(delay, self._trim_idle)

    def discard(self, pair: RtpPortPair) -> None:
        """Close ``pair`` (not pooled) and free its port."""
        pair.owner = None
        self._close_pair(pair)

    def close(self) -> None:
        """Close every pooled pair; pairs given back later are closed, not pooled."""
        self._closed = True
        if self._trim_timer is not None:
            self._trim_timer.cancel()
            self._trim_timer = None
        while self._pool:
            self._close_pair(self._pool.popleft())

    def _reuse(self, pair: RtpPortPair, owner: MediaReceiver | None) -> RtpPortPair:
        self.stats.reused += 1
        # Datagrams that arrived since the loop last read the sockets belong to the old
        # call; the new owner must not see them.
        poller = pair.poller
        if poller is None or poller.poll(0):
            _drain(pair.rtp, self.stats, _STALE_READS_ON_REUSE)
            _drain(pair.rtcp, self.stats, _STALE_READS_ON_REUSE)
        pair.owner = owner
        return pair

    def _close_pair(self, pair: RtpPortPair) -> None:
        _unregister_and_close(pair)
        self._in_use.discard(pair.port)


def _fd_budget_pairs() -> int:
    """Pooled pairs the file descriptor limit allows (half its fds)."""
    try:
        import resource
    except ImportError:  # not Unix: the range is the bound
        return 1 << 30
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    # Two fds a pair, so pooled sockets take at most half the limit: the rest is for
    # the sessions' own pairs, SIP connections, recordings and the application.
    return max(0, soft // 4)


def _rtp_readable(pair: RtpPortPair, stats: PoolStats) -> None:
    # One datagram per wake-up: the poll is level-triggered, so the loop calls again
    # while more are queued. Reading on to EAGAIN would cost a failed recvfrom and
    # its exception on nearly every wake-up (one packet per 20 ms): ~0.8 µs more a
    # packet. And a flooded port gets no more than its turn per loop iteration.
    # The owner's method is called from here, not a reader of its own: one Python
    # call per packet, as with a reader registered by the session.
    owner = pair.owner
    if owner is None:
        _drain(pair.rtp, stats, _STALE_READS_PER_WAKEUP)
        return
    try:
        data, addr = pair.rtp.recvfrom(_RTP_READ_SIZE)
    except OSError:  # nothing queued (a stale wake-up), or an ICMP error consumed
        return
    owner.datagram_received(data, addr)


def _rtcp_readable(pair: RtpPortPair, stats: PoolStats) -> None:
    sock = pair.rtcp
    for _ in range(_RTCP_READS_PER_WAKEUP):
        owner = pair.owner  # again after each packet: a callback may end the call
        if owner is None:
            _drain(sock, stats, _STALE_READS_PER_WAKEUP)
            return
        try:
            data, addr = sock.recvfrom(_MAX_UDP_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionRefusedError:  # ICMP for an earlier send: more may be queued
            continue
        except OSError:  # nothing readable now; the loop calls again if there is
            return
        owner.rtcp_received(data, (str(addr[0]), int(addr[1])))


def _drain(sock: socket.socket, stats: PoolStats, limit: int) -> None:
    for _ in range(limit):
        try:
            sock.recv(1)  # a datagram is consumed whole whatever the buffer size
        except BlockingIOError:
            return
        except OSError:  # an ICMP error queued by an earlier send: more may follow
            continue
        stats.stale_discarded += 1


def _unregister_and_close(pair: RtpPortPair) -> None:
    loop = pair.loop
    if not loop.is_closed():
        # Before close(): the fd number may be reused at once by another socket.
        loop.remove_reader(pair.rtp.fileno())
        loop.remove_reader(pair.rtcp.fileno())
    pair.rtp.close()
    pair.rtcp.close()


def _close_pairs(pool: deque[RtpPortPair]) -> None:
    """The finalizer: runs at garbage collection or exit, whatever state loops are in."""
    while pool:
        pair = pool.popleft()
        try:
            _unregister_and_close(pair)
        except Exception:  # a loop refused to unregister: the sockets still close
            pair.rtp.close()
            pair.rtcp.close()


_POLL = getattr(select, "poll", None)  # not on Windows: drain without asking first

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

    The sockets are non-blocking, bound by us (resolving ``local_addr`` would cost
    more than the bind). A pair taken by another process is skipped.
    """
    host = allocator.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(min(allocator.capacity, _BIND_ATTEMPTS)):
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
