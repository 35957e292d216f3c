"""SipStack server transactions after their final response: cheap, and still answering."""

from __future__ import annotations

import asyncio
import gc

import pytest

from siphon.errors import LocalProtocolError
from siphon.io.sip_stack import ServerTxn, SipStack
from siphon.io.sip_transport import Address, SipTransport
from siphon.io.timer_queue import TimerQueue
from siphon.sip.message import Message, Request, Response
from siphon.sip.parser import parse_datagram
from siphon.sip.timers import SipTimers, TimerName

SOURCE = ("192.0.2.7", 5061)


def _request(method: str, n: int, branch: str, cseq: int, to_tag: str = "") -> Request:
    text = (
        f"{method} sip:service@192.0.2.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.7:5061;branch=z9hG4bK-{branch}\r\n"
        f"From: <sip:caller@192.0.2.7>;tag=from{n}\r\n"
        f"To: <sip:service@192.0.2.1>{';tag=' + to_tag if to_tag else ''}\r\n"
        f"Call-ID: call-{n}@192.0.2.7\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:caller@192.0.2.7:5061>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_datagram(text.encode())
    assert isinstance(message, Request)
    return message


class FakeTransport:
    name = "UDP"
    reliable = False

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Address]] = []

    @property
    def local_address(self) -> Address:
        return ("192.0.2.1", 5060)

    def send(self, data: bytes, destination: Address) -> None:
        self.sent.append((data, destination))

    def has_connection(self, destination: Address) -> bool:
        return True

    def close(self) -> None:
        pass


class Answering:
    """Answers INVITEs with 180 + 200 (or ``reject``) and anything else with 200."""

    def __init__(self, reject: int | None = None) -> None:
        self.reject = reject
        self.txns: list[ServerTxn] = []
        self.acks: list[Request] = []
        self.timeouts: list[ServerTxn] = []

    def request_received(self, txn: ServerTxn) -> None:
        self.txns.append(txn)
        if txn.request.method != "INVITE":
            txn.reply(200)
        elif self.reject is not None:
            txn.reply(self.reject, to_tag="srv")
        else:
            txn.reply(180, to_tag="srv")
            txn.reply(200, to_tag="srv", headers=[("Contact", "<sip:agent@192.0.2.1>")])

    def ack_received(self, ack: Request, source: Address, transport: SipTransport) -> None:
        self.acks.append(ack)

    def cancel_received(self, cancel: ServerTxn, invite: ServerTxn | None) -> None:
        cancel.reply(200)

    def stray_response(self, response: Response, source: Address) -> None:
        pass

    def server_timed_out(self, txn: ServerTxn) -> None:
        self.timeouts.append(txn)


def _stack(timers: SipTimers, handler: Answering) -> SipStack:
    stack = SipStack(timers=timers)
    stack._queue = TimerQueue(asyncio.get_running_loop())  # no sockets: fed by hand
    stack.handler = handler
    return stack


def _call(stack: SipStack, transport: FakeTransport, n: int) -> None:
    stack.message_received(_request("INVITE", n, f"{n}-1", 1), SOURCE, transport)
    stack.message_received(_request("ACK", n, f"{n}-2", 1, "srv"), SOURCE, transport)
    stack.message_received(_request("BYE", n, f"{n}-3", 2, "srv"), SOURCE, transport)


async def test_lingering_transactions_let_go_of_messages_and_keep_answering() -> None:
    handler = Answering()
    stack = _stack(SipTimers(), handler)
    transport = FakeTransport()
    _call(stack, transport, 1)
    invite, bye = handler.txns
    assert stack.transaction_count == 2
    # The TU rang at once: no 100 Trying (RFC 3261 §17.2.1).
    assert [data.split(b"\r\n", 1)[0] for data, _ in transport.sent] == [
        b"SIP/2.0 180 Ringing",
        b"SIP/2.0 200 OK",
        b"SIP/2.0 200 OK",
    ]
    assert len(handler.acks) == 1
    for txn in (invite, bye):
        assert txn.final_sent
        with pytest.raises(LocalProtocolError, match="final response"):
            _ = txn.request
        held = gc.get_referents(txn) + gc.get_referents(txn.tx)
        assert not any(isinstance(o, Message) for o in held)
    # RFC 3261 §17.2.2: a retransmitted BYE gets the very same 200 again.
    bye_200 = transport.sent[-1]
    stack.message_received(_request("BYE", 1, "1-3", 2, "srv"), SOURCE, transport)
    assert transport.sent[-1] == bye_200 and len(transport.sent) == 4
    # RFC 6026 §7.1: a retransmitted INVITE is absorbed in Accepted (the TU resends 2xx).
    stack.message_received(_request("INVITE", 1, "1-1", 1), SOURCE, transport)
    assert len(transport.sent) == 4
    stack.close()


async def test_lingering_timers_need_no_queue_entry_each() -> None:
    stack = _stack(SipTimers(), Answering())
    transport = FakeTransport()
    for n in range(200):
        _call(stack, transport, n)
    assert stack.transaction_count == 400
    # Timers L, J and Trying of 400 transactions: one wake-up per timer lane.
    assert len(stack.timer_queue) == 3
    stack.close()


async def test_lingering_transactions_end_at_timers_l_and_j() -> None:
    # 64*T1 = 320 ms. (T1 >= 4 ms: a transaction accepts fires T1/4 early, the timer
    # queue groups those due within 1 ms.)
    timers = SipTimers(t1=0.005, t2=0.02, t4=0.02)
    stack = _stack(timers, Answering())
    transport = FakeTransport()
    for n in range(20):
        _call(stack, transport, n)
    assert stack.transaction_count == 40
    await asyncio.sleep(64 * timers.t1 + 0.1)
    assert stack.transaction_count == 0
    stack.close()


async def test_rejected_invite_without_ack_retransmits_then_times_out() -> None:
    timers = SipTimers(t1=0.005, t2=0.02, t4=0.02)
    handler = Answering(reject=486)
    stack = _stack(timers, handler)
    transport = FakeTransport()
    stack.message_received(_request("INVITE", 1, "1-1", 1), SOURCE, transport)
    (invite,) = handler.txns
    await asyncio.sleep(64 * timers.t1 + 0.1)
    sent = [data for data, _ in transport.sent]
    busy = sent[0]  # answered at once: no 100 Trying (§17.2.1)
    assert busy.startswith(b"SIP/2.0 486 Busy Here")
    # Timer G resent the same bytes (§17.2.1) until H ended the transaction.
    assert len(sent) > 4 and set(sent) == {busy}
    assert handler.timeouts == [invite]
    assert stack.transaction_count == 0
    stack.close()


async def test_acked_rejection_stops_retransmitting() -> None:
    timers = SipTimers(t1=0.005, t2=0.02, t4=0.02)
    handler = Answering(reject=603)
    stack = _stack(timers, handler)
    transport = FakeTransport()
    stack.message_received(_request("INVITE", 1, "1-1", 1), SOURCE, transport)
    (invite,) = handler.txns
    assert invite.handles is not None and set(invite.handles) == {TimerName.G, TimerName.H}
    # §17.2.1: the ACK for a non-2xx shares the INVITE's branch.
    stack.message_received(_request("ACK", 1, "1-1", 1, "srv"), SOURCE, transport)
    assert not invite.handles  # G and H cancelled; I rides its lane
    await asyncio.sleep(timers.t4 + 0.05)
    assert len(transport.sent) == 1  # the 603, never resent
    assert stack.transaction_count == 0
    stack.close()


def test_common_headers() -> None:
    stack = SipStack(user_agent="UA/1")
    assert stack.common_headers() == [("Server", "UA/1")]
    assert stack.common_headers([("Allow", "INVITE")]) == [("Allow", "INVITE"), ("Server", "UA/1")]
    own = [("server", "Other/2")]
    headers = stack.common_headers(own)
    assert headers == own and headers is not own
