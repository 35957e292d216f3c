"""Server transactions after ``release()``, the compiled tables, and what lingers for the GC."""

from __future__ import annotations

import gc
from enum import Enum

import pytest

from siphon.errors import LocalProtocolError
from siphon.sip.message import Message
from siphon.sip.transaction import (
    CLIENT_INVITE_TABLE,
    CLIENT_NON_INVITE_TABLE,
    SERVER_INVITE_TABLE,
    SERVER_NON_INVITE_TABLE,
    STOPPED_TIMERS,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Deliver,
    Send,
    ServerInviteState,
    ServerInviteTransaction,
    ServerNonInviteState,
    ServerNonInviteTransaction,
    StartTimer,
    Step,
    StopTimer,
    Terminated,
    TimerName,
)
from tests.sip.test_transaction import TIMERS, Msgs, make_request, respond, sent

L, J, G, H = TimerName.L, TimerName.J, TimerName.G, TimerName.H


def _lingering_referents(txn: object) -> list[object]:
    """What ``txn`` holds that the collector tracks, besides shared constants."""
    gc.collect()  # untracks tuples and dicts that hold only atomic values
    return [
        o
        for o in gc.get_referents(txn)
        if gc.is_tracked(o) and o is not TIMERS and not isinstance(o, Enum | type)
    ]


def test_released_accepted_invite_transaction_keeps_working_without_messages() -> None:
    m = Msgs()
    txn = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    txn.start(0.0)
    assert txn.send_response(m.s2xx, 1.0) == [sent(m.s2xx), StartTimer(L, 33.0)]
    txn.release()
    with pytest.raises(LocalProtocolError, match="released its request"):
        _ = txn.request
    assert txn.last_response is None
    assert txn.method == "INVITE"
    assert txn.receive(m.invite_again, 1.5) == []  # RFC 6026: absorbed
    assert txn.receive(m.t_ack, 2.0) == [Deliver(m.t_ack)]
    again = respond(m.invite, 200)
    assert txn.send_response(again, 2.5) == [sent(again)]
    assert txn.last_response is None  # not kept once released
    assert txn.state is ServerInviteState.ACCEPTED
    assert txn.timer_fired(L, 33.0) == [Terminated()]
    assert "INVITE" in repr(txn)


def test_released_completed_transactions_resend_the_same_bytes() -> None:
    m = Msgs()
    bye = ServerNonInviteTransaction(m.bye, reliable=False, timers=TIMERS)
    bye.start(0.0)
    bye.send_response(m.b200, 1.0)
    bye.release()
    assert bye.receive(m.bye_again, 2.0) == [Send(m.b200.to_bytes(), None)]
    with pytest.raises(LocalProtocolError, match="does not belong"):
        bye.receive(make_request("CANCEL", branch="z9hG4bKbye1"), 2.0)
    assert bye.timer_fired(J, 33.0) == [Terminated()]
    assert bye.state is ServerNonInviteState.TERMINATED

    invite = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    invite.start(0.0)
    invite.send_response(m.s3xx, 0.0)
    invite.release()
    resend = Send(m.s3xx.to_bytes(), None)
    assert invite.receive(m.invite_again, 0.1) == [resend]
    assert invite.timer_fired(G, 0.5) == [resend, StartTimer(G, 1.5)]
    assert invite.receive(m.t_ack, 0.6) == [
        StopTimer(G),
        StopTimer(H),
        StartTimer(TimerName.I, 5.6),
    ]
    assert invite.state is ServerInviteState.CONFIRMED


@pytest.mark.parametrize("reliable", [False, True])
def test_lingering_transactions_hold_no_message_and_no_tracked_container(reliable: bool) -> None:
    m = Msgs()
    invite = ServerInviteTransaction(m.invite, reliable=reliable, timers=TIMERS)
    invite.start(0.0)
    invite.send_response(m.s1xx, 0.0)
    invite.send_response(m.s2xx, 0.0)
    invite.release()
    bye = ServerNonInviteTransaction(m.bye, reliable=reliable, timers=TIMERS)
    bye.start(0.0)
    bye.send_response(m.b200, 0.0)
    bye.release()
    for txn in (invite, bye):
        assert not any(isinstance(o, Message) for o in gc.get_referents(txn))
        assert _lingering_referents(txn) == []


def test_stopped_timers_are_the_timers_some_row_stops() -> None:
    stopped = {
        TimerName[step.name.removeprefix("STOP_")]
        for table in (
            CLIENT_INVITE_TABLE,
            CLIENT_NON_INVITE_TABLE,
            SERVER_INVITE_TABLE,
            SERVER_NON_INVITE_TABLE,
        )
        for transition in table.values()
        for step in transition.steps
        if step.name.startswith("STOP_")
    }
    assert stopped == STOPPED_TIMERS == {TimerName[x] for x in "ABEFGH"}
    assert all(step.name.removeprefix("STOP_") in "ABEFGH" for step in Step if "STOP" in step.name)


@pytest.mark.parametrize(
    ("cls", "table"),
    [
        (ClientInviteTransaction, CLIENT_INVITE_TABLE),
        (ClientNonInviteTransaction, CLIENT_NON_INVITE_TABLE),
        (ServerInviteTransaction, SERVER_INVITE_TABLE),
        (ServerNonInviteTransaction, SERVER_NON_INVITE_TABLE),
    ],
)
def test_compiled_rows_follow_the_tables(cls: type, table: dict[object, object]) -> None:
    rows = cls._ROWS  # type: ignore[attr-defined]
    assert rows.keys() == table.keys()
    for key, transition in table.items():
        next_state, runners = rows[key]
        assert next_state is transition.next_state  # type: ignore[attr-defined]
        assert len(runners) == len(transition.steps)  # type: ignore[attr-defined]


def test_timer_deadlines_keep_their_public_form() -> None:
    m = Msgs()
    txn = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    txn.start(0.0)
    txn.send_response(m.s3xx, 1.0)
    # The Trying timer runs to its deadline (no row stops it); it finds a response out.
    assert txn.deadlines == {TimerName.TRYING: 0.1, G: 1.5, H: 33.0}
    assert all(isinstance(name, TimerName) for name in txn.deadlines)
