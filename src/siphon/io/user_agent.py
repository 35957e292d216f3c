"""The SIP user agent core (RFC 3261 §8, §12-§15): what requests mean for calls.

Server side: INVITE -> 100 -> (app) 180 -> 200 with the SDP answer, ACK, BYE,
CANCEL -> 200 + 487, OPTIONS, re-INVITE (hold/resume), INFO (DTMF), and the
rejections a standard UAS owes (405/481/483/420/415/488/501/503).
Client side: INVITE with an SDP offer, provisional and final responses, ACK,
BYE, CANCEL, and one retry with credentials on 401/407.
Both: cold transfer with REFER (RFC 3515), as transferor and as transferee; the
subscription bookkeeping lives in ``transfer.py``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from siphon.errors import RemoteProtocolError, SiphonError
from siphon.events import DtmfReceived, HoldChanged, TransferRequested
from siphon.io.call import CallFailed, CallState, SipCall, TransferResult
from siphon.io.media_clock import MediaClock
from siphon.io.overload import LoopLoad
from siphon.io.ports import PortsExhausted, RtpPortAllocator
from siphon.io.recording import recording_writer, recordings_dir
from siphon.io.rtp_session import RtpSession
from siphon.io.sip_stack import ClientTxn, ServerTxn, SipStack
from siphon.io.sip_transport import Address, SipTransport
from siphon.io.timer_queue import TimerHandle
from siphon.io.transfer import IncomingRefer, Transfer, answer_notify
from siphon.sip.auth import AuthStatus, DigestClient, DigestServer, parse_credentials
from siphon.sip.dialog import Dialog, DialogId
from siphon.sip.message import Request, Response, new_call_id, new_tag
from siphon.sip.refer import SIPFRAG, read_refer, refer_notify_headers, refer_to_uri, sipfrag
from siphon.sip.sdp import DEFAULT_CODECS, Codec, Direction, SdpSession, parse_sdp
from siphon.sip.uri import NameAddr, SipUri, Uri, parse_name_addr, parse_uri

log = logging.getLogger("siphon.sip.ua")

# Methods we implement, in the order the Allow header lists them.
ALLOWED_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "NOTIFY")
ALLOW = ", ".join(ALLOWED_METHODS)
# With UaConfig.accept_refer we also take REFER (RFC 3515 §2.4.2).
ALLOW_WITH_REFER = f"{ALLOW}, REFER"
# Methods other SIP RFCs define that we do not implement: 405, not 501 (RFC 3261 §8.2.1).
KNOWN_METHODS = frozenset(
    (*ALLOWED_METHODS, "REGISTER", "SUBSCRIBE", "PUBLISH", "MESSAGE", "UPDATE", "PRACK", "REFER")
)
# Option tags we implement (RFC 3261 §8.2.2.3); anything else in Require gets 420.
SUPPORTED_OPTIONS: frozenset[str] = frozenset()
SUPPORTED = ", ".join(sorted(SUPPORTED_OPTIONS))  # our Supported header value
# A Call-ID in a recording's file name: letters, digits, '-', '_' and '.' stay.
_UNSAFE_IN_FILE_NAME = re.compile(r"[^\w.-]")
DTMF_INFO_TYPES = ("application/dtmf-relay", "application/dtmf")
_DTMF_DIGITS = "0123456789*#ABCD"


@dataclass(frozen=True, slots=True)
class UaConfig:
    media_host: str = "127.0.0.1"
    user_agent: str = "SIPHON/0.1"
    # RFC 3261 §21.5.4: Retry-After sent with 503 when we are not taking calls.
    retry_after: int = 30
    # An unanswered inbound call gets 408 after this long (Kamailio's fr_inv_timer: 120 s).
    ring_timeout: float = 120.0
    # No RTP for this long ends an answered call (a peer that vanished without BYE).
    media_timeout: float = 30.0
    # Stereo WAV per call (left = caller, right = agent) in recordings_dir
    # (default ./recordings or $SIPHON_RECORDINGS_DIR).
    record: bool = True
    recordings_dir: Path | None = None
    auth: DigestServer | None = None
    # Transferee side: accept an in-dialog REFER (202, then NOTIFYs; the app gets a
    # TransferRequested event). Off: REFER gets 603, an agent is not to be transferred.
    accept_refer: bool = False
    # Retry-After of the 503 a new INVITE gets while the process is overloaded.
    overload_retry_after: int = 5


class UserAgent:
    def __init__(
        self,
        stack: SipStack,
        *,
        ports: RtpPortAllocator | None = None,
        config: UaConfig | None = None,
        on_call: Callable[[SipCall], None] | None = None,
    ) -> None:
        self.stack = stack
        self.config = config or UaConfig()
        self.ports = ports or RtpPortAllocator(host=self.config.media_host)
        self.on_call = on_call
        self.accepting = True
        # Set by the server: a new INVITE it does not admit gets 503 (overload.py).
        self.load: LoopLoad | None = None
        self._calls: dict[DialogId, SipCall] = {}
        self._invites: dict[ServerTxn, SipCall] = {}
        self._retransmit: dict[SipCall, TimerHandle] = {}
        self._sources: dict[SipCall, tuple[Address, SipTransport]] = {}
        # REFERs we sent, by dialog: they outlive a BYE briefly (see transfer.py).
        self._transfers: dict[DialogId, Transfer] = {}
        self.stats = stack.stats
        # One media clock for every call of this process (DESIGN: concurrency model).
        self.clock = MediaClock()
        stack.handler = self

    @property
    def allow(self) -> str:
        """Our Allow header value (RFC 3261 §20.5)."""
        return ALLOW_WITH_REFER if self.config.accept_refer else ALLOW

    # ---------------------------------------------------------------------------
    # Media
    # ---------------------------------------------------------------------------
    def _new_media(self, call_id: str) -> RtpSession:
        path = None
        if self.config.record:
            safe = _UNSAFE_IN_FILE_NAME.sub("_", call_id[:64])
            folder = self.config.recordings_dir or recordings_dir()
            path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}.wav"
        return RtpSession(
            self.ports,
            self.clock,
            media_timeout=self.config.media_timeout,
            recorder=recording_writer() if self.config.record else None,
            recording_path=path,
        )

    def _wire_media(self, call: SipCall) -> None:
        call.media.on_dtmf = call.emit
        call.media.on_timeout = functools.partial(self._media_timeout, call)

    def _start_media(self, call: SipCall) -> None:
        """Apply the negotiated media: RTP flows from now (and after each re-INVITE)."""
        if call.negotiated is not None and not call.ended:
            call.media.start(call.negotiated)

    def _media_timeout(self, call: SipCall) -> None:
        if call.ended:
            return
        log.warning(
            "call %s: no RTP for %.0f s; hanging up", call.call_id, self.config.media_timeout
        )
        self.stats["media_timeouts"] += 1
        if call.state is CallState.ANSWERED:
            self._send_bye(call)
        self.end(call, "media timeout")

    # ---------------------------------------------------------------------------
    # Incoming requests
    # ---------------------------------------------------------------------------
    def request_received(self, txn: ServerTxn) -> None:
        request = txn.request
        method = request.method
        if method not in KNOWN_METHODS:
            txn.reply(501, headers=[("Allow", self.allow)])
            return
        if method not in ALLOWED_METHODS and method != "REFER":
            txn.reply(405, headers=[("Allow", self.allow)])
            return
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards == 0:
            txn.reply(483)
            return
        unsupported = [t for t in request.option_tags("Require") if t not in SUPPORTED_OPTIONS]
        if unsupported:
            txn.reply(420, headers=[("Unsupported", ", ".join(unsupported))])
            return
        if request.to_tag is not None:
            self._in_dialog_request(txn)
            return
        if method == "OPTIONS":
            self._answer_options(txn)
        elif method == "INVITE":
            self._new_invite(txn)
        elif method == "REFER":
            # RFC 3515 lets a REFER create a dialog; we transfer only calls in progress.
            if self.config.accept_refer:
                txn.reply(403, "REFER Outside A Call Not Accepted")
            else:
                txn.reply(405, headers=[("Allow", self.allow)])
        else:  # BYE, INFO, NOTIFY outside any dialog
            txn.reply(481)

    def _answer_options(self, txn: ServerTxn) -> None:
        if not self.accepting:
            # Lets a load balancer's OPTIONS probe take us out of rotation.
            txn.reply(503, headers=[("Retry-After", str(self.config.retry_after))])
            return
        txn.reply(
            200,
            to_tag=new_tag(),
            headers=[
                ("Allow", self.allow),
                ("Accept", "application/sdp"),
                ("Accept-Encoding", "identity"),
                ("Accept-Language", "en"),
                ("Supported", SUPPORTED),
            ],
        )

    def _check_body(self, txn: ServerTxn) -> bool:
        """415 for bodies we cannot read (RFC 3261 §8.2.3)."""
        request = txn.request
        encoding = request.get("Content-Encoding")
        if encoding and encoding.strip().lower() not in ("identity", ""):
            txn.reply(415, headers=[("Accept-Encoding", "identity")])
            return False
        if request.body and request.content_type != "application/sdp":
            txn.reply(415, headers=[("Accept", "application/sdp")])
            return False
        return True

    def _authenticate(self, txn: ServerTxn) -> bool:
        auth = self.config.auth
        if auth is None:
            return True
        request = txn.request
        value = request.get("Authorization")
        now = time.time()
        if value is None:
            self._challenge(txn, stale=False)
            return False
        # RFC 3261 §22.4 wants the digest uri to be the Request-URI; SIPp and some
        # phones send only host:port. Accept any uri naming our host and port: the
        # digest still covers the uri sent, and nonce counts stop replays.
        try:
            credentials = parse_credentials(value)
        except RemoteProtocolError as exc:
            txn.reply(400, exc.reason)
            return False
        if not _same_host_port(credentials.uri, request.request_uri):
            self.stats["auth_failures"] += 1
            self._challenge(txn, stale=False)
            return False
        result = auth.verify(
            credentials, method=request.method, uri=None, now=now, body=request.body
        )
        if result.status is AuthStatus.OK:
            return True
        if result.status is AuthStatus.MALFORMED:
            txn.reply(400, "Bad Authorization header")
            return False
        self.stats["auth_failures"] += 1
        self._challenge(txn, stale=result.status is AuthStatus.STALE)
        return False

    def _challenge(self, txn: ServerTxn, *, stale: bool) -> None:
        assert self.config.auth is not None
        headers = [
            ("WWW-Authenticate", v) for v in self.config.auth.challenge(time.time(), stale=stale)
        ]
        txn.reply(401, to_tag=new_tag(), headers=headers)

    def _new_invite(self, txn: ServerTxn) -> None:
        request = txn.request
        if not self.accepting or self.on_call is None:
            txn.reply(503, headers=[("Retry-After", str(self.config.retry_after))])
            return
        if self.load is not None and not self.load.admit():
            # Shed the new call before it costs media, a task and a recording: the
            # calls in progress keep their share of the loop (RFC 3261 §21.5.4).
            self.stats["rejected_overload"] += 1
            txn.reply(
                503,
                "Overloaded",
                headers=[("Retry-After", str(self.config.overload_retry_after))],
            )
            return
        if not self._check_body(txn) or not self._authenticate(txn):
            return
        try:
            contacts = request.contacts
            request.record_routes  # noqa: B018 - copied into our 2xx and the route set
        except RemoteProtocolError as exc:
            txn.reply(400, exc.reason)
            return
        if len(contacts) != 1 or contacts[0].wildcard:
            txn.reply(400, "Missing or Bad Contact")
            return
        # (The INVITE server transaction sends 100 Trying if the app has not rung or
        # answered when its Trying timer fires, RFC 3261 §17.2.1.)
        call = SipCall(
            self,
            direction="inbound",
            call_id=request.call_id,
            local_tag=new_tag(),
            invite=request,
            media=self._new_media(request.call_id),
        )
        self._wire_media(call)
        call.server_txn = txn
        self._invites[txn] = call
        self._sources[call] = (txn.source, txn.transport)
        self.stats["calls_in"] += 1
        # Like a proxy's Timer C (RFC 3261 §16.6): an app that never answers must not
        # hold the caller, the transaction and a media port for ever.
        ring_timer = self.stack.timer_queue.call_later(
            self.config.ring_timeout, lambda: self.reject(call, 408, "No Answer")
        )
        call.on_ended(ring_timer.cancel)
        self.on_call(call)

    async def prepare_inbound(self, call: SipCall) -> bool:
        """Open the media port and negotiate SDP; on failure answer the INVITE and say so."""
        if call.ended:  # CANCELled before its task ran
            return False
        try:
            port = await call.media.open()
        except PortsExhausted as exc:
            log.warning("rejecting call %s: %s", call.call_id, exc)
            self.reject(call, 503, headers=[("Retry-After", str(self.config.retry_after))])
            return False
        if call.ended:  # CANCELled while the port was opening: give it back
            call.media.close()
            return False
        call.sdp = SdpSession(address=self.config.media_host, port=port)
        offer_body = call.invite.body
        if not offer_body:
            return True  # delayed offer (RFC 3261 §13.2.1): we offer in the 200, ACK answers
        try:
            offer = parse_sdp(offer_body)
            result = call.sdp.answer(offer)
        except RemoteProtocolError as exc:
            warning = '305 siphon "Incompatible media format"' if exc.status_hint == 488 else None
            log.info("rejecting call %s with %d: %s", call.call_id, exc.status_hint, exc)
            self.reject(
                call,
                exc.status_hint,
                exc.reason,
                headers=[("Warning", warning)] if warning else None,
            )
            return False
        call.negotiated = result.media
        return True

    # -- inbound call control (called by SipCall) -----------------------------------------
    def _dialog_headers(self, call: SipCall) -> list[tuple[str, str]]:
        # RFC 3261 §12.1.1 (known header names are stored in their canonical spelling).
        invite = call.invite
        headers = (
            [(name, value) for name, value in invite.iter_headers() if name == "Record-Route"]
            if "Record-Route" in invite
            else []
        )
        headers.append(("Contact", f"<{self._local_contact(call)}>"))  # last: answer() reads it
        return headers

    def _local_contact(self, call: SipCall) -> str:
        transport = self._sources[call][1].name if call in self._sources else "UDP"
        return self.stack.contact_uri(transport)

    def ring(self, call: SipCall) -> None:
        txn = call.server_txn
        if txn is None or call.state is not CallState.INCOMING or txn.final_sent:
            return
        txn.reply(180, to_tag=call.local_tag, headers=self._dialog_headers(call))
        call.state = CallState.RINGING

    def answer(self, call: SipCall) -> None:
        txn = call.server_txn
        if txn is None or call.ended or txn.final_sent:
            raise SiphonError(f"cannot answer {call!r}: it is not ringing")
        assert call.sdp is not None, "prepare_inbound() opens the media first"
        if call.negotiated is None and not call.invite.body:
            # Delayed offer: we make the offer in the 200 OK.
            body = call.sdp.create_offer().to_bytes()
        else:
            body = call.sdp.last_sent or b""
        headers = self._dialog_headers(call)
        contact = headers[-1][1]
        headers += [
            ("Allow", self.allow),
            ("Supported", SUPPORTED),
            ("Content-Type", "application/sdp"),
        ]
        # Read from the INVITE before the final response lets it go (release_views).
        dialog = Dialog.from_uas(call.invite, call.local_tag, contact)
        invite_cseq = call.invite.cseq.seq
        response = txn.reply(200, to_tag=call.local_tag, headers=headers, body=body)
        call.final_response = response
        call.dialog = dialog
        call.pending_ack_cseq = invite_cseq
        self._calls[call.dialog.id] = call
        self._invites.pop(txn, None)
        call.state = CallState.ANSWERED
        self.stats["calls_answered"] += 1
        self._start_media(call)
        if not txn.transport.reliable:
            self._schedule_2xx_retransmit(call, txn, response, self.stack.timers.t1, 0.0)
        else:
            self._schedule_ack_timeout(call)

    def _schedule_2xx_retransmit(
        self, call: SipCall, txn: ServerTxn, response: Response, interval: float, elapsed: float
    ) -> None:
        """RFC 3261 §13.3.1.4: resend the 2xx at T1, 2T1… (capped at T2) until the ACK."""
        timers = self.stack.timers

        def fire() -> None:
            self._retransmit.pop(call, None)
            if call.ended or call.acked:
                return
            total = elapsed + interval
            if total >= 64 * timers.t1:
                self._ack_never_came(call)
                return
            self.stack.send_response_stateless(response, txn)
            self.stats["2xx_retransmissions"] += 1
            self._schedule_2xx_retransmit(call, txn, response, min(2 * interval, timers.t2), total)

        previous = self._retransmit.get(call)
        if previous is not None and elapsed == 0.0:
            previous.cancel()
        self._retransmit[call] = self.stack.timer_queue.call_later(interval, fire)

    def _schedule_ack_timeout(self, call: SipCall) -> None:
        def fire() -> None:
            self._retransmit.pop(call, None)
            if not call.ended and not call.acked:
                self._ack_never_came(call)

        self._retransmit[call] = self.stack.timer_queue.call_later(64 * self.stack.timers.t1, fire)

    def _ack_never_came(self, call: SipCall) -> None:
        # RFC 3261 §13.3.1.4: no ACK within 64*T1 -> confirm then end the dialog with BYE.
        log.warning("call %s: no ACK for our 200 OK; sending BYE", call.call_id)
        self.stats["ack_timeouts"] += 1
        try:
            self._send_bye(call)
        finally:
            self.end(call, "ack timeout")

    def reject(
        self,
        call: SipCall,
        status: int,
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        txn = call.server_txn
        if txn is None or txn.final_sent or call.ended:
            return
        if status < 300:
            raise SiphonError(f"reject() takes a status >= 300, not {status}")
        txn.reply(status, reason, to_tag=call.local_tag, headers=headers)
        self._invites.pop(txn, None)
        self.end(call, "rejected", status)

    async def hangup(self, call: SipCall, reason: str) -> None:
        if call.ended:
            return
        if call.direction == "inbound":
            if call.state is CallState.ANSWERED and not call.acked:
                # RFC 3261 §15: no BYE before the ACK of our 2xx (or its timeout).
                call.bye_pending = reason
            elif call.state is CallState.ANSWERED:
                self._send_bye(call)
                self.end(call, reason)
            else:
                self.reject(call, 480)
                call.end_reason = reason
            return
        if call.state is CallState.ANSWERED:
            self._send_bye(call)
            self.end(call, reason)
        else:
            await self._cancel_outbound(call, reason)

    def end(self, call: SipCall, reason: str, status: int | None = None) -> None:
        handle = self._retransmit.pop(call, None)
        if handle is not None:
            handle.cancel()
        if call.dialog is not None:
            call.dialog.terminate()
            self._calls.pop(call.dialog.id, None)
        if call.server_txn is not None:
            self._invites.pop(call.server_txn, None)
        self._sources.pop(call, None)
        if call._mark_ended(reason, status):
            self.stats["calls_ended"] += 1
            if not log.isEnabledFor(logging.INFO):
                return  # the media summary costs a statistics refresh: only when logged
            media = call.stats
            log.info(
                "call %s ended: %s (RTP in %d, out %d, lost %d, jitter %.1f ms, DTMF %d)",
                call.call_id,
                reason,
                media.packets_in,
                media.packets_out,
                media.lost,
                media.jitter_ms,
                media.dtmf_events,
            )

    # -- in-dialog requests --------------------------------------------------------------
    def _in_dialog_request(self, txn: ServerTxn) -> None:
        request = txn.request
        method = request.method
        key = (request.call_id, request.to_tag or "", request.from_tag or "")
        call = self._calls.get(key)
        transfer = self._transfers.get(key)
        if call is None and method == "BYE" and self._early_bye(txn):
            return
        dialog = call.dialog if call is not None else None
        if dialog is None and method == "NOTIFY" and transfer is not None:
            dialog = transfer.dialog  # the REFER subscription outlives the BYE (transfer.py)
        if dialog is None:
            txn.reply(481)
            return
        try:
            dialog.receive_request(request)
        except RemoteProtocolError as exc:
            txn.reply(exc.status_hint, exc.reason)
            return
        if method == "NOTIFY":
            # RFC 6665 §4.1.3: only NOTIFYs of a subscription of ours (a REFER we sent).
            answer = answer_notify(request, transfer)
            headers = list(answer.headers)
            if answer.status == 200:  # NOTIFY is a target refresh: Contact (RFC 6665 §4.4.1)
                headers.append(("Contact", dialog.local_contact))
            txn.reply(answer.status, answer.reason, headers=headers)
            return
        assert call is not None
        if method == "BYE":
            txn.reply(200)
            self.end(call, "remote hangup")
        elif method == "INVITE":
            self._reinvite(call, txn)
        elif method == "INFO":
            self._info(call, txn)
        elif method == "REFER":
            self._refer(call, txn)
        else:  # OPTIONS
            txn.reply(200, headers=[("Allow", self.allow)])

    def _early_bye(self, txn: ServerTxn) -> bool:
        """A caller's BYE on the early dialog: 200 to it, 487 to the INVITE (RFC 3261 §15.1.2)."""
        request = txn.request
        for call in self._invites.values():
            if (
                call.call_id == request.call_id
                and call.local_tag == request.to_tag
                and call.invite.from_tag == request.from_tag
            ):
                txn.reply(200)
                self.reject(call, 487)
                call.end_reason = "caller hung up"
                return True
        return False

    def _reinvite(self, call: SipCall, txn: ServerTxn) -> None:
        request = txn.request
        if call.reinvite_pending:
            # RFC 3261 §14.2: our own re-INVITE is in progress -> 491 Request Pending.
            txn.reply(491)
            return
        if not call.acked:
            # RFC 3261 §14.2: our 2xx to the previous INVITE is not ACKed yet -> 500 with a
            # random Retry-After between 0 and 10 s.
            txn.reply(
                500,
                "Previous INVITE Pending",
                headers=[("Retry-After", str(secrets.randbelow(11)))],
            )
            return
        if not self._check_body(txn):
            return
        was_on_hold = call.on_hold
        if request.body:
            try:
                offer = parse_sdp(request.body)
                assert call.sdp is not None
                # Keep our own hold (RFC 3264 §8.4) when the peer re-offers.
                result = call.sdp.answer(offer, direction=call.local_direction)
            except RemoteProtocolError as exc:
                # RFC 3264 §8: a rejected re-offer leaves the session as it was.
                txn.reply(exc.status_hint, exc.reason)
                return
            call.negotiated = result.media
            self._start_media(call)
            direction = result.media.direction
            # The peer holds us when we may no longer send (RFC 3264 §8.4).
            call.on_hold = not direction.sends
            body = result.answer.to_bytes()
        else:
            assert call.sdp is not None
            # An INVITE without offer: we offer again, the ACK answers (RFC 3264 §5).
            body = call.sdp.create_offer().to_bytes()
            direction = call.negotiated.direction if call.negotiated else Direction.SENDRECV
        assert call.dialog is not None
        headers = [
            ("Contact", call.dialog.local_contact),
            ("Allow", self.allow),
            ("Content-Type", "application/sdp"),
        ]
        call.acked = False
        call.pending_ack_cseq = request.cseq.seq
        response = txn.reply(200, headers=headers, body=body)
        if not txn.transport.reliable:
            self._schedule_2xx_retransmit(call, txn, response, self.stack.timers.t1, 0.0)
        else:
            self._schedule_ack_timeout(call)
        if call.on_hold != was_on_hold:
            call.emit(HoldChanged(call.on_hold, direction.value))
            log.info("call %s %s", call.call_id, "on hold" if call.on_hold else "resumed")

    def _info(self, call: SipCall, txn: ServerTxn) -> None:
        request = txn.request
        ctype = request.content_type
        if not request.body:
            txn.reply(200)  # an empty INFO is a dialog keep-alive for some SBCs and phones
            return
        if ctype not in DTMF_INFO_TYPES:
            txn.reply(415, headers=[("Accept", ", ".join(DTMF_INFO_TYPES))])
            return
        event = parse_dtmf_info(request.body, ctype)
        if event is None:
            txn.reply(400, "Bad DTMF Body")
            return
        txn.reply(200)
        call.emit(event)
        self.stats["dtmf_info"] += 1

    def _refer(self, call: SipCall, txn: ServerTxn) -> None:
        """We are the transferee: the peer asks us to call someone else (RFC 3515 §2.4.2)."""
        if not self.config.accept_refer:
            txn.reply(603, "Transfer Not Accepted")
            return
        if call.incoming_refer is not None and not call.incoming_refer.final_sent:
            txn.reply(491, "Transfer Already In Progress")
            return
        try:
            refer = read_refer(txn.request)
        except RemoteProtocolError as exc:
            txn.reply(exc.status_hint, exc.reason)
            return
        assert call.dialog is not None
        incoming = IncomingRefer(txn.request.cseq.seq, refer.target, refer.referred_by)
        # 2xx to a target-refresh request: Contact (RFC 3261 §12.2.2).
        txn.reply(202, headers=[("Contact", call.dialog.local_contact), ("Allow", self.allow)])
        call.incoming_refer = incoming
        try:
            # RFC 3515 §2.4.4: the first NOTIFY follows the 202 at once.
            self._send_refer_notify(call, incoming, 100, "Trying")
        except Exception as exc:  # no route back: the app may still report later
            log.warning("call %s: cannot send NOTIFY: %s", call.call_id, exc)
        log.info("call %s: REFER to %s accepted", call.call_id, refer.target)
        call.emit(TransferRequested(refer.target, refer.referred_by))

    # -- ACK, CANCEL, strays -------------------------------------------------------------
    def ack_received(self, ack: Request, source: Address, transport: SipTransport) -> None:
        call = self._calls.get((ack.call_id, ack.to_tag or "", ack.from_tag or ""))
        if call is None:
            self.stats["stray_acks"] += 1
            return
        if call.acked:
            return
        if call.pending_ack_cseq is not None and ack.cseq.seq != call.pending_ack_cseq:
            self.stats["stray_acks"] += 1  # a late ACK for an older INVITE
            return
        handle = self._retransmit.pop(call, None)
        if handle is not None:
            handle.cancel()
        if ack.body and call.sdp is not None and call.sdp.pending_offer is not None:
            try:
                answer = parse_sdp(ack.body)
                call.negotiated = call.sdp.accept_answer(answer)
                self._start_media(call)
            except RemoteProtocolError as exc:
                # RFC 3261 §13.3.1.4 leaves no way to reject an ACK: end the call.
                log.warning(
                    "call %s: unusable SDP answer in ACK (%s); hanging up", call.call_id, exc
                )
                call._mark_acked()
                self._send_bye(call)
                self.end(call, "bad sdp in ack")
                return
        call._mark_acked()
        if call.bye_pending is not None:
            self._send_bye(call)
            self.end(call, call.bye_pending)

    def cancel_received(self, cancel: ServerTxn, invite: ServerTxn | None) -> None:
        if invite is None:
            cancel.reply(481)
            return
        call = self._invites.pop(invite, None)
        to_tag = call.local_tag if call is not None else new_tag()
        cancel.reply(200, to_tag=to_tag)
        if invite.final_sent:
            return  # RFC 3261 §9.2: CANCEL after a final response has no effect
        invite.reply(487, to_tag=to_tag)
        if call is not None:
            self.end(call, "cancelled", 487)

    def stray_response(self, response: Response, source: Address) -> None:
        if response.is_success and response.cseq.method == "INVITE":
            key = (response.call_id, response.from_tag or "", response.to_tag or "")
            call = self._calls.get(key)
            if call is not None and call.dialog is not None:
                # A retransmitted 2xx: our ACK was lost (RFC 3261 §13.2.2.4).
                self._send_ack(call, response.cseq.seq)
                return
        self.stats["stray_responses"] += 1

    def server_timed_out(self, txn: ServerTxn) -> None:
        call = self._invites.pop(txn, None)
        if call is not None:
            self.end(call, "no ack for final response")

    # ---------------------------------------------------------------------------
    # Outgoing calls
    # ---------------------------------------------------------------------------
    async def call(
        self,
        target: str,
        *,
        from_user: str = "siphon",
        transport: str = "UDP",
        credentials: tuple[str, str] | None = None,
        proxy: Address | None = None,
        headers: Sequence[tuple[str, str]] = (),
        timeout: float = 60.0,
        codecs: Sequence[Codec] = DEFAULT_CODECS,
    ) -> SipCall:
        """Place a call; returns once answered, raises ``CallFailed`` otherwise.

        ``codecs`` is the offer, in order of preference (``siphon.sip.sdp``: PCMU,
        PCMA, TELEPHONE_EVENT).
        """
        uri = parse_uri(target)
        if not isinstance(uri, SipUri):
            raise SiphonError(f"cannot dial {target!r}: only sip:/sips: URIs are routable here")
        transport = (uri.transport or transport).upper()
        destination = proxy or await resolve(uri.host, uri.port or 5060)
        adv_host, adv_port = self.stack.listener(transport).advertised
        media = self._new_media("outbound")
        port = await media.open()
        sdp = SdpSession(address=self.config.media_host, port=port, codecs=codecs)
        offer = sdp.create_offer()
        from_addr = NameAddr(SipUri(adv_host, from_user, port=adv_port), None, {"tag": new_tag()})
        invite = Request("INVITE", target)
        invite.add("Max-Forwards", "70")
        invite.add("From", str(from_addr))
        invite.add("To", f"<{target}>")
        invite.add("Call-ID", new_call_id(adv_host))
        invite.add("CSeq", "1 INVITE")
        invite.add("Contact", f"<{self.stack.contact_uri(transport, from_user)}>")
        invite.add("Allow", self.allow)
        invite.add("User-Agent", self.config.user_agent)
        for name, value in headers:
            invite.add(name, value)
        invite.add("Content-Type", "application/sdp")
        invite.body = offer.to_bytes()
        call = SipCall(
            self,
            direction="outbound",
            call_id=invite.call_id,
            local_tag=from_addr.tag or "",
            invite=invite,
            media=media,
            sdp=sdp,
        )
        self._wire_media(call)
        call.outbound = _Outbound(destination, transport, explicit_proxy=proxy is not None)
        self.stats["calls_out"] += 1
        try:
            await asyncio.wait_for(self._dial(call, credentials), timeout)
        except TimeoutError:
            await self._cancel_outbound(call, "timeout")
            raise CallFailed(408, "no answer") from None
        except CallFailed as exc:
            self.end(call, f"failed: {exc.status} {exc.reason}", exc.status)
            raise
        except BaseException:
            # Our task was cancelled mid-dial: the far end must stop ringing too.
            out = call.outbound
            if isinstance(out, _Outbound) and out.provisional.is_set():
                self._send_cancel(call, out)
            self.end(call, "aborted")
            raise
        return call

    async def _dial(self, call: SipCall, credentials: tuple[str, str] | None) -> None:
        out = call.outbound
        assert isinstance(out, _Outbound)
        digest = DigestClient(*credentials) if credentials else None
        retried = False
        while True:
            responses: asyncio.Queue[Response | None] = asyncio.Queue()
            out.responses = responses
            out.invite_txn = self.stack.send_request(
                call.invite,
                out.destination,
                transport=out.transport,
                on_response=responses.put_nowait,
                on_timeout=functools.partial(responses.put_nowait, None),
            )
            while True:
                response = await out.responses.get()
                if response is None:
                    raise CallFailed(408, "Request Timeout")
                if response.status < 200:
                    out.provisional.set()  # any 1xx, 100 included, allows CANCEL (§9.1)
                    if response.status > 100:
                        call.state = CallState.RINGING
                    continue
                break
            call.final_response = response
            if response.is_success:
                self._confirm_outbound(call, response)
                # Later 2xx retransmissions still reach us through the transaction.
                self._watch_retransmitted_2xx(call, out)
                return
            if response.status in (401, 407) and digest is not None and not retried:
                header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
                creds = digest.answer_all(
                    response.get_all(header),
                    method="INVITE",
                    uri=call.invite.uri,
                    body=call.invite.body,
                    header=header,
                )
                if creds:
                    retried = True
                    call.invite = self._next_invite(
                        call.invite,
                        [
                            (
                                "Authorization"
                                if response.status == 401
                                else "Proxy-Authorization",
                                c.to_header_value(),
                            )
                            for c in creds
                        ],
                    )
                    continue
            raise CallFailed(response.status, response.reason)

    def _watch_retransmitted_2xx(self, call: SipCall, out: _Outbound) -> None:
        def on_response(response: Response) -> None:
            # 2xx the client transaction delivers in its Accepted state (RFC 6026 §8.4).
            if not response.is_success or call.dialog is None:
                return
            if response.to_tag != call.dialog.remote_tag:
                # A second fork answered (RFC 3261 §13.2.2.4): ACK it, then BYE it.
                self._ack_and_bye(call.invite, response, out)
            elif not call.ended:
                self._send_ack(call, response.cseq.seq)  # our ACK was lost: again

        assert out.invite_txn is not None
        out.invite_txn.on_response = on_response

    def _ack_and_bye(self, invite: Request, response: Response, out: _Outbound) -> None:
        """Confirm and end at once a dialog we do not want (a late or forked 2xx)."""
        try:
            dialog = Dialog.from_uac(invite, response)
            ack = dialog.create_ack(response.cseq.seq)
            _copy_credentials(invite, ack)
            self.stack.send_stateless(ack, out.destination, transport=out.transport)
            self.stack.send_request(
                dialog.create_request("BYE"),
                out.destination,
                transport=out.transport,
                on_response=_ignore_response,
                on_timeout=_ignore_timeout,
            )
        except Exception as exc:  # a 2xx too broken to build a dialog from
            log.warning("cannot ACK and BYE an unwanted 2xx: %s", exc)

    @staticmethod
    def _next_invite(previous: Request, extra: list[tuple[str, str]]) -> Request:
        """The same INVITE with CSeq + 1, no Via and fresh credentials (RFC 3261 §22.2)."""
        invite = Request("INVITE", previous.uri, body=previous.body)
        for name, value in previous.iter_headers():
            lowered = name.lower()
            if lowered in ("via", "authorization", "proxy-authorization", "content-length"):
                continue
            if lowered == "cseq":
                value = f"{previous.cseq.seq + 1} INVITE"
            invite.add(name, value)
        for name, value in extra:
            invite.add(name, value)
        return invite

    def _confirm_outbound(self, call: SipCall, response: Response) -> None:
        dialog = Dialog.from_uac(call.invite, response)
        call.dialog = dialog
        self._calls[dialog.id] = call
        if response.body and call.sdp is not None:
            try:
                call.negotiated = call.sdp.accept_answer(parse_sdp(response.body))
            except RemoteProtocolError as exc:
                self._send_ack(call, call.invite.cseq.seq)
                self._send_bye(call)
                raise CallFailed(488, f"unusable SDP answer: {exc}") from None
        call.state = CallState.ANSWERED
        call._mark_acked()
        self._start_media(call)
        self._send_ack(call, call.invite.cseq.seq)

    def _send_ack(self, call: SipCall, cseq: int) -> None:
        assert call.dialog is not None
        ack = call.dialog.create_ack(cseq)
        if cseq == call.invite.cseq.seq:
            _copy_credentials(call.invite, ack)  # RFC 3261 §13.2.2.4
        destination, transport = self._in_dialog_destination(call)
        self.stack.send_stateless(ack, destination, transport=transport)

    async def _cancel_outbound(self, call: SipCall, reason: str) -> None:
        out = call.outbound
        if not isinstance(out, _Outbound) or out.invite_txn is None or call.ended:
            self.end(call, reason)
            return
        # RFC 3261 §9.1: CANCEL only after a provisional response has arrived.
        try:
            await asyncio.wait_for(out.provisional.wait(), 64 * self.stack.timers.t1)
        except TimeoutError:
            self.end(call, reason)
            return
        self._send_cancel(call, out)
        self.end(call, reason, 487)

    def _send_cancel(self, call: SipCall, out: _Outbound) -> None:
        assert out.invite_txn is not None
        invite = out.invite_txn.tx.request

        def late_response(response: Response) -> None:
            # A 2xx that crossed our CANCEL still needs an ACK, then a BYE (§9.1, §15).
            if response.is_success:
                self._ack_and_bye(invite, response, out)

        out.invite_txn.on_response = late_response
        cancel = Request("CANCEL", invite.uri)
        cancel.add("Via", str(invite.top_via))  # same branch as the INVITE (§9.1)
        for name in ("Route",):
            for value in invite.get_all(name):
                cancel.add(name, value)
        cancel.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            cancel.add(name, invite.get(name) or "")
        cancel.add("CSeq", f"{invite.cseq.seq} CANCEL")
        self.stack.send_request(
            cancel,
            out.destination,
            transport=out.transport,
            on_response=_ignore_response,
            on_timeout=_ignore_timeout,
        )

    # -- in-dialog requests we send ------------------------------------------------------
    def _in_dialog_destination(self, call: SipCall) -> tuple[Address, str]:
        out = call.outbound
        assert call.dialog is not None
        if isinstance(out, _Outbound) and (out.explicit_proxy or not call.dialog.route_set):
            # Through the configured outbound proxy, or straight back to where we sent
            # the INVITE (a trunk's remote target is often unroutable from here).
            return out.destination, out.transport
        source, transport = self._sources.get(call, (None, None))
        if call.dialog.route_set:
            first = parse_name_addr(call.dialog.route_set[0]).uri
            if isinstance(first, SipUri) and _is_ip(first.host):
                return (first.host.strip("[]"), first.port or 5060), (
                    first.transport or "udp"
                ).upper()
        if source is not None and transport is not None:
            # Symmetric signalling: the peer that sent the INVITE (a trunk, a proxy, a
            # NATed phone) is reachable where it came from (RFC 3581 spirit).
            return source, transport.name
        target = call.dialog.remote_target
        if isinstance(target, SipUri) and _is_ip(target.host):
            return (target.host.strip("[]"), target.port or 5060), (
                target.transport or "udp"
            ).upper()
        raise SiphonError(f"no route to the remote target of {call!r}")

    def _send_bye(self, call: SipCall) -> None:
        """Send BYE; a failure is logged, never raised: the caller ends the call anyway."""
        if call.dialog is None:
            return
        try:
            bye = call.dialog.create_request("BYE")
            destination, transport = self._in_dialog_destination(call)
            self.stack.send_request(
                bye,
                destination,
                transport=transport,
                on_response=_ignore_response,
                on_timeout=_ignore_timeout,
            )
        except Exception as exc:  # a bad route set or an unusable transport
            log.warning("call %s: cannot send BYE: %s", call.call_id, exc)

    async def _request_final(
        self,
        request: Request,
        destination: Address,
        transport: str,
        *,
        on_2xx: Callable[[Response], None] | None = None,
    ) -> Response | None:
        """Send ``request`` in a client transaction; its final response, None on timeout.

        ``on_2xx`` sees every 2xx, the retransmissions too (INVITE: each needs an ACK).
        """
        return await self._send_for_final(request, destination, transport, on_2xx=on_2xx)

    def _send_for_final(
        self,
        request: Request,
        destination: Address,
        transport: str,
        *,
        on_2xx: Callable[[Response], None] | None = None,
    ) -> asyncio.Future[Response | None]:
        """``_request_final`` without waiting: the future of the final response."""
        done: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()

        def on_response(response: Response) -> None:
            if on_2xx is not None and response.is_success:
                on_2xx(response)
            if response.status >= 200 and not done.done():
                done.set_result(response)

        def on_timeout() -> None:
            if not done.done():
                done.set_result(None)

        self.stack.send_request(
            request,
            destination,
            transport=transport,
            on_response=on_response,
            on_timeout=on_timeout,
        )
        return done

    async def send_info_dtmf(self, call: SipCall, digit: str, duration_ms: int = 160) -> None:
        """Send one DTMF digit as SIP INFO application/dtmf-relay."""
        if call.dialog is None or call.ended:
            raise SiphonError("send_info_dtmf needs an answered call")
        body = f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()
        request = call.dialog.create_request(
            "INFO", body=body, content_type="application/dtmf-relay"
        )
        destination, transport = self._in_dialog_destination(call)
        response = await self._request_final(request, destination, transport)
        if response is None or not response.is_success:
            raise CallFailed(
                response.status if response else 408,
                response.reason if response else "INFO timed out",
            )

    async def reinvite(self, call: SipCall, direction: Direction) -> Response:
        """Send a re-INVITE changing our media direction (hold = sendonly, resume = sendrecv)."""
        if call.dialog is None or call.ended:
            raise SiphonError("reinvite needs an answered call")
        if call.reinvite_pending:
            # RFC 3261 §14.1: one INVITE transaction at a time per dialog.
            raise SiphonError("a re-INVITE is already in progress on this call")
        assert call.sdp is not None
        offer = call.sdp.create_offer(direction=direction)
        request = call.dialog.create_request("INVITE", body=offer.to_bytes())
        request.add("Allow", self.allow)
        destination, transport = self._in_dialog_destination(call)
        dialog = call.dialog

        def ack_2xx(response: Response) -> None:
            # Every 2xx, retransmissions included, gets the ACK (RFC 3261 §13.2.2.4).
            ack = dialog.create_ack(request.cseq.seq)
            self.stack.send_stateless(ack, destination, transport=transport)

        call.reinvite_pending = True
        try:
            response = await self._request_final(request, destination, transport, on_2xx=ack_2xx)
        finally:
            call.reinvite_pending = False
        if response is None:
            raise CallFailed(408, "re-INVITE timed out")
        if response.is_success:
            call.dialog.receive_response(response)
            call.local_direction = direction
            if response.body:
                try:
                    call.negotiated = call.sdp.accept_answer(parse_sdp(response.body))
                    self._start_media(call)
                except RemoteProtocolError as exc:
                    # ACKed already; an unusable answer ends the call (§13.2.2.4, §14.1).
                    self._send_bye(call)
                    self.end(call, "bad sdp in re-INVITE answer")
                    raise CallFailed(488, f"unusable SDP answer: {exc}") from None
        return response

    # -- cold transfer (RFC 3515) ----------------------------------------------------------
    async def transfer(self, call: SipCall, target: str, *, timeout: float) -> TransferResult:
        """Transferor: REFER the peer to ``target``; its outcome per the NOTIFYs."""
        dialog = call.dialog
        if dialog is None or call.ended:
            raise SiphonError("transfer needs an answered call")
        if dialog.id in self._transfers:
            raise SiphonError("a transfer is already in progress on this call")
        # Numbers are dialled through the peer (a trunk): its host from From/To, else Contact.
        peer = dialog.remote_uri.uri
        peer = peer if isinstance(peer, SipUri) else dialog.remote_target
        if not isinstance(peer, SipUri):
            raise SiphonError(f"cannot transfer {call!r}: the peer has no SIP URI")
        uri = refer_to_uri(target, peer.host, peer.port)
        refer = dialog.create_request(
            "REFER",
            headers=[
                ("Refer-To", f"<{uri}>"),  # angle brackets: the URI may carry ';' (§2.1)
                ("Referred-By", f"<{dialog.local_uri.uri}>"),  # RFC 3892
                ("Allow", self.allow),
            ],
        )
        destination, transport = self._in_dialog_destination(call)
        pending = Transfer(uri, refer.cseq.seq, dialog)
        self._transfers[dialog.id] = pending
        call.on_ended(lambda: pending.ended(self.stack.timer_queue.call_later))
        log.info("call %s: REFER to %s", call.call_id, uri)
        try:
            self.stack.send_request(
                refer,
                destination,
                transport=transport,
                on_response=pending.refer_response,
                on_timeout=pending.refer_timeout,
            )
            # asyncio.wait, not wait_for: the result future must survive our timeout.
            await asyncio.wait([pending.result], timeout=timeout)
            pending.expire()  # a no-op when a result came
            result = pending.result.result()
        finally:
            pending.close()
            if self._transfers.get(dialog.id) is pending:
                del self._transfers[dialog.id]
        log.info(
            "call %s: transfer to %s: %s %d %s",
            call.call_id,
            uri,
            "ok" if result.ok else "failed",
            result.status,
            result.reason,
        )
        return result

    async def notify_transfer(self, call: SipCall, status: int, reason: str) -> bool:
        """Transferee: report the new call's progress to the referrer (RFC 3515 §2.4.5)."""
        incoming = call.incoming_refer
        if incoming is None or incoming.final_sent:
            raise SiphonError("no accepted REFER is waiting for a report on this call")
        body = sipfrag(status, reason)  # checks the status before anything is sent
        if incoming.last_notify is not None:
            await incoming.last_notify
        if call.ended:
            # Dialog gone with its BYE: nobody to tell (the referrer got a 202 already).
            incoming.final_sent = incoming.final_sent or status >= 200
            log.info("call %s: transfer outcome %d not sent: call ended", call.call_id, status)
            return False
        response = await self._send_refer_notify(call, incoming, status, reason, body)
        return response is not None and response.is_success

    def _send_refer_notify(
        self,
        call: SipCall,
        incoming: IncomingRefer,
        status: int,
        reason: str,
        body: bytes | None = None,
    ) -> asyncio.Future[Response | None]:
        assert call.dialog is not None
        request = call.dialog.create_request(
            "NOTIFY",
            body=body or sipfrag(status, reason),
            content_type=SIPFRAG,
            headers=refer_notify_headers(incoming.cseq, status),
        )
        destination, transport = self._in_dialog_destination(call)
        if status >= 200:
            incoming.final_sent = True
        incoming.last_notify = self._send_for_final(request, destination, transport)
        return incoming.last_notify


def _ignore_response(response: Response) -> None:
    """Responses to BYE/CANCEL change nothing: the call has already ended."""


def _ignore_timeout() -> None:
    """Likewise a BYE/CANCEL that times out: the call has already ended."""


def _copy_credentials(invite: Request, ack: Request) -> None:
    """The ACK of a 2xx carries the INVITE's credentials (RFC 3261 §13.2.2.4)."""
    for name in ("Authorization", "Proxy-Authorization"):
        for value in invite.get_all(name):
            ack.add(name, value)


class _Outbound:
    """Client-side state of an outbound call's INVITE."""

    __slots__ = (
        "destination",
        "explicit_proxy",
        "invite_txn",
        "provisional",
        "responses",
        "transport",
    )

    def __init__(
        self, destination: Address, transport: str, *, explicit_proxy: bool = False
    ) -> None:
        self.destination = destination
        self.transport = transport
        self.explicit_proxy = explicit_proxy
        self.responses: asyncio.Queue[Response | None] = asyncio.Queue()
        self.invite_txn: ClientTxn | None = None
        self.provisional = asyncio.Event()


def parse_dtmf_info(body: bytes, content_type: str | None) -> DtmfReceived | None:
    """Read a SIP INFO DTMF body: ``Signal=5`` / ``Duration=160`` or a bare digit."""
    text = body.decode("utf-8", "replace").strip()
    if content_type == "application/dtmf":
        digit = text[:1].upper()
        return DtmfReceived(digit, 250, "info") if digit and digit in _DTMF_DIGITS else None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        fields[name.strip().lower()] = value.strip()
    digit = fields.get("signal", "").upper()
    if len(digit) != 1 or digit not in _DTMF_DIGITS:
        return None
    duration = fields.get("duration", "250")
    # ASCII digits only ("²".isdigit() is True) and bounded: a minute is plenty.
    valid = duration.isascii() and duration.isdigit() and len(duration) <= 5
    return DtmfReceived(digit, int(duration) if valid else 250, "info")


def _same_host_port(uri_text: str, request_uri: Uri) -> bool:
    try:
        uri = parse_uri(uri_text)
    except RemoteProtocolError:
        return False
    if not isinstance(uri, SipUri) or not isinstance(request_uri, SipUri):
        return uri_text == str(request_uri)
    return uri.host.lower() == request_uri.host.lower() and (uri.port or 5060) == (
        request_uri.port or 5060
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


async def resolve(host: str, port: int) -> Address:
    """An address for a host (no DNS SRV/NAPTR yet: RFC 3263 is a later issue)."""
    if _is_ip(host):
        return (host.strip("[]"), port)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=2)  # SOCK_DGRAM
    if not infos:
        raise CallFailed(404, f"cannot resolve {host}")
    return (str(infos[0][4][0]), port)
