"""Dialogs (RFC 3261 §12): the peer-to-peer state behind a call.

A ``Dialog`` knows its id (Call-ID + tags), the route set learnt from
Record-Route, the remote target learnt from Contact, and both CSeq spaces. It
builds in-dialog requests (§12.2.1.1) and checks incoming ones (§12.2.2). Via is
not its business: the transport layer adds Via when it sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from siphon.errors import LocalProtocolError, RemoteProtocolError
from siphon.sip.message import Request, Response
from siphon.sip.uri import NameAddr, SipUri, Uri, parse_name_addr
from siphon.tokens import randbits

# Methods whose requests refresh the remote target (RFC 3261 §12.2, RFC 3515, 6665).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


DialogId = tuple[str, str, str]  # (Call-ID, local tag, remote tag)


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr  # our From (UAC) or To (UAS), without tag
    remote_uri: NameAddr
    remote_target: Uri
    local_contact: str
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    secure: bool = False
    state: DialogState = DialogState.CONFIRMED
    is_uac: bool = True

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    # -- creation -------------------------------------------------------------------
    @classmethod
    def from_uas(
        cls, request: Request, local_tag: str, local_contact: str, *, early: bool = False
    ) -> Dialog:
        """Dialog state of a UAS answering ``request`` (RFC 3261 §12.1.1)."""
        remote_tag = request.from_tag
        if remote_tag is None:
            # RFC 2543 peers may omit the From tag; we use an empty one (§12.1.1).
            remote_tag = ""
        contacts = request.contacts
        if len(contacts) != 1:
            raise RemoteProtocolError(
                "a dialog-creating request needs exactly one Contact", reason="Bad Contact"
            )
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=_without_tag(request.to_addr),
            remote_uri=_without_tag(request.from_addr),
            remote_target=contacts[0].uri,
            local_contact=local_contact,
            route_set=request.get_all("Record-Route"),
            # Empty until we send our first request; then random below 2**31.
            local_seq=randbits(16) + 1,  # uniform below 2**16
            remote_seq=request.cseq.seq,
            secure=request.uri.lower().startswith("sips:"),
            state=DialogState.EARLY if early else DialogState.CONFIRMED,
            is_uac=False,
        )

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """Dialog state of a UAC that received ``response`` (1xx with tag or 2xx, §12.1.2)."""
        remote_tag = response.to_tag
        local_tag = request.from_tag
        if local_tag is None:
            raise LocalProtocolError("our request has no From tag")
        if remote_tag is None:
            raise RemoteProtocolError(
                "dialog-creating response without To tag", reason="Missing To tag"
            )
        contacts = response.contacts
        if not contacts:
            raise RemoteProtocolError("2xx to INVITE without Contact", reason="Missing Contact")
        contact = request.get("Contact")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=_without_tag(request.from_addr),
            remote_uri=_without_tag(request.to_addr),
            remote_target=contacts[0].uri,
            local_contact=contact or "",
            route_set=list(reversed(response.get_all("Record-Route"))),
            local_seq=request.cseq.seq,
            remote_seq=None,
            secure=request.uri.lower().startswith("sips:"),
            state=DialogState.CONFIRMED if response.is_success else DialogState.EARLY,
            is_uac=True,
        )

    # -- requests we send (§12.2.1.1) ---------------------------------------------
    def create_request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        cseq: int | None = None,
    ) -> Request:
        """Build an in-dialog request; ACK and CANCEL need ``cseq`` of their INVITE."""
        if self.state is DialogState.TERMINATED and method not in ("ACK",):
            raise LocalProtocolError(f"cannot send {method}: dialog is terminated")
        if cseq is None:
            if method in ("ACK", "CANCEL"):
                raise LocalProtocolError(f"{method} reuses the INVITE's CSeq: pass cseq=")
            self.local_seq += 1
            cseq = self.local_seq
        request_uri, routes = self._request_target()
        to = self.remote_uri.with_tag(self.remote_tag) if self.remote_tag else self.remote_uri
        out = Request(method, request_uri)
        for route in routes:
            out.add("Route", route)
        out.add("Max-Forwards", "70")
        out.add("From", str(self.local_uri.with_tag(self.local_tag)))
        out.add("To", str(to))
        out.add("Call-ID", self.call_id)
        out.add("CSeq", f"{cseq} {method}")
        if method in TARGET_REFRESH_METHODS or method == "ACK":
            out.add("Contact", self.local_contact)
        for name, value in headers:
            out.add(name, value)
        if body:
            out.add("Content-Type", content_type or "application/sdp")
        out.body = body
        return out

    def create_ack(self, invite_cseq: int, *, body: bytes = b"") -> Request:
        """ACK for a 2xx to INVITE (RFC 3261 §13.2.2.4): the INVITE's CSeq number."""
        return self.create_request("ACK", cseq=invite_cseq, body=body)

    def _request_target(self) -> tuple[str, list[str]]:
        """Request-URI and Route headers from the route set (RFC 3261 §12.2.1.1)."""
        if not self.route_set:
            return str(self.remote_target), []
        first = parse_name_addr(self.route_set[0]).uri
        if isinstance(first, SipUri) and "lr" in first.params:
            return str(self.remote_target), list(self.route_set)
        # Strict routing (RFC 2543 proxies): first route becomes the Request-URI.
        if isinstance(first, SipUri):
            stripped = SipUri(
                first.host,
                first.user,
                first.password,
                first.port,
                first.scheme,
                {k: v for k, v in first.params.items() if k not in ("method",)},
            )
            ruri = str(stripped)
        else:
            ruri = str(first)
        return ruri, [*self.route_set[1:], f"<{self.remote_target}>"]

    # -- requests we receive (§12.2.2) --------------------------------------------
    def receive_request(self, request: Request) -> None:
        """Check and absorb an in-dialog request; raises with status 500 on CSeq regression."""
        if request.method in ("ACK", "CANCEL"):
            return
        seq = request.cseq.seq
        if self.remote_seq is not None and seq <= self.remote_seq:
            # RFC 3261 §12.2.2: lower (or replayed) CSeq -> 500 Server Internal Error.
            raise RemoteProtocolError(
                f"CSeq {seq} not above the dialog's remote CSeq {self.remote_seq}",
                status_hint=500,
                reason="CSeq Out of Order",
            )
        self.remote_seq = seq
        if request.method in TARGET_REFRESH_METHODS:
            contacts = request.contacts
            if contacts:
                self.remote_target = contacts[0].uri

    def receive_response(self, response: Response) -> None:
        """Absorb a 2xx to one of our target-refresh requests (§12.2.1.2)."""
        if response.is_success and response.cseq.method in TARGET_REFRESH_METHODS:
            contacts = response.contacts
            if contacts:
                self.remote_target = contacts[0].uri
        if response.is_success and self.state is DialogState.EARLY:
            self.state = DialogState.CONFIRMED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED


def _without_tag(addr: NameAddr) -> NameAddr:
    params = {k: v for k, v in addr.params.items() if k != "tag"}
    return NameAddr(addr.uri, addr.display_name, params)


def dialog_id_of_request(request: Request) -> DialogId | None:
    """The dialog id, from our side, that an incoming in-dialog request names."""
    to_tag = request.to_tag
    if to_tag is None:
        return None
    return (request.call_id, to_tag, request.from_tag or "")


def dialog_id_of_response(response: Response) -> DialogId | None:
    """The dialog id, from our side (UAC), a response to our request names."""
    from_tag = response.from_tag
    to_tag = response.to_tag
    if from_tag is None or to_tag is None:
        return None
    return (response.call_id, from_tag, to_tag)
