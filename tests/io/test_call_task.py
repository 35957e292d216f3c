"""The task SipServer runs per call: the handler's end, errors and grace (siphon.app)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from siphon import app as app_module
from siphon.io.call import SipCall
from tests.io.helpers import SDP_OFFER, RawUdpClient, request, running_server


async def _answered(server_port: int, client: RawUdpClient, call_id: str) -> str:
    """Send an INVITE, read up to the 200 OK, ACK it; the To tag of the dialog."""
    client.send(
        request("INVITE", server_port, client_port=client.port, call_id=call_id, body=SDP_OFFER)
    )
    final = await client.recv_final()
    assert final.status == 200
    tag = final.to_tag
    assert tag is not None
    client.send(request("ACK", server_port, client_port=client.port, call_id=call_id, to_tag=tag))
    return tag


async def _tasks_done(server: app_module.SipServer, timeout: float = 2.0) -> None:
    """Wait for the server's call tasks (named ``call:...``) to return."""
    tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("call:")]
    if tasks:
        done, _ = await asyncio.wait(tasks, timeout=timeout)
        assert len(done) == len(tasks)
    assert not server.calls


async def test_a_handler_that_outlives_its_call_is_cancelled_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_module, "HANDLER_GRACE_SECONDS", 0.1)
    seen: list[str] = []

    async def stubborn(call: SipCall) -> None:
        await call.answer()
        await call.wait_ended()
        try:
            await asyncio.sleep(30)  # cleanup that never ends
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("returned")

    async with running_server(stubborn) as server:
        client = await RawUdpClient.open(server.sip_port)
        tag = await _answered(server.sip_port, client, "grace-1")
        client.send(
            request(
                "BYE",
                server.sip_port,
                client_port=client.port,
                call_id="grace-1",
                to_tag=tag,
                cseq=2,
            )
        )
        assert (await client.recv_final()).status == 200
        await _tasks_done(server)
        assert seen == ["cancelled"]
        client.close()


async def test_a_handler_that_swallows_the_grace_cancellation_ends_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_module, "HANDLER_GRACE_SECONDS", 0.05)
    after: list[bool] = []

    async def swallowing(call: SipCall) -> None:
        await call.answer()
        await call.wait_ended()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)
        await asyncio.sleep(0.01)  # awaiting still works after the swallowed cancel
        after.append(True)

    async with running_server(swallowing) as server:
        client = await RawUdpClient.open(server.sip_port)
        tag = await _answered(server.sip_port, client, "grace-2")
        client.send(
            request(
                "BYE",
                server.sip_port,
                client_port=client.port,
                call_id="grace-2",
                to_tag=tag,
                cseq=2,
            )
        )
        assert (await client.recv_final()).status == 200
        await _tasks_done(server)
        assert after == [True]
        client.close()


async def test_a_failing_handler_gets_its_call_rejected_with_500() -> None:
    async def failing(call: SipCall) -> None:
        await call.ring()
        raise ValueError("bug in the app")

    async with running_server(failing) as server:
        client = await RawUdpClient.open(server.sip_port)
        client.send(
            request(
                "INVITE", server.sip_port, client_port=client.port, call_id="fail-1", body=SDP_OFFER
            )
        )
        final = await client.recv_final()
        assert (final.status, final.reason) == (500, "Application Error")
        await _tasks_done(server)
        client.close()


async def test_a_handler_returning_early_hangs_up_the_call() -> None:
    async def short(call: SipCall) -> None:
        await call.answer()

    async with running_server(short) as server:
        client = await RawUdpClient.open(server.sip_port)
        client.send(
            request(
                "INVITE",
                server.sip_port,
                client_port=client.port,
                call_id="short-1",
                body=SDP_OFFER,
            )
        )
        final = await client.recv_final()
        assert final.status == 200
        tag = final.to_tag
        client.send(
            request("ACK", server.sip_port, client_port=client.port, call_id="short-1", to_tag=tag)
        )
        # The handler returned: the server ends the call with a BYE of its own.
        async with asyncio.timeout(2):
            while True:
                data = await client._collector.queue.get()
                if data.startswith(b"BYE "):
                    break
        await _tasks_done(server)
        client.close()


async def test_a_handler_raising_cancelled_error_itself_ends_like_a_return() -> None:
    async def cancelled_inside(call: SipCall) -> None:
        await call.answer()
        raise asyncio.CancelledError  # e.g. from awaiting a task someone cancelled

    async with running_server(cancelled_inside) as server:
        client = await RawUdpClient.open(server.sip_port)
        await _answered(server.sip_port, client, "self-cancel-1")
        async with asyncio.timeout(2):
            while True:
                data = await client._collector.queue.get()
                if data.startswith(b"BYE "):
                    break
        await _tasks_done(server)
        client.close()
