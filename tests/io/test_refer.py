"""Cold transfer with REFER (RFC 3515) over loopback: SIPHON on both ends.

The server is the transferor (its app calls ``call.transfer``); our own UAC is the
transferee (``UaConfig(accept_refer=True)``): it gets ``TransferRequested``, places
the new call with ``ua.call`` and reports with ``call.notify_transfer``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from siphon.errors import LocalProtocolError, SiphonError
from siphon.events import CallEnded, CallEvent, TransferRequested
from siphon.io.call import CallFailed, SipCall, TransferResult
from siphon.io.timer_queue import TimerHandle
from siphon.io.transfer import Transfer, answer_notify
from siphon.io.user_agent import UserAgent
from siphon.sip.dialog import Dialog
from siphon.sip.message import Request, Response
from siphon.sip.refer import sipfrag
from tests.io.helpers import RawUdpClient, client_agent, request, running_server

Outcome = TransferResult | BaseException


async def _answer(call: SipCall) -> None:
    await call.answer()
    await call.wait_ended()


async def _reject_603(call: SipCall) -> None:
    await call.reject(603, "Decline")


def _transferor(
    results: asyncio.Queue[Outcome],
    target: Callable[[], str],
    *,
    timeout: float = 5.0,
    stay: bool = False,
) -> Callable[[SipCall], Awaitable[None]]:
    """An app that answers, transfers the caller to ``target()`` and reports the result.

    It then returns (hanging up), or with ``stay`` waits for the caller to hang up.
    """

    async def handle(call: SipCall) -> None:
        await call.answer()
        try:
            results.put_nowait(await call.transfer(target(), timeout=timeout))
        except BaseException as exc:
            results.put_nowait(exc)
            raise
        if stay:
            await call.wait_ended()

    return handle


async def _event(call: SipCall, kind: type[CallEvent], timeout: float = 3.0) -> CallEvent:
    async with asyncio.timeout(timeout):
        while True:
            event = await call.events.get()
            if isinstance(event, kind):
                return event


def _accepting(ua: UserAgent) -> UserAgent:
    ua.config = dataclasses.replace(ua.config, accept_refer=True)
    return ua


async def _result(results: asyncio.Queue[Outcome], timeout: float = 5.0) -> TransferResult:
    outcome = await asyncio.wait_for(results.get(), timeout)
    assert isinstance(outcome, TransferResult), outcome
    return outcome


async def _in_dialog(
    ua: UserAgent, call: SipCall, method: str, headers: list[tuple[str, str]], body: bytes = b""
) -> Response | None:
    """Send an in-dialog request of our own making and return its final response."""
    assert call.dialog is not None
    ctype = dict(headers).pop("Content-Type", None)
    out = call.dialog.create_request(
        method,
        headers=[h for h in headers if h[0] != "Content-Type"],
        body=body,
        content_type=ctype,
    )
    destination, transport = ua._in_dialog_destination(call)
    return await ua._request_final(out, destination, transport)


@pytest.fixture
async def target_server() -> AsyncIterator[int]:
    async with running_server(_answer) as server:
        yield server.sip_port


# -- the transferee follows the REFER ---------------------------------------------------------


async def test_transfer_succeeds_when_the_transferee_reaches_the_target(
    target_server: int,
) -> None:
    results: asyncio.Queue[Outcome] = asyncio.Queue()
    target = f"sip:target@127.0.0.1:{target_server}"
    async with (
        running_server(_transferor(results, lambda: target)) as server,
        client_agent() as ua,
    ):
        _accepting(ua)
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        assert "REFER" in (call.invite.get("Allow") or "")
        event = await _event(call, TransferRequested)
        assert isinstance(event, TransferRequested)
        assert event.target == target
        assert event.referred_by == f"sip:agent@127.0.0.1:{server.sip_port}"
        new_call = await ua.call(event.target)  # what a phone does with a REFER
        assert await call.notify_transfer(200, "OK")
        result = await _result(results)
        assert result == TransferResult(True, 200, "OK", target, ((100, "Trying"),))
        # The transferor's app returned: it hangs up (BYE) and we stay with the target.
        assert await asyncio.wait_for(call.wait_ended(), 3) == "remote hangup"
        assert not new_call.ended
        await new_call.hangup()
        with pytest.raises(SiphonError, match="no accepted REFER"):
            await call.notify_transfer(200, "OK")  # reported already


async def test_transfer_fails_with_the_status_the_transferee_reports() -> None:
    results: asyncio.Queue[Outcome] = asyncio.Queue()
    async with (
        running_server(_reject_603) as declining,
        running_server(
            _transferor(results, lambda: f"sip:busy@127.0.0.1:{declining.sip_port}")
        ) as server,
        client_agent() as ua,
    ):
        _accepting(ua)
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        event = await _event(call, TransferRequested)
        assert isinstance(event, TransferRequested)
        assert await call.notify_transfer(180, "Ringing")
        with pytest.raises(CallFailed) as info:
            await ua.call(event.target)
        assert await call.notify_transfer(info.value.status, info.value.reason)
        result = await _result(results)
        assert (result.ok, result.status, result.reason) == (False, 603, "Decline")
        assert result.progress == ((100, "Trying"), (180, "Ringing"))
        await call.hangup()


async def test_a_number_is_referred_on_the_peers_host() -> None:
    results: asyncio.Queue[Outcome] = asyncio.Queue()
    async with (
        running_server(_transferor(results, lambda: "+1 555 010 2030")) as server,
        client_agent() as ua,
    ):
        _accepting(ua)
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        event = await _event(call, TransferRequested)
        assert isinstance(event, TransferRequested)
        port = ua.stack.listener("UDP").advertised[1]
        assert event.target == f"sip:+15550102030@127.0.0.1:{port};user=phone"
        await call.notify_transfer(404, "Not Found")
        result = await _result(results)
        assert (result.ok, result.status, result.target) == (False, 404, event.target)
        await call.hangup()


# -- the transferee refuses or goes silent ------------------------------------------------------


async def test_refer_declined_by_a_peer_that_does_not_accept_transfers() -> None:
    results: asyncio.Queue[Outcome] = asyncio.Queue()
    async with (
        running_server(_transferor(results, lambda: "sip:x@127.0.0.1:5999")) as server,
        client_agent() as ua,  # accept_refer=False: the default
    ):
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        assert "REFER" not in (call.invite.get("Allow") or "")
        result = await _result(results)
        assert (result.ok, result.status) == (False, 603)
        assert "Transfer Not Accepted" in result.reason
        assert result.progress == ()
        assert await asyncio.wait_for(call.wait_ended(), 3) == "remote hangup"


async def test_no_final_notify_within_the_timeout_is_408() -> None:
    results: asyncio.Queue[Outcome] = asyncio.Queue()
    handler = _transferor(results, lambda: "sip:x@127.0.0.1:5999", timeout=0.5, stay=True)
    async with running_server(handler) as server, client_agent() as ua:
        _accepting(ua)
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        await _event(call, TransferRequested)  # accepted, 100 Trying sent, then silence
        result = await _result(results)
        assert (result.ok, result.status) == (False, 408)
        assert "never reported" in result.reason
        assert result.progress == ((100, "Trying"),)
        # The subscription is gone: a late report is refused (481).
        assert not await call.notify_transfer(200, "OK")
        await call.hangup()


async def test_transferee_hanging_up_after_202_counts_as_success() -> None:
    results: asyncio.Queue[Outcome] = asyncio.Queue()
    async with (
        running_server(_transferor(results, lambda: "sip:x@127.0.0.1:5999")) as server,
        client_agent() as ua,
    ):
        _accepting(ua)
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        await _event(call, TransferRequested)
        await call.hangup()  # BYE right after the 202, no final NOTIFY
        result = await _result(results)
        assert (result.ok, result.status) == (True, 202)
        assert result.reason == "transferee hung up after accepting"
        assert isinstance(await _event(call, CallEnded), CallEnded)
        assert not await call.notify_transfer(200, "OK")  # nobody left to tell


# -- NOTIFYs that match nothing ---------------------------------------------------------------


async def test_unmatched_notify_gets_481_and_bad_event_489() -> None:
    async with running_server(_answer) as server, client_agent() as ua:
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        frag = [("Content-Type", "message/sipfrag")]
        body = sipfrag(200, "OK")
        # In the dialog of a call, but no REFER was ever sent: no subscription.
        response = await _in_dialog(ua, call, "NOTIFY", [("Event", "refer"), *frag], body)
        assert response is not None and response.status == 481
        response = await _in_dialog(ua, call, "NOTIFY", [("Event", "presence"), *frag], body)
        assert response is not None and response.status == 489
        assert response.get("Allow-Events") == "refer"
        response = await _in_dialog(ua, call, "NOTIFY", frag, body)
        assert response is not None and response.status == 400
        await call.hangup()
    async with running_server(_answer) as server:
        raw = await RawUdpClient.open(server.sip_port)
        try:
            # Outside any dialog.
            raw.send(request("NOTIFY", server.sip_port, client_port=raw.port, extra="Event: refer"))
            assert (await raw.recv_final()).status == 481
            # An out-of-dialog REFER, from a UA that does not accept them.
            raw.send(request("REFER", server.sip_port, client_port=raw.port))
            answer = await raw.recv_final()
            assert answer.status == 405 and "REFER" not in (answer.get("Allow") or "")
        finally:
            raw.close()


async def test_notify_for_another_refer_id_or_bad_content_during_a_transfer() -> None:
    results: asyncio.Queue[Outcome] = asyncio.Queue()
    async with (
        running_server(_transferor(results, lambda: "sip:x@127.0.0.1:5999")) as server,
        client_agent() as ua,
    ):
        _accepting(ua)
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        await _event(call, TransferRequested)
        assert call.incoming_refer is not None
        refer_id = call.incoming_refer.cseq
        frag = ("Content-Type", "message/sipfrag")
        wrong_id = [("Event", f"refer;id={refer_id + 1}"), frag]
        response = await _in_dialog(ua, call, "NOTIFY", wrong_id, sipfrag(200, "OK"))
        assert response is not None and response.status == 481
        html = [("Event", f"refer;id={refer_id}"), ("Content-Type", "text/html")]
        response = await _in_dialog(ua, call, "NOTIFY", html, b"<b>ok</b>")
        assert response is not None and response.status == 415
        # Garbage sipfrag in a matching NOTIFY: 200, ignored, the transfer goes on.
        good = [("Event", f"refer;id={refer_id}"), frag]
        response = await _in_dialog(ua, call, "NOTIFY", good, b"not a status line")
        assert response is not None and response.status == 200
        assert results.empty()
        assert await call.notify_transfer(200, "OK")
        assert (await _result(results)).ok
        await asyncio.wait_for(call.wait_ended(), 3)


async def test_a_second_transfer_while_one_runs_is_an_error() -> None:
    results: asyncio.Queue[Outcome] = asyncio.Queue()

    async def twice(call: SipCall) -> None:
        await call.answer()
        first = asyncio.create_task(call.transfer("sip:x@127.0.0.1:5999", timeout=5))
        await asyncio.sleep(0.05)
        try:
            await call.transfer("sip:y@127.0.0.1:5999")
        except SiphonError as exc:
            results.put_nowait(exc)
        results.put_nowait(await first)

    async with running_server(twice) as server, client_agent() as ua:
        _accepting(ua)
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        await _event(call, TransferRequested)
        error = await asyncio.wait_for(results.get(), 3)
        assert isinstance(error, SiphonError) and "already in progress" in str(error)
        await call.notify_transfer(200, "OK")
        result = await _result(results)
        assert result.ok and result.target == "sip:x@127.0.0.1:5999"


async def test_a_second_refer_while_one_is_pending_gets_491() -> None:
    async with running_server(_answer) as server, client_agent() as ua:
        _accepting(ua)
        # The server is the transferee here (it accepts REFER), we are the transferor.
        _accepting(server.ua)
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        first = asyncio.create_task(call.transfer("sip:x@127.0.0.1:5999", timeout=1))
        await asyncio.sleep(0.2)
        assert not first.done()  # waiting for the server app's report, which never comes
        refer = [("Refer-To", "<sip:z@127.0.0.1:5999>")]
        response = await _in_dialog(ua, call, "REFER", refer)
        assert response is not None and response.status == 491
        result = await first
        assert (result.status, result.progress) == (408, ((100, "Trying"),))
        await call.hangup()


async def test_transfer_needs_an_answered_call_and_a_usable_target() -> None:
    async with running_server(_answer) as server, client_agent() as ua:
        call = await ua.call(f"sip:agent@127.0.0.1:{server.sip_port}")
        with pytest.raises(LocalProtocolError):
            await call.transfer("http://example.com")
        await call.hangup()
        with pytest.raises(SiphonError, match="answered call"):
            await call.transfer("sip:x@127.0.0.1:5999")


# -- the subscription bookkeeping, without the network ------------------------------------------


def _dialog() -> Dialog:
    invite = Request("INVITE", "sip:agent@127.0.0.1")
    for name, value in (
        ("From", "<sip:caller@127.0.0.1>;tag=a"),
        ("To", "<sip:agent@127.0.0.1>"),
        ("Call-ID", "c1"),
        ("CSeq", "1 INVITE"),
        ("Contact", "<sip:caller@127.0.0.1:5999>"),
    ):
        invite.add(name, value)
    return Dialog.from_uas(invite, "b", "<sip:agent@127.0.0.1:5060>")


def _notify(body: bytes, state: str = "active;expires=60", event: str = "refer") -> Request:
    notify = Request("NOTIFY", "sip:agent@127.0.0.1")
    notify.add("Event", event)
    notify.add("Subscription-State", state)
    if body:
        notify.add("Content-Type", "message/sipfrag")
    notify.body = body
    return notify


class _Timers:
    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        self.pending.append(callback)
        return TimerHandle(delay, callback)


async def test_notify_before_202_and_terminated_without_a_final_status() -> None:
    transfer = Transfer("sip:x@h", 5, _dialog())
    # A NOTIFY may overtake the 202 (RFC 6665 §4.1.2.4): it means "accepted".
    assert answer_notify(_notify(sipfrag(100, "Trying")), transfer).status == 200
    assert transfer.accepted and not transfer.done
    assert answer_notify(_notify(b"", "terminated;reason=timeout"), transfer).status == 200
    result = transfer.result.result()
    assert (result.ok, result.status) == (False, 487) and "timeout" in result.reason
    # Finished: later NOTIFYs match nothing.
    assert answer_notify(_notify(sipfrag(200, "OK")), transfer).status == 481


async def test_final_notify_after_the_bye_still_decides() -> None:
    timers = _Timers()
    transfer = Transfer("sip:x@h", 5, _dialog())
    transfer.refer_response(Response(202, "Accepted"))
    transfer.ended(timers.call_later)
    assert not transfer.done and len(timers.pending) == 1
    answer_notify(_notify(sipfrag(603, "Declined"), "terminated;reason=noresource"), transfer)
    assert transfer.result.result() == TransferResult(False, 603, "Declined", "sip:x@h")
    timers.pending[0]()  # the grace timer firing late changes nothing
    assert transfer.result.result().status == 603


async def test_call_ending_before_the_refer_is_answered() -> None:
    timers = _Timers()
    transfer = Transfer("sip:x@h", 5, _dialog())
    transfer.ended(timers.call_later)
    timers.pending[0]()
    result = transfer.result.result()
    assert (result.ok, result.status) == (False, 487)
    refused = Transfer("sip:x@h", 5, _dialog())
    refused.refer_response(Response(100, "Trying"))
    refused.refer_response(Response(405, "Method Not Allowed"))
    assert refused.result.result().status == 405
    silent = Transfer("sip:x@h", 5, _dialog())
    silent.refer_timeout()
    assert silent.result.result().status == 408


async def test_a_notify_of_another_refer_id_matches_nothing() -> None:
    transfer = Transfer("sip:x@h", 5, _dialog())
    assert answer_notify(_notify(sipfrag(200, "OK"), event="refer;id=6"), transfer).status == 481
    assert answer_notify(_notify(sipfrag(200, "OK"), event="refer;id=x"), transfer).status == 481
    assert answer_notify(_notify(sipfrag(200, "OK"), event="refer;id=5"), transfer).status == 200
    assert transfer.result.result().ok
