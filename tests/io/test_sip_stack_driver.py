"""SipStack's server transactions are their own drivers: effects happen as rows run."""

from __future__ import annotations

import asyncio
import gc

import pytest

from siphon.errors import LocalProtocolError
from siphon.io.sip_stack import ServerTxn, SipStack
from siphon.io.sip_transport import Address, SipTransport
from siphon.io.timer_queue import TimerQueue
from siphon.sip.message import Request, Response
from siphon.sip.timers import SipTimers
from siphon.sip.transaction import (
    ServerInviteState,
    ServerInviteTransaction,
    ServerNonInviteState,
    ServerNonInviteTransaction,
    _Transaction,
)
from tests.io.test_sip_stack_lingering import SOURCE, FakeTransport, _request


class ReliableTransport(FakeTransport):
    name = "TCP"
    reliable = True


class Scripted:
    """Runs ``answer(txn)`` for each new request and records what the stack passes up."""

    def __init__(self, answer: object = None) -> None:
        self.answer = answer
        self.txns: list[ServerTxn] = []
        self.cancels: list[tuple[ServerTxn, ServerTxn | None]] = []
        self.acks: list[Request] = []

    def request_received(self, txn: ServerTxn) -> None:
        self.txns.append(txn)
        if callable(self.answer):
            self.answer(txn)

    def ack_received(self, ack: Request, source: Address, transport: SipTransport) -> None:
        self.acks.append(ack)

    def cancel_received(self, cancel: ServerTxn, invite: ServerTxn | None) -> None:
        self.cancels.append((cancel, invite))
        cancel.reply(200)

    def stray_response(self, response: Response, source: Address) -> None:
        pass

    def server_timed_out(self, txn: ServerTxn) -> None:
        pass


def _stack(handler: Scripted | None) -> SipStack:
    stack = SipStack(timers=SipTimers())
    stack._queue = TimerQueue(asyncio.get_running_loop())
    stack.handler = handler
    return stack


def _first_lines(transport: FakeTransport) -> list[bytes]:
    return [data.split(b"\r\n", 1)[0] for data, _ in transport.sent]


async def test_one_object_per_server_transaction() -> None:
    handler = Scripted()
    stack = _stack(handler)
    transport = FakeTransport()
    stack.message_received(_request("INVITE", 1, "1-1", 1), SOURCE, transport)
    stack.message_received(_request("BYE", 1, "1-3", 2, "srv"), SOURCE, transport)
    invite, bye = handler.txns
    assert isinstance(invite, ServerInviteTransaction)
    assert isinstance(bye, ServerNonInviteTransaction)
    assert invite.tx is invite and bye.tx is bye
    assert invite.state is ServerInviteState.PROCEEDING
    assert bye.state is ServerNonInviteState.TRYING
    # §17.2.1: no 100 Trying yet; the TU may ring or answer before the Trying timer.
    assert _first_lines(transport) == []
    # Nothing else of the transaction's own kind hangs off it (no separate driver).
    assert not any(isinstance(o, _Transaction) for o in gc.get_referents(invite))
    stack.close()


async def test_reliable_final_response_ends_the_transaction_inside_the_delivery() -> None:
    # Over TCP, Timer J lasts 0 s (RFC 3261 §17.2.2): the 200 sent from within the
    # delivery ends the transaction before the stack gets control back.
    handler = Scripted(lambda txn: txn.reply(200))
    stack = _stack(handler)
    transport = ReliableTransport()
    stack.message_received(_request("BYE", 1, "1-3", 2, "srv"), SOURCE, transport)
    assert _first_lines(transport) == [b"SIP/2.0 200 OK"]
    (bye,) = handler.txns
    assert bye.terminated and bye.final_sent
    assert stack.transaction_count == 0
    stack.close()


async def test_failing_handler_is_answered_500_in_its_transaction() -> None:
    def fail(txn: ServerTxn) -> None:
        raise RuntimeError("bug")

    handler = Scripted(fail)
    stack = _stack(handler)
    transport = FakeTransport()
    stack.message_received(_request("BYE", 1, "1-3", 2, "srv"), SOURCE, transport)
    assert _first_lines(transport) == [b"SIP/2.0 500 Server Internal Error"]
    assert stack.stats["internal_errors"] == 1
    # RFC 3261 §17.2.2: the retransmission gets the same answer, not a new delivery.
    stack.message_received(_request("BYE", 1, "1-3", 2, "srv"), SOURCE, transport)
    assert transport.sent[1] == transport.sent[0]
    assert len(handler.txns) == 1
    stack.close()


async def test_bad_status_raises_and_sends_nothing() -> None:
    handler = Scripted()
    stack = _stack(handler)
    transport = FakeTransport()
    stack.message_received(_request("BYE", 1, "1-3", 2, "srv"), SOURCE, transport)
    (bye,) = handler.txns
    with pytest.raises(LocalProtocolError, match="not a SIP status"):
        bye.reply(99)
    assert transport.sent == [] and not bye.final_sent
    bye.reply(200)
    assert _first_lines(transport) == [b"SIP/2.0 200 OK"]
    stack.close()


async def test_no_handler_answers_503() -> None:
    stack = _stack(None)
    transport = FakeTransport()
    stack.message_received(_request("OPTIONS", 1, "1-9", 1), SOURCE, transport)
    assert _first_lines(transport) == [b"SIP/2.0 503 Service Unavailable"]
    assert b"Retry-After: 5\r\n" in transport.sent[0][0]
    stack.close()


async def test_cancel_is_passed_up_with_its_invite_transaction() -> None:
    handler = Scripted()
    stack = _stack(handler)
    transport = FakeTransport()
    stack.message_received(_request("INVITE", 1, "1-1", 1), SOURCE, transport)
    stack.message_received(_request("CANCEL", 1, "1-1", 1), SOURCE, transport)
    (invite,) = handler.txns
    ((cancel, target),) = handler.cancels
    assert target is invite and cancel.method == "CANCEL"
    assert _first_lines(transport) == [b"SIP/2.0 200 OK"]  # the CANCEL's own 200
    stack.close()


async def test_100_trying_goes_out_when_the_tu_is_silent_at_the_trying_timer() -> None:
    # RFC 3261 §17.2.1: 100 Trying unless the TU responds within 200 ms.
    handler = Scripted()
    stack = _stack(handler)
    transport = FakeTransport()
    stack.message_received(_request("INVITE", 1, "1-1", 1), SOURCE, transport)
    stack.message_received(_request("INVITE", 1, "1-2", 2), SOURCE, transport)
    silent, ringing = handler.txns
    ringing.reply(180, to_tag="srv")
    assert not silent.final_sent and silent.last_response is None
    assert _first_lines(transport) == [b"SIP/2.0 180 Ringing"]
    await asyncio.sleep(stack.timers.trying + 0.05)
    assert _first_lines(transport) == [b"SIP/2.0 180 Ringing", b"SIP/2.0 100 Trying"]
    assert transport.sent[1][0].split(b"\r\n")[1].endswith(b"branch=z9hG4bK-1-1")
    # The retransmitted INVITE gets the 100 again; the ringing one its 180.
    stack.message_received(_request("INVITE", 1, "1-1", 1), SOURCE, transport)
    stack.message_received(_request("INVITE", 1, "1-2", 2), SOURCE, transport)
    assert _first_lines(transport)[2:] == [b"SIP/2.0 100 Trying", b"SIP/2.0 180 Ringing"]
    assert len(handler.txns) == 2
    stack.close()


async def test_ack_for_2xx_matching_an_accepted_invite_goes_to_the_handler() -> None:
    # RFC 6026 §7.1: an ACK for the 2xx on the INVITE's own branch reaches the TU.
    handler = Scripted(lambda txn: txn.reply(200, to_tag="srv"))
    stack = _stack(handler)
    transport = FakeTransport()
    stack.message_received(_request("INVITE", 1, "1-1", 1), SOURCE, transport)
    ack = _request("ACK", 1, "1-1", 1, "srv")
    stack.message_received(ack, SOURCE, transport)
    assert handler.acks == [ack]
    assert stack.transaction_count == 1  # Accepted: lingers until Timer L
    stack.close()
