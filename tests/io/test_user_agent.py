"""The user agent over real sockets on loopback: what a UAS and a UAC owe their peers."""

from __future__ import annotations

import asyncio

import pytest

from siphon.events import DtmfReceived, HoldChanged
from siphon.io.call import CallFailed, CallState, SipCall
from siphon.sip.sdp import Direction, parse_sdp
from tests.io.helpers import (
    SDP_OFFER,
    RawUdpClient,
    client_agent,
    request,
    running_server,
    tcp_exchange,
)


async def answer_and_wait(call: SipCall) -> None:
    await call.ring()
    await call.answer()
    await call.wait_ended()


async def ring_forever(call: SipCall) -> None:
    await call.ring()
    await call.wait_ended()


# -- rejections a UAS owes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "extra", "max_forwards", "status", "header"),
    [
        ("FOO", "", 70, 501, "Allow"),  # unknown method (RFC 3261 §8.2.1)
        ("REGISTER", "", 70, 405, "Allow"),  # known but not ours
        ("OPTIONS", "", 0, 483, None),  # Max-Forwards exhausted
        ("INVITE", "Require: 100rel, foo", 70, 420, "Unsupported"),  # §8.2.2.3
        ("BYE", "", 70, 481, None),  # BYE outside any dialog
        ("INFO", "", 70, 481, None),
    ],
)
async def test_rejections(
    method: str, extra: str, max_forwards: int, status: int, header: str | None
) -> None:
    async with running_server(answer_and_wait) as server:
        client = await RawUdpClient.open(server.sip_port)
        client.send(
            request(
                method,
                server.sip_port,
                client_port=client.port,
                extra=extra,
                max_forwards=max_forwards,
            )
        )
        response = await client.recv_final()
        assert response.status == status
        if header:
            assert response.get(header), response.to_bytes()
        if status == 420:
            assert response.option_tags("Unsupported") == ["100rel", "foo"]
        client.close()


async def test_in_dialog_request_for_unknown_dialog_is_481() -> None:
    async with running_server(answer_and_wait) as server:
        client = await RawUdpClient.open(server.sip_port)
        client.send(request("BYE", server.sip_port, client_port=client.port, to_tag="nope", cseq=2))
        assert (await client.recv_final()).status == 481
        client.close()


async def test_options_lists_allow_accept_supported() -> None:
    async with running_server(answer_and_wait) as server:
        client = await RawUdpClient.open(server.sip_port)
        client.send(request("OPTIONS", server.sip_port, client_port=client.port))
        response = await client.recv_final()
        assert response.status == 200
        assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"} <= {
            m.strip() for m in response.get_all("Allow")
        }
        assert response.get("Accept") == "application/sdp"
        assert response.get("Supported") is not None
        client.close()


async def test_no_common_codec_is_488_with_warning() -> None:
    offer = SDP_OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 18").replace(
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:18 G729/8000\r\n"
    )
    async with running_server(answer_and_wait) as server:
        client = await RawUdpClient.open(server.sip_port)
        client.send(request("INVITE", server.sip_port, client_port=client.port, body=offer))
        response = await client.recv_final()
        assert response.status == 488
        assert response.get("Warning", "").startswith("305")
        client.close()


async def test_non_sdp_body_is_415() -> None:
    async with running_server(answer_and_wait) as server:
        client = await RawUdpClient.open(server.sip_port)
        text = request("INVITE", server.sip_port, client_port=client.port, body="hello")
        client.send(text.replace("application/sdp", "text/plain"))
        response = await client.recv_final()
        assert response.status == 415
        assert response.get("Accept") == "application/sdp"
        client.close()


# -- bad input ---------------------------------------------------------------------------


async def test_bad_requests_get_400_naming_the_problem_and_garbage_is_dropped() -> None:
    async with running_server(answer_and_wait) as server:
        client = await RawUdpClient.open(server.sip_port)
        good = request("OPTIONS", server.sip_port, client_port=client.port)
        client.send(good.replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS"))
        raw = await asyncio.wait_for(client._collector.queue.get(), 2)
        # The broken CSeq is echoed as received (RFC 3261 §8.2.6.2 copies it).
        assert raw.startswith(b"SIP/2.0 400 Bad CSeq\r\n") and b"CSeq: x OPTIONS" in raw
        client.send(
            "\r\n".join(line for line in good.split("\r\n") if not line.startswith("From:"))
        )
        raw = await asyncio.wait_for(client._collector.queue.get(), 2)
        assert raw.startswith(b"SIP/2.0 400 Missing From\r\n")
        client.send(good.replace("SIP/2.0\r\n", "SIP/3.0\r\n", 1))
        assert (await client.recv_final()).status == 505
        for garbage in (b"\x00\xff" * 50, b"hello world", b"SIP/2.0 200\r\n\r\n", b"\r\n\r\n"):
            client.send(garbage)
        assert await client.nothing(0.3)
        # ...and the server still serves.
        client.send(good)
        assert (await client.recv_final()).status == 200
        assert server.stack.stats["dropped"] >= 3
        client.close()


async def test_tcp_two_requests_in_one_write_and_a_broken_stream() -> None:
    async with running_server(answer_and_wait) as server:
        port = server.sip_port
        two = request("OPTIONS", port, transport="TCP") + request("OPTIONS", port, transport="TCP")
        responses = await tcp_exchange(port, two.encode(), expect=2)
        assert [r.status for r in responses] == [200, 200]
        broken = request("OPTIONS", port, transport="TCP").replace("Content-Length: 0\r\n", "")
        responses = await tcp_exchange(port, broken.encode(), expect=1)
        assert [(r.status, r.reason) for r in responses] == [(400, "Missing Content-Length")]


# -- a whole inbound call with raw messages ---------------------------------------------


async def test_inbound_call_record_route_ack_bye() -> None:
    ended: list[str] = []

    async def handler(call: SipCall) -> None:
        await answer_and_wait(call)
        ended.append(call.end_reason or "")

    async with running_server(handler) as server:
        port = server.sip_port
        client = await RawUdpClient.open(port)
        rr = "Record-Route: <sip:proxy1.example.com;lr>\r\nRecord-Route: <sip:127.0.0.1:5999;lr>"
        client.send(
            request(
                "INVITE", port, client_port=client.port, call_id="call-1", extra=rr, body=SDP_OFFER
            )
        )
        statuses = []
        while True:
            response = await client.recv()
            statuses.append(response.status)
            if response.status >= 200:
                break
        assert statuses == [180, 200]  # rang at once: no 100 Trying (RFC 3261 §17.2.1)
        ok = response
        # RFC 3261 §12.1.1: Record-Route copied into the 2xx, in order.
        assert ok.get_all("Record-Route") == [
            "<sip:proxy1.example.com;lr>",
            "<sip:127.0.0.1:5999;lr>",
        ]
        assert ok.to_tag and ok.get("Contact")
        answer = parse_sdp(ok.body)
        assert answer.media[0].formats[0] == "8"  # the caller preferred PCMA
        client.send(
            request("ACK", port, client_port=client.port, call_id="call-1", to_tag=ok.to_tag)
        )
        await asyncio.sleep(0.2)
        assert await client.nothing(0.1), "no 2xx retransmission after the ACK"
        client.send(
            request(
                "BYE", port, client_port=client.port, call_id="call-1", to_tag=ok.to_tag, cseq=2
            )
        )
        bye_ok = await client.recv_final()
        assert bye_ok.status == 200 and bye_ok.cseq.method == "BYE"
        await asyncio.sleep(0.1)
        assert ended == ["remote hangup"]
        client.close()


async def test_2xx_is_retransmitted_until_ack_then_bye_after_64_t1() -> None:
    async with running_server(answer_and_wait) as server:
        port = server.sip_port
        client = await RawUdpClient.open(port)
        client.send(request("INVITE", port, client_port=client.port, body=SDP_OFFER))
        oks = 0
        bye = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while loop.time() < deadline and bye is None:
            try:
                data = await asyncio.wait_for(client._collector.queue.get(), 0.5)
            except TimeoutError:
                continue
            if data.startswith(b"SIP/2.0 200"):
                oks += 1
            elif data.startswith(b"BYE "):
                bye = data
        # T1 = 50 ms, doubling to T2 = 400 ms over 64*T1 = 3.2 s: about 10 copies.
        assert oks >= 6
        assert bye is not None, "the UAS must end a call whose 2xx is never ACKed"
        assert server.stack.stats["ack_timeouts"] == 1
        client.close()


async def test_invite_retransmission_is_absorbed() -> None:
    calls: list[SipCall] = []

    async def handler(call: SipCall) -> None:
        calls.append(call)
        await ring_forever(call)

    async with running_server(handler) as server:
        client = await RawUdpClient.open(server.sip_port)
        text = request("INVITE", server.sip_port, client_port=client.port, body=SDP_OFFER)
        client.send(text)
        client.send(text)
        await asyncio.sleep(0.3)
        assert len(calls) == 1
        client.close()


async def test_cancel_gets_200_and_invite_487() -> None:
    async with running_server(ring_forever) as server:
        port = server.sip_port
        client = await RawUdpClient.open(port)
        invite = request(
            "INVITE",
            port,
            client_port=client.port,
            call_id="c-cancel",
            branch="z9hG4bKcancel1",
            body=SDP_OFFER,
        )
        client.send(invite)
        while (await client.recv()).status != 180:
            pass
        client.send(
            request(
                "CANCEL", port, client_port=client.port, call_id="c-cancel", branch="z9hG4bKcancel1"
            )
        )
        seen = {}
        for _ in range(2):
            response = await client.recv_final()
            seen[response.cseq.method] = response.status
        assert seen == {"CANCEL": 200, "INVITE": 487}
        client.send(
            request(
                "CANCEL", port, client_port=client.port, call_id="other", branch="z9hG4bKnothing"
            )
        )
        assert (await client.recv_final()).status == 481
        client.close()


# -- our own UAC against our own UAS ----------------------------------------------------------


async def test_outbound_call_answer_and_bye_from_caller() -> None:
    reasons: list[str] = []

    async def handler(call: SipCall) -> None:
        await answer_and_wait(call)
        reasons.append(call.end_reason or "")

    async with running_server(handler) as server, client_agent() as ua:
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        assert call.state is CallState.ANSWERED
        assert call.negotiated is not None and call.negotiated.codec.name.upper() == "PCMU"
        await call.hangup()
        await asyncio.sleep(0.2)
        assert reasons == ["remote hangup"]


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_outbound_call_with_digest_retry(transport: str) -> None:
    async with (
        running_server(answer_and_wait, auth={"alice": "pw"}) as server,
        client_agent() as ua,
    ):
        target = f"sip:agent@127.0.0.1:{server.sip_port}"
        with pytest.raises(CallFailed) as failed:
            await ua.call(target, transport=transport)
        assert failed.value.status == 401
        with pytest.raises(CallFailed) as wrong:
            await ua.call(target, transport=transport, credentials=("alice", "nope"))
        assert wrong.value.status == 401
        call = await ua.call(target, transport=transport, credentials=("alice", "pw"))
        assert call.state is CallState.ANSWERED
        await call.hangup()


async def test_outbound_cancel_on_timeout() -> None:
    async with running_server(ring_forever) as server, client_agent() as ua:
        with pytest.raises(CallFailed) as failed:
            await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}", timeout=0.5)
        assert failed.value.status == 408
        await asyncio.sleep(0.3)
        assert not server.calls, "the CANCEL must end the ringing call on the server"


async def test_server_hangs_up_and_client_sees_bye() -> None:
    async def handler(call: SipCall) -> None:
        await call.answer()
        await asyncio.sleep(0.1)
        await call.hangup()

    async with running_server(handler) as server, client_agent() as ua:
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        reason = await asyncio.wait_for(call.wait_ended(), 3)
        assert reason == "remote hangup"


async def test_info_dtmf_and_hold_events_reach_the_handler() -> None:
    events: list[object] = []

    async def handler(call: SipCall) -> None:
        await call.answer()
        async for event in call.iter_events():
            events.append(event)

    async with running_server(handler) as server, client_agent() as ua:
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        await ua.send_info_dtmf(call, "5", 160)
        response = await ua.reinvite(call, Direction.SENDONLY)
        assert response.status == 200
        assert call.negotiated is not None and call.negotiated.direction is Direction.SENDONLY
        assert "a=recvonly" in response.body.decode()
        response = await ua.reinvite(call, Direction.SENDRECV)
        assert "a=sendrecv" in response.body.decode()
        await call.hangup()
        await asyncio.sleep(0.2)
    assert events[0] == DtmfReceived("5", 160, "info")
    assert events[1] == HoldChanged(True, "recvonly")
    assert events[2] == HoldChanged(False, "sendrecv")


async def test_stopping_server_answers_503_with_retry_after() -> None:
    async with running_server(answer_and_wait) as server:
        server.ua.accepting = False
        client = await RawUdpClient.open(server.sip_port)
        for method in ("INVITE", "OPTIONS"):
            client.send(
                request(
                    method,
                    server.sip_port,
                    client_port=client.port,
                    body=SDP_OFFER if method == "INVITE" else "",
                )
            )
            response = await client.recv_final()
            assert response.status == 503 and response.get("Retry-After")
        client.close()
