"""The exception hierarchy.

Every error a user or a peer can cause is one of these, so callers can catch
``SiphonError`` and know they have seen everything SIPHON raises on purpose.

Like h11, protocol errors come in two flavours: ``RemoteProtocolError`` when the
*peer* broke the protocol (we answer with ``status_hint`` and keep serving) and
``LocalProtocolError`` when *our* caller asked for something the protocol forbids
(a bug to fix in application code).
"""

from __future__ import annotations

# Default reason phrases (RFC 3261 §21) for the status hints the parser uses.
_REASONS: dict[int, str] = {
    400: "Bad Request",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    481: "Call/Transaction Does Not Exist",
    483: "Too Many Hops",
    488: "Not Acceptable Here",
    493: "Undecipherable",
    501: "Not Implemented",
    505: "Version Not Supported",
    513: "Message Too Large",
}


class SiphonError(Exception):
    """Base class of every exception SIPHON raises on purpose."""


class ConfigError(SiphonError):
    """A configuration or API-usage mistake; the message names the fix."""


class SipProtocolError(SiphonError):
    """A SIP protocol violation.

    ``status_hint`` is the SIP status code a server should answer with when the
    offending message was a request; ``reason`` is a short reason phrase naming the
    problem, fit for the status line (e.g. ``"Missing Call-ID"``).
    """

    def __init__(
        self,
        message: str,
        *,
        status_hint: int = 400,
        reason: str | None = None,
        partial: object | None = None,
    ) -> None:
        super().__init__(message)
        self.status_hint = status_hint
        self.reason = reason or _REASONS.get(status_hint, "Bad Request")
        # What could be read of the offending message before the error (a
        # ``siphon.sip.message.Request`` when its start line was readable), so a
        # server can still answer it with ``status_hint``.
        self.partial = partial


class RemoteProtocolError(SipProtocolError):
    """The peer sent something that breaks the protocol. Parsers raise only this."""


class LocalProtocolError(SipProtocolError):
    """Our own code asked for something the protocol forbids."""


class RtpParseError(SiphonError):
    """An RTP/RTCP packet that cannot be parsed; the datagram is dropped and counted."""
