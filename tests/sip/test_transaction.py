"""RFC 3261 §17 / RFC 6026 transactions: one test per table row, then scenarios."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pytest

from siphon.errors import LocalProtocolError
from siphon.sip.message import Request, Response
from siphon.sip.parser import parse_datagram
from siphon.sip.transaction import (
    CLIENT_INVITE_TABLE,
    CLIENT_NON_INVITE_TABLE,
    LOCAL_INPUTS,
    SERVER_INVITE_TABLE,
    SERVER_NON_INVITE_TABLE,
    Action,
    ClientInviteState,
    ClientInviteTransaction,
    ClientNonInviteState,
    ClientNonInviteTransaction,
    Deliver,
    Input,
    Send,
    ServerInviteState,
    ServerInviteTransaction,
    ServerNonInviteState,
    ServerNonInviteTransaction,
    SipTimers,
    StartTimer,
    StopTimer,
    Terminated,
    TimedOut,
    TimerName,
    TransportFailed,
    ack_for_non_2xx,
    client_key,
    invite_key_for_cancel,
    server_key,
)

A, B, D, E, F, G, H, I, J, K, L, M = (  # noqa: E741 - the RFC names
    TimerName.A,
    TimerName.B,
    TimerName.D,
    TimerName.E,
    TimerName.F,
    TimerName.G,
    TimerName.H,
    TimerName.I,
    TimerName.J,
    TimerName.K,
    TimerName.L,
    TimerName.M,
)
TRYING = TimerName.TRYING  # §17.2.1's 200 ms, SipTimers.trying
TIMERS = SipTimers()
NOW = 10.0  # when a row's non-timer input happens; the arrangement happens at 0


# --- messages -----------------------------------------------------------------------------
def make_request(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bK776asdhds",
    sent_by: str = "pc33.atlanta.example.com:5060",
    to_tag: str | None = None,
    cseq: int = 314159,
    cseq_method: str | None = None,
    extra_via: bool = True,
    routes: bool = True,
) -> Request:
    to = "Bob <sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:bob@biloxi.example.com SIP/2.0",
        f"Via: SIP/2.0/UDP {sent_by};branch={branch}",
    ]
    if extra_via:
        lines.append("Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9")
    if routes:
        lines.append("Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>")
    lines += [
        "Max-Forwards: 69",
        f"To: {to}",
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
        f"CSeq: {cseq} {cseq_method or method}",
        "Contact: <sip:alice@pc33.atlanta.example.com>",
        "Content-Type: application/sdp",
        "Content-Length: 4",
        "",
        "v=0\n",
    ]
    message = parse_datagram("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


def respond(request: Request, status: int, tag: str = "a6c85cf") -> Response:
    return request.make_response(status, to_tag=tag)


@dataclass
class Msgs:
    """Fresh messages for one test: ``a*`` set the state up, ``t*`` trigger the row."""

    invite: Request = field(default_factory=make_request)
    bye: Request = field(default_factory=lambda: make_request("BYE", branch="z9hG4bKbye1"))

    def __post_init__(self) -> None:
        inv, bye = self.invite, self.bye
        # client INVITE
        self.a180, self.a200, self.a486 = respond(inv, 180), respond(inv, 200), respond(inv, 486)
        self.t1xx, self.t2xx, self.t3xx = respond(inv, 183), respond(inv, 200), respond(inv, 486)
        # server INVITE
        self.s1xx, self.s2xx, self.s3xx = respond(inv, 180), respond(inv, 200), respond(inv, 486)
        self.invite_again = make_request()
        self.a_ack = ack_for_non_2xx(inv, self.a486)
        self.t_ack = ack_for_non_2xx(inv, self.a486)
        # non-INVITE
        self.b100, self.b200 = respond(bye, 100), respond(bye, 200)
        self.t_b1xx, self.t_bfinal = respond(bye, 180), respond(bye, 404)
        self.bye_again = make_request("BYE", branch="z9hG4bKbye1")
        self.bye_ack = make_request("ACK", branch="z9hG4bKbye1")


# --- harnesses: bring a transaction to a state, feed it an input ---------------------------
Txn = Any  # one of the four transaction classes
Arrange = Callable[[Msgs], Txn]
Trigger = Callable[[Txn, Msgs], list[Action]]


def fire(name: TimerName) -> Trigger:
    def trigger(txn: Txn, m: Msgs) -> list[Action]:
        return list(txn.timer_fired(name, txn.deadlines.get(name, NOW)))

    return trigger


def transport_error(txn: Txn, m: Msgs) -> list[Action]:
    return list(txn.transport_error(NOW))


def start(txn: Txn, m: Msgs) -> list[Action]:
    return list(txn.start(NOW))


def recv(attr: str) -> Trigger:
    def trigger(txn: Txn, m: Msgs) -> list[Action]:
        return list(txn.receive(getattr(m, attr), NOW))

    return trigger


def send(attr: str) -> Trigger:
    def trigger(txn: Txn, m: Msgs) -> list[Action]:
        return list(txn.send_response(getattr(m, attr), NOW))

    return trigger


def then(arrange: Arrange, step: Callable[[Txn, Msgs], object]) -> Arrange:
    def arranged(m: Msgs) -> Txn:
        txn = arrange(m)
        step(txn, m)
        return txn

    return arranged


def started(factory: Callable[[Msgs], Txn]) -> Arrange:
    def arranged(m: Msgs) -> Txn:
        txn = factory(m)
        txn.start(0.0)
        return txn

    return arranged


def fire_at_deadline(name: TimerName) -> Callable[[Txn, Msgs], object]:
    return lambda txn, m: txn.timer_fired(name, txn.deadlines[name])


@dataclass
class Harness:
    name: str
    table: Mapping[tuple[Any, Input], Any]
    states: type[Enum]
    fresh: Callable[[Msgs], Txn]
    arrange: dict[Any, Arrange]
    triggers: dict[Input, Trigger]


def _client_invite(m: Msgs) -> ClientInviteTransaction:
    return ClientInviteTransaction(m.invite, reliable=False, timers=TIMERS)


def _client_non_invite(m: Msgs) -> ClientNonInviteTransaction:
    return ClientNonInviteTransaction(m.bye, reliable=False, timers=TIMERS)


def _server_invite(m: Msgs) -> ServerInviteTransaction:
    return ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)


def _server_non_invite(m: Msgs) -> ServerNonInviteTransaction:
    return ServerNonInviteTransaction(m.bye, reliable=False, timers=TIMERS)


_ci_calling = started(_client_invite)
_ci_completed = then(_ci_calling, lambda t, m: t.receive(m.a486, 0.0))
CLIENT_INVITE = Harness(
    "client_invite",
    CLIENT_INVITE_TABLE,
    ClientInviteState,
    _client_invite,
    {
        ClientInviteState.CALLING: _ci_calling,
        ClientInviteState.PROCEEDING: then(_ci_calling, lambda t, m: t.receive(m.a180, 0.0)),
        ClientInviteState.COMPLETED: _ci_completed,
        ClientInviteState.ACCEPTED: then(_ci_calling, lambda t, m: t.receive(m.a200, 0.0)),
        ClientInviteState.TERMINATED: then(_ci_completed, fire_at_deadline(D)),
    },
    {
        Input.START: start,
        Input.RECV_1XX: recv("t1xx"),
        Input.RECV_2XX: recv("t2xx"),
        Input.RECV_3XX_6XX: recv("t3xx"),
        Input.TIMER_A: fire(A),
        Input.TIMER_B: fire(B),
        Input.TIMER_D: fire(D),
        Input.TIMER_M: fire(M),
        Input.TRANSPORT_ERROR: transport_error,
    },
)

_cn_trying = started(_client_non_invite)
_cn_completed = then(_cn_trying, lambda t, m: t.receive(m.b200, 0.0))
CLIENT_NON_INVITE = Harness(
    "client_non_invite",
    CLIENT_NON_INVITE_TABLE,
    ClientNonInviteState,
    _client_non_invite,
    {
        ClientNonInviteState.TRYING: _cn_trying,
        ClientNonInviteState.PROCEEDING: then(_cn_trying, lambda t, m: t.receive(m.b100, 0.0)),
        ClientNonInviteState.COMPLETED: _cn_completed,
        ClientNonInviteState.TERMINATED: then(_cn_completed, fire_at_deadline(K)),
    },
    {
        Input.START: start,
        Input.RECV_1XX: recv("t_b1xx"),
        Input.RECV_FINAL: recv("t_bfinal"),
        Input.TIMER_E: fire(E),
        Input.TIMER_F: fire(F),
        Input.TIMER_K: fire(K),
        Input.TRANSPORT_ERROR: transport_error,
    },
)

_si_proceeding = started(_server_invite)
_si_completed = then(_si_proceeding, lambda t, m: t.send_response(m.a486, 0.0))
SERVER_INVITE = Harness(
    "server_invite",
    SERVER_INVITE_TABLE,
    ServerInviteState,
    _server_invite,
    {
        ServerInviteState.PROCEEDING: _si_proceeding,
        ServerInviteState.COMPLETED: _si_completed,
        ServerInviteState.CONFIRMED: then(_si_completed, lambda t, m: t.receive(m.a_ack, 0.0)),
        ServerInviteState.ACCEPTED: then(_si_proceeding, lambda t, m: t.send_response(m.a200, 0.0)),
        ServerInviteState.TERMINATED: then(_si_completed, fire_at_deadline(H)),
    },
    {
        Input.START: start,
        Input.RECV_RETRANSMISSION: recv("invite_again"),
        Input.RECV_ACK: recv("t_ack"),
        Input.SEND_1XX: send("s1xx"),
        Input.SEND_2XX: send("s2xx"),
        Input.SEND_3XX_6XX: send("s3xx"),
        Input.TIMER_G: fire(G),
        Input.TIMER_H: fire(H),
        Input.TIMER_I: fire(I),
        Input.TIMER_L: fire(L),
        Input.TIMER_TRYING: fire(TRYING),
        Input.TRANSPORT_ERROR: transport_error,
    },
)

_sn_trying = started(_server_non_invite)
_sn_completed = then(_sn_trying, lambda t, m: t.send_response(m.b200, 0.0))
SERVER_NON_INVITE = Harness(
    "server_non_invite",
    SERVER_NON_INVITE_TABLE,
    ServerNonInviteState,
    _server_non_invite,
    {
        ServerNonInviteState.TRYING: _sn_trying,
        ServerNonInviteState.PROCEEDING: then(
            _sn_trying, lambda t, m: t.send_response(m.b100, 0.0)
        ),
        ServerNonInviteState.COMPLETED: _sn_completed,
        ServerNonInviteState.TERMINATED: then(_sn_completed, fire_at_deadline(J)),
    },
    {
        Input.START: start,
        Input.RECV_RETRANSMISSION: recv("bye_again"),
        Input.RECV_ACK: recv("bye_ack"),
        Input.SEND_1XX: send("b100"),
        Input.SEND_FINAL: send("t_bfinal"),
        Input.TIMER_J: fire(J),
        Input.TRANSPORT_ERROR: transport_error,
    },
)

HARNESSES = {
    h.name: h for h in (CLIENT_INVITE, CLIENT_NON_INVITE, SERVER_INVITE, SERVER_NON_INVITE)
}


# --- one case per table row -------------------------------------------------------------------
Expect = Callable[[Txn, Msgs], list[Action]]


@dataclass(frozen=True)
class Row:
    table: str
    state: Enum
    input: Input
    next_state: Enum
    expect: Expect

    @property
    def id(self) -> str:
        return f"{self.table}:{self.state.name}+{self.input.name}"


def sent(message: Request | Response) -> Send:
    return Send(message.to_bytes(), message)


def ack_sent(txn: ClientInviteTransaction) -> Send:
    assert txn.ack is not None
    return sent(txn.ack)


def last_sent(txn: Txn) -> Send:
    assert txn.last_response is not None
    return sent(txn.last_response)


_CI, _CN, _SI, _SN = (
    ClientInviteState,
    ClientNonInviteState,
    ServerInviteState,
    ServerNonInviteState,
)

ROWS: list[Row] = [
    # ---- INVITE client (RFC 3261 Figure 5, RFC 6026 Figure 3) ----
    Row("client_invite", _CI.CALLING, Input.START, _CI.CALLING,
        lambda t, m: [sent(m.invite), StartTimer(A, NOW + 0.5), StartTimer(B, NOW + 32)]),
    Row("client_invite", _CI.CALLING, Input.TIMER_A, _CI.CALLING,
        lambda t, m: [sent(m.invite), StartTimer(A, 0.5 + 1.0)]),
    Row("client_invite", _CI.CALLING, Input.TIMER_B, _CI.TERMINATED,
        lambda t, m: [TimedOut(B), Terminated()]),
    Row("client_invite", _CI.CALLING, Input.TRANSPORT_ERROR, _CI.TERMINATED,
        lambda t, m: [TransportFailed(), Terminated()]),
    Row("client_invite", _CI.CALLING, Input.RECV_1XX, _CI.PROCEEDING,
        lambda t, m: [StopTimer(A), StopTimer(B), Deliver(m.t1xx)]),
    Row("client_invite", _CI.CALLING, Input.RECV_2XX, _CI.ACCEPTED,
        lambda t, m: [StopTimer(A), StopTimer(B), Deliver(m.t2xx), StartTimer(M, NOW + 32)]),
    Row("client_invite", _CI.CALLING, Input.RECV_3XX_6XX, _CI.COMPLETED,
        lambda t, m: [StopTimer(A), StopTimer(B), ack_sent(t), Deliver(m.t3xx),
                      StartTimer(D, NOW + 32)]),
    Row("client_invite", _CI.PROCEEDING, Input.RECV_1XX, _CI.PROCEEDING,
        lambda t, m: [Deliver(m.t1xx)]),
    Row("client_invite", _CI.PROCEEDING, Input.RECV_2XX, _CI.ACCEPTED,
        lambda t, m: [Deliver(m.t2xx), StartTimer(M, NOW + 32)]),
    Row("client_invite", _CI.PROCEEDING, Input.RECV_3XX_6XX, _CI.COMPLETED,
        lambda t, m: [ack_sent(t), Deliver(m.t3xx), StartTimer(D, NOW + 32)]),
    Row("client_invite", _CI.COMPLETED, Input.RECV_3XX_6XX, _CI.COMPLETED,
        lambda t, m: [ack_sent(t)]),
    Row("client_invite", _CI.COMPLETED, Input.TIMER_D, _CI.TERMINATED,
        lambda t, m: [Terminated()]),
    Row("client_invite", _CI.COMPLETED, Input.TRANSPORT_ERROR, _CI.TERMINATED,
        lambda t, m: [TransportFailed(), Terminated()]),
    Row("client_invite", _CI.ACCEPTED, Input.RECV_2XX, _CI.ACCEPTED,
        lambda t, m: [Deliver(m.t2xx)]),
    Row("client_invite", _CI.ACCEPTED, Input.TIMER_M, _CI.TERMINATED,
        lambda t, m: [Terminated()]),
    # ---- non-INVITE client (RFC 3261 Figure 6) ----
    Row("client_non_invite", _CN.TRYING, Input.START, _CN.TRYING,
        lambda t, m: [sent(m.bye), StartTimer(E, NOW + 0.5), StartTimer(F, NOW + 32)]),
    Row("client_non_invite", _CN.TRYING, Input.TIMER_E, _CN.TRYING,
        lambda t, m: [sent(m.bye), StartTimer(E, 0.5 + 1.0)]),
    Row("client_non_invite", _CN.TRYING, Input.TIMER_F, _CN.TERMINATED,
        lambda t, m: [TimedOut(F), Terminated()]),
    Row("client_non_invite", _CN.TRYING, Input.TRANSPORT_ERROR, _CN.TERMINATED,
        lambda t, m: [TransportFailed(), Terminated()]),
    Row("client_non_invite", _CN.TRYING, Input.RECV_1XX, _CN.PROCEEDING,
        lambda t, m: [Deliver(m.t_b1xx)]),
    Row("client_non_invite", _CN.TRYING, Input.RECV_FINAL, _CN.COMPLETED,
        lambda t, m: [StopTimer(E), StopTimer(F), Deliver(m.t_bfinal), StartTimer(K, NOW + 5)]),
    Row("client_non_invite", _CN.PROCEEDING, Input.TIMER_E, _CN.PROCEEDING,
        lambda t, m: [sent(m.bye), StartTimer(E, 0.5 + 4.0)]),
    Row("client_non_invite", _CN.PROCEEDING, Input.TIMER_F, _CN.TERMINATED,
        lambda t, m: [TimedOut(F), Terminated()]),
    Row("client_non_invite", _CN.PROCEEDING, Input.TRANSPORT_ERROR, _CN.TERMINATED,
        lambda t, m: [TransportFailed(), Terminated()]),
    Row("client_non_invite", _CN.PROCEEDING, Input.RECV_1XX, _CN.PROCEEDING,
        lambda t, m: [Deliver(m.t_b1xx)]),
    Row("client_non_invite", _CN.PROCEEDING, Input.RECV_FINAL, _CN.COMPLETED,
        lambda t, m: [StopTimer(E), StopTimer(F), Deliver(m.t_bfinal), StartTimer(K, NOW + 5)]),
    Row("client_non_invite", _CN.COMPLETED, Input.TIMER_K, _CN.TERMINATED,
        lambda t, m: [Terminated()]),
    # ---- INVITE server (RFC 3261 Figure 7, RFC 6026 Figure 7) ----
    Row("server_invite", _SI.PROCEEDING, Input.START, _SI.PROCEEDING,
        lambda t, m: [StartTimer(TRYING, NOW + 0.1), Deliver(m.invite)]),
    # The TU has sent nothing yet: 100 Trying, once the timer fires or the INVITE is resent.
    Row("server_invite", _SI.PROCEEDING, Input.TIMER_TRYING, _SI.PROCEEDING,
        lambda t, m: [last_sent(t)]),
    Row("server_invite", _SI.PROCEEDING, Input.RECV_RETRANSMISSION, _SI.PROCEEDING,
        lambda t, m: [last_sent(t)]),
    Row("server_invite", _SI.PROCEEDING, Input.SEND_1XX, _SI.PROCEEDING,
        lambda t, m: [sent(m.s1xx)]),
    Row("server_invite", _SI.PROCEEDING, Input.SEND_2XX, _SI.ACCEPTED,
        lambda t, m: [sent(m.s2xx), StartTimer(L, NOW + 32)]),
    Row("server_invite", _SI.PROCEEDING, Input.SEND_3XX_6XX, _SI.COMPLETED,
        lambda t, m: [sent(m.s3xx), StartTimer(G, NOW + 0.5), StartTimer(H, NOW + 32)]),
    Row("server_invite", _SI.PROCEEDING, Input.TRANSPORT_ERROR, _SI.PROCEEDING,
        lambda t, m: [TransportFailed()]),
    Row("server_invite", _SI.COMPLETED, Input.RECV_RETRANSMISSION, _SI.COMPLETED,
        lambda t, m: [sent(m.a486)]),
    Row("server_invite", _SI.COMPLETED, Input.TIMER_G, _SI.COMPLETED,
        lambda t, m: [sent(m.a486), StartTimer(G, 0.5 + 1.0)]),
    Row("server_invite", _SI.COMPLETED, Input.RECV_ACK, _SI.CONFIRMED,
        lambda t, m: [StopTimer(G), StopTimer(H), StartTimer(I, NOW + 5)]),
    Row("server_invite", _SI.COMPLETED, Input.TIMER_H, _SI.TERMINATED,
        lambda t, m: [TimedOut(H), Terminated()]),
    Row("server_invite", _SI.COMPLETED, Input.TRANSPORT_ERROR, _SI.COMPLETED,
        lambda t, m: [TransportFailed()]),
    Row("server_invite", _SI.CONFIRMED, Input.RECV_ACK, _SI.CONFIRMED,
        lambda t, m: []),
    Row("server_invite", _SI.CONFIRMED, Input.TIMER_I, _SI.TERMINATED,
        lambda t, m: [Terminated()]),
    Row("server_invite", _SI.ACCEPTED, Input.RECV_RETRANSMISSION, _SI.ACCEPTED,
        lambda t, m: []),
    Row("server_invite", _SI.ACCEPTED, Input.RECV_ACK, _SI.ACCEPTED,
        lambda t, m: [Deliver(m.t_ack)]),
    Row("server_invite", _SI.ACCEPTED, Input.SEND_2XX, _SI.ACCEPTED,
        lambda t, m: [sent(m.s2xx)]),
    Row("server_invite", _SI.ACCEPTED, Input.TRANSPORT_ERROR, _SI.ACCEPTED,
        lambda t, m: [TransportFailed()]),
    Row("server_invite", _SI.ACCEPTED, Input.TIMER_L, _SI.TERMINATED,
        lambda t, m: [Terminated()]),
    # ---- non-INVITE server (RFC 3261 Figure 8) ----
    Row("server_non_invite", _SN.TRYING, Input.START, _SN.TRYING,
        lambda t, m: [Deliver(m.bye)]),
    Row("server_non_invite", _SN.TRYING, Input.RECV_RETRANSMISSION, _SN.TRYING,
        lambda t, m: []),
    Row("server_non_invite", _SN.TRYING, Input.SEND_1XX, _SN.PROCEEDING,
        lambda t, m: [sent(m.b100)]),
    Row("server_non_invite", _SN.TRYING, Input.SEND_FINAL, _SN.COMPLETED,
        lambda t, m: [sent(m.t_bfinal), StartTimer(J, NOW + 32)]),
    Row("server_non_invite", _SN.PROCEEDING, Input.RECV_RETRANSMISSION, _SN.PROCEEDING,
        lambda t, m: [sent(m.b100)]),
    Row("server_non_invite", _SN.PROCEEDING, Input.SEND_1XX, _SN.PROCEEDING,
        lambda t, m: [sent(m.b100)]),
    Row("server_non_invite", _SN.PROCEEDING, Input.SEND_FINAL, _SN.COMPLETED,
        lambda t, m: [sent(m.t_bfinal), StartTimer(J, NOW + 32)]),
    Row("server_non_invite", _SN.PROCEEDING, Input.TRANSPORT_ERROR, _SN.TERMINATED,
        lambda t, m: [TransportFailed(), Terminated()]),
    Row("server_non_invite", _SN.COMPLETED, Input.RECV_RETRANSMISSION, _SN.COMPLETED,
        lambda t, m: [sent(m.b200)]),
    Row("server_non_invite", _SN.COMPLETED, Input.TIMER_J, _SN.TERMINATED,
        lambda t, m: [Terminated()]),
    Row("server_non_invite", _SN.COMPLETED, Input.TRANSPORT_ERROR, _SN.TERMINATED,
        lambda t, m: [TransportFailed(), Terminated()]),
]  # fmt: skip


def _arrange(harness: Harness, state: Enum, inp: Input, m: Msgs) -> Txn:
    if inp is Input.START:
        return harness.fresh(m)  # START is the input that leaves the initial state
    return harness.arrange[state](m)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_table_row(row: Row) -> None:
    harness = HARNESSES[row.table]
    transition = harness.table[(row.state, row.input)]
    m = Msgs()
    txn = _arrange(harness, row.state, row.input, m)
    if row.input is not Input.START:
        assert txn.state is row.state
    actions = harness.triggers[row.input](txn, m)
    assert actions == row.expect(txn, m)
    assert txn.state is row.next_state
    assert transition.next_state is row.next_state
    if row.next_state.name == "TERMINATED":
        assert txn.terminated
        assert txn.deadlines == {}


def test_every_table_row_has_a_test_case() -> None:
    listed: dict[str, set[tuple[Enum, Input]]] = {name: set() for name in HARNESSES}
    for row in ROWS:
        key = (row.state, row.input)
        assert key not in listed[row.table], f"duplicate case {row.id}"
        listed[row.table].add(key)
    for name, harness in HARNESSES.items():
        assert listed[name] == set(harness.table), name


def test_tables_use_only_inputs_the_class_produces() -> None:
    for harness in HARNESSES.values():
        for state, inp in harness.table:
            assert isinstance(state, harness.states)
            assert inp in harness.triggers, (harness.name, inp)


def _absent_cells() -> list[tuple[str, Enum, Input]]:
    cells = []
    for name, harness in HARNESSES.items():
        for state in harness.states:
            for inp in harness.triggers:
                if (state, inp) not in harness.table:
                    cells.append((name, state, inp))
    return cells


@pytest.mark.parametrize(
    ("table", "state", "inp"),
    _absent_cells(),
    ids=[f"{t}:{s.name}+{i.name}" for t, s, i in _absent_cells()],
)
def test_inputs_without_a_row(table: str, state: Enum, inp: Input) -> None:
    """Network and timer inputs are absorbed; caller inputs raise naming the state."""
    harness = HARNESSES[table]
    m = Msgs()
    txn = harness.arrange[state](m)
    assert txn.state is state
    deadlines = txn.deadlines
    if inp in LOCAL_INPUTS:
        with pytest.raises(LocalProtocolError):
            harness.triggers[inp](txn, m)
    else:
        assert harness.triggers[inp](txn, m) == []
        if not inp.name.startswith("TIMER_"):
            assert txn.deadlines == deadlines
    assert txn.state is state


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        CLIENT_INVITE_TABLE[(_CI.CALLING, Input.TIMER_M)] = None  # type: ignore[index]


# --- a lazy driver: schedules every StartTimer, never cancels anything ------------------------
class LazyDriver:
    def __init__(self, txn: Txn) -> None:
        self.txn = txn
        self.log: list[tuple[float, Action]] = []
        self._heap: list[tuple[float, int, TimerName]] = []
        self._seq = 0

    def handle(self, now: float, actions: list[Action]) -> list[Action]:
        for action in actions:
            self.log.append((now, action))
            if isinstance(action, StartTimer):
                heapq.heappush(self._heap, (action.deadline, self._seq, action.name))
                self._seq += 1
        return actions

    def run_until(self, end: float) -> None:
        while self._heap and self._heap[0][0] <= end:
            deadline, _, name = heapq.heappop(self._heap)
            self.handle(deadline, self.txn.timer_fired(name, deadline))

    def times_of(self, kind: type) -> list[float]:
        return [when for when, action in self.log if isinstance(action, kind)]


# --- scenarios ----------------------------------------------------------------------------
def test_udp_invite_retransmits_on_timer_a_then_times_out_on_b() -> None:
    m = Msgs()
    txn = ClientInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    driver = LazyDriver(txn)
    driver.handle(0.0, txn.start(0.0))
    driver.run_until(100.0)
    assert driver.times_of(Send) == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(a == sent(m.invite) for _, a in driver.log if isinstance(a, Send))
    assert [a for _, a in driver.log if not isinstance(a, Send | StartTimer)] == [
        TimedOut(B),
        Terminated(),
    ]
    assert driver.times_of(TimedOut) == [32.0]
    # Timer A's 63.5 s deadline fired after the end and was ignored.
    assert driver.log[-1] == (32.0, Terminated())
    assert txn.state is ClientInviteState.TERMINATED


def test_udp_invite_stops_retransmitting_on_provisional() -> None:
    m = Msgs()
    txn = ClientInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    driver = LazyDriver(txn)
    driver.handle(0.0, txn.start(0.0))
    driver.run_until(1.0)
    driver.handle(1.0, txn.receive(m.a180, 1.0))
    driver.run_until(1000.0)  # the lazy driver fires stale A and B: nothing happens
    assert driver.times_of(Send) == [0.0, 0.5]
    assert txn.state is ClientInviteState.PROCEEDING
    assert txn.deadlines == {}
    driver.handle(40.0, txn.receive(m.a486, 40.0))
    assert txn.state is ClientInviteState.COMPLETED
    assert txn.last_response is m.a486
    driver.run_until(1000.0)
    assert driver.log[-1] == (72.0, Terminated())


def test_udp_non_invite_timer_e_doubles_to_t2_then_stays_at_t2_in_proceeding() -> None:
    m = Msgs()
    txn = ClientNonInviteTransaction(m.bye, reliable=False, timers=TIMERS)
    driver = LazyDriver(txn)
    driver.handle(0.0, txn.start(0.0))
    driver.run_until(100.0)
    assert driver.times_of(Send) == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert driver.times_of(TimedOut) == [32.0]

    m = Msgs()
    txn = ClientNonInviteTransaction(m.bye, reliable=False, timers=TIMERS)
    driver = LazyDriver(txn)
    driver.handle(0.0, txn.start(0.0))
    driver.run_until(1.0)
    driver.handle(1.0, txn.receive(m.b100, 1.0))  # E was due at 1.5 with 1 s interval
    driver.run_until(12.0)
    assert driver.times_of(Send) == [0.0, 0.5, 1.5, 5.5, 9.5]
    driver.handle(12.0, txn.receive(m.b200, 12.0))
    driver.run_until(100.0)
    assert txn.state is ClientNonInviteState.TERMINATED
    assert driver.log[-1] == (17.0, Terminated())
    assert driver.times_of(Send) == [0.0, 0.5, 1.5, 5.5, 9.5]


def test_udp_server_invite_timer_g_until_h() -> None:
    m = Msgs()
    txn = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    driver = LazyDriver(txn)
    driver.handle(0.0, txn.start(0.0))
    driver.handle(0.0, txn.send_response(m.s3xx, 0.0))
    driver.run_until(100.0)
    # The TU answered before the Trying timer: no 100 Trying (§17.2.1).
    sends = [(when, a) for when, a in driver.log if isinstance(a, Send)]
    assert [when for when, _ in sends] == [
        0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5,
    ]  # fmt: skip
    assert all(a == sent(m.s3xx) for _, a in sends)
    assert driver.log[-2:] == [(32.0, TimedOut(H)), (32.0, Terminated())]


def test_udp_server_invite_ack_confirms_then_timer_i() -> None:
    m = Msgs()
    txn = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    driver = LazyDriver(txn)
    driver.handle(0.0, txn.start(0.0))
    driver.handle(2.0, txn.send_response(m.s3xx, 2.0))
    driver.run_until(3.0)
    assert driver.handle(3.0, txn.receive(m.t_ack, 3.0)) == [
        StopTimer(G),
        StopTimer(H),
        StartTimer(I, 8.0),
    ]
    assert txn.receive(make_request(), 4.0) == []  # INVITE retransmission absorbed
    assert txn.receive(m.t_ack, 4.0) == []
    driver.run_until(100.0)  # stale G (4.5 s) and H (34 s) fire too, harmlessly
    assert [a for w, a in driver.log if w > 3.0] == [Terminated()]
    assert driver.times_of(Terminated) == [8.0]


def test_udp_server_non_invite() -> None:
    m = Msgs()
    txn = ServerNonInviteTransaction(m.bye, reliable=False, timers=TIMERS)
    assert txn.start(0.0) == [Deliver(m.bye)]
    assert txn.receive(m.bye_again, 0.1) == []  # Trying absorbs
    assert txn.send_response(m.b200, 0.2) == [sent(m.b200), StartTimer(J, 32.2)]
    assert txn.receive(m.bye_again, 1.0) == [sent(m.b200)]
    assert txn.receive(m.bye_again, 2.0) == [sent(m.b200)]
    assert txn.timer_fired(J, 32.2) == [Terminated()]
    assert txn.receive(m.bye_again, 33.0) == []


# --- reliable transports ------------------------------------------------------------------
def test_tcp_client_invite_has_no_timer_a_and_timer_d_is_zero() -> None:
    m = Msgs()
    txn = ClientInviteTransaction(m.invite, reliable=True, timers=TIMERS)
    assert txn.start(0.0) == [sent(m.invite), StartTimer(B, 32.0)]
    assert txn.receive(m.a180, 1.0) == [StopTimer(B), Deliver(m.a180)]
    actions = txn.receive(m.a486, 2.0)
    assert actions == [ack_sent(txn), Deliver(m.a486), Terminated()]
    assert txn.state is ClientInviteState.TERMINATED
    assert txn.receive(m.a486, 2.5) == []  # too late: nothing to ACK with any more


def test_tcp_client_invite_times_out_without_retransmitting() -> None:
    m = Msgs()
    txn = ClientInviteTransaction(m.invite, reliable=True, timers=TIMERS)
    txn.start(0.0)
    assert txn.timer_fired(A, 0.5) == []
    assert txn.timer_fired(B, 32.0) == [TimedOut(B), Terminated()]


def test_tcp_client_invite_2xx_still_waits_timer_m() -> None:
    m = Msgs()
    txn = ClientInviteTransaction(m.invite, reliable=True, timers=TIMERS)
    txn.start(0.0)
    assert txn.receive(m.a200, 1.0) == [StopTimer(B), Deliver(m.a200), StartTimer(M, 33.0)]


def test_tcp_client_non_invite_has_no_timer_e_and_timer_k_is_zero() -> None:
    m = Msgs()
    txn = ClientNonInviteTransaction(m.bye, reliable=True, timers=TIMERS)
    assert txn.start(0.0) == [sent(m.bye), StartTimer(F, 32.0)]
    assert txn.receive(m.b100, 1.0) == [Deliver(m.b100)]
    assert txn.timer_fired(E, 4.0) == []
    assert txn.receive(m.b200, 2.0) == [StopTimer(F), Deliver(m.b200), Terminated()]
    assert txn.state is ClientNonInviteState.TERMINATED


def test_tcp_server_invite_has_no_timer_g_and_timer_i_is_zero() -> None:
    m = Msgs()
    txn = ServerInviteTransaction(m.invite, reliable=True, timers=TIMERS)
    txn.start(0.0)
    assert txn.send_response(m.s3xx, 1.0) == [sent(m.s3xx), StartTimer(H, 33.0)]
    assert txn.receive(m.t_ack, 2.0) == [StopTimer(H), Terminated()]
    assert txn.state is ServerInviteState.TERMINATED


def test_tcp_server_invite_2xx_still_waits_timer_l() -> None:
    m = Msgs()
    txn = ServerInviteTransaction(m.invite, reliable=True, timers=TIMERS)
    txn.start(0.0)
    assert txn.send_response(m.s2xx, 1.0) == [sent(m.s2xx), StartTimer(L, 33.0)]


def test_tcp_server_non_invite_timer_j_is_zero() -> None:
    m = Msgs()
    txn = ServerNonInviteTransaction(m.bye, reliable=True, timers=TIMERS)
    txn.start(0.0)
    assert txn.send_response(m.b200, 1.0) == [sent(m.b200), Terminated()]
    assert txn.state is ServerNonInviteState.TERMINATED
    assert txn.receive(m.bye_again, 1.5) == []


# --- RFC 6026 Accepted ------------------------------------------------------------------------
def test_client_accepted_passes_every_2xx_up_and_ignores_the_rest() -> None:
    m = Msgs()
    txn = ClientInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    txn.start(0.0)
    assert txn.receive(m.a200, 1.0) == [
        StopTimer(A),
        StopTimer(B),
        Deliver(m.a200),
        StartTimer(M, 33.0),
    ]
    assert txn.ack is None  # the ACK for a 2xx is the TU's
    forked = respond(m.invite, 200, tag="otherfork")
    assert txn.receive(m.t2xx, 2.0) == [Deliver(m.t2xx)]
    assert txn.receive(forked, 3.0) == [Deliver(forked)]
    assert txn.last_response is forked
    assert txn.receive(m.t1xx, 4.0) == []
    assert txn.receive(m.t3xx, 5.0) == []
    assert txn.last_response is forked
    assert txn.state is ClientInviteState.ACCEPTED
    assert txn.timer_fired(M, 33.0) == [Terminated()]
    assert txn.receive(m.t2xx, 34.0) == []  # the core passes late 2xx to the TU itself


def test_server_accepted() -> None:
    m = Msgs()
    txn = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    txn.start(0.0)
    txn.send_response(m.s1xx, 0.5)
    assert txn.send_response(m.s2xx, 1.0) == [sent(m.s2xx), StartTimer(L, 33.0)]
    assert txn.last_response is m.s2xx
    # Retransmitted INVITE: absorbed, not answered (the TU retransmits the 2xx itself).
    assert txn.receive(m.invite_again, 1.5) == []
    again = respond(m.invite, 200)
    assert txn.send_response(again, 1.5) == [sent(again)]
    assert txn.receive(m.t_ack, 2.0) == [Deliver(m.t_ack)]
    with pytest.raises(LocalProtocolError, match="Accepted"):
        txn.send_response(respond(m.invite, 486), 3.0)
    with pytest.raises(LocalProtocolError, match="Accepted"):
        txn.send_response(respond(m.invite, 180), 3.0)
    assert txn.transport_error(3.0) == [TransportFailed()]
    assert txn.state is ServerInviteState.ACCEPTED
    assert txn.timer_fired(L, 33.0) == [Terminated()]


def test_server_invite_retransmission_in_proceeding_resends_latest_provisional() -> None:
    m = Msgs()
    txn = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    assert txn.start(0.0) == [StartTimer(TRYING, 0.1), Deliver(m.invite)]
    assert txn.last_response is None  # the TU may still ring or answer in time
    # The INVITE came again before the TU responded: 100 Trying quenches it at once.
    actions = txn.receive(m.invite_again, 0.05)
    trying = txn.last_response
    assert trying is not None and trying.status == 100
    assert trying.to_tag is None  # §17.2.1: no To tag on 100 Trying
    assert actions == [sent(trying)]
    assert txn.timer_fired(TRYING, 0.1) == []  # sent already
    assert txn.receive(m.invite_again, 0.2) == [sent(trying)]  # resent, not made again
    txn.send_response(m.s1xx, 0.3)
    assert txn.receive(m.invite_again, 0.4) == [sent(m.s1xx)]


def test_server_invite_100_trying_only_when_the_tu_is_silent_at_the_trying_timer() -> None:
    m = Msgs()
    silent = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    silent.start(0.0)
    actions = silent.timer_fired(TRYING, 0.1)
    assert silent.last_response is not None and silent.last_response.status == 100
    assert actions == [sent(silent.last_response)]
    assert silent.receive(m.invite_again, 0.5) == actions  # the 100 is what is resent
    # A TU that rang first: the timer finds a response out and sends nothing.
    ringing = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    ringing.start(0.0)
    ringing.send_response(m.s1xx, 0.01)
    assert ringing.timer_fired(TRYING, 0.1) == []
    assert ringing.last_response is m.s1xx
    # Answered: Accepted has no row for the timer, it is absorbed.
    answered = ServerInviteTransaction(m.invite, reliable=True, timers=TIMERS)
    answered.start(0.0)
    answered.send_response(m.s2xx, 0.01)
    assert answered.timer_fired(TRYING, 0.1) == []
    assert answered.state is ServerInviteState.ACCEPTED


def test_server_invite_trying_zero_sends_100_once_the_tu_has_seen_the_invite() -> None:
    m = Msgs()
    txn = ServerInviteTransaction(m.invite, reliable=False, timers=SipTimers(trying=0))
    actions = txn.start(0.0)
    assert txn.last_response is not None and txn.last_response.status == 100
    # The TU saw the INVITE first (it could have answered from Deliver), then the 100.
    assert actions == [Deliver(m.invite), sent(txn.last_response)]
    assert txn.deadlines == {}


def test_server_invite_without_automatic_100_trying() -> None:
    m = Msgs()
    txn = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS, send_100_trying=False)
    assert txn.start(0.0) == [StartTimer(TRYING, 0.1), Deliver(m.invite)]
    assert txn.timer_fired(TRYING, 0.1) == []
    assert txn.last_response is None
    assert txn.receive(m.invite_again, 0.2) == []  # nothing to resend yet


# --- ACK for a non-2xx final ---------------------------------------------------------------
def test_ack_for_486_has_exactly_the_rfc_3261_headers() -> None:
    m = Msgs()
    txn = ClientInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    txn.start(0.0)
    actions = txn.receive(m.a486, 1.0)
    ack = txn.ack
    assert ack is not None
    assert actions[2] == Send(ack.to_bytes(), ack)
    assert ack.method == "ACK"
    assert ack.uri == "sip:bob@biloxi.example.com"
    assert ack.headers == [
        ("Via", "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds"),
        ("Route", "<sip:p1.example.com;lr>"),
        ("Route", "<sip:p2.example.com;lr>"),
        ("Max-Forwards", "70"),
        ("From", "Alice <sip:alice@atlanta.example.com>;tag=1928301774"),
        ("To", "Bob <sip:bob@biloxi.example.com>;tag=a6c85cf"),
        ("Call-ID", "a84b4c76e66710@pc33.atlanta.example.com"),
        ("CSeq", "314159 ACK"),
        ("Content-Length", "0"),
    ]
    assert ack.body == b""
    assert ack.to_tag == "a6c85cf"
    assert ack.cseq.seq == m.invite.cseq.seq
    # It parses back, and matches the INVITE transaction on both sides.
    reparsed = parse_datagram(ack.to_bytes())
    assert isinstance(reparsed, Request)
    assert client_key(reparsed) == client_key(m.invite)
    assert server_key(reparsed) == server_key(m.invite)


def test_ack_without_routes() -> None:
    invite = make_request(routes=False, extra_via=False)
    ack = ack_for_non_2xx(invite, respond(invite, 603))
    assert "Route" not in ack
    assert ack.count("Via") == 1


def test_retransmitted_final_is_acked_again_not_delivered() -> None:
    m = Msgs()
    txn = ClientInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    txn.start(0.0)
    first = txn.receive(m.a486, 1.0)
    first_ack = txn.ack
    assert first_ack is not None
    again = txn.receive(m.t3xx, 2.0)
    assert again == [ack_sent(txn)]
    assert again[0].data == first[2].data  # type: ignore[union-attr]
    assert not any(isinstance(a, Deliver) for a in again)


# --- timers: stale fires -------------------------------------------------------------------
def test_stopped_timer_firing_is_ignored() -> None:
    m = Msgs()
    txn = ClientInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    txn.start(0.0)
    txn.receive(m.a180, 0.1)
    assert txn.timer_fired(A, 0.5) == []
    assert txn.timer_fired(B, 32.0) == []
    assert txn.state is ClientInviteState.PROCEEDING


def test_superseded_deadline_is_ignored() -> None:
    m = Msgs()
    txn = ClientInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    txn.start(0.0)
    assert txn.timer_fired(A, 0.5) == [sent(m.invite), StartTimer(A, 1.5)]
    # The same 0.5 s deadline fires again (a driver that never cancels): ignored.
    assert txn.timer_fired(A, 0.5) == []
    assert txn.timer_fired(A, 1.0) == []
    assert txn.deadlines == {A: 1.5, B: 32.0}
    assert txn.timer_fired(A, 1.5) == [sent(m.invite), StartTimer(A, 3.5)]


def test_timer_fired_slightly_early_still_counts() -> None:
    m = Msgs()
    txn = ClientInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    txn.start(0.0)
    assert txn.timer_fired(A, 0.499) == [sent(m.invite), StartTimer(A, pytest.approx(1.499))]


def test_timer_fired_late_counts() -> None:
    m = Msgs()
    txn = ClientInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    txn.start(0.0)
    assert txn.timer_fired(B, 40.0) == [TimedOut(B), Terminated()]


def test_timer_never_started_is_ignored() -> None:
    m = Msgs()
    txn = ServerNonInviteTransaction(m.bye, reliable=False, timers=TIMERS)
    assert txn.timer_fired(J, 100.0) == []  # not even started
    txn.start(0.0)
    assert txn.timer_fired(J, 100.0) == []
    assert txn.timer_fired(A, 100.0) == []  # not a timer of this kind


def test_custom_timers_drive_everything() -> None:
    timers = SipTimers(t1=0.1, t2=0.4, t4=1.0)
    m = Msgs()
    txn = ClientNonInviteTransaction(m.bye, reliable=False, timers=timers)
    assert txn.start(0.0) == [sent(m.bye), StartTimer(E, 0.1), StartTimer(F, 6.4)]
    assert txn.timer_fired(E, 0.1) == [sent(m.bye), StartTimer(E, pytest.approx(0.3))]


# --- LocalProtocolError ----------------------------------------------------------------------
def test_send_after_final_names_the_state() -> None:
    m = Msgs()
    txn = ServerNonInviteTransaction(m.bye, reliable=False, timers=TIMERS)
    txn.start(0.0)
    txn.send_response(m.b200, 0.1)
    with pytest.raises(LocalProtocolError, match="state Completed"):
        txn.send_response(respond(m.bye, 500), 0.2)
    with pytest.raises(LocalProtocolError, match="state Completed"):
        txn.send_response(respond(m.bye, 100), 0.2)


def test_server_invite_send_after_non_2xx_final() -> None:
    m = Msgs()
    txn = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    txn.start(0.0)
    txn.send_response(m.s3xx, 0.1)
    with pytest.raises(LocalProtocolError, match=r"2xx.*state Completed"):
        txn.send_response(m.s2xx, 0.2)
    txn.receive(m.t_ack, 0.3)
    with pytest.raises(LocalProtocolError, match="state Confirmed"):
        txn.send_response(m.s1xx, 0.4)


def test_send_after_terminated() -> None:
    m = Msgs()
    txn = ServerNonInviteTransaction(m.bye, reliable=True, timers=TIMERS)
    txn.start(0.0)
    txn.send_response(m.b200, 0.1)
    with pytest.raises(LocalProtocolError, match="state Terminated"):
        txn.send_response(m.b200, 0.2)


def test_start_twice_and_use_before_start() -> None:
    m = Msgs()
    client = ClientInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    with pytest.raises(LocalProtocolError, match="start"):
        client.receive(m.a180, 0.0)
    with pytest.raises(LocalProtocolError, match="start"):
        client.transport_error(0.0)
    client.start(0.0)
    with pytest.raises(LocalProtocolError, match="already started"):
        client.start(0.1)
    server = ServerInviteTransaction(make_request(), reliable=False, timers=TIMERS)
    with pytest.raises(LocalProtocolError, match="start"):
        server.send_response(m.s1xx, 0.0)


def test_status_out_of_range() -> None:
    m = Msgs()
    txn = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    txn.start(0.0)
    for status in (99, 700):
        with pytest.raises(LocalProtocolError, match="not a SIP status"):
            txn.send_response(Response(status, "Odd"), 0.1)


def test_wrong_request_kinds() -> None:
    m = Msgs()
    with pytest.raises(LocalProtocolError, match="ClientNonInviteTransaction"):
        ClientInviteTransaction(m.bye, reliable=False, timers=TIMERS)
    with pytest.raises(LocalProtocolError, match="ClientInviteTransaction"):
        ClientNonInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    with pytest.raises(LocalProtocolError, match="ACK"):
        ClientNonInviteTransaction(m.t_ack, reliable=False, timers=TIMERS)
    with pytest.raises(LocalProtocolError, match="ServerNonInviteTransaction"):
        ServerInviteTransaction(m.bye, reliable=False, timers=TIMERS)
    with pytest.raises(LocalProtocolError, match="ServerInviteTransaction"):
        ServerNonInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    server = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    server.start(0.0)
    cancel = make_request("CANCEL", extra_via=False, routes=False)
    with pytest.raises(LocalProtocolError, match="CANCEL is its own transaction"):
        server.receive(cancel, 0.1)


# --- transport errors ----------------------------------------------------------------------
def test_client_transport_error_fails_the_transaction() -> None:
    m = Msgs()
    txn = ClientNonInviteTransaction(m.bye, reliable=True, timers=TIMERS)
    txn.start(0.0)
    assert txn.transport_error(0.1) == [TransportFailed(), Terminated()]
    assert txn.transport_error(0.2) == []


def test_server_invite_transport_error_keeps_state_rfc_6026() -> None:
    m = Msgs()
    txn = ServerInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    txn.start(0.0)
    txn.send_response(m.s3xx, 0.0)
    assert txn.transport_error(0.1) == [TransportFailed()]
    assert txn.state is ServerInviteState.COMPLETED
    assert txn.receive(m.invite_again, 0.2) == [sent(m.s3xx)]  # still absorbing


# --- public attributes ---------------------------------------------------------------------
def test_common_attributes() -> None:
    m = Msgs()
    client = ClientInviteTransaction(m.invite, reliable=True, timers=TIMERS)
    assert client.request is m.invite
    assert client.reliable is True
    assert client.timers is TIMERS
    assert client.key == client_key(m.invite)
    assert client.last_response is None
    assert client.state is ClientInviteState.CALLING
    assert "INVITE" in repr(client) and "Calling" in repr(client)
    server = ServerNonInviteTransaction(m.bye, reliable=False, timers=TIMERS)
    assert server.key == server_key(m.bye)
    assert server.state is ServerNonInviteState.TRYING
    assert not server.terminated


# --- matching keys ---------------------------------------------------------------------------
def test_client_key_matches_responses_by_branch_and_cseq_method() -> None:
    invite = make_request()
    assert client_key(invite) == ("z9hg4bk776asdhds", "INVITE")
    assert client_key(respond(invite, 180)) == client_key(invite)
    assert client_key(respond(invite, 486)) == client_key(invite)
    # Branch compares case-insensitively.
    assert client_key(make_request(branch="Z9HG4BK776ASDHDS")) == client_key(invite)
    # The CANCEL shares the INVITE's branch but is its own transaction.
    cancel = make_request("CANCEL")
    assert client_key(cancel) == ("z9hg4bk776asdhds", "CANCEL")
    assert client_key(respond(cancel, 200)) == client_key(cancel) != client_key(invite)
    # The ACK for a non-2xx belongs to the INVITE transaction.
    assert client_key(make_request("ACK")) == client_key(invite)
    # Another branch, another transaction.
    assert client_key(make_request(branch="z9hG4bKother")) != client_key(invite)


def test_server_key_rfc_3261() -> None:
    invite = make_request()
    key = server_key(invite)
    assert key == ("rfc3261", "z9hg4bk776asdhds", "pc33.atlanta.example.com", "5060", "INVITE")
    assert server_key(make_request()) == key  # retransmission
    assert server_key(make_request("ACK")) == key  # ACK -> INVITE
    # sent-by takes part: same branch from elsewhere is another transaction.
    assert server_key(make_request(sent_by="evil.example.com:5060")) != key
    assert server_key(make_request(sent_by="pc33.atlanta.example.com")) != key
    # Method takes part (CANCEL, or a non-INVITE reusing a branch).
    cancel = make_request("CANCEL")
    assert server_key(cancel) != key
    assert server_key(cancel)[-1] == "CANCEL"
    assert invite_key_for_cancel(cancel) == key
    # Parameters the transport adds (received, rport) do not matter.
    with_received = make_request()
    with_received.set(
        "Via",
        "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;received=192.0.2.1",
    )
    assert server_key(with_received) == key


def test_server_key_rfc_2543_fallback() -> None:
    invite = make_request(branch="1234old", extra_via=False)
    key = server_key(invite)
    assert key[0] == "rfc2543"
    assert server_key(make_request(branch="1234old", extra_via=False)) == key
    # The ACK carries the To tag of our response and still matches the INVITE.
    ack = make_request("ACK", branch="1234old", extra_via=False, to_tag="srvtag")
    assert server_key(ack) == key
    # ... but not an ACK for another CSeq number, Call-ID or Via.
    assert server_key(make_request("ACK", branch="1234old", cseq=1, extra_via=False)) != key
    assert server_key(make_request("ACK", branch="other", extra_via=False)) != key
    other_via = make_request(branch="1234old", sent_by="elsewhere.example.com", extra_via=False)
    assert server_key(other_via) != key
    # A Via without any branch falls back too.
    no_branch = make_request(extra_via=False)
    no_branch.set("Via", "SIP/2.0/UDP pc33.atlanta.example.com:5060")
    assert server_key(no_branch)[0] == "rfc2543"
    # Non-INVITE requests: the To tag takes part.
    bye = make_request("BYE", branch="1234old", to_tag="x", extra_via=False)
    assert server_key(bye) != server_key(
        make_request("BYE", branch="1234old", to_tag="y", extra_via=False)
    )
    assert server_key(bye) == server_key(
        make_request("BYE", branch="1234old", to_tag="x", extra_via=False)
    )
    # CANCEL finds the INVITE.
    cancel = make_request("CANCEL", branch="1234old", extra_via=False)
    assert server_key(cancel) != key
    assert invite_key_for_cancel(cancel) == key
    # Received/rport added by our transport do not matter.
    received = make_request(branch="1234old", extra_via=False)
    received.set(
        "Via", "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=1234old;rport=5062;received=x"
    )
    assert server_key(received) == key


def test_invite_key_for_cancel_needs_a_cancel() -> None:
    with pytest.raises(LocalProtocolError, match="CANCEL"):
        invite_key_for_cancel(make_request("BYE"))


def test_transaction_keys_match_helpers() -> None:
    m = Msgs()
    client = ClientInviteTransaction(m.invite, reliable=False, timers=TIMERS)
    server = ServerInviteTransaction(make_request(), reliable=False, timers=TIMERS)
    assert client.key == client_key(m.a486)
    assert server.key == server_key(m.t_ack)
    assert server.key == invite_key_for_cancel(make_request("CANCEL"))
