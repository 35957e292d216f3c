"""SIP transactions (RFC 3261 §17, updated by RFC 6026), sans-IO.

Each of the four transaction kinds is a transition table, written as data next to
the figure it transcribes:

* ``CLIENT_INVITE_TABLE``      RFC 3261 Figure 5 as updated by RFC 6026 Figure 3
* ``CLIENT_NON_INVITE_TABLE``  RFC 3261 Figure 6
* ``SERVER_INVITE_TABLE``      RFC 3261 Figure 7 as updated by RFC 6026 Figure 7 and §7.1
* ``SERVER_NON_INVITE_TABLE``  RFC 3261 Figure 8

A row maps ``(state, Input)`` to a ``Transition(next_state, steps)``; each class
resolves every ``Step`` of its table to a small function once, at import
(``_compile``). An input with no row
in the current state is handled by one explicit rule (``_run``): inputs from the
network and from timers are *absorbed* (``[]``, state unchanged), while inputs from
our own caller (``start``, ``send_response``) raise ``LocalProtocolError`` naming the
state, because they are bugs in the caller.

Nothing here reads a clock or touches a socket: every method takes ``now`` (seconds on
any monotonic scale) and returns a list of ``Action`` values for the driver to carry
out in order. A driver may instead subclass a kind and override its effect hooks
(``_on_send`` ... ``_on_terminated``), which then carry out each action as its row
produces it (the methods return ``[]``): no action objects, no second dispatch.

``StartTimer`` deadlines are absolute (``now + delay``); restarting a timer replaces
its deadline. ``timer_fired`` for a timer that is not running (stopped, never started,
or whose deadline was replaced by a later one) returns ``[]``, so a driver that never
cancels timers stays correct. After ``Terminated()`` the driver forgets the
transaction and every timer it started.

Timers that last 0 s (D, I, J, K on reliable transports) are not scheduled: the
transaction fires them at once, inside the same call. Timers outside
``STOPPED_TIMERS`` run to their deadline once started.

A server transaction whose final response is out lingers up to 64*T1 only to absorb
retransmissions; ``release()`` lets its driver drop the request and response objects
it no longer needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, ClassVar, Generic, TypeVar

from siphon.errors import LocalProtocolError
from siphon.sip.message import BRANCH_MAGIC, Request, Response
from siphon.sip.timers import RETRANSMISSION_TIMERS, SipTimers, TimerName
from siphon.sip.uri import Via

__all__ = [
    "CLIENT_INVITE_TABLE",
    "CLIENT_NON_INVITE_TABLE",
    "LOCAL_INPUTS",
    "SERVER_INVITE_TABLE",
    "SERVER_NON_INVITE_TABLE",
    "STOPPED_TIMERS",
    "Action",
    "ClientInviteState",
    "ClientInviteTransaction",
    "ClientNonInviteState",
    "ClientNonInviteTransaction",
    "Deliver",
    "Input",
    "Send",
    "ServerInviteState",
    "ServerInviteTransaction",
    "ServerNonInviteState",
    "ServerNonInviteTransaction",
    "SipTimers",
    "StartTimer",
    "Step",
    "StopTimer",
    "Terminated",
    "TimedOut",
    "TimerName",
    "TransactionKey",
    "Transition",
    "TransportFailed",
    "ack_for_non_2xx",
    "client_key",
    "invite_key_for_cancel",
    "server_key",
]


# --- actions ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    """Put ``data`` (the wire form of ``message``) on the transport.

    Client transactions send to the destination their driver chose; server
    transactions answer per the top Via of the request (RFC 3261 §18.2.2).
    """

    data: bytes
    # None only for a resend by a server transaction after ``release()``.
    message: Request | Response | None


@dataclass(frozen=True, slots=True)
class StartTimer:
    """(Re)start timer ``name`` to fire at the absolute time ``deadline``."""

    name: TimerName
    deadline: float


@dataclass(frozen=True, slots=True)
class StopTimer:
    """Timer ``name`` no longer matters; cancelling it is optional."""

    name: TimerName


@dataclass(frozen=True, slots=True)
class Deliver:
    """Pass ``message`` up to the Transaction User."""

    message: Request | Response


@dataclass(frozen=True, slots=True)
class TimedOut:
    """Timer B, F or H fired: the transaction failed; the TU treats it as a 408."""

    name: TimerName


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The transport reported a fatal error for this transaction; inform the TU."""


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction is over: the driver forgets it and all its timers."""


Action = Send | StartTimer | StopTimer | Deliver | TimedOut | TransportFailed | Terminated


# --- table vocabulary -------------------------------------------------------------------
class _Vocabulary(Enum):
    # Enum.__hash__ is Python code (it hashes the member's name), and these members are
    # dictionary keys on every transaction step. Members are singletons compared by
    # identity, so identity hashing (C) is equivalent.
    __hash__ = object.__hash__


class Input(_Vocabulary):
    """What can happen to a transaction."""

    START = "start"  # the TU created the transaction (client) / the request arrived (server)
    RECV_1XX = "recv 1xx"
    RECV_2XX = "recv 2xx"  # INVITE only
    RECV_3XX_6XX = "recv 300-699"  # INVITE only
    RECV_FINAL = "recv 200-699"  # non-INVITE: 2xx and failures are handled alike
    RECV_RETRANSMISSION = "recv request retransmission"
    RECV_ACK = "recv ACK"
    SEND_1XX = "TU sends 1xx"
    SEND_2XX = "TU sends 2xx"  # INVITE only
    SEND_3XX_6XX = "TU sends 300-699"  # INVITE only
    SEND_FINAL = "TU sends 200-699"  # non-INVITE
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TIMER_TRYING = "Timer Trying"
    TRANSPORT_ERROR = "transport error"


# Inputs that come from our own caller: with no row they raise instead of being absorbed.
LOCAL_INPUTS = frozenset(
    {Input.START, Input.SEND_1XX, Input.SEND_2XX, Input.SEND_3XX_6XX, Input.SEND_FINAL}
)

_TIMER_INPUT: dict[TimerName, Input] = {name: Input[f"TIMER_{name.value}"] for name in TimerName}
_INPUT_TIMER: dict[Input, TimerName] = {inp: name for name, inp in _TIMER_INPUT.items()}


class Step(_Vocabulary):
    """The small actions a transition is made of."""

    SEND_REQUEST = "send (or retransmit) the request"
    SEND_ACK = "build and send the ACK for a 300-699 response (§17.1.1.3)"
    SEND_TRYING = "send 100 Trying (§17.2.1) if no response was sent, unless disabled"
    SEND_RESPONSE = "send the TU's response and remember it"
    RESEND_LAST_RESPONSE = "resend the last response sent, if any"
    DELIVER = "pass the message to the TU"
    REPORT_TIMEOUT = "tell the TU the transaction timed out"
    REPORT_TRANSPORT_ERROR = "tell the TU the transport failed"
    TERMINATE = "tell the driver to forget the transaction"
    # Start a timer at its initial value. A, E and G: unreliable transports only.
    START_A = "start Timer A"
    START_B = "start Timer B"
    START_D = "start Timer D"
    START_E = "start Timer E"
    START_F = "start Timer F"
    START_G = "start Timer G"
    START_H = "start Timer H"
    START_I = "start Timer I"
    START_J = "start Timer J"
    START_K = "start Timer K"
    START_L = "start Timer L"
    START_M = "start Timer M"
    START_TRYING = "start the Trying timer (§17.2.1's 200 ms)"
    # Restart a retransmission timer with a longer interval (SipTimers.backoff).
    BACKOFF_A = "restart Timer A, doubled"
    BACKOFF_E = "restart Timer E, doubled up to T2"
    BACKOFF_G = "restart Timer G, doubled up to T2"
    RESTART_E_AT_T2 = "restart Timer E at T2"
    STOP_A = "stop Timer A"
    STOP_B = "stop Timer B"
    STOP_E = "stop Timer E"
    STOP_F = "stop Timer F"
    STOP_G = "stop Timer G"
    STOP_H = "stop Timer H"


_START_STEPS: dict[Step, TimerName] = {Step[f"START_{t.value}"]: t for t in TimerName}
_BACKOFF_STEPS: dict[Step, TimerName] = {
    Step.BACKOFF_A: TimerName.A,
    Step.BACKOFF_E: TimerName.E,
    Step.BACKOFF_G: TimerName.G,
}
_STOP_STEPS: dict[Step, TimerName] = {
    Step.STOP_A: TimerName.A,
    Step.STOP_B: TimerName.B,
    Step.STOP_E: TimerName.E,
    Step.STOP_F: TimerName.F,
    Step.STOP_G: TimerName.G,
    Step.STOP_H: TimerName.H,
}

S = TypeVar("S", bound=Enum)


@dataclass(frozen=True, slots=True)
class Transition(Generic[S]):
    next_state: S
    steps: tuple[Step, ...] = ()


def _to(next_state: S, *steps: Step) -> Transition[S]:
    return Transition(next_state, steps)


# --- states -------------------------------------------------------------------------------
class ClientInviteState(_Vocabulary):
    CALLING = "Calling"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class ClientNonInviteState(_Vocabulary):
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class ServerInviteState(_Vocabulary):
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class ServerNonInviteState(_Vocabulary):
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


# --- the tables ---------------------------------------------------------------------------
# Rows leading to Terminated do not stop running timers: Terminated() drops them all.
_CI = ClientInviteState
CLIENT_INVITE_TABLE: Mapping[tuple[ClientInviteState, Input], Transition[ClientInviteState]]
CLIENT_INVITE_TABLE = MappingProxyType(
    {
        # §17.1.1.2: send the INVITE; A (unreliable only) and B.
        (_CI.CALLING, Input.START): _to(_CI.CALLING, Step.SEND_REQUEST, Step.START_A, Step.START_B),
        (_CI.CALLING, Input.TIMER_A): _to(_CI.CALLING, Step.SEND_REQUEST, Step.BACKOFF_A),
        (_CI.CALLING, Input.TIMER_B): _to(_CI.TERMINATED, Step.REPORT_TIMEOUT, Step.TERMINATE),
        (_CI.CALLING, Input.TRANSPORT_ERROR): _to(
            _CI.TERMINATED, Step.REPORT_TRANSPORT_ERROR, Step.TERMINATE
        ),
        # Figure 5: B only guards Calling; in Proceeding the TU decides how long to wait.
        (_CI.CALLING, Input.RECV_1XX): _to(_CI.PROCEEDING, Step.STOP_A, Step.STOP_B, Step.DELIVER),
        # RFC 6026 (§17.1.1.2 as updated): 2xx to the TU, which ACKs it itself.
        (_CI.CALLING, Input.RECV_2XX): _to(
            _CI.ACCEPTED, Step.STOP_A, Step.STOP_B, Step.DELIVER, Step.START_M
        ),
        (_CI.CALLING, Input.RECV_3XX_6XX): _to(
            _CI.COMPLETED, Step.STOP_A, Step.STOP_B, Step.SEND_ACK, Step.DELIVER, Step.START_D
        ),
        (_CI.PROCEEDING, Input.RECV_1XX): _to(_CI.PROCEEDING, Step.DELIVER),
        (_CI.PROCEEDING, Input.RECV_2XX): _to(_CI.ACCEPTED, Step.DELIVER, Step.START_M),
        (_CI.PROCEEDING, Input.RECV_3XX_6XX): _to(
            _CI.COMPLETED, Step.SEND_ACK, Step.DELIVER, Step.START_D
        ),
        # §17.1.1.2: a retransmitted final response is ACKed again, not passed up.
        (_CI.COMPLETED, Input.RECV_3XX_6XX): _to(_CI.COMPLETED, Step.SEND_ACK),
        (_CI.COMPLETED, Input.TIMER_D): _to(_CI.TERMINATED, Step.TERMINATE),
        (_CI.COMPLETED, Input.TRANSPORT_ERROR): _to(
            _CI.TERMINATED, Step.REPORT_TRANSPORT_ERROR, Step.TERMINATE
        ),
        # RFC 6026: every 2xx (retransmission or fork) goes up; the TU ACKs it.
        (_CI.ACCEPTED, Input.RECV_2XX): _to(_CI.ACCEPTED, Step.DELIVER),
        (_CI.ACCEPTED, Input.TIMER_M): _to(_CI.TERMINATED, Step.TERMINATE),
    }
)

_CN = ClientNonInviteState
CLIENT_NON_INVITE_TABLE: Mapping[
    tuple[ClientNonInviteState, Input], Transition[ClientNonInviteState]
]
CLIENT_NON_INVITE_TABLE = MappingProxyType(
    {
        # §17.1.2.2: send the request; E (unreliable only) and F.
        (_CN.TRYING, Input.START): _to(_CN.TRYING, Step.SEND_REQUEST, Step.START_E, Step.START_F),
        (_CN.TRYING, Input.TIMER_E): _to(_CN.TRYING, Step.SEND_REQUEST, Step.BACKOFF_E),
        (_CN.TRYING, Input.TIMER_F): _to(_CN.TERMINATED, Step.REPORT_TIMEOUT, Step.TERMINATE),
        (_CN.TRYING, Input.TRANSPORT_ERROR): _to(
            _CN.TERMINATED, Step.REPORT_TRANSPORT_ERROR, Step.TERMINATE
        ),
        (_CN.TRYING, Input.RECV_1XX): _to(_CN.PROCEEDING, Step.DELIVER),
        (_CN.TRYING, Input.RECV_FINAL): _to(
            _CN.COMPLETED, Step.STOP_E, Step.STOP_F, Step.DELIVER, Step.START_K
        ),
        # §17.1.2.2: in Proceeding, E keeps retransmitting at a fixed T2.
        (_CN.PROCEEDING, Input.TIMER_E): _to(
            _CN.PROCEEDING, Step.SEND_REQUEST, Step.RESTART_E_AT_T2
        ),
        (_CN.PROCEEDING, Input.TIMER_F): _to(_CN.TERMINATED, Step.REPORT_TIMEOUT, Step.TERMINATE),
        (_CN.PROCEEDING, Input.TRANSPORT_ERROR): _to(
            _CN.TERMINATED, Step.REPORT_TRANSPORT_ERROR, Step.TERMINATE
        ),
        (_CN.PROCEEDING, Input.RECV_1XX): _to(_CN.PROCEEDING, Step.DELIVER),
        (_CN.PROCEEDING, Input.RECV_FINAL): _to(
            _CN.COMPLETED, Step.STOP_E, Step.STOP_F, Step.DELIVER, Step.START_K
        ),
        # Completed buffers (absorbs) response retransmissions until K fires.
        (_CN.COMPLETED, Input.TIMER_K): _to(_CN.TERMINATED, Step.TERMINATE),
    }
)

_SI = ServerInviteState
SERVER_INVITE_TABLE: Mapping[tuple[ServerInviteState, Input], Transition[ServerInviteState]]
SERVER_INVITE_TABLE = MappingProxyType(
    {
        # §17.2.1: pass the INVITE up; 100 Trying quenches retransmissions unless the
        # TU responds before the Trying timer (at most 200 ms) or the INVITE comes again.
        (_SI.PROCEEDING, Input.START): _to(_SI.PROCEEDING, Step.START_TRYING, Step.DELIVER),
        (_SI.PROCEEDING, Input.TIMER_TRYING): _to(_SI.PROCEEDING, Step.SEND_TRYING),
        (_SI.PROCEEDING, Input.RECV_RETRANSMISSION): _to(
            _SI.PROCEEDING, Step.RESEND_LAST_RESPONSE, Step.SEND_TRYING
        ),
        (_SI.PROCEEDING, Input.SEND_1XX): _to(_SI.PROCEEDING, Step.SEND_RESPONSE),
        # RFC 6026 (§17.2.1 as updated): 2xx -> Accepted; the TU retransmits it (§13.3.1.4).
        (_SI.PROCEEDING, Input.SEND_2XX): _to(_SI.ACCEPTED, Step.SEND_RESPONSE, Step.START_L),
        (_SI.PROCEEDING, Input.SEND_3XX_6XX): _to(
            _SI.COMPLETED, Step.SEND_RESPONSE, Step.START_G, Step.START_H
        ),
        # RFC 6026 §7.1: a transport error never discards server INVITE state.
        (_SI.PROCEEDING, Input.TRANSPORT_ERROR): _to(_SI.PROCEEDING, Step.REPORT_TRANSPORT_ERROR),
        (_SI.COMPLETED, Input.RECV_RETRANSMISSION): _to(_SI.COMPLETED, Step.RESEND_LAST_RESPONSE),
        (_SI.COMPLETED, Input.TIMER_G): _to(
            _SI.COMPLETED, Step.RESEND_LAST_RESPONSE, Step.BACKOFF_G
        ),
        # §17.2.1: the ACK for a non-2xx ends here, it is not passed up.
        (_SI.COMPLETED, Input.RECV_ACK): _to(_SI.CONFIRMED, Step.STOP_G, Step.STOP_H, Step.START_I),
        (_SI.COMPLETED, Input.TIMER_H): _to(_SI.TERMINATED, Step.REPORT_TIMEOUT, Step.TERMINATE),
        (_SI.COMPLETED, Input.TRANSPORT_ERROR): _to(_SI.COMPLETED, Step.REPORT_TRANSPORT_ERROR),
        # §17.2.1: Confirmed absorbs ACK retransmissions until I fires.
        (_SI.CONFIRMED, Input.RECV_ACK): _to(_SI.CONFIRMED),
        (_SI.CONFIRMED, Input.TIMER_I): _to(_SI.TERMINATED, Step.TERMINATE),
        # RFC 6026 (§17.2.1 as updated): INVITE retransmissions are absorbed (the TU
        # resends its 2xx); the ACK for the 2xx goes to the TU; further 2xx are sent.
        (_SI.ACCEPTED, Input.RECV_RETRANSMISSION): _to(_SI.ACCEPTED),
        (_SI.ACCEPTED, Input.RECV_ACK): _to(_SI.ACCEPTED, Step.DELIVER),
        (_SI.ACCEPTED, Input.SEND_2XX): _to(_SI.ACCEPTED, Step.SEND_RESPONSE),
        (_SI.ACCEPTED, Input.TRANSPORT_ERROR): _to(_SI.ACCEPTED, Step.REPORT_TRANSPORT_ERROR),
        (_SI.ACCEPTED, Input.TIMER_L): _to(_SI.TERMINATED, Step.TERMINATE),
    }
)

_SN = ServerNonInviteState
SERVER_NON_INVITE_TABLE: Mapping[
    tuple[ServerNonInviteState, Input], Transition[ServerNonInviteState]
]
SERVER_NON_INVITE_TABLE = MappingProxyType(
    {
        # §17.2.2: pass the request up; retransmissions are absorbed until the TU answers.
        (_SN.TRYING, Input.START): _to(_SN.TRYING, Step.DELIVER),
        (_SN.TRYING, Input.RECV_RETRANSMISSION): _to(_SN.TRYING),
        (_SN.TRYING, Input.SEND_1XX): _to(_SN.PROCEEDING, Step.SEND_RESPONSE),
        (_SN.TRYING, Input.SEND_FINAL): _to(_SN.COMPLETED, Step.SEND_RESPONSE, Step.START_J),
        (_SN.PROCEEDING, Input.RECV_RETRANSMISSION): _to(_SN.PROCEEDING, Step.RESEND_LAST_RESPONSE),
        (_SN.PROCEEDING, Input.SEND_1XX): _to(_SN.PROCEEDING, Step.SEND_RESPONSE),
        (_SN.PROCEEDING, Input.SEND_FINAL): _to(_SN.COMPLETED, Step.SEND_RESPONSE, Step.START_J),
        (_SN.PROCEEDING, Input.TRANSPORT_ERROR): _to(
            _SN.TERMINATED, Step.REPORT_TRANSPORT_ERROR, Step.TERMINATE
        ),
        (_SN.COMPLETED, Input.RECV_RETRANSMISSION): _to(_SN.COMPLETED, Step.RESEND_LAST_RESPONSE),
        (_SN.COMPLETED, Input.TIMER_J): _to(_SN.TERMINATED, Step.TERMINATE),
        (_SN.COMPLETED, Input.TRANSPORT_ERROR): _to(
            _SN.TERMINATED, Step.REPORT_TRANSPORT_ERROR, Step.TERMINATE
        ),
    }
)


# Timers that some row stops; every other timer, once started, runs to its deadline
# (a driver may schedule those without a way to cancel them).
STOPPED_TIMERS = frozenset(
    _STOP_STEPS[step]
    for table in (
        CLIENT_INVITE_TABLE,
        CLIENT_NON_INVITE_TABLE,
        SERVER_INVITE_TABLE,
        SERVER_NON_INVITE_TABLE,
    )
    for transition in table.values()
    for step in transition.steps
    if step in _STOP_STEPS
)


# --- matching keys (§17.1.3, §17.2.3) -------------------------------------------------------
TransactionKey = tuple[str, ...]

# Parameters the receiving transport adds to the top Via (§18.2.1, RFC 3581); they do
# not take part in RFC 2543 Via comparison.
_RECEIVER_VIA_PARAMS = frozenset({"received", "rport"})


def client_key(message: Request | Response) -> TransactionKey:
    """The client transaction a message belongs to (RFC 3261 §17.1.3).

    ``(branch of the top Via, method)``: for a response, the CSeq method (so the
    responses to a CANCEL, which shares the INVITE's branch, stay apart); ACK maps to
    INVITE. The branch compares case-insensitively (§7.3.1).
    """
    branch = message.top_via.branch or ""
    method = message.method if isinstance(message, Request) else message.cseq.method
    # An ACK for a non-2xx response belongs to the INVITE transaction (§17.1.3, §17.2.3).
    return (branch.lower(), "INVITE" if method == "ACK" else method)


def _via_text(via: Via) -> str:
    params = sorted(
        f"{name.lower()}={'' if value is None else value}"
        for name, value in via.params.items()
        if name.lower() not in _RECEIVER_VIA_PARAMS
    )
    port = "" if via.port is None else str(via.port)
    return f"{via.transport.upper()} {via.host.lower()}:{port};{';'.join(params)}"


def _server_key(request: Request, method: str) -> TransactionKey:
    via = request.top_via
    branch = via.params.get("branch")  # Via.branch, read directly: every request
    if branch is not None and branch.startswith(BRANCH_MAGIC):
        # §17.2.3: branch + sent-by + method (ACK -> INVITE).
        port = "" if via.port is None else str(via.port)
        return ("rfc3261", branch.lower(), via.host.lower(), port, method)
    # §17.2.3, RFC 2543 fallback: Request-URI, From tag, To tag, Call-ID, CSeq number,
    # top Via. The To tag is left out for INVITE (and ACK, mapped to INVITE): an ACK
    # carries the tag of our response, which the INVITE did not have.
    to_tag = "" if method == "INVITE" else (request.to_tag or "")
    return (
        "rfc2543",
        request.uri,
        request.from_tag or "",
        to_tag,
        request.call_id,
        str(request.cseq.seq),
        method,
        _via_text(via),
    )


def server_key(request: Request) -> TransactionKey:
    """The server transaction a request belongs to (RFC 3261 §17.2.3).

    RFC 3261 branches (``z9hG4bK`` cookie): ``("rfc3261", branch, host, port, method)``
    with ACK mapped to INVITE. Otherwise the RFC 2543 fallback: ``("rfc2543",
    Request-URI, From tag, To tag, Call-ID, CSeq number, method, top Via)``, where the
    To tag is ignored for INVITE/ACK. CANCEL gets its own key; see
    ``invite_key_for_cancel``.
    """
    method = request.method
    return _server_key(request, "INVITE" if method == "ACK" else method)  # as client_key


def invite_key_for_cancel(cancel: Request) -> TransactionKey:
    """The ``server_key`` of the INVITE transaction a CANCEL targets (RFC 3261 §9.2)."""
    if cancel.method != "CANCEL":
        raise LocalProtocolError(
            f"invite_key_for_cancel needs a CANCEL request, got {cancel.method}"
        )
    return _server_key(cancel, "INVITE")


def ack_for_non_2xx(invite: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 300-699 response (§17.1.1.3).

    Same Request-URI, Call-ID, From and CSeq number as the INVITE (method ACK), the To
    of the response (with its tag), only the INVITE's top Via, its Route headers,
    Max-Forwards 70 and no body.
    """
    headers: list[tuple[str, str]] = [("Via", invite.get_all("Via")[0])]
    headers.extend(("Route", route) for route in invite.get_all("Route"))
    headers.extend(
        [
            ("Max-Forwards", "70"),
            ("From", invite.get("From") or ""),
            ("To", response.get("To") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.seq} ACK"),
            ("Content-Length", "0"),
        ]
    )
    return Request("ACK", invite.uri, headers)


# --- the engine -----------------------------------------------------------------------------
# A step, resolved once per table row (``_compile``): ``run(tx, input, message, now, out)``
# appends its actions to ``out``.
StepRunner = Callable[[Any, Input, Request | Response | None, float, list[Action]], None]
CompiledTable = dict[tuple[Any, Input], tuple[Any, tuple[StepRunner, ...]]]


def _compile(
    table: Mapping[tuple[S, Input], Transition[S]], runners: Mapping[Step, StepRunner], kind: str
) -> CompiledTable:
    """``table`` with each step replaced by the function that performs it.

    The tables stay the single source of truth; this only saves interpreting each
    ``Step`` again on every input. A step a kind cannot perform fails at import.
    """
    compiled: CompiledTable = {}
    for key, transition in table.items():
        for step in transition.steps:
            if step not in runners:
                raise AssertionError(f"{step} has no meaning in a {kind}")  # pragma: no cover
        compiled[key] = (transition.next_state, tuple(runners[s] for s in transition.steps))
    return compiled


def _deliver(
    tx: _Transaction[Any],
    inp: Input,
    message: Request | Response | None,
    now: float,
    out: list[Action],
) -> None:
    assert message is not None
    tx._on_deliver(message, out)


def _report_timeout(
    tx: _Transaction[Any],
    inp: Input,
    message: Request | Response | None,
    now: float,
    out: list[Action],
) -> None:
    tx._on_timed_out(_INPUT_TIMER[inp], out)


def _report_transport_error(
    tx: _Transaction[Any],
    inp: Input,
    message: Request | Response | None,
    now: float,
    out: list[Action],
) -> None:
    tx._on_transport_failed(out)


def _terminate(
    tx: _Transaction[Any],
    inp: Input,
    message: Request | Response | None,
    now: float,
    out: list[Action],
) -> None:
    tx._on_terminated(out)


def _starter(name: TimerName) -> StepRunner:
    only_unreliable = name in RETRANSMISSION_TIMERS

    def start(
        tx: _Transaction[Any],
        inp: Input,
        message: Request | Response | None,
        now: float,
        out: list[Action],
    ) -> None:
        if only_unreliable and tx.reliable:
            return  # A, E and G only retransmit over unreliable transports
        tx._start_timer(name, tx.timers.for_timer(name, tx.reliable), now, out)

    return start


def _backoff(name: TimerName) -> StepRunner:
    key = name._value_

    def backoff(
        tx: _Transaction[Any],
        inp: Input,
        message: Request | Response | None,
        now: float,
        out: list[Action],
    ) -> None:
        assert tx._intervals is not None  # started before it backs off
        tx._start_timer(name, tx.timers.backoff(name, tx._intervals[key]), now, out)

    return backoff


def _restart_e_at_t2(
    tx: _Transaction[Any],
    inp: Input,
    message: Request | Response | None,
    now: float,
    out: list[Action],
) -> None:
    tx._start_timer(TimerName.E, tx.timers.t2, now, out)


def _stopper(name: TimerName) -> StepRunner:
    key = name._value_

    def stop(
        tx: _Transaction[Any],
        inp: Input,
        message: Request | Response | None,
        now: float,
        out: list[Action],
    ) -> None:
        if tx._deadlines.pop(key, None) is not None:
            tx._on_stop_timer(name, out)

    return stop


_COMMON_STEPS: dict[Step, StepRunner] = {
    Step.DELIVER: _deliver,
    Step.REPORT_TIMEOUT: _report_timeout,
    Step.REPORT_TRANSPORT_ERROR: _report_transport_error,
    Step.TERMINATE: _terminate,
    Step.RESTART_E_AT_T2: _restart_e_at_t2,
    **{step: _starter(name) for step, name in _START_STEPS.items()},
    **{step: _backoff(name) for step, name in _BACKOFF_STEPS.items()},
    **{step: _stopper(name) for step, name in _STOP_STEPS.items()},
}


class _Transaction(Generic[S]):
    """The table-driven engine the four transaction kinds share."""

    __slots__ = (
        "_deadlines",
        "_due_now",
        "_intervals",
        "_request",
        "_started",
        "_state",
        "key",
        "last_response",
        "method",
        "reliable",
        "timers",
    )

    _KIND = "transaction"
    _TERMINATED: ClassVar[Any]  # the kind's Terminated state
    _ROWS: ClassVar[CompiledTable]  # the kind's table, compiled
    # Event loops may run a timer callback a little before its deadline; a fire that
    # early still counts. Anything earlier belongs to a replaced deadline.
    _MAX_TIMER_SLACK = 0.02

    def __init__(
        self, request: Request, reliable: bool, timers: SipTimers, initial: S, key: TransactionKey
    ) -> None:
        self._request: Request | None = request
        self.method = request.method
        self.reliable = reliable
        self.timers = timers
        self.key = key
        self.last_response: Response | None = None
        self._state = initial
        self._started = False
        # Running timers by letter (``TimerName.value``): a dict of str and float is not
        # tracked by the garbage collector, and server transactions linger 64*T1.
        self._deadlines: dict[str, float] = {}
        # Last interval of the retransmission timers (A, E, G), which back off from it,
        # and zero-length timers waiting to fire: created on first use, as most
        # transactions never have either.
        self._intervals: dict[str, float] | None = None
        self._due_now: list[TimerName] | None = None

    # -- public, common to all kinds --------------------------------------------------------
    @property
    def request(self) -> Request:
        """The request this transaction is about (server: until ``release()``)."""
        if self._request is None:
            raise LocalProtocolError(
                f"the {self._KIND} released its request after the final response; "
                "keep a reference of your own if you need it later"
            )
        return self._request

    @property
    def state(self) -> S:
        return self._state

    @property
    def terminated(self) -> bool:
        return self._state is self._TERMINATED

    @property
    def deadlines(self) -> dict[TimerName, float]:
        """The running timers and their absolute deadlines (a copy)."""
        return {TimerName(letter): deadline for letter, deadline in self._deadlines.items()}

    def timer_fired(self, name: TimerName, now: float) -> list[Action]:
        """Timer ``name`` fired; ``[]`` when it is not running or its deadline moved on."""
        key = name._value_
        deadline = self._deadlines.get(key)
        if deadline is None or now + min(self._MAX_TIMER_SLACK, self.timers.t1 / 4) < deadline:
            return []
        del self._deadlines[key]
        return self._feed(_TIMER_INPUT[name], None, now)

    def transport_error(self, now: float) -> list[Action]:
        """The transport could not deliver a message of this transaction (§17.1.4, §17.2.4)."""
        self._require_started()
        return self._feed(Input.TRANSPORT_ERROR, None, now)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self._state.value}>"

    # -- engine -------------------------------------------------------------------------------
    def _begin(self, now: float) -> list[Action]:
        if self._started:
            raise LocalProtocolError(f"the {self._KIND} was already started")
        self._started = True
        out: list[Action] = []
        self._run(Input.START, self._request, now, out)
        return out

    def _require_started(self) -> None:
        if not self._started:
            raise LocalProtocolError(f"call start() on the {self._KIND} first")

    def _feed(self, inp: Input, message: Request | Response | None, now: float) -> list[Action]:
        actions: list[Action] = []
        self._run(inp, message, now, actions)
        return actions

    def _run(
        self, inp: Input, message: Request | Response | None, now: float, out: list[Action]
    ) -> None:
        """Run the row for ``(state, inp)``; the single rule for inputs without a row."""
        row = self._ROWS.get((self._state, inp))
        if row is None:
            if inp in LOCAL_INPUTS:
                raise LocalProtocolError(
                    f"{inp.value} is not allowed in state {self._state.value} of the {self._KIND}"
                )
            return  # absorbed: nothing happens, state unchanged
        # The state moves before the steps run: a hook that calls back into the
        # transaction (a driver delivering a request to a TU that answers it at once)
        # finds it in the row's new state.
        self._state, runners = row
        for run in runners:
            run(self, inp, message, now, out)
        if self._state is self._TERMINATED:
            self._deadlines.clear()
            self._due_now = None
        due = self._due_now
        if due is not None:
            while due:  # zero-length timers fire at once
                self._run(_TIMER_INPUT[due.pop(0)], None, now, out)
            self._due_now = None  # drained: nothing kept while the transaction lingers

    # -- effects: each appends its action to ``out``; a driver subclass may carry the
    # action out instead, in the order the row's steps produce them. ----------------------
    def _on_send(self, data: bytes, message: Request | Response | None, out: list[Action]) -> None:
        out.append(Send(data, message))

    def _on_start_timer(self, name: TimerName, deadline: float, out: list[Action]) -> None:
        out.append(StartTimer(name, deadline))

    def _on_stop_timer(self, name: TimerName, out: list[Action]) -> None:
        out.append(StopTimer(name))

    def _on_deliver(self, message: Request | Response, out: list[Action]) -> None:
        out.append(Deliver(message))

    def _on_timed_out(self, name: TimerName, out: list[Action]) -> None:
        out.append(TimedOut(name))

    def _on_transport_failed(self, out: list[Action]) -> None:
        out.append(TransportFailed())

    def _on_terminated(self, out: list[Action]) -> None:
        out.append(Terminated())

    def _start_timer(self, name: TimerName, delay: float, now: float, out: list[Action]) -> None:
        key = name._value_
        if name in RETRANSMISSION_TIMERS:
            if self._intervals is None:
                self._intervals = {}
            self._intervals[key] = delay
        if delay <= 0:
            self._deadlines.pop(key, None)
            if self._due_now is None:
                self._due_now = []
            self._due_now.append(name)
            return
        deadline = self._deadlines[key] = now + delay
        self._on_start_timer(name, deadline, out)


class _ClientTransaction(_Transaction[S]):
    __slots__ = ("_request_bytes",)

    def __init__(self, request: Request, reliable: bool, timers: SipTimers, initial: S) -> None:
        super().__init__(request, reliable, timers, initial, client_key(request))
        self._request_bytes = b""

    def start(self, now: float) -> list[Action]:
        """Send the request and start the timers (§17.1.1.2, §17.1.2.2)."""
        self._request_bytes = self.request.to_bytes()
        return self._begin(now)

    def receive(self, response: Response, now: float) -> list[Action]:
        """A response matching ``self.key`` arrived."""
        self._require_started()
        inp = self._classify(response)
        if (self._state, inp) in self._ROWS:
            self.last_response = response
        return self._feed(inp, response, now)

    def _classify(self, response: Response) -> Input:
        raise NotImplementedError  # pragma: no cover


def _send_request(
    tx: _ClientTransaction[Any],
    inp: Input,
    message: Request | Response | None,
    now: float,
    out: list[Action],
) -> None:
    tx._on_send(tx._request_bytes, tx.request, out)


class ClientInviteTransaction(_ClientTransaction[ClientInviteState]):
    """INVITE client transaction: RFC 3261 §17.1.1, RFC 6026 (``CLIENT_INVITE_TABLE``)."""

    __slots__ = ("ack",)

    _KIND = "INVITE client transaction"
    _TERMINATED = ClientInviteState.TERMINATED

    def __init__(self, request: Request, reliable: bool, timers: SipTimers) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError(
                f"an INVITE client transaction needs an INVITE, got {request.method}; "
                "use ClientNonInviteTransaction"
            )
        super().__init__(request, reliable, timers, ClientInviteState.CALLING)
        self.ack: Request | None = None
        """The last ACK this transaction built for a 300-699 response."""

    def _classify(self, response: Response) -> Input:
        if response.status < 200:
            return Input.RECV_1XX
        if response.status < 300:
            return Input.RECV_2XX
        return Input.RECV_3XX_6XX


def _send_ack(
    tx: ClientInviteTransaction,
    inp: Input,
    message: Request | Response | None,
    now: float,
    out: list[Action],
) -> None:
    assert isinstance(message, Response)
    ack = tx.ack = ack_for_non_2xx(tx.request, message)
    tx._on_send(ack.to_bytes(), ack, out)


ClientInviteTransaction._ROWS = _compile(
    CLIENT_INVITE_TABLE,
    {**_COMMON_STEPS, Step.SEND_REQUEST: _send_request, Step.SEND_ACK: _send_ack},
    ClientInviteTransaction._KIND,
)


class ClientNonInviteTransaction(_ClientTransaction[ClientNonInviteState]):
    """Non-INVITE client transaction: RFC 3261 §17.1.2 (``CLIENT_NON_INVITE_TABLE``)."""

    __slots__ = ()

    _KIND = "non-INVITE client transaction"
    _TERMINATED = ClientNonInviteState.TERMINATED

    def __init__(self, request: Request, reliable: bool, timers: SipTimers) -> None:
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(
                f"a non-INVITE client transaction cannot carry {request.method}: "
                "use ClientInviteTransaction for INVITE; an ACK for a 2xx is sent "
                "without a transaction"
            )
        super().__init__(request, reliable, timers, ClientNonInviteState.TRYING)

    def _classify(self, response: Response) -> Input:
        return Input.RECV_1XX if response.status < 200 else Input.RECV_FINAL


ClientNonInviteTransaction._ROWS = _compile(
    CLIENT_NON_INVITE_TABLE,
    {**_COMMON_STEPS, Step.SEND_REQUEST: _send_request},
    ClientNonInviteTransaction._KIND,
)


class _ServerTransaction(_Transaction[S]):
    # send_100_trying only means something to INVITE transactions; it lives here so
    # that a driver can extend either kind with slots of its own (one layout).
    __slots__ = ("_last_response_bytes", "send_100_trying")

    # The input for a response the TU sends, by status class (status // 100; 100-699).
    _SEND_INPUTS: ClassVar[tuple[Input, ...]]

    def __init__(
        self,
        request: Request,
        reliable: bool,
        timers: SipTimers,
        initial: S,
        key: TransactionKey | None,
    ) -> None:
        if key is None:
            key = server_key(request)
        # Named bases rather than super() on the server side: a driver extends these
        # kinds (two bases each), and one transaction starts per request received.
        _Transaction.__init__(self, request, reliable, timers, initial, key)
        self._last_response_bytes = b""
        self.send_100_trying = False

    def start(self, now: float) -> list[Action]:
        """Take charge of the received request and pass it to the TU (§17.2)."""
        # _begin(), inlined: every request received starts a transaction.
        if self._started:
            raise LocalProtocolError(f"the {self._KIND} was already started")
        self._started = True
        out: list[Action] = []
        self._run(Input.START, self._request, now, out)
        return out

    def receive(self, request: Request, now: float) -> list[Action]:
        """A retransmission of the request, or an ACK, matching ``self.key`` arrived."""
        self._require_started()
        if request.method == "ACK":
            return self._feed(Input.RECV_ACK, request, now)
        if request.method != self.method:
            raise LocalProtocolError(
                f"a {request.method} does not belong to the {self._KIND} of a "
                f"{self.method}; CANCEL is its own transaction "
                "(see invite_key_for_cancel)"
            )
        return self._feed(Input.RECV_RETRANSMISSION, request, now)

    def send_response(self, response: Response, now: float) -> list[Action]:
        """The TU passes a response down for sending (``LocalProtocolError`` if forbidden)."""
        if not self._started:
            self._require_started()
        status = response.status
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"status {status} is not a SIP status (100-699)")
        out: list[Action] = []
        self._run(self._SEND_INPUTS[status // 100], response, now, out)
        return out

    def release(self) -> None:
        """Let go of ``request`` and ``last_response``; keep what later rows need.

        For drivers, once the TU has its final response out: from then on the
        transaction matches retransmissions by ``key``, resends the last response's
        bytes and runs its timers, for up to 64*T1 (§17.2.1, §17.2.2, RFC 6026), and a
        busy server keeps thousands of them. Afterwards ``request`` raises,
        ``last_response`` is None, and resends carry ``Send.message`` None.
        """
        self._request = None
        self.last_response = None


def _send_response(
    tx: _ServerTransaction[Any],
    inp: Input,
    message: Request | Response | None,
    now: float,
    out: list[Action],
) -> None:
    # Rows with this step are only fed by send_response (and SEND_TRYING): a Response.
    # (An annotation, not cast(): this runs for every response sent.)
    response: Response = message  # type: ignore[assignment]
    data = tx._last_response_bytes = response.to_bytes()
    if tx._request is not None:  # not released
        tx.last_response = response
    tx._on_send(data, response, out)


def _resend_last_response(
    tx: _ServerTransaction[Any],
    inp: Input,
    message: Request | Response | None,
    now: float,
    out: list[Action],
) -> None:
    if tx._last_response_bytes:  # if any was sent
        tx._on_send(tx._last_response_bytes, tx.last_response, out)


_SERVER_STEPS: dict[Step, StepRunner] = {
    **_COMMON_STEPS,
    Step.SEND_RESPONSE: _send_response,
    Step.RESEND_LAST_RESPONSE: _resend_last_response,
}


class ServerInviteTransaction(_ServerTransaction[ServerInviteState]):
    """INVITE server transaction: RFC 3261 §17.2.1, as updated by RFC 6026.

    ``start`` passes the INVITE up and starts the Trying timer (``SipTimers.trying``);
    when it fires, or the INVITE is retransmitted, before the TU sent any response, the
    transaction sends 100 Trying itself, unless ``send_100_trying`` is false (§17.2.1).
    Transport errors are reported to the TU but never end the transaction
    (RFC 6026 §7.1): its timers do.
    """

    __slots__ = ()

    _KIND = "INVITE server transaction"
    _TERMINATED = ServerInviteState.TERMINATED
    _SEND_INPUTS = (Input.SEND_1XX,) * 2 + (Input.SEND_2XX,) + (Input.SEND_3XX_6XX,) * 4

    def __init__(
        self,
        request: Request,
        reliable: bool,
        timers: SipTimers,
        *,
        send_100_trying: bool = True,
        key: TransactionKey | None = None,
    ) -> None:
        """``key`` is ``server_key(request)`` when the caller has it already."""
        if request.method != "INVITE":
            raise LocalProtocolError(
                f"an INVITE server transaction needs an INVITE, got {request.method}; "
                "use ServerNonInviteTransaction"
            )
        _ServerTransaction.__init__(
            self, request, reliable, timers, ServerInviteState.PROCEEDING, key
        )
        self.send_100_trying = send_100_trying


def _send_trying(
    tx: ServerInviteTransaction,
    inp: Input,
    message: Request | Response | None,
    now: float,
    out: list[Action],
) -> None:
    if tx.send_100_trying and not tx._last_response_bytes:
        # §17.2.1: built per §8.2.6, without adding a To tag.
        assert tx._request is not None  # released only after a final response
        _send_response(tx, inp, tx._request.make_response(100), now, out)


ServerInviteTransaction._ROWS = _compile(
    SERVER_INVITE_TABLE,
    {**_SERVER_STEPS, Step.SEND_TRYING: _send_trying},
    ServerInviteTransaction._KIND,
)


class ServerNonInviteTransaction(_ServerTransaction[ServerNonInviteState]):
    """Non-INVITE server transaction: RFC 3261 §17.2.2 (``SERVER_NON_INVITE_TABLE``)."""

    __slots__ = ()

    _KIND = "non-INVITE server transaction"
    _TERMINATED = ServerNonInviteState.TERMINATED
    _SEND_INPUTS = (Input.SEND_1XX,) * 2 + (Input.SEND_FINAL,) * 5

    def __init__(
        self,
        request: Request,
        reliable: bool,
        timers: SipTimers,
        *,
        key: TransactionKey | None = None,
    ) -> None:
        """``key`` is ``server_key(request)`` when the caller has it already."""
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(
                f"a non-INVITE server transaction cannot carry {request.method}: "
                "use ServerInviteTransaction for INVITE; an ACK matches the INVITE "
                "transaction (server_key) or goes to the dialog"
            )
        _ServerTransaction.__init__(
            self, request, reliable, timers, ServerNonInviteState.TRYING, key
        )


ServerNonInviteTransaction._ROWS = _compile(
    SERVER_NON_INVITE_TABLE, _SERVER_STEPS, ServerNonInviteTransaction._KIND
)
