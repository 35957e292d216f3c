"""Overload control: LoopLoad's signals, its admission ratio, the queue-delay probe
and the 503 a new call gets when it is not admitted."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from siphon.app import ServerConfig
from siphon.cli import _server_config, build_parser
from siphon.errors import ConfigError
from siphon.io import overload, sip_transport
from siphon.io.overload import (
    ALPHA,
    BETA,
    DECAY,
    LOOP_STEP,
    MAX_REFUSAL,
    LoopLoad,
)
from siphon.io.sip_stack import SipStack
from tests.io.helpers import SDP_OFFER, RawUdpClient, request, running_server
from tests.io.test_user_agent import answer_and_wait

FAST = 0.01  # sample every 10 ms so the tests take tenths of a second


async def _samples(load: LoopLoad, n: int) -> None:
    await asyncio.sleep(n * load.interval + load.interval / 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_lag": 0},
        {"max_busy": 0},
        {"max_busy": 1.5},
        {"interval": -1},
        {"max_queue_delay": 0},
        {"max_queue_delay": -0.1},
        {"interval": 0.1, "window": 0.05},
    ],
)
def test_limits_are_validated_with_an_error_that_names_them(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="max_queue_delay"):
        LoopLoad(**kwargs)


def test_a_bad_limit_in_the_server_config_is_refused_at_construction() -> None:
    from siphon.app import App, SipServer

    with pytest.raises(ConfigError, match="max_loop_busy"):
        SipServer(App(answer_and_wait), ServerConfig(max_loop_busy=2.0))
    # Turned off, its limits are not used.
    SipServer(App(answer_and_wait), ServerConfig(overload_control=False, max_loop_busy=2.0))


async def test_an_idle_loop_admits_every_call_and_close_is_idempotent() -> None:
    load = LoopLoad(interval=FAST)
    load.start()
    load.start()  # idempotent: still one sampling timer
    await _samples(load, 10)
    assert not load.overloaded and not load.congested
    assert load.admit_ratio == 1.0 and load.congested_samples == 0
    assert all(load.admit() for _ in range(100))
    assert (load.admitted, load.refused) == (100, 0)
    load.close()
    load.close()
    assert load.lag == load.busy == load.queue_delay == 0.0


def test_admission_follows_the_ratio_evenly() -> None:
    load = LoopLoad()
    load.refusal = 0.5
    load._credit = 0.0
    assert load.admit_ratio == 0.5
    assert [load.admit() for _ in range(6)] == [False, True] * 3
    load.refusal = 0.75
    assert [load.admit() for _ in range(8)] == [False, False, False, True] * 2
    assert (load.admitted, load.refused) == (5, 9)


TARGET = 0.050


def test_a_standing_delay_over_target_raises_refusal_by_its_excess() -> None:
    load = LoopLoad(max_queue_delay=TARGET)
    load.update(TARGET + 0.1)  # proportional (0.1 s over) and growth (from nothing) terms
    assert load.refusal == pytest.approx(ALPHA * 0.1 + BETA * (TARGET + 0.1))
    assert load.congested and load.overloaded
    before = load.refusal
    load.update(TARGET + 0.1)  # no longer growing: the proportional term alone
    assert load.refusal == pytest.approx(before + ALPHA * 0.1)
    assert load.congested_samples == 2


def test_a_queue_growing_from_nothing_is_a_burst_until_it_nears_the_target() -> None:
    load = LoopLoad(max_queue_delay=TARGET)
    load.update(0.0)
    load.update(TARGET * 0.4)  # under half the target: no growth term, no refusal
    assert load.refusal == 0.0 and not load.congested


def test_a_shrinking_queue_lowers_refusal_and_an_empty_one_ends_it_fast() -> None:
    load = LoopLoad(max_queue_delay=TARGET)
    load.update(0.3)
    load.update(0.3)
    high = load.refusal
    load.update(0.2)  # still over target, but 0.1 s shorter: the growth term is negative
    assert load.refusal == pytest.approx(high + ALPHA * (0.2 - TARGET) - BETA * 0.1)
    load.refusal = 0.5
    load.update(0.0)  # the queue is gone (the fall from 0.2 s still counts once)
    assert load.refusal == pytest.approx(0.5 - ALPHA * TARGET - BETA * 0.2)
    load.refusal = 0.5
    load.update(0.0)  # and again: the decay and the proportional term
    assert load.refusal == pytest.approx(0.5 * DECAY - ALPHA * TARGET)
    samples = 1
    while load.overloaded:
        load.update(0.0)
        samples += 1
    assert samples <= 6  # tenths of a second, not a second of refusals after the queue


def test_refusal_is_capped_so_a_trickle_probes_the_capacity() -> None:
    load = LoopLoad(max_queue_delay=TARGET)
    for _ in range(50):
        load.update(1.0)
    assert load.refusal == MAX_REFUSAL
    load._credit = 0.0
    assert sum(load.admit() for _ in range(100)) == pytest.approx(100 * (1 - MAX_REFUSAL), abs=1)


def test_the_loop_signals_step_refusal_up_and_without_a_delay_down() -> None:
    load = LoopLoad()
    load.update(None, loop_congested=True)
    load.update(None, loop_congested=True)
    assert load.refusal == pytest.approx(2 * LOOP_STEP) and load.congested
    load.update(None)
    assert load.refusal == pytest.approx(LOOP_STEP) and not load.congested
    load.update(0.0, loop_congested=True)  # with a delay, both count
    assert load.refusal > LOOP_STEP


async def test_a_standing_queue_cuts_admission_and_its_end_restores_it() -> None:
    delay = [0.0]
    load = LoopLoad(max_lag=None, interval=FAST, queue_delay=lambda now: delay[0], window=4 * FAST)
    load.start()
    try:
        delay[0] = 0.2
        await _samples(load, 8)
        assert load.queue_delay == 0.2 and load.standing_delay == 0.2 and load.congested
        assert load.refusal > 0.5
        refused = sum(not load.admit() for _ in range(100))
        assert refused > 50
        delay[0] = 0.0
        await _samples(load, 2)
        assert not load.congested  # the first clear sample ends the standing queue
        await _samples(load, 10)
        assert load.admit_ratio == 1.0 and not load.overloaded
    finally:
        load.close()


async def test_a_burst_that_drains_within_the_window_refuses_nobody() -> None:
    delay = [0.0]
    load = LoopLoad(max_lag=None, interval=FAST, queue_delay=lambda now: delay[0], window=6 * FAST)
    load.start()
    try:
        await _samples(load, 8)
        delay[0] = 0.3  # as during a 300 ms pause...
        await _samples(load, 3)
        delay[0] = 0.0  # ...drained within the window
        await _samples(load, 8)
        assert load.congested_samples == 0 and load.refusal == 0.0
    finally:
        load.close()


async def test_no_queue_delay_reading_leaves_that_signal_out() -> None:
    load = LoopLoad(max_lag=None, interval=FAST, queue_delay=lambda now: None)
    load.start()
    try:
        await _samples(load, 8)
        assert load.queue_delay == 0.0 and not load.overloaded
    finally:
        load.close()


async def test_a_loop_blocked_again_and_again_is_late() -> None:
    load = LoopLoad(max_lag=0.02, interval=FAST)
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
    load = LoopLoad(max_lag=0.05, interval=FAST)
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


async def _spin(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        spin = time.monotonic() + 0.009
        while time.monotonic() < spin:  # CPU work, not a sleep
            pass
        await asyncio.sleep(0)


async def test_a_thread_on_the_cpu_all_the_time_is_busy_when_that_signal_is_on() -> None:
    # A limit well below 1: on a core shared with other processes (a loaded CI
    # machine) the spinning thread gets only part of the CPU.
    load = LoopLoad(max_lag=10.0, max_busy=0.4, interval=FAST)
    load.start()
    try:
        await _spin(0.4)
        assert load.busy > 0.4 and load.overloaded
    finally:
        load.close()
    # Off by default: a server at capacity is busy and still keeping up.
    default = LoopLoad(max_lag=10.0, interval=FAST)
    default.start()
    try:
        await _spin(0.4)
        assert default.busy > 0.4 and not default.overloaded
    finally:
        default.close()


async def _udp_stack() -> tuple[SipStack, int]:
    stack = SipStack()
    await stack.listen("127.0.0.1", 0, ("udp",))
    return stack, stack.listener("UDP").transport.local_address[1]


async def test_the_probe_measures_how_long_datagrams_wait_for_the_loop() -> None:
    stack, _ = await _udp_stack()
    loop = asyncio.get_running_loop()
    try:
        assert stack.queue_delay(loop.time()) is None  # nothing measured yet; a probe left
        await asyncio.sleep(0.02)
        idle = stack.queue_delay(loop.time())
        assert idle is not None and idle < 0.1  # back at once: no queue
        # The loop is held up: the probe (and any request) waits in the kernel.
        time.sleep(0.15)  # noqa: ASYNC251 - the point: the loop is blocked
        waiting = stack.queue_delay(loop.time())
        assert waiting is not None and waiting >= 0.15  # the age of the probe in flight
        await asyncio.sleep(0.02)
        measured = stack.queue_delay(loop.time())
        assert measured is not None and 0.15 <= measured < 0.5
        # The probe is no keep-alive of a peer's, and never reaches the SIP layer.
        assert stack.stats["keepalives"] == 0
        assert stack.stats["requests_in"] == stack.stats["bad_input"] == 0
    finally:
        stack.close()


async def test_a_keepalive_from_elsewhere_is_no_probe() -> None:
    stack, port = await _udp_stack()
    loop = asyncio.get_running_loop()
    try:
        stack.queue_delay(loop.time())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            peer.sendto(b"\r\n\r\n", ("127.0.0.1", port))
            await asyncio.sleep(0.05)
        assert stack.stats["keepalives"] == 1
    finally:
        stack.close()


async def _stack_losing_probes_fast(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[SipStack, sip_transport.UdpTransport]:
    monkeypatch.setattr(sip_transport, "PROBE_LOST_AFTER", 0.05)
    stack, _ = await _udp_stack()
    transport = stack.listener("UDP").transport
    assert isinstance(transport, sip_transport.UdpTransport)
    return stack, transport


async def test_a_lost_probe_reads_as_its_age_then_another_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack, transport = await _stack_losing_probes_fast(monkeypatch)
    loop = asyncio.get_running_loop()
    try:
        stack.queue_delay(loop.time())
        await asyncio.sleep(0.02)  # the first probe is back: the path works
        monkeypatch.setattr(transport, "_probe_arrived", lambda: None)
        assert stack.queue_delay(loop.time()) is not None  # sent, and "dropped"
        await asyncio.sleep(0.08)
        lost = stack.queue_delay(loop.time())
        assert lost is not None and lost >= 0.05  # counts as congestion
        sent = transport._probe_sent
        assert sent is not None and loop.time() - sent < 0.05  # a new one is on its way
    finally:
        stack.close()


async def test_probes_that_never_arrive_turn_the_signal_off_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As behind a firewall that drops datagrams to our own port: that is no overload.
    stack, transport = await _stack_losing_probes_fast(monkeypatch)
    loop = asyncio.get_running_loop()
    try:
        monkeypatch.setattr(transport, "_probe_arrived", lambda: None)
        assert stack.queue_delay(loop.time()) is None
        await asyncio.sleep(0.03)
        assert stack.queue_delay(loop.time()) is None  # in flight: no verdict yet
        await asyncio.sleep(0.05)
        with caplog.at_level("WARNING", logger="siphon.io.transport"):
            assert stack.queue_delay(loop.time()) is None
        assert "never arrive" in caplog.text
        assert stack.queue_delay(loop.time()) is None  # for good
    finally:
        stack.close()


async def test_a_probe_to_a_wildcard_listener_comes_from_loopback() -> None:
    stack = SipStack()
    await stack.listen("0.0.0.0", 0, ("udp",))
    loop = asyncio.get_running_loop()
    try:
        stack.queue_delay(loop.time())
        await asyncio.sleep(0.03)
        transport = stack.listener("UDP").transport
        assert isinstance(transport, sip_transport.UdpTransport)
        assert transport._probe_source is not None
        assert transport._probe_source[0] == "127.0.0.1"
        assert transport._probe_sent is None  # it arrived
        assert stack.stats["keepalives"] == 0
    finally:
        stack.close()
    assert stack.queue_delay(loop.time()) is None  # closed: nothing to measure


async def test_a_tcp_only_stack_has_no_queue_delay() -> None:
    stack = SipStack()
    await stack.listen("127.0.0.1", 0, ("tcp",))
    try:
        assert stack.queue_delay(asyncio.get_running_loop().time()) is None
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
        # As if requests had waited in the kernel for a while (sampling stopped: the
        # ratio stays where it fell).
        server.load.close()
        server.load.refusal = MAX_REFUSAL
        server.load._credit = 0.0
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


async def test_overload_control_is_on_by_default_and_can_be_turned_off() -> None:
    async with running_server(answer_and_wait) as server:
        assert server.load is not None and server.ua.load is server.load
        await asyncio.sleep(3 * server.load.interval)
        assert server.load.admit_ratio == 1.0  # an idle server admits every call
    async with running_server(answer_and_wait, overload_control=False) as server:
        assert server.load is None and server.ua.load is None


def test_the_command_line_sets_the_queue_delay_and_zero_turns_control_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = build_parser()
    args = parser.parse_args(["dev", "examples/answer.py", "--max-queue-delay", "0.1"])
    config = _server_config(args, production=False)
    assert config.overload_control and config.max_queue_delay == 0.1
    args = parser.parse_args(["dev", "examples/answer.py", "--max-queue-delay", "0"])
    assert not _server_config(args, production=False).overload_control
    args = parser.parse_args(["start", "examples/answer.py"])
    config = _server_config(args, production=True)
    assert config.overload_control
    assert config.max_queue_delay == overload.DEFAULT_MAX_QUEUE_DELAY
    # Containers set it from the environment.
    monkeypatch.setenv("SIPHON_MAX_QUEUE_DELAY", "0.2")
    args = build_parser().parse_args(["dev", "examples/answer.py"])
    assert _server_config(args, production=False).max_queue_delay == 0.2
