"""The asyncio driver of the sans-IO SIP core: transports, transactions and their timers.

``SipStack`` owns the sockets, the transaction tables and one ``TimerQueue`` for
every transaction timer. It turns received bytes into transaction inputs and
transaction actions into sends, timers and deliveries. What a request *means* is
the business of the ``RequestHandler`` (the user agent, ``user_agent.py``).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from siphon.errors import RemoteProtocolError
from siphon.io.ratelimit import RateLimitedLogger
from siphon.io.sip_transport import Address, SipTransport, TcpTransport, UdpTransport
from siphon.io.timer_queue import TimerHandle, TimerLane, TimerQueue
from siphon.sip.message import Request, Response, new_branch
from siphon.sip.timers import SipTimers
from siphon.sip.transaction import (
    STOPPED_TIMERS,
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
    TransactionKey,
    TransportFailed,
    _ServerTransaction,
    client_key,
    invite_key_for_cancel,
    server_key,
)
from siphon.sip.uri import Via

log = logging.getLogger("siphon.sip")

ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction


def uri_host(host: str) -> str:
    """``host`` as it is written in a URI or Via: IPv6 literals in brackets (RFC 3261 §25.1)."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def advertised_address(bound: str) -> str:
    """The address to put in Via/Contact/SDP when bound to ``bound``.

    A wildcard bind has no single address: take this host's name's first non-loopback
    address, else loopback with a warning (pass ``--advertise`` behind NAT anyway).
    """
    if bound not in ("0.0.0.0", "::", ""):
        return bound
    family = socket.AF_INET6 if bound == "::" else socket.AF_INET
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_DGRAM):
            address = str(info[4][0])
            if not ipaddress.ip_address(address).is_loopback:
                return address
    except (OSError, ValueError):
        pass
    log.warning(
        "bound to %s and no other address found: advertising loopback; "
        "set advertised_host (--advertise) to the address peers reach",
        bound,
    )
    return "::1" if family == socket.AF_INET6 else "127.0.0.1"


def response_destination(via: Via, source: Address, reliable: bool) -> Address:
    """Where responses to a request go (RFC 3261 §18.2.2, RFC 3581 §4)."""
    if reliable:
        return source  # the connection the request arrived on
    host = via.received or via.host
    if via.rport is not None:
        return (host, via.rport)
    if via.port is not None:
        return (host.strip("[]"), via.port)
    return (host.strip("[]"), 5060)


# Final failures that are part of normal call flow, not rejections worth a log line.
_ROUTINE_FAILURES = frozenset({401, 407, 480, 486, 487, 603})


# Tries at a port number free for every transport when the caller lets the kernel choose.
_EPHEMERAL_ATTEMPTS = 8


class ServerTxn(_ServerTransaction[Any]):
    """A received request, its server transaction, and how to answer it.

    One object per transaction: the stack extends each transaction kind with this
    (``isinstance`` against ``ServerInviteTransaction`` tells which) and overrides its
    effect hooks, so a row's sends, timers and deliveries happen as the row runs, with
    no action list in between (the transaction methods return ``[]``).

    Once the final response is out, ``request`` is let go (reading it raises): the
    transaction lingers for up to 64*T1 (RFC 3261 §17.2, RFC 6026) with only its key,
    its last response's bytes and where they go, however many a busy server holds.
    """

    __slots__ = (
        "_stack",
        "destination",
        "fallback",
        "final_sent",
        "handles",
        "source",
        "transport",
    )

    def _attach(self, stack: SipStack, transport: SipTransport, source: Address) -> None:
        self._stack = stack
        self.transport = transport
        self.source = source
        assert self._request is not None  # just received
        via = self._request.top_via
        self.destination = response_destination(via, source, transport.reliable)
        # RFC 3261 §18.2.2: when the request's connection is gone, connect to the
        # address in Via (received, sent-by port) instead.
        self.fallback = (
            response_destination(via, source, False) if transport.reliable else self.destination
        )
        # Handles of the running timers a row may stop (STOPPED_TIMERS); the others
        # ride the stack's TimerLanes. Made on first use: most transactions have none.
        self.handles: dict[TimerName, TimerHandle] | None = None
        self.final_sent = False

    @property
    def tx(self) -> ServerTxn:
        """The transaction: this very object (the driver and it used to be two)."""
        return self

    def respond(self, response: Response) -> None:
        request = self._request
        self.send_response(response, self._stack.now())
        if response.status >= 200 and request is not None:
            self._let_go(request)

    def _let_go(self, request: Request) -> None:
        # The TU has given its final answer: from now on the transaction only
        # recognises retransmissions, for up to 64*T1.
        self.final_sent = True
        self.release()
        request.release_views()

    def reply(
        self,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> Response:
        request = self._request
        if request is None:
            request = self.request  # raises, saying why
        stack = self._stack
        response = request.make_response(
            status, reason, to_tag=to_tag, headers=stack.common_headers(headers), body=body
        )
        # respond(), inlined: every response of every call comes this way.
        self.send_response(response, stack.now())
        if status >= 200:
            self._let_go(request)
        if status >= 400 and status not in _ROUTINE_FAILURES:
            stack.log_rejection(request, self.source, response)
        return response

    # -- the transaction's effects, carried out as its rows produce them --------------
    def _on_send(self, data: bytes, message: Request | Response | None, out: list[Action]) -> None:
        transport = self.transport
        destination = self.destination
        if transport.reliable and not transport.has_connection(destination):
            destination = self.fallback
        transport.send(data, destination)
        self._stack.stats["responses_out"] += 1

    def _on_start_timer(self, name: TimerName, deadline: float, out: list[Action]) -> None:
        stack = self._stack
        lane = stack._server_lanes.get(name)
        if lane is None and name not in STOPPED_TIMERS:
            lane = stack._server_lanes[name] = TimerLane(
                stack.timer_queue, stack._fire_server_lane, name
            )
        if lane is None or not lane.add(deadline, self):
            stack._start_timer(self, name, deadline, stack._fire_server_cb)

    def _on_stop_timer(self, name: TimerName, out: list[Action]) -> None:
        _stop_timer(self, name)

    def _on_deliver(self, message: Request | Response, out: list[Action]) -> None:
        # Server rows deliver last: the TU may answer from here, in the row's new state.
        if not isinstance(message, Request):
            return
        stack = self._stack
        handler = stack.handler
        if message.method != "ACK":
            # A new request (its transaction just started) goes to the user agent.
            if handler is None:
                self.reply(503, headers=[("Retry-After", "5")])
            elif message.method == "CANCEL":
                invite = stack._server_txs.get(invite_key_for_cancel(message))
                handler.cancel_received(self, invite)
            else:
                handler.request_received(self)
        elif handler is not None:
            # ACK for a 2xx while the transaction is Accepted (RFC 6026 §7.1).
            handler.ack_received(message, self.source, self.transport)

    def _on_timed_out(self, name: TimerName, out: list[Action]) -> None:
        self._stack._server_failed(self)

    def _on_transport_failed(self, out: list[Action]) -> None:
        self._stack._server_failed(self)

    def _on_terminated(self, out: list[Action]) -> None:
        self._stack._forget_server(self)


class _InviteServerTxn(ServerTxn, ServerInviteTransaction):
    __slots__ = ()

    def __init__(
        self,
        stack: SipStack,
        request: Request,
        transport: SipTransport,
        source: Address,
        key: TransactionKey,
    ) -> None:
        ServerInviteTransaction.__init__(self, request, transport.reliable, stack.timers, key=key)
        self._attach(stack, transport, source)


class _NonInviteServerTxn(ServerTxn, ServerNonInviteTransaction):
    __slots__ = ()

    def __init__(
        self,
        stack: SipStack,
        request: Request,
        transport: SipTransport,
        source: Address,
        key: TransactionKey,
    ) -> None:
        ServerNonInviteTransaction.__init__(
            self, request, transport.reliable, stack.timers, key=key
        )
        self._attach(stack, transport, source)


class ClientTxn:
    """A request we sent and where its responses go."""

    __slots__ = ("destination", "handles", "on_response", "on_timeout", "transport", "tx")

    def __init__(
        self,
        tx: ClientTransaction,
        transport: SipTransport,
        destination: Address,
        on_response: Callable[[Response], None],
        on_timeout: Callable[[], None],
    ) -> None:
        self.tx = tx
        self.transport = transport
        self.destination = destination
        self.on_response = on_response
        self.on_timeout = on_timeout
        # As ServerTxn.handles.
        self.handles: dict[TimerName, TimerHandle] | None = None


class RequestHandler(Protocol):
    """What the stack needs from the user agent."""

    def request_received(self, txn: ServerTxn) -> None:
        """A new request with its own server transaction (not ACK)."""

    def ack_received(self, ack: Request, source: Address, transport: SipTransport) -> None:
        """An ACK for a 2xx (it has no transaction of its own, RFC 3261 §17.1.1.3)."""

    def cancel_received(self, cancel: ServerTxn, invite: ServerTxn | None) -> None:
        """A CANCEL and the INVITE transaction it targets, if we still know it."""

    def stray_response(self, response: Response, source: Address) -> None:
        """A response matching no client transaction (2xx retransmissions land here)."""

    def server_timed_out(self, txn: ServerTxn) -> None:
        """An INVITE server transaction gave up waiting for the ACK to its final."""


@dataclass(slots=True)
class Listener:
    transport: SipTransport
    advertised: Address


class SipStack:
    def __init__(
        self,
        *,
        timers: SipTimers | None = None,
        user_agent: str = "SIPHON/0.1",
        advertised_host: str | None = None,
    ) -> None:
        self.timers = timers or SipTimers()
        self.user_agent = user_agent
        self.advertised_host = advertised_host
        self.handler: RequestHandler | None = None
        self.stats: Counter[str] = Counter()
        self._listeners: dict[str, Listener] = {}
        self._server_txs: dict[tuple[object, ...], ServerTxn] = {}
        self._client_txs: dict[tuple[object, ...], ClientTxn] = {}
        self._queue: TimerQueue | None = None
        # Timers no row stops (not in STOPPED_TIMERS), by name: each kind has one
        # duration, so they fall due in the order they start (TimerLane). Made on first use.
        self._server_lanes: dict[TimerName, TimerLane[ServerTxn]] = {}
        self._client_lanes: dict[TimerName, TimerLane[ClientTxn]] = {}
        self._reject_log = RateLimitedLogger(log)
        self._closed = False
        # Bound once: each pending timer refers to these rather than to a bound
        # method object of its own.
        self._fire_server_cb = self._fire_server
        self._fire_client_cb = self._fire_client

    # -- lifecycle ------------------------------------------------------------------
    async def listen(
        self,
        host: str,
        port: int,
        transports: tuple[str, ...] = ("udp", "tcp"),
    ) -> None:
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = TimerQueue(loop)
        for name in transports:
            if name.upper() not in ("UDP", "TCP"):
                raise ValueError(f"unknown SIP transport {name!r}: use 'udp' or 'tcp'")
        # Port 0: the first transport takes the kernel's choice and the others the same
        # number, which another socket may already hold for their protocol: try anew.
        attempts = _EPHEMERAL_ATTEMPTS if port == 0 and len(transports) > 1 else 1
        for attempt in range(attempts):
            opened: list[str] = []
            try:
                await self._listen_all(host, port, transports, opened)
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
                for kind in opened:
                    self._listeners.pop(kind).transport.close()

    async def _listen_all(
        self, host: str, port: int, transports: tuple[str, ...], opened: list[str]
    ) -> None:
        for name in transports:
            kind = name.upper()
            transport: SipTransport
            if kind == "UDP":
                transport = await UdpTransport.listen(self, host, port)
            else:
                transport = await TcpTransport.listen(self, host, port)
            local = transport.local_address
            port = local[1]  # port 0 -> the kernel's choice, shared by the next transport
            adv_host = self.advertised_host or advertised_address(local[0])
            self._listeners[kind] = Listener(transport, (uri_host(adv_host), local[1]))
            opened.append(kind)
            log.info("SIP listening on %s %s:%d", kind, local[0], local[1])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for listener in self._listeners.values():
            listener.transport.close()
        if self._queue is not None:
            self._queue.close()
        for lanes in (self._server_lanes, self._client_lanes):
            for lane in lanes.values():
                lane.clear()
        self._server_txs.clear()
        self._client_txs.clear()

    def now(self) -> float:
        assert self._queue is not None, "SipStack.listen() first"
        return self._queue.now()

    @property
    def timer_queue(self) -> TimerQueue:
        assert self._queue is not None, "SipStack.listen() first"
        return self._queue

    def listener(self, transport: str = "UDP") -> Listener:
        try:
            return self._listeners[transport.upper()]
        except KeyError:
            raise ValueError(f"no {transport} listener: listen on it first") from None

    def common_headers(
        self,
        extra: list[tuple[str, str]] | None = None,
    ) -> list[tuple[str, str]]:
        if not extra:
            return [("Server", self.user_agent)]
        for name, _ in extra:
            if name.lower() == "server":
                return list(extra)
        return [*extra, ("Server", self.user_agent)]

    def queue_delay(self, now: float) -> float | None:
        """How long SIP datagrams wait for us in the kernel (s; None: cannot tell).

        ``now`` is the loop's clock (UdpTransport.queue_delay).
        """
        listener = self._listeners.get("UDP")
        if listener is None or not isinstance(listener.transport, UdpTransport):
            return None
        return listener.transport.queue_delay(now)

    @property
    def transaction_count(self) -> int:
        return len(self._server_txs) + len(self._client_txs)

    def log_rejection(self, request: Request, source: Address, response: Response) -> None:
        self.stats[f"rejected_{response.status}"] += 1
        self._reject_log.warning(
            "rejected %s from %s:%d with %d %s",
            request.method,
            source[0],
            source[1],
            response.status,
            response.reason,
        )

    # -- receiving ------------------------------------------------------------------
    def keepalive_received(self, source: Address, transport: SipTransport) -> None:
        self.stats["keepalives"] += 1

    def bad_input(
        self, error: RemoteProtocolError, data: bytes, source: Address, transport: SipTransport
    ) -> None:
        self.stats["bad_messages"] += 1
        partial = error.partial
        if isinstance(partial, Request) and partial.method != "ACK":
            # RFC 3261 §8.2 / §21.4.1: answer when we know where and to what.
            try:
                partial.top_via  # noqa: B018 - must be readable to answer
                partial.call_id  # noqa: B018
                # To the source, never to the Via of a message we could not read: that
                # could be anyone's address (RFC 3581 §4 behaviour).
                destination = source
                response = partial.make_response(
                    error.status_hint, error.reason, headers=self.common_headers()
                )
                transport.send(response.to_bytes(), destination)
                self.stats[f"rejected_{error.status_hint}"] += 1
                self._reject_log.warning(
                    "rejected %s from %s:%d with %d %s: %s",
                    partial.method,
                    source[0],
                    source[1],
                    error.status_hint,
                    error.reason,
                    error,
                )
                return
            except RemoteProtocolError:
                pass
        self.stats["dropped"] += 1
        self._reject_log.warning(
            "dropped %d bytes from %s:%d: %s", len(data), source[0], source[1], error
        )

    def message_received(
        self, message: Request | Response, source: Address, transport: SipTransport
    ) -> None:
        try:
            if isinstance(message, Request):
                self._request_received(message, source, transport)
            else:
                self._response_received(message, source)
        except RemoteProtocolError as exc:
            exc.partial = exc.partial or (message if isinstance(message, Request) else None)
            if not self._answer_in_transaction(message, exc):
                self.bad_input(exc, b"", source, transport)
        except Exception:
            # A bug of ours must cost one message, never the process (DESIGN: errors).
            self.stats["internal_errors"] += 1
            log.exception("internal error handling %r from %s:%d", message, *source)
            if isinstance(message, Request) and message.method != "ACK":
                error = RemoteProtocolError(
                    "internal error",
                    status_hint=500,
                    reason="Server Internal Error",
                    partial=message,
                )
                if not self._answer_in_transaction(message, error):
                    self.bad_input(error, b"", source, transport)

    def _answer_in_transaction(
        self, message: Request | Response, error: RemoteProtocolError
    ) -> bool:
        """Answer an error through the request's transaction when it already has one.

        A stateless answer would leave that transaction waiting for ever and absorb
        the request's retransmissions unanswered.
        """
        if not isinstance(message, Request) or message.method == "ACK":
            return False
        try:
            txn = self._server_txs.get(server_key(message))
        except RemoteProtocolError:
            return False
        if txn is None or txn.final_sent:
            return txn is not None
        txn.reply(error.status_hint, error.reason)
        return True

    def _request_received(self, request: Request, source: Address, transport: SipTransport) -> None:
        self.stats["requests_in"] += 1
        via = request.top_via
        params = via.params
        # RFC 3261 §18.2.1 and RFC 3581 §4: note where the request really came from. A
        # "received" the client wrote itself is never trusted (it would steer responses).
        # (Via.wants_rport and Via.received, read from params directly: every request.)
        if (
            "rport" in params
            or params.get("received") is not None
            or via.host.strip("[]") != source[0]
        ):
            params = {k: v for k, v in via.params.items() if k != "received"}
            if via.wants_rport or via.host.strip("[]") != source[0]:
                params["received"] = source[0]
            if via.wants_rport:
                params["rport"] = str(source[1])
            request.replace_top_via(Via(via.transport, via.host, via.port, params))
        key = server_key(request)
        existing = self._server_txs.get(key)
        if existing is not None:
            self.stats["retransmissions_in"] += 1
            existing.receive(request, self.now())
            return
        if request.method == "ACK":
            if self.handler is not None:
                self.handler.ack_received(request, source, transport)
            return
        txn: ServerTxn
        if request.method == "INVITE":
            txn = _InviteServerTxn(self, request, transport, source, key)
        else:
            txn = _NonInviteServerTxn(self, request, transport, source, key)
        self._server_txs[key] = txn
        txn.start(self.now())

    def _response_received(self, response: Response, source: Address) -> None:
        self.stats["responses_in"] += 1
        txn = self._client_txs.get(client_key(response))
        if txn is None:
            if self.handler is not None:
                self.handler.stray_response(response, source)
            return
        self._run_client(txn, txn.tx.receive(response, self.now()))

    # -- sending ----------------------------------------------------------------------
    def via_for(self, transport: str) -> Via:
        """Our Via for a new request; hosts are URI-ready (IPv6 in brackets)."""
        listener = self.listener(transport)
        host, port = listener.advertised
        return Via(listener.transport.name, host, port, {"branch": new_branch(), "rport": None})

    def contact_uri(self, transport: str = "UDP", user: str | None = "siphon") -> str:
        listener = self.listener(transport)
        host, port = listener.advertised
        userpart = f"{user}@" if user else ""
        suffix = ";transport=tcp" if transport.upper() == "TCP" else ""
        return f"sip:{userpart}{host}:{port}{suffix}"

    def send_request(
        self,
        request: Request,
        destination: Address,
        *,
        transport: str = "UDP",
        on_response: Callable[[Response], None],
        on_timeout: Callable[[], None],
    ) -> ClientTxn:
        """Send ``request`` in a new client transaction; a Via with a new branch is added."""
        listener = self.listener(transport)
        if request.method != "CANCEL" or request.get("Via") is None:
            request.prepend("Via", str(self.via_for(transport)))
        tx: ClientTransaction
        if request.method == "INVITE":
            tx = ClientInviteTransaction(
                request, reliable=listener.transport.reliable, timers=self.timers
            )
        else:
            tx = ClientNonInviteTransaction(
                request, reliable=listener.transport.reliable, timers=self.timers
            )
        txn = ClientTxn(tx, listener.transport, destination, on_response, on_timeout)
        self._client_txs[client_key(request)] = txn
        self.stats["requests_out"] += 1
        self._run_client(txn, tx.start(self.now()))
        return txn

    def send_stateless(
        self,
        request: Request,
        destination: Address,
        *,
        transport: str = "UDP",
        new_via: bool = True,
    ) -> None:
        """Send a request outside any transaction (the ACK for a 2xx, RFC 3261 §13.2.2.4)."""
        listener = self.listener(transport)
        if new_via:
            request.prepend("Via", str(self.via_for(transport)))
        listener.transport.send(request.to_bytes(), destination)

    def send_response_stateless(self, response: Response, txn_like: ServerTxn) -> None:
        """Retransmit a 2xx from the UA core (RFC 3261 §13.3.1.4); no transaction is involved."""
        txn_like.transport.send(response.to_bytes(), txn_like.destination)

    # -- running the transaction actions ---------------------------------------------
    def _server_failed(self, txn: ServerTxn) -> None:
        self.stats["server_timeouts"] += 1
        if self.handler is not None:
            self.handler.server_timed_out(txn)

    def _run_client(self, txn: ClientTxn, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                txn.transport.send(action.data, txn.destination)
            elif isinstance(action, StartTimer):
                lane = self._client_lanes.get(action.name)
                if lane is None and action.name not in STOPPED_TIMERS:
                    lane = self._client_lanes[action.name] = TimerLane(
                        self.timer_queue, self._fire_client_lane, action.name
                    )
                if lane is None or not lane.add(action.deadline, txn):
                    self._start_timer(txn, action.name, action.deadline, self._fire_client_cb)
            elif isinstance(action, StopTimer):
                _stop_timer(txn, action.name)
            elif isinstance(action, Deliver):
                if isinstance(action.message, Response):
                    txn.on_response(action.message)
            elif isinstance(action, TimedOut | TransportFailed):
                self.stats["client_timeouts"] += 1
                txn.on_timeout()
            elif isinstance(action, Terminated):
                _cancel_timers(txn)
                key = txn.tx.key
                if self._client_txs.get(key) is txn:
                    del self._client_txs[key]

    def _start_timer(
        self,
        txn: ServerTxn | ClientTxn,
        name: TimerName,
        deadline: float,
        fire: Callable[[ServerTxn | ClientTxn, TimerName], None],
    ) -> None:
        """Start a timer that can be cancelled (a row may stop it, or it left its lane)."""
        handles = txn.handles
        if handles is None:
            handles = txn.handles = {}
        else:
            old = handles.pop(name, None)
            if old is not None:
                old.cancel()
        handles[name] = self.timer_queue.call_at(deadline, fire, txn, name)

    def _fire_server(self, txn: ServerTxn | ClientTxn, name: TimerName) -> None:
        assert isinstance(txn, ServerTxn)
        if txn.handles is not None:
            txn.handles.pop(name, None)
        txn.timer_fired(name, self.now())

    def _fire_client(self, txn: ServerTxn | ClientTxn, name: TimerName) -> None:
        assert isinstance(txn, ClientTxn)
        if txn.handles is not None:
            txn.handles.pop(name, None)
        self._run_client(txn, txn.tx.timer_fired(name, self.now()))

    # A lane's timers have no handle to forget; one that no longer runs (the
    # transaction ended early) is ignored by timer_fired.
    def _fire_server_lane(self, txn: ServerTxn, name: TimerName) -> None:
        txn.timer_fired(name, self.now())

    def _fire_client_lane(self, txn: ClientTxn, name: TimerName) -> None:
        self._run_client(txn, txn.tx.timer_fired(name, self.now()))

    def _forget_server(self, txn: ServerTxn) -> None:
        _cancel_timers(txn)
        key = txn.key
        if self._server_txs.get(key) is txn:
            del self._server_txs[key]


def _stop_timer(txn: ServerTxn | ClientTxn, name: TimerName) -> None:
    if txn.handles:
        handle = txn.handles.pop(name, None)
        if handle is not None:
            handle.cancel()


def _cancel_timers(txn: ServerTxn | ClientTxn) -> None:
    if txn.handles:
        for handle in txn.handles.values():
            handle.cancel()
    txn.handles = None
