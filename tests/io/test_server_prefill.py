"""A server binds RTP pairs into its pool at start, so its first calls reuse them."""

from __future__ import annotations

import asyncio

from siphon.app import App, ServerConfig, SipServer
from siphon.cli import _server_config, build_parser
from tests.io.helpers import (
    FAST_TIMERS,
    SDP_OFFER,
    RawUdpClient,
    free_port_base,
    request,
    running_server,
)
from tests.io.test_ua_edge_cases import answer_and_wait


async def test_the_first_call_takes_a_prefilled_pair_without_binding() -> None:
    async with running_server(answer_and_wait, rtp_prefill=5) as server:
        ports = server.ua.ports
        assert ports.pooled == 5 and ports.stats.bound == 5
        client = await RawUdpClient.open(server.sip_port)
        client.send(request("INVITE", server.sip_port, client_port=client.port, body=SDP_OFFER))
        assert (await client.recv_final()).status == 200
        assert ports.stats.bound == 5 and ports.stats.reused == 1 and ports.in_use == 1
        client.close()


async def test_no_prefill_binds_pairs_only_for_calls() -> None:
    async with running_server(answer_and_wait, rtp_prefill=0) as server:
        assert server.ua.ports.pooled == 0 and server.ua.ports.stats.bound == 0


async def test_the_default_prefill_is_bounded_by_the_range() -> None:
    base = free_port_base(12)
    server = SipServer(
        App(answer_and_wait),
        ServerConfig(
            host="127.0.0.1",
            sip_port=0,
            transports=("udp",),
            rtp_port_start=base,
            rtp_port_end=base + 10,
            timers=FAST_TIMERS,
            record=False,
        ),
    )
    ready = asyncio.Event()
    task = asyncio.create_task(server.serve(lambda _: ready.set()))
    await ready.wait()
    try:
        assert ServerConfig().rtp_prefill == 1024
        assert server.ua.ports.pooled == 5  # the whole (small) range, not 1024
    finally:
        server.stop()
        await task


def test_the_cli_takes_the_prefill() -> None:
    parser = build_parser()
    args = parser.parse_args(["dev", "agent.py", "--rtp-prefill", "0"])
    assert _server_config(args, production=False).rtp_prefill == 0
    args = parser.parse_args(["start", "agent.py"])
    assert _server_config(args, production=True).rtp_prefill == 1024
