"""Call events shared by the signalling and media layers.

They live here, outside both, because a DTMF digit may arrive as SIP INFO
(``siphon.io``) or as RFC 4733 RTP events (``siphon.rtp``): both surface as one
``DtmfReceived``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    digit: str  # one of 0-9 * # A-D
    duration_ms: int
    source: str = "rtp"  # "rtp" (RFC 4733) or "info" (SIP INFO)


@dataclass(frozen=True, slots=True)
class HoldChanged:
    """The peer put the call on hold (``on_hold``) or resumed it."""

    on_hold: bool
    direction: str  # our media direction after the change: sendrecv/sendonly/recvonly/inactive


@dataclass(frozen=True, slots=True)
class TransferRequested:
    """The peer asked us to transfer ourselves: call ``target`` (REFER, RFC 3515).

    Only with ``UaConfig(accept_refer=True)``. The app places the new call and
    reports how it went with ``await call.notify_transfer(status, reason)``.
    """

    target: str  # the Refer-To URI
    referred_by: str | None = None  # the Referred-By URI (RFC 3892), when sent


@dataclass(frozen=True, slots=True)
class CallEnded:
    reason: str  # e.g. "remote hangup", "local hangup", "cancelled", "ack timeout"
    status: int | None = None  # SIP status when the call ended with a final response


CallEvent = DtmfReceived | HoldChanged | TransferRequested | CallEnded
