"""``Agent``: what users program against. Providers, instructions, tools and hooks.

An ``Agent`` is a call handler (``handle_call``): ``siphon dev agent.py`` finds it,
``agent.dev()`` / ``agent.start()`` serve it. Each answered call gets its own
``AgentSession`` (``siphon.voice.session``), which calls back into the hooks here.

Hooks can be overridden by subclassing or passed as callables (sync or async)::

    class Receptionist(Agent):
        async def on_exit(self, session):
            await save(session.transcript)

    Agent(..., on_dtmf=lambda session, event: print(event.digit))
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from siphon.agent.tools import RunContext, ToolRegistry
from siphon.errors import ConfigError
from siphon.events import DtmfReceived
from siphon.plugins.base import LLM, STT, TTS, VAD
from siphon.voice.session import AgentSession, VoiceOptions
from siphon.voice.transcript import Turn
from siphon.voice.turns import EndpointingStrategy

if TYPE_CHECKING:
    from siphon.io.call import SipCall

log = logging.getLogger("siphon.agent")

DEFAULT_GREETING = "Greet the caller briefly and ask how you can help."
# How often the default monitor_call looks at the call (cheap: a few comparisons).
MONITOR_INTERVAL = 0.25

_HOOKS = ("on_enter", "monitor_call", "on_exit", "on_dtmf", "on_user_turn", "on_agent_turn")


class Agent:
    """A voice agent: ``Agent(agent_name=..., llm=..., stt=..., tts=..., tools=[...])``.

    Turn-taking: ``min_silence_duration`` of silence ends the caller's speech (VAD
    with ``activation_threshold`` and ``prefix_padding_duration``); the turn ends
    ``min_endpointing_delay`` after the speech once the transcript is final, at the
    latest ``max_endpointing_delay`` after it, or when the STT says so. Caller
    speech longer than ``min_interruption_duration`` cuts the agent off unless
    ``allow_interruptions`` is False.

    The agent answers INVITEs for ``sip:<agent_name>@...`` and for the users in
    ``sip_users`` (e.g. the numbers a trunk sends; "*" for any); others get 404.

    ``silence_timeout`` seconds with nobody speaking: the agent says
    ``silence_prompt``; as long again: it hangs up. ``max_call_duration`` ends any
    call (after ``goodbye_message``). Either may be None to disable it.
    """

    def __init__(
        self,
        *,
        agent_name: str = "agent",
        llm: LLM | None = None,
        stt: STT | None = None,
        tts: TTS | None = None,
        vad: VAD | None = None,
        system_instructions: str = "",
        greeting_instructions: str | None = None,
        send_greeting: bool = True,
        tools: Sequence[Any] = (),
        allow_interruptions: bool = True,
        min_interruption_duration: float = 0.3,
        min_silence_duration: float = 0.5,
        min_endpointing_delay: float = 0.2,
        max_endpointing_delay: float = 0.6,
        activation_threshold: float = 0.5,
        prefix_padding_duration: float = 0.3,
        max_tool_steps: int = 5,
        language: str | None = None,
        timezone: str | None = None,
        silence_timeout: float | None = 20.0,
        silence_prompt: str = "Are you still there?",
        max_call_duration: float | None = 3600.0,
        goodbye_message: str | None = "Thank you for calling. Goodbye.",
        turn_detection: Callable[[], EndpointingStrategy] | None = None,
        sip_users: Sequence[str] = (),
        auth: dict[str, str] | None = None,
        realm: str = "siphon",
        on_enter: Callable[..., Any] | None = None,
        monitor_call: Callable[..., Any] | None = None,
        on_exit: Callable[..., Any] | None = None,
        on_dtmf: Callable[..., Any] | None = None,
        on_user_turn: Callable[..., Any] | None = None,
        on_agent_turn: Callable[..., Any] | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise TypeError(_unknown_arguments(type(self).__name__, unknown))
        if min_endpointing_delay > max_endpointing_delay:
            raise ConfigError(
                f"min_endpointing_delay ({min_endpointing_delay}) must not exceed "
                f"max_endpointing_delay ({max_endpointing_delay})"
            )
        if not 0.0 <= activation_threshold <= 1.0:
            raise ConfigError(f"activation_threshold must be in [0, 1], not {activation_threshold}")
        if max_tool_steps < 0:
            raise ConfigError(f"max_tool_steps must be >= 0, not {max_tool_steps}")
        for name, value, protocol in (("llm", llm, LLM), ("stt", stt, STT), ("tts", tts, TTS)):
            if value is not None and not isinstance(value, protocol):
                raise TypeError(
                    f"{name}={value!r} is not a {protocol.__name__} provider "
                    f"(see siphon.plugins.base.{protocol.__name__})"
                )
        if vad is not None and not isinstance(vad, VAD):
            raise TypeError(f"vad={vad!r} is not a VAD (see siphon.plugins.base.VAD)")
        self.agent_name = agent_name
        self.name = agent_name
        self.llm, self.stt, self.tts, self.vad = llm, stt, tts, vad
        self.system_instructions = system_instructions
        self.greeting_instructions = greeting_instructions
        self.send_greeting = send_greeting
        self.tools = ToolRegistry(list(tools))  # raises on duplicates / unusable tools
        self.options = VoiceOptions(
            allow_interruptions=allow_interruptions,
            min_interruption_duration=min_interruption_duration,
            min_silence_duration=min_silence_duration,
            min_endpointing_delay=min_endpointing_delay,
            max_endpointing_delay=max_endpointing_delay,
            activation_threshold=activation_threshold,
            prefix_padding_duration=prefix_padding_duration,
            max_tool_steps=max_tool_steps,
            language=language,
            timezone=timezone,
        )
        self.silence_timeout = silence_timeout
        self.silence_prompt = silence_prompt
        self.max_call_duration = max_call_duration
        self.goodbye_message = goodbye_message
        self.turn_detection = turn_detection
        self.sip_users = tuple(sip_users)
        self.auth = auth
        self.realm = realm
        self.sessions: set[AgentSession] = set()
        self._hook_overrides: dict[str, Callable[..., Any]] = {}
        for hook, fn in zip(
            _HOOKS,
            (on_enter, monitor_call, on_exit, on_dtmf, on_user_turn, on_agent_turn),
            strict=True,
        ):
            if fn is not None:
                self.set_hook(hook, fn)

    def set_hook(self, name: str, fn: Callable[..., Any]) -> None:
        """Use ``fn`` (sync or async) for hook ``name``, as passing ``name=fn`` would."""
        if name not in _HOOKS:
            raise ValueError(f"no hook {name!r}: hooks are {', '.join(_HOOKS)}")
        if not callable(fn):
            raise TypeError(f"{name}={fn!r} is not callable")
        self._hook_overrides[name] = fn

    def hook(self, name: str) -> Callable[..., Any]:
        """What hook ``name`` runs: the callable set for it, else the method."""
        return self._hook_overrides.get(name) or getattr(self, name)

    def accepts_user(self, user: str | None) -> bool:
        """Whether an INVITE for ``sip:user@...`` is for this agent.

        The agent answers its own name (case, spaces, dashes and underscores
        ignored) and the ``sip_users`` given (numbers a trunk sends, aliases; "*"
        for anything); an INVITE without a user part too. Others get 404.
        """
        if not user or "*" in self.sip_users:
            return True
        wanted = _user_key(user)
        return wanted == _user_key(self.agent_name) or wanted in {
            _user_key(alias) for alias in self.sip_users
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.agent_name!r}>"

    # -- serving --------------------------------------------------------------------------
    def dev(self, argv: Sequence[str] | None = None) -> None:
        """Serve on 127.0.0.1:5060 with readable logs (``--sip-port``, ``SIPHON_SIP_PORT``...)."""
        from siphon.cli import run_handler

        raise SystemExit(run_handler(self, production=False, argv=argv))

    def start(self, argv: Sequence[str] | None = None) -> None:
        """Serve in production: 0.0.0.0, JSON logs, graceful drain on SIGTERM."""
        from siphon.cli import run_handler

        raise SystemExit(run_handler(self, production=True, argv=argv))

    async def handle_call(self, call: SipCall) -> None:
        """Answer ``call`` and run its voice session until it ends."""
        session = self.create_session(call)
        await call.answer()
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)

    async def prewarm(self) -> None:
        """Load the providers' models now (the server calls this before taking calls)."""
        for provider in self._providers():
            warm = getattr(provider, "prewarm", None)
            if warm is not None:
                await warm()

    def create_session(self, call: SipCall) -> AgentSession:
        llm, stt, tts, vad = self._providers()
        return AgentSession(
            call,
            llm=llm,
            stt=stt,
            tts=tts,
            vad=vad,
            hooks=_Hooks(self),
            options=self.options,
            system_instructions=self.system_instructions,
            tools=self.tools,
            tool_context=_tool_context,
            endpointing=self.turn_detection() if self.turn_detection is not None else None,
            agent_name=self.agent_name,
        )

    def _providers(self) -> tuple[LLM, STT, TTS, VAD]:
        """The agent's providers; what it did not name comes from ``siphon.plugins.local``.

        The offline defaults (pocketsphinx, Piper, the rules engine) need no key
        and no network; they are chosen once, logged, and shared by all calls.
        """
        if self.vad is None or self.llm is None or self.stt is None or self.tts is None:
            from siphon.plugins import local

            if self.vad is None:
                self.vad = local.WebRtcVAD()
            defaults = []
            if self.stt is None:
                self.stt = local.STT()
                defaults.append("STT: pocketsphinx (general model; pass phrases for accuracy)")
            if self.tts is None:
                self.tts = local.TTS()
                defaults.append("TTS: Piper")
            if self.llm is None:
                self.llm = local.RulesLLM()
                defaults.append("LLM: RulesLLM, a rules engine with no intents (not a model)")
            if defaults:
                log.warning(
                    "agent %s: offline defaults for what it did not name: %s",
                    self.agent_name,
                    "; ".join(defaults),
                )
        return self.llm, self.stt, self.tts, self.vad

    # -- hooks (override in a subclass, or pass callables) -------------------------------------
    async def on_enter(self, session: AgentSession) -> None:
        """The call is answered: greet the caller (``send_greeting``)."""
        if self.send_greeting:
            await session.generate_reply(self.greeting_instructions or DEFAULT_GREETING)

    async def monitor_call(self, session: AgentSession) -> None:
        """Silence timeout (prompt, then hang up) and maximum call duration."""
        loop = asyncio.get_running_loop()
        prompted_at_turns: int | None = None
        while not session.call.ended:
            await asyncio.sleep(MONITOR_INTERVAL)
            now = loop.time()
            if (
                self.max_call_duration is not None
                and now - session.started_at >= self.max_call_duration
            ):
                log.info("call %s: maximum call duration reached", session.call_id)
                if self.goodbye_message:
                    await session.say(self.goodbye_message, allow_interruptions=False)
                await session.end_call("maximum call duration")
                return
            if self.silence_timeout is None:
                continue
            user_turns = len(session.transcript.by("user"))
            if prompted_at_turns is not None and user_turns > prompted_at_turns:
                prompted_at_turns = None  # the caller answered the prompt
            if session.idle_seconds(now) < self.silence_timeout:
                continue
            if prompted_at_turns is None:
                prompted_at_turns = user_turns
                await session.say(self.silence_prompt)
            else:
                log.info("call %s: caller silent, hanging up", session.call_id)
                if self.goodbye_message:
                    await session.say(self.goodbye_message, allow_interruptions=False)
                await session.end_call("caller silent")
                return

    async def on_exit(self, session: AgentSession) -> None:
        """The call has ended (any way, errors included): clean up here."""

    async def on_dtmf(self, session: AgentSession, event: DtmfReceived) -> None:
        """A digit from the caller (RFC 4733 or SIP INFO); ``session.dtmf_digits`` has them all."""
        log.info("call %s: DTMF %s (%d ms)", session.call_id, event.digit, event.duration_ms)

    async def on_user_turn(self, session: AgentSession, turn: Turn) -> bool | None:
        """The caller finished a turn. Return False to skip the model's reply to it."""
        return None

    async def on_agent_turn(self, session: AgentSession, turn: Turn) -> None:
        """The agent finished (or was cut off in) an utterance."""


class _Hooks:
    """The session's view of an agent's hooks: overrides first, then the methods."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    async def _call(self, name: str, *args: Any) -> Any:
        result = self._agent.hook(name)(*args)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def on_enter(self, session: AgentSession) -> None:
        await self._call("on_enter", session)

    async def monitor_call(self, session: AgentSession) -> None:
        await self._call("monitor_call", session)

    async def on_exit(self, session: AgentSession) -> None:
        await self._call("on_exit", session)

    async def on_dtmf(self, session: AgentSession, event: DtmfReceived) -> None:
        await self._call("on_dtmf", session, event)

    async def on_user_turn(self, session: AgentSession, turn: Turn) -> bool | None:
        result = await self._call("on_user_turn", session, turn)
        return result if isinstance(result, bool) else None

    async def on_agent_turn(self, session: AgentSession, turn: Turn) -> None:
        await self._call("on_agent_turn", session, turn)


def _user_key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in " -_.")


def _tool_context(session: AgentSession, tool_call_id: str) -> RunContext:
    return RunContext(
        call_id=session.call_id,
        tool_call_id=tool_call_id,
        session=session,
        metadata=session.metadata,
        userdata=session.userdata,
    )


def _accepted_arguments(cls: type[Agent]) -> list[str]:
    parameters = inspect.signature(Agent.__init__).parameters.values()
    return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _unknown_arguments(owner: str, unknown: dict[str, Any]) -> str:
    accepted = _accepted_arguments(Agent)
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, accepted, n=1)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (
        f"{owner}() got unexpected keyword argument(s) {', '.join(parts)}; "
        f"accepted: {', '.join(accepted)}"
    )
