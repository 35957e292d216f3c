"""Effect hooks: a driver subclass that carries actions out sees exactly the action lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from siphon.sip.message import Request, Response
from siphon.sip.transaction import (
    Action,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Deliver,
    Send,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    StartTimer,
    StopTimer,
    Terminated,
    TimedOut,
    TimerName,
    TransportFailed,
)
from tests.sip.test_transaction import TIMERS, Msgs, respond

A, D, E, G, H, J, K, L = (TimerName[x] for x in "ADEGHJKL")


class Recording:
    """Overrides every hook, as a driver does: actions recorded as they happen, in order."""

    record: list[Action]

    def _on_send(self, data: bytes, message: Request | Response | None, out: list[Action]) -> None:
        self.record.append(Send(data, message))

    def _on_start_timer(self, name: TimerName, deadline: float, out: list[Action]) -> None:
        self.record.append(StartTimer(name, deadline))

    def _on_stop_timer(self, name: TimerName, out: list[Action]) -> None:
        self.record.append(StopTimer(name))

    def _on_deliver(self, message: Request | Response, out: list[Action]) -> None:
        self.record.append(Deliver(message))

    def _on_timed_out(self, name: TimerName, out: list[Action]) -> None:
        self.record.append(TimedOut(name))

    def _on_transport_failed(self, out: list[Action]) -> None:
        self.record.append(TransportFailed())

    def _on_terminated(self, out: list[Action]) -> None:
        self.record.append(Terminated())


class RecServerInvite(Recording, ServerInviteTransaction):
    pass


class RecServerNonInvite(Recording, ServerNonInviteTransaction):
    pass


class RecClientInvite(Recording, ClientInviteTransaction):
    pass


class RecClientNonInvite(Recording, ClientNonInviteTransaction):
    pass


Op = Callable[[Any, Msgs], list[Action]]


def fire(name: TimerName) -> Op:
    return lambda txn, m: txn.timer_fired(name, txn.deadlines.get(name, 0.0))


def start(txn: Any, m: Msgs) -> list[Action]:
    actions: list[Action] = txn.start(0.0)
    return actions


def send(status: int, request: str = "invite") -> Op:
    return lambda txn, m: txn.send_response(respond(getattr(m, request), status), 1.0)


def recv(attr: str) -> Op:
    return lambda txn, m: txn.receive(getattr(m, attr), 1.5)


def transport_error(txn: Any, m: Msgs) -> list[Action]:
    actions: list[Action] = txn.transport_error(2.0)
    return actions


SERVER_INVITE = [
    [start, send(180), send(486), fire(G), recv("t_ack"), recv("t_ack"), fire(TimerName.I)],
    [start, send(200), recv("invite_again"), recv("t_ack"), send(200), fire(L)],
    [start, send(603), fire(G), fire(G), transport_error, fire(H)],
]
SERVER_NON_INVITE = [
    [start, recv("bye_again"), send(180, "bye"), recv("bye_again"), send(200, "bye"), fire(J)],
    [start, send(100, "bye"), transport_error],
]
CLIENT_INVITE = [
    [start, fire(A), fire(A), recv("a180"), recv("a486"), recv("a486"), fire(D)],
    [start, recv("a200"), recv("a200"), fire(TimerName.M)],
    [start, transport_error],
]
CLIENT_NON_INVITE = [
    [start, fire(E), lambda txn, m: txn.receive(m.b100, 1.0), fire(E), recv("t_bfinal"), fire(K)],
    [start, fire(E), fire(TimerName.F)],
]


def _same(actions: list[Action]) -> list[object]:
    """Actions as comparable values (each run builds its own response objects)."""
    return [
        (a.data, a.message.to_bytes() if a.message is not None else None)
        if isinstance(a, Send)
        else a
        for a in actions
    ]


def _scenarios() -> list[tuple[type, type, list[Op], bool]]:
    cases = []
    for pure, recording, scripts in [
        (ServerInviteTransaction, RecServerInvite, SERVER_INVITE),
        (ServerNonInviteTransaction, RecServerNonInvite, SERVER_NON_INVITE),
        (ClientInviteTransaction, RecClientInvite, CLIENT_INVITE),
        (ClientNonInviteTransaction, RecClientNonInvite, CLIENT_NON_INVITE),
    ]:
        for script in scripts:
            for reliable in (False, True):
                cases.append((pure, recording, script, reliable))
    return cases


@pytest.mark.parametrize(("pure", "recording", "script", "reliable"), _scenarios())
def test_hooks_carry_out_the_very_actions_the_methods_return(
    pure: type, recording: type, script: list[Op], reliable: bool
) -> None:
    m = Msgs()
    request = m.bye if pure in (ServerNonInviteTransaction, ClientNonInviteTransaction) else None
    request = request or m.invite
    plain = pure(request, reliable, TIMERS)
    hooked = recording(request, reliable, TIMERS)
    hooked.record = []
    for op in script:
        expected = op(plain, m)
        before = len(hooked.record)
        assert op(hooked, m) == []  # nothing left to return: the hooks did it all
        assert _same(hooked.record[before:]) == _same(expected)
        assert hooked.state is plain.state
        assert hooked.deadlines == plain.deadlines
    assert hooked.record  # the scripts do something


def test_a_hook_may_answer_from_inside_a_delivery() -> None:
    """A TU answering at once, from the Deliver hook, finds the row's new state."""

    class Answering(Recording, ServerNonInviteTransaction):
        def _on_deliver(self, message: Request | Response, out: list[Action]) -> None:
            super()._on_deliver(message, out)
            assert isinstance(message, Request)
            self.send_response(respond(message, 200), 0.0)

    m = Msgs()
    txn = Answering(m.bye, True, TIMERS)  # reliable: Timer J lasts 0 s
    txn.record = []
    assert txn.start(0.0) == []
    assert [type(a) for a in txn.record] == [Deliver, Send, Terminated]
    assert txn.terminated and txn.deadlines == {}
