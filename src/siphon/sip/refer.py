"""REFER (RFC 3515) and its implicit subscription (RFC 6665), sans-IO.

What a call transfer needs besides the dialog: the ``Refer-To`` we send, the
``Refer-To`` we receive, the ``Event`` and ``Subscription-State`` headers of the
NOTIFYs, and the ``message/sipfrag`` bodies (RFC 3420) that report how the
transferee's new call went (``SIP/2.0 200 OK``, ``SIP/2.0 603 Decline``...).

Everything that comes from the network raises only ``RemoteProtocolError``;
a bad target from our own caller raises ``LocalProtocolError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from siphon.errors import LocalProtocolError, RemoteProtocolError
from siphon.sip.headers import is_token, parse_params
from siphon.sip.message import Request, reason_phrase
from siphon.sip.uri import AbsoluteUri, SipUri, TelUri, parse_name_addr, parse_uri

SIPFRAG = "message/sipfrag"
EVENT_PACKAGE = "refer"  # RFC 3515 §2.4.4
# How long the transferee promises to report, in the NOTIFYs it sends (RFC 3515 §2.4.4
# leaves the value to the notifier; a transfer is decided within a minute).
SUBSCRIPTION_EXPIRES = 60

# RFC 3420 §2: a sipfrag starts with a start line; for REFER it is a status line
# (RFC 3515 §2.4.5). Lenient on case and white space, strict on the code.
_STATUS_LINE_RE = re.compile(r"SIP/2\.0[ \t]+([1-6][0-9][0-9])(?:[ \t]+([^\r\n]*))?", re.I)
_MAX_REASON = 128
# A bare number as an LLM or a person writes it: +1 (555) 010-2030, 1001, *72.
_BARE_NUMBER_RE = re.compile(r"\+?[0-9*#][0-9*#\-.() ]*")


@dataclass(frozen=True, slots=True)
class SipfragStatus:
    """The status line of a ``message/sipfrag`` body."""

    status: int
    reason: str

    @property
    def final(self) -> bool:
        return self.status >= 200


def parse_sipfrag(body: bytes) -> SipfragStatus:
    """Read the status line of a sipfrag (RFC 3420); headers after it are ignored.

    Raises ``RemoteProtocolError`` (400 "Bad Sipfrag") and nothing else.
    """
    text = body[:1024].decode("utf-8", "replace").lstrip()
    line = text.split("\n", 1)[0].rstrip("\r \t")
    match = _STATUS_LINE_RE.fullmatch(line)
    if match is None:
        raise RemoteProtocolError(
            f"sipfrag without a status line: {line[:80]!r}", reason="Bad Sipfrag"
        )
    status = int(match.group(1))
    # Printable only: the reason ends up in logs and in what an agent tells the caller.
    reason = "".join(ch for ch in (match.group(2) or "") if ch.isprintable()).strip()
    return SipfragStatus(status, reason[:_MAX_REASON] or reason_phrase(status))


def sipfrag(status: int, reason: str) -> bytes:
    """A sipfrag body holding only a status line (RFC 3515 §2.4.5)."""
    if not 100 <= status <= 699:
        raise LocalProtocolError(f"sipfrag status {status} is not a SIP status code")
    reason = " ".join(reason.split()) or reason_phrase(status)  # one line, no CR/LF
    return f"SIP/2.0 {status} {reason}\r\n".encode()


def refer_to_uri(target: str, peer_host: str, peer_port: int | None = None) -> str:
    """The URI to put in ``Refer-To`` for ``target``.

    ``target`` is a ``sip:``/``sips:`` URI (used as is, ``"Name" <sip:...>`` too), a
    ``tel:`` URI, or a bare number (``+15550102030``, ``1001``). Numbers become a SIP
    URI on the peer's host (``peer_host``/``peer_port``: the transferee, e.g. the trunk
    that sent us the call), with ``user=phone`` for global numbers (RFC 3261 §19.1.6).
    Raises ``LocalProtocolError`` for anything else.
    """
    text = target.strip()
    if "<" in text:
        try:
            text = str(parse_name_addr(text).uri)
        except RemoteProtocolError as exc:
            raise LocalProtocolError(f"bad transfer target {target!r}: {exc}") from None
    if _BARE_NUMBER_RE.fullmatch(text):
        digits = "".join(ch for ch in text if ch not in "-.() ")
        return _number_uri(digits, peer_host, peer_port)
    try:
        uri = parse_uri(text)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(f"bad transfer target {target!r}: {exc}") from None
    if isinstance(uri, SipUri):
        return str(uri)
    if isinstance(uri, TelUri):
        return _number_uri(uri.digits, peer_host, peer_port, phone=True)
    assert isinstance(uri, AbsoluteUri)
    raise LocalProtocolError(
        f"bad transfer target {target!r}: use a sip: URI, a tel: URI or a phone number"
    )


def _number_uri(digits: str, host: str, port: int | None, *, phone: bool = False) -> str:
    params = {"user": "phone"} if phone or digits.startswith("+") else {}
    return str(SipUri(host, digits, None, port, "sip", dict(params)))


@dataclass(frozen=True, slots=True)
class ReferRequest:
    """What an incoming REFER asks for (RFC 3515 §2.4.2)."""

    target: str  # the Refer-To URI, without angle brackets and header parameters
    referred_by: str | None  # the Referred-By URI (RFC 3892), when present


def read_refer(request: Request) -> ReferRequest:
    """The target of a REFER; ``RemoteProtocolError`` (400) when it has not exactly one."""
    values = request.get_all("Refer-To")
    if len(values) != 1:
        # RFC 3515 §2.4.1: exactly one Refer-To, else 400 Bad Request.
        raise RemoteProtocolError(
            f"REFER with {len(values)} Refer-To headers", reason="Bad Refer-To"
        )
    target = parse_name_addr(values[0]).uri
    referred_by = None
    value = request.get("Referred-By")
    if value is not None:
        try:
            referred_by = str(parse_name_addr(value).uri)
        except RemoteProtocolError:
            referred_by = None  # informational only (RFC 3892): never worth a rejection
    return ReferRequest(str(target), referred_by)


@dataclass(frozen=True, slots=True)
class EventHeader:
    """``Event: refer;id=93809824`` (RFC 6665 §8.2.1)."""

    package: str  # lower-cased event-type
    id: str | None = None


def parse_event(value: str) -> EventHeader:
    package, _, params_text = value.partition(";")
    package = package.strip().lower()
    if not is_token(package):
        raise RemoteProtocolError(f"bad Event {value!r}", reason="Bad Event Header")
    params = parse_params(params_text)
    return EventHeader(package, params.get("id"))


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """``Subscription-State: active;expires=60`` (RFC 6665 §8.2.3)."""

    state: str  # "active", "pending", "terminated" or an extension, lower-cased
    reason: str | None = None
    expires: int | None = None

    @property
    def terminated(self) -> bool:
        return self.state == "terminated"


def parse_subscription_state(value: str) -> SubscriptionState:
    state, _, params_text = value.partition(";")
    state = state.strip().lower()
    if not is_token(state):
        raise RemoteProtocolError(f"bad Subscription-State {value!r}", reason="Bad Header")
    params = parse_params(params_text)
    expires_text = params.get("expires") or ""
    expires = int(expires_text) if expires_text.isascii() and expires_text.isdigit() else None
    return SubscriptionState(state, params.get("reason"), expires)


def refer_notify_headers(refer_cseq: int, status: int) -> list[tuple[str, str]]:
    """Event and Subscription-State of a NOTIFY reporting ``status`` (RFC 3515 §2.4.4-7).

    ``id`` names the REFER, so several REFERs in one dialog stay apart (§2.4.6);
    the NOTIFY carrying a final status ends the subscription (§2.4.7).
    """
    if status >= 200:
        state = "terminated;reason=noresource"
    else:
        state = f"active;expires={SUBSCRIPTION_EXPIRES}"
    return [("Event", f"{EVENT_PACKAGE};id={refer_cseq}"), ("Subscription-State", state)]
