"""Races and hostile inputs around the user agent: each test pins one RFC rule."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import pytest

from siphon.io import sip_transport
from siphon.io.call import CallFailed, SipCall
from siphon.io.sip_stack import uri_host
from siphon.sip.message import Request
from siphon.sip.parser import parse_datagram
from tests.io.helpers import (
    SDP_OFFER,
    RawUdpClient,
    client_agent,
    request,
    running_server,
    tcp_exchange,
)


async def answer_and_wait(call: SipCall) -> None:
    await call.answer()
    await call.wait_ended()


async def ring_forever(call: SipCall) -> None:
    await call.ring()
    await call.wait_ended()


async def wait_for(predicate: object, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


# -- resources ---------------------------------------------------------------------------


async def test_invite_and_cancel_in_one_write_leak_no_rtp_port() -> None:
    async with running_server(ring_forever) as server:
        port = server.sip_port
        for i in range(5):
            invite = request(
                "INVITE",
                port,
                transport="TCP",
                call_id=f"ic{i}",
                branch=f"z9hG4bKic{i}",
                body=SDP_OFFER,
            )
            cancel = request(
                "CANCEL", port, transport="TCP", call_id=f"ic{i}", branch=f"z9hG4bKic{i}"
            )
            # The CANCEL ends the INVITE before its Trying timer: no 100 (RFC 3261 §17.2.1).
            responses = await tcp_exchange(port, (invite + cancel).encode(), expect=2)
            assert sorted(r.status for r in responses) == [200, 487]
        await asyncio.sleep(0.3)
        assert server.ua.ports.in_use == 0
        assert not server.calls


async def test_error_after_transaction_exists_is_answered_through_it() -> None:
    async with running_server(answer_and_wait) as server:
        port = server.sip_port
        client = await RawUdpClient.open(port)
        text = request(
            "INVITE", port, client_port=client.port, body=SDP_OFFER, extra="Record-Route: garbage"
        )
        client.send(text)
        first = await client.recv_final()
        assert first.status == 400
        client.send(text)  # a retransmission gets the same answer from the transaction
        assert (await client.recv_final()).status == 400
        client.close()


async def test_unanswered_call_gets_408_after_the_ring_timeout() -> None:
    async with running_server(ring_forever, ring_timeout=0.3) as server:
        client = await RawUdpClient.open(server.sip_port)
        client.send(request("INVITE", server.sip_port, client_port=client.port, body=SDP_OFFER))
        assert (await client.recv_final()).status == 408
        await wait_for(lambda: not server.calls)
        client.close()


def test_tcp_connection_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sip_transport, "MAX_TCP_CONNECTIONS", 3)

    async def scenario() -> None:
        async with running_server(answer_and_wait) as server:
            writers = []
            for _ in range(5):
                _, writer = await asyncio.open_connection("127.0.0.1", server.sip_port)
                writers.append(writer)
            await asyncio.sleep(0.2)
            tcp = server.stack.listener("TCP").transport
            assert isinstance(tcp, sip_transport.TcpTransport)
            assert tcp.connection_count == 3 and tcp.connections_refused == 2
            for writer in writers:
                writer.close()

    asyncio.run(scenario())


# -- where responses go -------------------------------------------------------------------


async def test_client_written_received_is_not_trusted() -> None:
    async with running_server(answer_and_wait) as server:
        client = await RawUdpClient.open(server.sip_port)
        text = request("OPTIONS", server.sip_port, client_port=client.port).replace(
            ";rport", ";received=127.0.0.2"
        )
        client.send(text)
        response = await client.recv_final()
        assert response.status == 200
        assert response.top_via.received is None  # ours: same host as the source
        client.close()


async def test_unreadable_request_is_answered_to_its_source_not_its_via() -> None:
    async with running_server(answer_and_wait) as server:
        client = await RawUdpClient.open(server.sip_port)
        text = request("OPTIONS", server.sip_port, client_port=client.port)
        text = text.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE").replace(
            "SIP/2.0/UDP 127.0.0.1", "SIP/2.0/UDP 127.0.0.2"
        )
        client.send(text)
        raw = await asyncio.wait_for(client._collector.queue.get(), 2)
        assert raw.startswith(b"SIP/2.0 400 CSeq Method Mismatch")
        client.close()


# -- dialog races (RFC 3261 §9, §14, §15) --------------------------------------------------


async def test_caller_bye_on_the_early_dialog_ends_the_ringing_call() -> None:
    async with running_server(ring_forever) as server:
        port = server.sip_port
        client = await RawUdpClient.open(port)
        client.send(
            request("INVITE", port, client_port=client.port, call_id="early", body=SDP_OFFER)
        )
        ringing = await client.recv()
        while ringing.status != 180:
            ringing = await client.recv()
        client.send(
            request(
                "BYE", port, client_port=client.port, call_id="early", to_tag=ringing.to_tag, cseq=2
            )
        )
        seen: dict[str, int] = {}
        while len(seen) < 2:
            response = await client.recv_final(timeout=3.0)
            seen[response.cseq.method] = response.status
        assert seen == {"BYE": 200, "INVITE": 487}, (seen, dict(server.stack.stats))
        client.close()


async def test_cancel_200_carries_the_487_to_tag() -> None:
    async with running_server(ring_forever) as server:
        port = server.sip_port
        client = await RawUdpClient.open(port)
        client.send(
            request(
                "INVITE",
                port,
                client_port=client.port,
                call_id="ct",
                branch="z9hG4bKct",
                body=SDP_OFFER,
            )
        )
        while (await client.recv()).status != 180:
            pass
        client.send(
            request("CANCEL", port, client_port=client.port, call_id="ct", branch="z9hG4bKct")
        )
        tags = {}
        for _ in range(2):
            response = await client.recv_final()
            tags[response.cseq.method] = response.to_tag
        assert tags["CANCEL"] is not None and tags["CANCEL"] == tags["INVITE"]
        client.close()


async def test_hangup_before_ack_waits_for_the_ack_then_byes() -> None:
    async def handler(call: SipCall) -> None:
        with contextlib.suppress(TimeoutError):
            await call.answer(timeout=0.1)
        await call.hangup()
        await call.wait_ended()

    async with running_server(handler) as server:
        port = server.sip_port
        client = await RawUdpClient.open(port)
        client.send(request("INVITE", port, client_port=client.port, call_id="ba", body=SDP_OFFER))
        ok = await client.recv_final()
        assert ok.status == 200
        await asyncio.sleep(0.4)
        pending = []
        while not client._collector.queue.empty():
            pending.append(client._collector.queue.get_nowait())
        assert pending and all(p.startswith(b"SIP/2.0 200") for p in pending), pending
        client.send(request("ACK", port, client_port=client.port, call_id="ba", to_tag=ok.to_tag))
        bye = parse_datagram(await asyncio.wait_for(client._collector.queue.get(), 2))
        assert isinstance(bye, Request) and bye.method == "BYE"
        client.close()


async def test_reinvite_glare_gets_491() -> None:
    calls: list[SipCall] = []

    async def handler(call: SipCall) -> None:
        calls.append(call)
        await answer_and_wait(call)

    async with running_server(handler) as server, client_agent() as ua:
        outbound = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        await wait_for(lambda: bool(calls) and calls[0].acked)
        calls[0].reinvite_pending = True  # as if the server's own re-INVITE were in flight
        from siphon.sip.sdp import Direction

        response = await ua.reinvite(outbound, Direction.SENDONLY)
        assert response.status == 491
        calls[0].reinvite_pending = False
        assert (await ua.reinvite(outbound, Direction.SENDONLY)).status == 200
        await outbound.hangup()


async def test_empty_info_is_a_keepalive() -> None:
    async with running_server(answer_and_wait) as server, client_agent() as ua:
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        assert call.dialog is not None
        info = call.dialog.create_request("INFO")
        destination, transport = ua._in_dialog_destination(call)
        response = await ua._request_final(info, destination, transport)
        assert response is not None and response.status == 200
        await call.hangup()


# -- our UAC against a scripted UAS -----------------------------------------------------------


class ScriptedUas(asyncio.DatagramProtocol):
    """Answers INVITE with 100 (and optionally 200 when CANCELled); records methods."""

    def __init__(self, *, answer_on_cancel: bool) -> None:
        self.answer_on_cancel = answer_on_cancel
        self.methods: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.invite: Request | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_datagram(data)
        if not isinstance(message, Request):
            return
        self.methods.append(message.method)
        assert self.transport is not None
        if message.method == "INVITE":
            self.invite = message
            self.transport.sendto(message.make_response(100).to_bytes(), addr)
        elif message.method == "CANCEL":
            self.transport.sendto(message.make_response(200, to_tag="uas1").to_bytes(), addr)
            if self.answer_on_cancel and self.invite is not None:
                # The 200 OK crosses the CANCEL on the wire.
                ok = self.invite.make_response(
                    200, to_tag="uas1", headers=[("Contact", f"<sip:uas@127.0.0.1:{self.port}>")]
                )
                self.transport.sendto(ok.to_bytes(), addr)
        elif message.method == "BYE":
            self.transport.sendto(message.make_response(200).to_bytes(), addr)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


@pytest.mark.parametrize("answer_on_cancel", [False, True])
async def test_uac_cancels_after_100_and_acks_then_byes_a_crossing_200(
    answer_on_cancel: bool,
) -> None:
    loop = asyncio.get_running_loop()
    transport, uas = await loop.create_datagram_endpoint(
        lambda: ScriptedUas(answer_on_cancel=answer_on_cancel), local_addr=("127.0.0.1", 0)
    )
    try:
        async with client_agent() as ua:
            with pytest.raises(CallFailed):
                await ua.call(f"sip:uas@127.0.0.1:{uas.port}", timeout=0.3)
            await asyncio.sleep(0.5)
        expected = ["INVITE", "CANCEL"] + (["ACK", "BYE"] if answer_on_cancel else [])
        assert uas.methods[: len(expected)] == expected
    finally:
        transport.close()


# -- addresses ----------------------------------------------------------------------------


def test_uri_host_brackets_ipv6() -> None:
    assert uri_host("::1") == "[::1]"
    assert uri_host("[::1]") == "[::1]"
    assert uri_host("192.0.2.1") == "192.0.2.1"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_ipv6_call_end_to_end() -> None:
    if not _ipv6_loopback():
        pytest.fail("this machine has no IPv6 loopback (::1); the IPv6 path needs one")
    async with running_server(answer_and_wait, host="::1") as server:
        client_stack_host = "::1"
        from siphon.io.ports import RtpPortAllocator
        from siphon.io.sip_stack import SipStack
        from siphon.io.user_agent import UaConfig, UserAgent
        from tests.io.helpers import FAST_TIMERS, free_port_base

        stack = SipStack(timers=FAST_TIMERS)
        await stack.listen(client_stack_host, 0, ("udp",))
        ua = UserAgent(
            stack,
            ports=RtpPortAllocator(base := free_port_base(100), base + 98, host="::1"),
            config=UaConfig(media_host="::1"),
        )
        try:
            call = await ua.call(f"sip:agent@[::1]:{server.sip_port}")
            assert call.dialog is not None
            assert "[::1]" in call.dialog.local_contact
            await call.hangup()
            await wait_for(lambda: not server.calls)
        finally:
            ua.ports.close()
            stack.close()


async def test_rtp_port_exhaustion_answers_503_not_a_crash() -> None:
    base = 32620 + (os.getpid() % 30) * 4  # below the ephemeral range
    async with running_server(ring_forever, rtp_port_start=base, rtp_port_end=base + 2) as server:
        client = await RawUdpClient.open(server.sip_port)
        client.send(
            request(
                "INVITE", server.sip_port, client_port=client.port, call_id="p1", body=SDP_OFFER
            )
        )
        while (await client.recv()).status != 180:
            pass
        client.send(
            request(
                "INVITE", server.sip_port, client_port=client.port, call_id="p2", body=SDP_OFFER
            )
        )
        response = await client.recv_final()
        assert response.status == 503 and response.get("Retry-After")
        assert response.call_id == "p2"
        client.close()


async def test_answered_call_without_rtp_is_ended_by_media_timeout() -> None:
    async with running_server(answer_and_wait, media_timeout=0.5) as server:
        client = await RawUdpClient.open(server.sip_port)
        client.send(
            request(
                "INVITE", server.sip_port, client_port=client.port, call_id="mt", body=SDP_OFFER
            )
        )
        ok = await client.recv_final()
        client.send(
            request("ACK", server.sip_port, client_port=client.port, call_id="mt", to_tag=ok.to_tag)
        )
        bye = None
        for _ in range(40):
            data = await asyncio.wait_for(client._collector.queue.get(), 3)
            if data.startswith(b"BYE "):
                bye = data
                break
        assert bye is not None
        assert server.stack.stats["media_timeouts"] == 1
        client.close()
