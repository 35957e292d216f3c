"""The smallest application API, and the server that runs it.

An application is anything with ``async def handle_call(self, call)``: ``App``
wraps a plain coroutine function; the voice ``Agent`` implements the same hook.
``SipServer`` binds the SIP transports, builds the user agent, and runs one task
per call in its ``TaskGroup``: the handler runs in it, and is cancelled shortly
after the call ends if it has not returned, so no call leaves work behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from siphon.errors import ConfigError
from siphon.io.call import CallFailed, SipCall
from siphon.io.overload import DEFAULT_MAX_LAG, DEFAULT_MAX_QUEUE_DELAY, LoopLoad
from siphon.io.ports import RtpPortAllocator
from siphon.io.recording import recording_writer
from siphon.io.sip_stack import SipStack, advertised_address
from siphon.io.user_agent import UaConfig, UserAgent
from siphon.sip.auth import DigestServer
from siphon.sip.timers import SipTimers

log = logging.getLogger("siphon.app")

# After a call ends, its handler has this long to return before it is cancelled.
HANDLER_GRACE_SECONDS = 2.0

CallHandlerFn = Callable[[SipCall], Awaitable[None]]


@runtime_checkable
class CallHandler(Protocol):
    async def handle_call(self, call: SipCall) -> None: ...


class App:
    """A call handler made from a coroutine function.

    ``auth`` maps usernames to passwords: INVITEs are then challenged with
    Digest (RFC 3261 §22) before the handler sees them.
    """

    def __init__(
        self,
        handler: CallHandlerFn | None = None,
        *,
        name: str = "app",
        auth: dict[str, str] | None = None,
        realm: str = "siphon",
    ) -> None:
        self.name = name
        self._handler = handler
        self.auth = auth
        self.realm = realm

    def on_call(self, fn: CallHandlerFn) -> CallHandlerFn:
        """Decorator: ``@app.on_call async def handle(call): ...``."""
        self._handler = fn
        return fn

    async def handle_call(self, call: SipCall) -> None:
        if self._handler is None:
            raise ConfigError(
                f"App {self.name!r} has no handler: decorate a coroutine function with @app.on_call"
            )
        await self._handler(call)


@dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    sip_port: int = 5060
    transports: tuple[str, ...] = ("udp", "tcp")
    advertised_host: str | None = None
    media_host: str | None = None
    rtp_port_start: int = 10000
    rtp_port_end: int = 20000
    # RTP port pairs bound into the pool at start (siphon.io.ports: a fresh pair costs
    # ~12x a pooled one, and until pairs come out of quarantine every call needs one).
    # Bounded by the range and the fd limit; 0 binds pairs only as calls come.
    rtp_prefill: int = 1024
    timers: SipTimers = field(default_factory=SipTimers)
    user_agent: str = "SIPHON/0.1"
    auth: dict[str, str] | None = None
    realm: str = "siphon"
    # An inbound call the app has not answered by then gets 408.
    ring_timeout: float = 120.0
    # No RTP for this long ends an answered call.
    media_timeout: float = 30.0
    # A stereo WAV per call in ./recordings (or $SIPHON_RECORDINGS_DIR).
    record: bool = True
    # How long a graceful stop waits for active calls before hanging them up.
    drain_timeout: float = 30.0
    # Overload control (siphon.io.overload): new calls are admitted by a ratio that
    # falls while SIP requests wait in the kernel longer than max_queue_delay for a
    # while (or the loop runs timers max_loop_lag late, or its thread is on the CPU
    # more than max_loop_busy of the time, when those are set); the others get 503
    # with Retry-After. Calls in progress are never refused.
    overload_control: bool = True
    max_queue_delay: float = DEFAULT_MAX_QUEUE_DELAY
    max_loop_lag: float | None = DEFAULT_MAX_LAG
    max_loop_busy: float | None = None
    # Retry-After (seconds) on those 503s: short, the overload is usually a burst.
    overload_retry_after: int = 5


class SipServer:
    def __init__(self, handler: CallHandler, config: ServerConfig | None = None) -> None:
        if not isinstance(handler, CallHandler):
            raise ConfigError(
                f"{handler!r} is not a call handler: it needs "
                "'async def handle_call(self, call)' (use siphon.app.App)"
            )
        self.handler = handler
        self.config = config or ServerConfig()
        cfg = self.config
        media_host = cfg.media_host or cfg.advertised_host or advertised_address(cfg.host)
        self.stack = SipStack(
            timers=cfg.timers, user_agent=cfg.user_agent, advertised_host=cfg.advertised_host
        )
        auth_users = cfg.auth if cfg.auth is not None else getattr(handler, "auth", None)
        digest = None
        if auth_users:
            users = dict(auth_users)
            digest = DigestServer(getattr(handler, "realm", cfg.realm), users.get)
        self.ua = UserAgent(
            self.stack,
            ports=RtpPortAllocator(
                cfg.rtp_port_start,
                cfg.rtp_port_end,
                host=cfg.host if cfg.host not in ("0.0.0.0", "::") else "0.0.0.0",
            ),
            config=UaConfig(
                media_host=media_host,
                user_agent=cfg.user_agent,
                auth=digest,
                ring_timeout=cfg.ring_timeout,
                media_timeout=cfg.media_timeout,
                record=cfg.record,
                overload_retry_after=cfg.overload_retry_after,
            ),
            on_call=self._spawn_call,
        )
        self.load = (
            LoopLoad(
                cfg.max_loop_lag,
                cfg.max_loop_busy,
                queue_delay=self.stack.queue_delay,
                max_queue_delay=cfg.max_queue_delay,
            )
            if cfg.overload_control
            else None
        )
        self.ua.load = self.load
        self.calls: set[SipCall] = set()
        self._group: asyncio.TaskGroup | None = None
        self._stopped = asyncio.Event()
        self._closed = False

    @property
    def sip_port(self) -> int:
        return self.stack.listener(self.config.transports[0]).transport.local_address[1]

    async def serve(self, ready: Callable[[SipServer], None] | None = None) -> None:
        """Run until ``stop()``; every call task lives in this coroutine's TaskGroup."""
        cfg = self.config
        prewarm = getattr(self.handler, "prewarm", None)
        if prewarm is not None:
            # Models load before the first call, not during its greeting.
            await prewarm()
        if cfg.record:
            # Fixes the headers of recordings a killed process left behind (off the loop).
            await asyncio.to_thread(recording_writer)
        await self.stack.listen(cfg.host, cfg.sip_port, cfg.transports)
        if cfg.rtp_prefill > 0:
            self.ua.ports.prefill(asyncio.get_running_loop(), cfg.rtp_prefill)
        if self.load is not None:
            self.load.start()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                if ready is not None:
                    ready(self)
                await self._stopped.wait()
                await self._drain()
        finally:
            self._group = None
            self.close()

    def stop(self) -> None:
        """Stop taking calls (503 to INVITE and OPTIONS), then drain and return from serve()."""
        self.ua.accepting = False
        self._stopped.set()

    async def _drain(self) -> None:
        if self.calls:
            log.info(
                "waiting up to %.0f s for %d active calls",
                self.config.drain_timeout,
                len(self.calls),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(c.wait_ended() for c in list(self.calls))),
                    self.config.drain_timeout,
                )
        for call in list(self.calls):
            try:
                await call.hangup("server shutdown")
            except Exception:  # one broken call must not stop the others' shutdown
                log.exception("call %s: hangup at shutdown failed", call.call_id)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.ua.accepting = False
        if self.load is not None:
            self.load.close()
        self.stack.close()
        self.ua.ports.close()  # the RTP socket pairs pooled for reuse

    # -- one task per call -------------------------------------------------------------
    def _spawn_call(self, call: SipCall) -> None:
        if self._group is None:
            self.ua.reject(call, 503, headers=[("Retry-After", "5")])
            return
        accepts = getattr(self.handler, "accepts_user", None)
        if accepts is not None and not accepts(call.called_user):
            # Routing by the Request-URI user (RFC 3261 §8.2.2.1: 404 for a user we do not
            # serve); the Warning says what is served, for whoever dialled by mistake.
            served = getattr(self.handler, "agent_name", "?")
            log.info(
                "call %s: no agent %r here (serving %r): 404",
                call.call_id,
                call.called_user,
                served,
            )
            self.ua.reject(
                call,
                404,
                "Not Found",
                headers=[
                    ("Warning", f'399 siphon "no agent {call.called_user!r}; serving {served!r}"')
                ],
            )
            return
        self.calls.add(call)
        self._group.create_task(self._run_call(call), name=f"call:{call.call_id}")

    async def _run_call(self, call: SipCall) -> None:
        try:
            if not await self.ua.prepare_inbound(call):
                return
            try:
                await self._run_handler(call)
            except* CallFailed as group:
                log.info("call %s: %s", call.call_id, group.exceptions[0])
            except* Exception as group:
                log.error("call %s: handler failed", call.call_id, exc_info=group.exceptions[0])
                if not call.ended:
                    self.ua.reject(call, 500, "Application Error")
            if not call.ended:
                await call.hangup("handler returned")
        except Exception:
            log.exception("call %s: internal error", call.call_id)
        finally:
            self.calls.discard(call)
            if not call.ended:
                self.ua.reject(call, 500, "Server Internal Error")  # if still unanswered
                self.ua.end(call, "internal error")

    async def _run_handler(self, call: SipCall) -> None:
        """Run the application's handler in this call's task.

        When the call ends under the handler (the caller hung up), the handler gets
        a short grace to finish its own cleanup, then it is cancelled: no call leaves
        work behind. That cancellation ends the handler like a return, and so does a
        CancelledError the handler raises itself (when the handler had a task of its
        own, that task merely ended cancelled); a cancellation of this task from
        outside (the server shutting down) propagates. The handler runs in the call's
        own task rather than a task of its own: one task per call is enough.
        """
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        grace: asyncio.TimerHandle | None = None
        expired = returned = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        def start_grace() -> None:
            nonlocal grace
            if not returned:  # the call may end after the handler, during our cleanup
                grace = loop.call_later(HANDLER_GRACE_SECONDS, expire)

        call.on_ended(start_grace)
        try:
            await self.handler.handle_call(call)
        except asyncio.CancelledError:
            if expired:
                if task.uncancel() > 0:  # cancelled from outside as well
                    raise
            elif task.cancelling():
                raise
        else:
            if expired:  # the handler swallowed our cancellation: take it back
                task.uncancel()
        finally:
            returned = True
            if grace is not None:
                grace.cancel()
