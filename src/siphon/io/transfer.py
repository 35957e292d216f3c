"""Cold call transfer with REFER (RFC 3515): the bookkeeping of both ends.

Transferor (``Transfer``): we sent an in-dialog REFER and wait for the NOTIFYs of
its implicit subscription. Each NOTIFY carries a ``message/sipfrag`` status line
(RFC 3420); the first final one (>= 200) decides the transfer.

Transferee (``IncomingRefer``): we accepted a REFER (202) and owe the referrer
NOTIFYs until the new call's final status (``SipCall.notify_transfer``).

Once a transfer is decided (or given up) its subscription is forgotten: a later
NOTIFY gets 481, which tells the notifier to stop (RFC 6665 §4.1.3).

The user agent owns the sockets and the tables; this module only decides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from siphon.errors import RemoteProtocolError
from siphon.io.call import TransferResult
from siphon.io.timer_queue import TimerHandle
from siphon.sip.dialog import Dialog
from siphon.sip.message import Request, Response
from siphon.sip.refer import (
    EVENT_PACKAGE,
    SIPFRAG,
    SipfragStatus,
    parse_event,
    parse_sipfrag,
    parse_subscription_state,
)

log = logging.getLogger("siphon.sip.transfer")

# After the call ends (the transferee's BYE), its final NOTIFY may still come: the
# subscription outlives the INVITE usage of the dialog (RFC 6665 §4.5.2) and many
# phones send BYE first. Shorter than the app's handler grace (2 s) on purpose.
NOTIFY_GRACE_AFTER_END = 1.0

CallLater = Callable[[float, Callable[[], None]], TimerHandle]


@dataclass(frozen=True, slots=True)
class NotifyAnswer:
    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


class Transfer:
    """One REFER we sent and its implicit subscription (RFC 3515 §2.4.4)."""

    def __init__(self, target: str, refer_cseq: int, dialog: Dialog) -> None:
        self.target = target
        self.refer_cseq = refer_cseq
        self.dialog = dialog  # kept: NOTIFYs may arrive after the call's BYE
        self.accepted = False  # 2xx to the REFER, or any NOTIFY (RFC 6665 §4.1.2.4)
        self.call_ended = False
        self.progress: list[SipfragStatus] = []
        self.result: asyncio.Future[TransferResult] = asyncio.get_running_loop().create_future()
        self._grace: TimerHandle | None = None

    @property
    def done(self) -> bool:
        return self.result.done()

    def finish(self, ok: bool, status: int, reason: str) -> None:
        if self.done:
            return
        self.close()
        progress = tuple((p.status, p.reason) for p in self.progress)
        self.result.set_result(TransferResult(ok, status, reason, self.target, progress))

    def close(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    # -- the REFER transaction ---------------------------------------------------------
    def refer_response(self, response: Response) -> None:
        if response.status < 200:
            return
        if response.is_success:
            self.accepted = True  # 202 Accepted (RFC 3515 §2.4.2); some peers send 200
        else:
            self.finish(False, response.status, f"REFER refused: {response.reason}")

    def refer_timeout(self) -> None:
        self.finish(False, 408, "no response to REFER")

    # -- the subscription --------------------------------------------------------------
    def notify(self, request: Request) -> None:
        """Absorb a NOTIFY already matched to this subscription."""
        self.accepted = True  # a NOTIFY implies the REFER was accepted (RFC 6665 §4.1.2.4)
        state = None
        value = request.get("Subscription-State")
        if value is not None:
            try:
                state = parse_subscription_state(value)
            except RemoteProtocolError:
                log.info("REFER to %s: unreadable Subscription-State %r", self.target, value)
        if request.body:
            try:
                frag: SipfragStatus | None = parse_sipfrag(request.body)
            except RemoteProtocolError as exc:
                log.warning("REFER to %s: ignoring a NOTIFY body: %s", self.target, exc)
                frag = None
            if frag is not None and frag.final:
                self.finish(200 <= frag.status < 300, frag.status, frag.reason)
            elif frag is not None:
                log.info("REFER to %s: %d %s", self.target, frag.status, frag.reason)
                self.progress.append(frag)
        if state is not None and state.terminated:
            # RFC 3515 §2.4.7: the final NOTIFY ends the subscription; this one said nothing.
            why = state.reason or "no reason given"
            self.finish(False, 487, f"transferee ended the subscription ({why}) without a result")

    def ended(self, call_later: CallLater) -> None:
        """The call ended: wait briefly for a late NOTIFY, then conclude."""
        if self.done or self.call_ended:
            return
        self.call_ended = True
        self._grace = call_later(NOTIFY_GRACE_AFTER_END, self.expire)

    def expire(self) -> None:
        """No final NOTIFY came in time (the call's end, or the caller's timeout)."""
        if self.accepted and self.call_ended:
            # Many phones accept, call the target and drop us without a final NOTIFY.
            self.finish(True, 202, "transferee hung up after accepting")
        elif self.accepted:
            self.finish(False, 408, "the transferee accepted but never reported the outcome")
        elif self.call_ended:
            self.finish(False, 487, "call ended before the transferee accepted the transfer")
        else:
            self.finish(False, 408, "no response to REFER")


def answer_notify(request: Request, transfer: Transfer | None) -> NotifyAnswer:
    """How to answer an in-dialog NOTIFY, and feed it to ``transfer`` when it matches."""
    value = request.get("Event")
    if value is None:
        return NotifyAnswer(400, "Missing Event Header")  # mandatory (RFC 6665 §8.2.1)
    try:
        event = parse_event(value)
    except RemoteProtocolError as exc:
        return NotifyAnswer(400, exc.reason)
    if event.package != EVENT_PACKAGE:
        # RFC 6665 §8.3.2: an event package we do not take.
        return NotifyAnswer(489, None, (("Allow-Events", EVENT_PACKAGE),))
    # RFC 6665 §4.1.3 / RFC 3515 §2.4.6: dialog + Event + id (the REFER's CSeq) must
    # name a live subscription; the first REFER of a dialog may be reported without id.
    if transfer is None or transfer.done or not _same_id(event.id, transfer.refer_cseq):
        return NotifyAnswer(481, "Subscription Does Not Exist")
    if request.body and request.content_type not in (None, SIPFRAG):
        return NotifyAnswer(415, None, (("Accept", SIPFRAG),))
    transfer.notify(request)
    return NotifyAnswer(200)


def _same_id(event_id: str | None, refer_cseq: int) -> bool:
    if event_id is None:
        return True
    return event_id.isascii() and event_id.isdigit() and int(event_id) == refer_cseq


@dataclass(slots=True)
class IncomingRefer:
    """A REFER we accepted: the NOTIFYs we owe its sender (RFC 3515 §2.4.4)."""

    cseq: int  # the REFER's CSeq: the ``id`` of our Event header (§2.4.6)
    target: str
    referred_by: str | None
    final_sent: bool = False
    # The last NOTIFY's outcome: the next one waits for it, so NOTIFYs arrive in CSeq
    # order (a reordered one would be refused as out of order, RFC 3261 §12.2.2).
    last_notify: asyncio.Future[Response | None] | None = None
