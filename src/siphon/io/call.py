"""``SipCall``: one call as the application sees it (inbound or outbound).

The call object is a thin, awaitable face over the user agent: ``ring()``,
``answer()``, ``reject()``, ``hangup()``, ``transfer()``, ``wait_ended()`` and a
queue of events (DTMF over SIP INFO, hold/resume, transfer requests, end). SIP
details stay in ``user_agent.py`` (and ``transfer.py`` for REFER).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from siphon.errors import SiphonError
from siphon.events import CallEnded, CallEvent
from siphon.sip.dialog import Dialog
from siphon.sip.message import Request, Response
from siphon.sip.sdp import Direction, NegotiatedMedia, SdpSession

if TYPE_CHECKING:
    from siphon.io.playout import PcmFrame
    from siphon.io.rtp_session import MediaStats, RtpSession
    from siphon.io.sip_stack import ServerTxn
    from siphon.io.transfer import IncomingRefer
    from siphon.io.user_agent import UserAgent


log = logging.getLogger("siphon.call")

# Events a call queues for its app before new ones are dropped (and counted).
MAX_QUEUED_EVENTS = 256


class CallState(Enum):
    INCOMING = "incoming"  # INVITE received, nothing sent beyond 100 Trying
    RINGING = "ringing"  # 180 sent (inbound) / 1xx received (outbound)
    CALLING = "calling"  # outbound INVITE sent, no provisional yet
    ANSWERED = "answered"  # 2xx sent or received; media flows
    ENDED = "ended"


class CallFailed(SiphonError):
    """An outbound call that did not connect; ``status`` is its SIP final status (408: timeout)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"call failed: {status} {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TransferResult:
    """How a cold transfer (``SipCall.transfer``) ended.

    ``status`` is the final status the transferee reported in its NOTIFY sipfrag
    (200: the target answered; 486, 603...: it did not), or the REFER's own final
    response when it was refused (403, 405, 603...). Synthetic statuses: 408 when
    nothing final came in time, 487 when the subscription or the call ended first,
    202 when the transferee hung up after accepting without reporting (``ok``).
    """

    ok: bool
    status: int
    reason: str
    target: str  # the Refer-To URI we sent
    progress: tuple[tuple[int, str], ...] = ()  # provisional reports: (100, "Trying")...


class SipCall:
    def __init__(
        self,
        ua: UserAgent,
        *,
        direction: str,
        call_id: str,
        local_tag: str,
        invite: Request,
        media: RtpSession,
        sdp: SdpSession | None = None,
    ) -> None:
        self._ua = ua
        self.direction = direction  # "inbound" | "outbound"
        self.call_id = call_id
        self.local_tag = local_tag
        self.invite = invite
        self.media = media
        self.sdp = sdp
        self.state = CallState.INCOMING if direction == "inbound" else CallState.CALLING
        self.dialog: Dialog | None = None
        self.negotiated: NegotiatedMedia | None = None
        self.final_response: Response | None = None
        self.end_reason: str | None = None
        self.end_status: int | None = None
        self.on_hold = False  # the peer holds us (we may not send)
        self.local_direction = Direction.SENDRECV  # what we asked for (hold = sendonly)
        # The asyncio objects below are made when first needed: most calls never
        # read their events or wait twice, and a call set-up is paid per call.
        self._events: asyncio.Queue[CallEvent] | None = None
        self._unread: list[CallEvent] = []  # events emitted before ``events`` was read
        self.events_dropped = 0
        self.pending_ack_cseq: int | None = None  # CSeq of the INVITE whose 2xx awaits ACK
        self.bye_pending: str | None = None  # hangup() waiting for that ACK (RFC 3261 §15)
        self.reinvite_pending = False  # our own re-INVITE is in progress (glare, §14)
        self.incoming_refer: IncomingRefer | None = None  # a REFER we accepted (transferee)
        self._ended: asyncio.Event | None = None
        self._end_callbacks: list[Callable[[], object]] = []
        self.acked = False  # the ACK of our latest 2xx came (inbound) / we sent it (outbound)
        self._settled: asyncio.Event | None = None  # ACKed or ended: what answer() waits for
        self.server_txn: ServerTxn | None = None  # inbound: the INVITE's transaction
        self.outbound: object | None = None  # outbound: the user agent's client-side state

    # -- facts --------------------------------------------------------------------
    @property
    def from_uri(self) -> str:
        return str(self.invite.from_addr.uri)

    @property
    def to_uri(self) -> str:
        return str(self.invite.to_addr.uri)

    @property
    def called_user(self) -> str | None:
        """The user part of the Request-URI (the number or name that was dialled)."""
        uri = self.invite.request_uri
        return getattr(uri, "user", None) or getattr(uri, "number", None)

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    # -- inbound control ---------------------------------------------------------
    async def ring(self) -> None:
        """Send 180 Ringing (inbound calls)."""
        self._ua.ring(self)

    async def answer(self, *, timeout: float | None = None) -> None:
        """Send 200 OK with our SDP answer and wait for the caller's ACK."""
        self._ua.answer(self)
        if not self.acked and not self.ended:
            # Set by the ACK, or by the end of the call (no ACK within 64*T1, BYE, CANCEL).
            if self._settled is None:
                self._settled = asyncio.Event()
            if timeout is None:  # asyncio.timeout(None) would only cost time
                await self._settled.wait()
            else:
                async with asyncio.timeout(timeout):
                    await self._settled.wait()
        if not self.acked:
            raise CallFailed(self.end_status or 487, self.end_reason or "ended before ACK")

    async def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Answer an unanswered inbound call with a final error status."""
        self._ua.reject(self, status, reason)

    # -- both directions ---------------------------------------------------------------
    async def transfer(self, target: str, *, timeout: float = 30.0) -> TransferResult:
        """Cold transfer: ask the peer (REFER, RFC 3515) to call ``target`` instead.

        ``target``: a ``sip:`` URI, a ``tel:`` URI or a bare number; numbers become
        ``sip:<number>@<peer's host>`` (with ``user=phone`` when global). Waits up to
        ``timeout`` seconds for the transferee's final report and never raises for
        the transfer's own failure: see ``TransferResult``. Raises ``SiphonError``
        when the call is not answered, a transfer is already running, or ``target``
        is unusable (``LocalProtocolError``). The call stays up: hang up on success.
        """
        return await self._ua.transfer(self, target, timeout=timeout)

    async def notify_transfer(self, status: int, reason: str = "") -> bool:
        """Transferee side: report on a ``TransferRequested`` (RFC 3515 §2.4.5).

        Sends ``SIP/2.0 <status> <reason>`` in a NOTIFY; a final status (>= 200) ends
        the subscription. Returns whether the referrer accepted the NOTIFY.
        """
        return await self._ua.notify_transfer(self, status, reason)

    async def hangup(self, reason: str = "local hangup") -> None:
        """End the call: BYE when answered, CANCEL/487 before that. Idempotent."""
        await self._ua.hangup(self, reason)

    async def wait_ended(self) -> str:
        if not self.ended:
            if self._ended is None:
                self._ended = asyncio.Event()
            await self._ended.wait()
        return self.end_reason or "ended"

    @property
    def events(self) -> asyncio.Queue[CallEvent]:
        """What happens in the call (DTMF, hold, transfer requests), ending with ``CallEnded``.

        Bounded (MAX_QUEUED_EVENTS): a peer must not grow our memory with INFOs the
        app never reads; what does not fit is dropped and counted (``events_dropped``).
        """
        if self._events is None:
            self._events = asyncio.Queue(maxsize=MAX_QUEUED_EVENTS)
            for event in self._unread:
                self._events.put_nowait(event)
            self._unread = []
        return self._events

    async def iter_events(self) -> AsyncIterator[CallEvent]:
        """Events until (and including) ``CallEnded``."""
        while True:
            event = await self.events.get()
            yield event
            if isinstance(event, CallEnded):
                return

    def on_ended(self, callback: Callable[[], object]) -> None:
        """Run ``callback()`` once when the call ends (at once if it already has)."""
        if self.ended:
            callback()
        else:
            self._end_callbacks.append(callback)

    # -- media ---------------------------------------------------------------------------
    def frames(self) -> AsyncIterator[PcmFrame]:
        """The caller's audio: 20 ms frames of 8 kHz int16 PCM until the call ends."""
        return self.media.frames()

    def play(self, pcm: PcmFrame, epoch: int | None = None) -> None:
        """Queue 8 kHz int16 PCM for the caller; frames of an older ``epoch`` are dropped."""
        self.media.play(pcm, epoch)

    def flush_playout(self) -> int:
        """Stop what is queued for the caller within one tick; returns the new epoch."""
        return self.media.flush()

    def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        """Send digits as RFC 4733 telephone-events (SIP INFO: ``UserAgent.send_info_dtmf``)."""
        self.media.send_dtmf(digits, duration_ms)

    @property
    def stats(self) -> MediaStats:
        """Packets in/out, lost, late, jitter, DTMF events... of this call's media."""
        return self.media.refresh_stats()

    @property
    def recording_path(self) -> str | None:
        path = self.media.recording_path
        return str(path) if path is not None else None

    # -- used by the user agent ----------------------------------------------------
    def emit(self, event: CallEvent) -> None:
        if self._events is None and len(self._unread) < MAX_QUEUED_EVENTS:
            self._unread.append(event)
            return
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            self.events_dropped += 1
            log.warning("call %s: event queue full, dropped %r", self.call_id, event)

    def _mark_acked(self) -> None:
        self.acked = True
        if self._settled is not None:
            self._settled.set()

    def _mark_ended(self, reason: str, status: int | None = None) -> bool:
        if self.state is CallState.ENDED:
            return False
        self.state = CallState.ENDED
        self.end_reason = reason
        self.end_status = status
        self.media.close()
        ended = CallEnded(reason, status)
        if self._events is None:
            if len(self._unread) >= MAX_QUEUED_EVENTS:
                del self._unread[0]  # CallEnded must always get through
            self._unread.append(ended)
        else:
            if self._events.full():
                self._events.get_nowait()  # CallEnded must always get through
            self._events.put_nowait(ended)
        if self._ended is not None:
            self._ended.set()
        if self._settled is not None:
            self._settled.set()
        callbacks, self._end_callbacks = self._end_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # an app callback must not break the user agent
                log.exception("call %s: on_ended callback failed", self.call_id)
        return True

    def __repr__(self) -> str:
        return f"<SipCall {self.direction} {self.call_id} {self.state.value}>"
