"""The allocator's pool of bound RTP socket pairs: quarantine, FIFO, stale packets, bounds."""

from __future__ import annotations

import asyncio
import gc
import secrets
import socket
import time
from collections.abc import Callable

import numpy as np
import pytest

from siphon.errors import ConfigError
from siphon.io import ports as ports_module
from siphon.io.media_clock import MediaClock
from siphon.io.ports import PortsExhausted, RtpPortAllocator, RtpPortPair
from siphon.io.rtp_session import RtpSession
from siphon.rtp.packet import build_rtp
from siphon.rtp.rtcp import build_sr
from siphon.sip.sdp import PCMU, Direction, NegotiatedMedia
from tests.io.helpers import LOOPS, free_port_base


def _ports(
    pairs: int = 9,
    *,
    quarantine: float = ports_module.REUSE_QUARANTINE,
    max_pooled: int | None = None,
) -> RtpPortAllocator:
    base = free_port_base(2 * pairs + 2)
    return RtpPortAllocator(base, base + 2 * pairs, quarantine=quarantine, max_pooled=max_pooled)


def _media(port: int) -> NegotiatedMedia:
    return NegotiatedMedia(
        remote_address="127.0.0.1",
        remote_port=port,
        remote_rtcp_port=port + 1,
        codec=PCMU,
        telephone_event_pt=None,
        ptime=20,
        direction=Direction.SENDRECV,
        media_index=0,
    )


def _bindable(port: int) -> bool:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _block_while_loopback_delivers() -> None:
    time.sleep(0.02)


async def _open(ports: RtpPortAllocator, clock: MediaClock) -> RtpSession:
    session = RtpSession(ports, clock)
    await session.open()
    return session


async def test_a_released_pair_is_reused_only_after_its_quarantine() -> None:
    ports = _ports(quarantine=0.2)
    clock = MediaClock()
    try:
        first = await _open(ports, clock)
        first.close()
        assert ports.pooled == 1 and ports.in_use == 0
        # Still quarantined: a fresh pair is bound, the pooled one stays put.
        second = await _open(ports, clock)
        assert second.port != first.port and ports.pooled == 1
        assert ports.stats.bound == 2 and ports.stats.reused == 0
        await asyncio.sleep(0.25)
        third = await _open(ports, clock)
        assert third.port == first.port and ports.pooled == 0
        assert ports.stats.reused == 1 and ports.stats.reused_early == 0
        second.close()
        third.close()
    finally:
        clock.close()
        ports.close()


async def test_pairs_come_back_least_recently_released_first() -> None:
    ports = _ports(quarantine=0)
    loop = asyncio.get_running_loop()
    try:
        pairs = [ports.acquire(loop) for _ in range(4)]
        for pair in (pairs[2], pairs[0], pairs[3], pairs[1]):
            ports.give_back(pair)
        again = [ports.acquire(loop) for _ in range(4)]
        assert again == [pairs[2], pairs[0], pairs[3], pairs[1]]
        assert ports.stats.bound == 4 and ports.stats.reused == 4
        for pair in again:
            ports.discard(pair)
        assert ports.in_use == 0 and ports.pooled == 0
    finally:
        ports.close()


@pytest.mark.parametrize("new_loop", LOOPS)
def test_stale_datagrams_are_discarded_and_counted_never_seen_by_the_next_call(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def scenario() -> None:
        ports = _ports(quarantine=0)
        clock = MediaClock()
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            old = await _open(ports, clock)
            port = old.port
            old.close()
            rtp = build_rtp(0, 1, 160, 99, b"\xff" * 160)
            # While pooled, with the loop running: read and dropped by the pool's readers.
            for _ in range(3):
                sender.sendto(rtp, ("127.0.0.1", port))
            sender.sendto(build_sr(99, 1, 2, 160, 1, 160), ("127.0.0.1", port + 1))
            await asyncio.sleep(0.05)
            assert ports.stats.stale_discarded == 4
            # Queued after the loop last looked: drained when the pair is taken.
            for _ in range(5):
                sender.sendto(rtp, ("127.0.0.1", port))
            sender.sendto(build_sr(99, 1, 2, 160, 1, 160), ("127.0.0.1", port + 1))
            _block_while_loopback_delivers()  # the loop does not run to read them
            new = RtpSession(ports, clock)
            assert await new.open() == port
            assert ports.stats.stale_discarded == 10
            new.start(_media(sender.getsockname()[1]), sending=False)
            await asyncio.sleep(0.05)
            assert new.stats.packets_in == 0 and new.stats.rtcp_in == 0
            assert not new.stats.latched
            # The new call's own packets do arrive.
            sender.sendto(build_rtp(0, 7, 1120, 5, b"\xff" * 160), ("127.0.0.1", port))
            await asyncio.sleep(0.05)
            assert new.stats.packets_in == 1 and ports.stats.stale_discarded == 10
            new.close()
        finally:
            sender.close()
            clock.close()
            ports.close()

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(scenario())


async def test_a_pooled_pair_is_never_handed_to_two_sessions() -> None:
    ports = _ports(pairs=6, quarantine=0)
    clock = MediaClock()
    open_sessions: list[RtpSession] = []
    try:
        for step in range(60):
            if len(open_sessions) < 6 and (step % 3 != 2 or not open_sessions):
                open_sessions.append(await _open(ports, clock))
            else:
                open_sessions.pop(secrets.randbelow(len(open_sessions))).close()
            in_use = [s.port for s in open_sessions]
            assert len(set(in_use)) == len(in_use)
            assert ports.in_use == len(open_sessions)
            assert ports.in_use + ports.pooled <= ports.capacity
    finally:
        for session in open_sessions:
            session.close()
        clock.close()
        ports.close()


async def test_exhaustion_reuses_a_quarantined_pair_only_when_the_range_is_full() -> None:
    ports = _ports(pairs=2, quarantine=60)
    clock = MediaClock()
    try:
        a = await _open(ports, clock)
        b = await _open(ports, clock)
        with pytest.raises(PortsExhausted):
            await _open(ports, clock)
        assert ports.in_use == 2
        a.close()
        # Every pair is in use or pooled: the oldest pooled one is taken before its
        # quarantine, as the round-robin would have handed out that port again.
        c = await _open(ports, clock)
        assert c.port == a.port and ports.stats.reused_early == 1
        with pytest.raises(PortsExhausted):
            await _open(ports, clock)
        b.close()
        c.close()
        assert ports.in_use == 0 and ports.pooled == 2
    finally:
        clock.close()
        ports.close()


async def test_a_pair_taken_by_another_process_is_skipped_with_a_pool() -> None:
    ports = _ports(pairs=2, quarantine=60)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", ports.start + 3))  # the second pair's RTCP port
    clock = MediaClock()
    try:
        a = await _open(ports, clock)
        a.close()
        # The only other pair cannot be bound: the quarantined one is used.
        b = await _open(ports, clock)
        assert b.port == a.port and ports.stats.reused_early == 1
        with pytest.raises(PortsExhausted):
            await _open(ports, clock)
        b.close()
    finally:
        blocker.close()
        clock.close()
        ports.close()


async def test_closing_the_allocator_closes_pooled_sockets_and_pools_no_more() -> None:
    ports = _ports(quarantine=60)
    clock = MediaClock()
    try:
        a = await _open(ports, clock)
        b = await _open(ports, clock)
        a_port, b_port = a.port, b.port
        a.close()
        assert not _bindable(a_port) and not _bindable(a_port + 1)
        ports.close()
        assert ports.pooled == 0 and ports.in_use == 1
        assert _bindable(a_port) and _bindable(a_port + 1)
        b.close()  # after close(): closed, not pooled
        assert ports.pooled == 0 and ports.in_use == 0
        assert _bindable(b_port) and _bindable(b_port + 1)
    finally:
        clock.close()


async def test_the_pool_size_is_bounded() -> None:
    ports = _ports(quarantine=60, max_pooled=1)
    clock = MediaClock()
    try:
        a = await _open(ports, clock)
        b = await _open(ports, clock)
        a.close()
        b.close()  # the pool is full: closed, its port free
        assert ports.pooled == 1 and ports.in_use == 0
        assert not _bindable(a.port) and _bindable(b.port) and _bindable(b.port + 1)
    finally:
        clock.close()
        ports.close()
    unpooled = _ports(max_pooled=0)
    clock = MediaClock()
    session = await _open(unpooled, clock)
    session.close()
    assert unpooled.pooled == 0 and _bindable(session.port)
    clock.close()


def test_the_default_pool_fits_the_range_and_the_fd_limit() -> None:
    resource = pytest.importorskip("resource")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    ports = RtpPortAllocator(10000, 20000)
    assert ports.max_pooled <= ports.capacity
    if soft != resource.RLIM_INFINITY:
        assert 2 * ports.max_pooled <= soft // 2
    with pytest.raises(ConfigError):
        RtpPortAllocator(10000, 20000, quarantine=-1)


async def test_pairs_pooled_too_long_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports_module, "POOL_MAX_IDLE", 0.05)
    monkeypatch.setattr(ports_module, "_TRIM_PER_TIMER", 0)  # the release path alone
    ports = _ports(quarantine=60)
    loop = asyncio.get_running_loop()
    try:
        old = [ports.acquire(loop) for _ in range(3)]
        for pair in old:
            ports.give_back(pair)
        await asyncio.sleep(0.1)
        fresh = ports.acquire(loop)
        ports.give_back(fresh)  # closes at most two of the idle ones
        assert ports.pooled == 2 and _bindable(old[0].port) and _bindable(old[1].port)
        assert not _bindable(old[2].port)
    finally:
        ports.close()


async def test_an_idle_pool_is_emptied_by_its_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports_module, "POOL_MAX_IDLE", 0.05)
    monkeypatch.setattr(ports_module, "_TRIM_PER_TIMER", 2)  # a pass cut short re-arms
    ports = _ports(quarantine=60)
    loop = asyncio.get_running_loop()
    try:
        pairs = [ports.acquire(loop) for _ in range(5)]
        for pair in pairs:
            ports.give_back(pair)
        assert ports.pooled == 5
        for _ in range(100):  # no call comes: only the timer can close them
            if ports.pooled == 0:
                break
            await asyncio.sleep(0.02)
        assert ports.pooled == 0
        assert all(_bindable(pair.port) for pair in pairs)
        assert ports._trim_timer is None  # nothing left to trim: no timer either
    finally:
        ports.close()


async def test_closing_the_allocator_cancels_its_trim_timer() -> None:
    ports = _ports(quarantine=60)
    ports.give_back(ports.acquire(asyncio.get_running_loop()))
    timer = ports._trim_timer
    assert timer is not None
    ports.close()
    assert ports._trim_timer is None and timer.cancelled()


def test_a_pair_pooled_under_a_closed_loop_is_closed_not_reused() -> None:
    ports = _ports(quarantine=0)
    pooled: list[RtpPortPair] = []

    async def first() -> None:
        pair = ports.acquire(asyncio.get_running_loop())
        ports.give_back(pair)
        pooled.append(pair)

    async def second() -> int:
        pair = ports.acquire(asyncio.get_running_loop())
        ports.discard(pair)
        return pair.port

    asyncio.run(first())
    port = pooled[0].port
    asyncio.run(second())  # the pool's pair is closed; a fresh one bound
    assert pooled[0].rtp.fileno() == -1 and pooled[0].rtcp.fileno() == -1
    assert ports.stats.reused == 0 and ports.stats.bound == 2
    assert _bindable(port)
    ports.close()


def test_an_unclosed_allocator_closes_its_pooled_sockets_when_freed() -> None:
    ports = _ports(quarantine=60)
    pairs: list[RtpPortPair] = []

    async def use(allocator: RtpPortAllocator) -> None:
        pair = allocator.acquire(asyncio.get_running_loop())
        allocator.give_back(pair)
        pairs.append(pair)

    asyncio.run(use(ports))
    assert ports.pooled == 1 and pairs[0].rtp.fileno() != -1
    del ports
    gc.collect()
    assert pairs[0].rtp.fileno() == -1 and pairs[0].rtcp.fileno() == -1


@pytest.mark.parametrize("new_loop", LOOPS)
def test_calls_on_reused_pairs_carry_media(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def scenario() -> None:
        ports = _ports(quarantine=0)
        clock = MediaClock()
        try:
            for _ in range(3):  # the second and third calls run on pooled pairs
                a = await _open(ports, clock)
                b = await _open(ports, clock)
                a.start(_media(b.port))
                b.start(_media(a.port))
                a.play(np.full(160 * 5, 3000, dtype=np.int16))
                await asyncio.sleep(0.25)
                assert b.stats.latched and b.stats.packets_in >= 8
                assert a.stats.packets_in >= 8 and b.stats.dropped_foreign == 0
                assert max(int(np.abs(f).max()) for f in b._inbound) > 2500
                a.close()
                b.close()
            assert ports.stats.bound == 2 and ports.stats.reused == 4
        finally:
            clock.close()
            ports.close()

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(scenario())


async def test_rtp_to_a_name_is_not_sent_and_needs_no_dns() -> None:
    ports = _ports()
    clock = MediaClock()
    session = await _open(ports, clock)
    try:
        media = _media(40000)
        session.start(media)
        session.remote = ("media.invalid", 40000)
        session.on_tick(1, 1.0)
        assert session.stats.packets_out == 0
        session.remote = ("127.0.0.1", 40000)
        session.on_tick(2, 1.02)
        assert session.stats.packets_out == 1
    finally:
        session.close()
        clock.close()
        ports.close()


async def test_readers_are_registered_once_per_pair_not_per_call() -> None:
    """Taking and giving back a pooled pair swaps its owner: no reader is (re)registered."""
    loop = asyncio.get_running_loop()
    registered: list[int] = []
    add_reader = loop.add_reader

    def counting_add_reader(fd: int, callback: Callable[..., object], *args: object) -> None:
        registered.append(fd)
        add_reader(fd, callback, *args)

    ports = _ports(quarantine=0)
    clock = MediaClock()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(loop, "add_reader", counting_add_reader)
            for _ in range(5):
                session = await _open(ports, clock)
                session.start(_media(40000), sending=False)
                sender.sendto(build_rtp(0, 1, 160, 5, b"\xff" * 160), ("127.0.0.1", session.port))
                await asyncio.sleep(0.02)
                assert session.stats.packets_in == 1  # the pair's reader hands it over
                session.close()
        assert ports.stats.bound == 1 and ports.stats.reused == 4
        assert len(registered) == 2  # the first pair's RTP and RTCP sockets, once
        assert ports.stats.stale_discarded == 0
    finally:
        sender.close()
        clock.close()
        ports.close()


async def test_prefill_binds_pairs_ready_for_the_first_calls() -> None:
    """A server started under load must not bind a fresh pair per call until the first
    pairs leave quarantine: prefilled pairs are bound, registered and reusable at once."""
    loop = asyncio.get_running_loop()
    ports = _ports(pairs=6)  # the default 2 s quarantine
    clock = MediaClock()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert ports.prefill(loop, 4) == 4
        assert ports.pooled == 4 and ports.in_use == 0 and ports.stats.bound == 4
        prefilled = [pair.port for pair in ports._pool]
        assert not any(_bindable(port) or _bindable(port + 1) for port in prefilled)
        # Registered with the loop: what arrives before any call is read and dropped.
        sender.sendto(build_rtp(0, 1, 160, 5, b"\xff" * 160), ("127.0.0.1", prefilled[0]))
        await asyncio.sleep(0.05)
        assert ports.stats.stale_discarded == 1
        # Taken at once, in order, without binding anything: never used, no quarantine.
        first = await _open(ports, clock)
        assert first.port == prefilled[0] and ports.stats.bound == 4
        first.start(_media(40000), sending=False)
        sender.sendto(build_rtp(0, 9, 160, 6, b"\xff" * 160), ("127.0.0.1", first.port))
        await asyncio.sleep(0.05)
        assert first.stats.packets_in == 1
        first.close()  # quarantined now: behind the prefilled pairs, not ahead of them
        assert [pair.port for pair in ports._pool] == [*prefilled[1:], first.port]
        later = [await _open(ports, clock) for _ in range(3)]
        assert [s.port for s in later] == prefilled[1:] and ports.stats.reused == 4
        for session in later:
            session.close()
    finally:
        sender.close()
        clock.close()
        ports.close()


async def test_prefill_is_bounded_by_the_range_the_pool_size_and_taken_ports() -> None:
    loop = asyncio.get_running_loop()
    small = _ports(pairs=3)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", small.start + 2))  # the second pair, taken elsewhere
    try:
        assert small.prefill(loop, 100) == 2  # three pairs, one taken
        assert small.pooled == 2 and small.prefill(loop, 5) == 0  # full: nothing more
    finally:
        blocker.close()
        small.close()
    capped = _ports(pairs=6, max_pooled=3)
    try:
        assert capped.prefill(loop, 100) == 3 and capped.pooled == 3
    finally:
        capped.close()
    closed = _ports(pairs=2)
    closed.close()
    assert closed.prefill(loop, 2) == 0 and closed.pooled == 0
    nothing = _ports(pairs=2)
    try:
        assert nothing.prefill(loop, 0) == 0 and nothing.stats.bound == 0
    finally:
        nothing.close()


async def test_prefilled_pairs_left_idle_are_trimmed_by_the_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ports_module, "POOL_MAX_IDLE", 0.1)
    ports = _ports(pairs=4, quarantine=0.05)
    try:
        assert ports.prefill(asyncio.get_running_loop(), 3) == 3
        await asyncio.sleep(0.3)
        assert ports.pooled == 0 and ports.in_use == 0
    finally:
        ports.close()


async def test_a_second_allocator_on_the_same_range_prefills_past_the_first() -> None:
    """Two servers sharing a range: the second walks past the pairs the first bound,
    rather than give up after one bind's worth of taken ports."""
    loop = asyncio.get_running_loop()
    base = free_port_base(2 * 200 + 2)
    first = RtpPortAllocator(base, base + 400)
    second = RtpPortAllocator(base, base + 400)
    try:
        assert first.prefill(loop, 150) == 150  # more than one bind's attempts (64)
        assert second.prefill(loop, 30) == 30
        taken = {pair.port for pair in first._pool}
        assert not taken & {pair.port for pair in second._pool}
        # Its calls get pairs of its own.
        pair = second.acquire(loop)
        assert pair.port not in taken
        second.discard(pair)
    finally:
        first.close()
        second.close()
