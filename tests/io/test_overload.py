"""Overload control: LoopLoad's three signals and the 503 a new call gets under overload."""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import pytest

from siphon.io.overload import LoopLoad
from siphon.io.sip_stack import SipStack
from tests.io.helpers import SDP_OFFER, RawUdpClient, request, running_server
from tests.io.test_user_agent import answer_and_wait

FAST = 0.01  # sample every 10 ms so the tests take tenths of a second


async def _samples(load: LoopLoad, n: int) -> None:
    await asyncio.sleep(n * load.interval + load.interval / 2)


def test_limits_are_validated() -> None:
    for kwargs in ({"max_lag": 0}, {"max_busy": 0}, {"max_busy": 1.5}, {"interval": -1}):
        with pytest.raises(ValueError):
            LoopLoad(**kwargs)  # type: ignore[arg-type]


async def test_an_idle_loop_is_not_overloaded_and_close_is_idempotent() -> None:
    load = LoopLoad(interval=FAST)
    load.start()
    load.start()  # idempotent: still one sampling timer
    await _samples(load, 10)
    assert not load.overloaded
    assert load.lag < load.max_lag and load.busy < 0.5
    load.close()
    load.close()
    assert load.lag == load.busy == load.backlog == 0.0


async def test_a_loop_blocked_again_and_again_is_late() -> None:
    load = LoopLoad(max_lag=0.02, max_busy=1.0, interval=FAST)
    load.start()
    try:
        for _ in range(12):
            time.sleep(0.04)  # noqa: ASYNC251 - the point: the loop is blocked
            await asyncio.sleep(0)
        assert load.lag > 0.02 and load.overloaded
        assert load.worst >= 0.03
    finally:
        load.close()


async def test_one_pause_is_smoothed_away() -> None:
    load = LoopLoad(max_lag=0.05, max_busy=1.0, interval=FAST)
    load.start()
    try:
        await _samples(load, 3)
        time.sleep(0.08)  # noqa: ASYNC251 - one garbage-collection-like pause
        await _samples(load, 1)
        assert load.worst >= 0.06  # seen...
        assert not load.overloaded  # ...but one sample does not turn callers away
        await _samples(load, 20)
        assert load.lag < 0.01
    finally:
        load.close()


async def test_a_thread_on_the_cpu_all_the_time_is_busy() -> None:
    # A limit well below 1: on a core shared with other processes (a loaded CI
    # machine) the spinning thread gets only part of the CPU.
    load = LoopLoad(max_lag=10.0, max_busy=0.4, interval=FAST)
    load.start()
    try:
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            spin = time.monotonic() + 0.009
            while time.monotonic() < spin:  # CPU work, not a sleep
                pass
            await asyncio.sleep(0)
        assert load.busy > 0.4 and load.overloaded
    finally:
        load.close()
    idle = LoopLoad(interval=FAST)
    idle.start()
    try:
        await _samples(idle, 10)
        assert idle.busy < 0.3
    finally:
        idle.close()


async def test_a_sustained_receive_backlog_is_overload_and_recovery_follows() -> None:
    queued = [0]
    load = LoopLoad(interval=FAST, backlog=lambda: queued[0], max_backlog=100_000)
    load.start()
    try:
        queued[0] = 1_000_000
        await _samples(load, 12)
        assert load.backlog > 100_000 and load.overloaded
        queued[0] = 0
        await _samples(load, 25)
        assert not load.overloaded
    finally:
        load.close()


async def test_no_backlog_reading_leaves_that_signal_out() -> None:
    load = LoopLoad(interval=FAST, backlog=lambda: None)
    load.start()
    try:
        await _samples(load, 5)
        assert load.backlog == 0.0 and not load.overloaded
    finally:
        load.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_MEMINFO is Linux's")
async def test_the_udp_transport_reads_its_kernel_receive_queue() -> None:
    stack = SipStack()
    await stack.listen("127.0.0.1", 0, ("udp",))
    try:
        assert stack.receive_backlog() == 0
        port = stack.listener("UDP").transport.local_address[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(20):  # queued: the loop cannot read before we yield
                sender.sendto(b"\r\n\r\n", ("127.0.0.1", port))
            queued = stack.receive_backlog()
            assert queued is not None and queued >= 20 * 4
            await asyncio.sleep(0.05)
            assert stack.receive_backlog() == 0  # read (keep-alives) once we yielded
    finally:
        stack.close()


async def test_new_calls_get_503_overloaded_while_options_and_calls_in_progress_go_on() -> None:
    async with running_server(
        answer_and_wait, overload_control=True, overload_retry_after=7
    ) as server:
        assert server.load is not None
        client = await RawUdpClient.open(server.sip_port)
        # A call set up before the overload...
        client.send(
            request(
                "INVITE", server.sip_port, client_port=client.port, call_id="old", body=SDP_OFFER
            )
        )
        answered = await client.recv_final()
        assert answered.status == 200
        to_tag = answered.to_tag
        client.send(
            request("ACK", server.sip_port, client_port=client.port, call_id="old", to_tag=to_tag)
        )
        # As if requests had piled up in the kernel (sampling stopped: the value stays).
        server.load.close()
        server.load.backlog = 10 * server.load.max_backlog
        assert server.load.overloaded
        # ...a new one is refused, with when to come back (RFC 3261 §21.5.4)...
        client.send(
            request(
                "INVITE", server.sip_port, client_port=client.port, call_id="new", body=SDP_OFFER
            )
        )
        refused = await client.recv_final()
        assert (refused.status, refused.reason) == (503, "Overloaded")
        assert refused.get("Retry-After") == "7"
        assert server.stack.stats["rejected_overload"] == 1
        # ...OPTIONS (a proxy's health check) is still answered...
        client.send(request("OPTIONS", server.sip_port, client_port=client.port, call_id="o"))
        assert (await client.recv_final()).status == 200
        # ...and the call in progress still ends normally.
        client.send(
            request(
                "BYE",
                server.sip_port,
                client_port=client.port,
                call_id="old",
                to_tag=to_tag,
                cseq=2,
            )
        )
        assert (await client.recv_final()).status == 200
        client.close()


async def test_overload_control_is_opt_in() -> None:
    async with running_server(answer_and_wait) as server:
        assert server.load is None and server.ua.load is None
