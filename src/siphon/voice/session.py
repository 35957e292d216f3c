"""One call's voice session: caller audio -> VAD -> turns -> LLM (tools) -> TTS -> playout.

Tasks, all in the session's one ``TaskGroup`` and all named after the call:

- ``audio``: the caller's 20 ms frames (the media clock's own rhythm) through the
  VAD; speech goes to the STT (with the prefix padding before its onset), the end
  of speech to the turn detector, and long enough speech while the agent talks
  interrupts it (barge-in).
- ``stt``: the recogniser's interim/final/end-of-turn events into the turn detector.
- ``turns``: asks the turn detector at its deadlines; a decided turn becomes a
  user turn in the transcript and starts a reply.
- ``reply``/``say``: one agent utterance at a time (the *floor*): LLM tokens ->
  phrase chunker -> TTS -> 8 kHz -> playout queue, with tool calls in between.
- ``enter``/``monitor``: the agent's ``on_enter`` and ``monitor_call`` hooks.

Barge-in is by epoch (DESIGN.md): ``interrupt()`` notes how far the utterance got,
flushes the playout queue (nothing of it reaches the wire after the next tick),
and cancels the utterance's task (which saves the LLM/TTS work). The transcript
and the model's history keep only the text the caller heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from siphon.events import CallEnded, DtmfReceived, HoldChanged
from siphon.plugins.base import (
    LLM,
    STT,
    TTS,
    VAD,
    ChatMessage,
    PcmArray,
    SpeechEventType,
    STTStream,
    ToolCall,
    ToolSpec,
)
from siphon.rtp.resample import Resampler
from siphon.voice.chunker import PhraseChunker
from siphon.voice.metrics import TurnMetrics
from siphon.voice.speech import Phrase, Speech
from siphon.voice.transcript import ToolCallRecord, Transcript, Turn
from siphon.voice.turns import EndpointingStrategy, TurnDecision, endpointing_for
from siphon.voice.vad import SpeechEnded, SpeechStarted, VoiceActivity

if TYPE_CHECKING:
    from siphon.io.call import SipCall

log = logging.getLogger("siphon.voice")

CALLER_RATE = 8000
FRAME_SECONDS = 0.020
# on_exit runs after the call; a hook that hangs must not keep the call's task alive.
EXIT_HOOK_TIMEOUT = 10.0
# A recogniser that keeps failing is not coming back within this call.
MAX_STT_RESTARTS = 3
STT_RESTART_DELAY = 0.2  # seconds, times the attempt number


@dataclass(slots=True)
class VoiceOptions:
    """Turn-taking knobs (the ``Agent`` keyword arguments of the same names)."""

    allow_interruptions: bool = True
    min_interruption_duration: float = 0.3
    min_silence_duration: float = 0.5
    min_endpointing_delay: float = 0.2
    max_endpointing_delay: float = 0.6
    activation_threshold: float = 0.5
    prefix_padding_duration: float = 0.3
    max_tool_steps: int = 5
    language: str | None = None
    timezone: str | None = None


class ToolResultLike(Protocol):
    name: str
    content: str
    is_error: bool
    duration: float


class ToolExecutor(Protocol):
    """What the session needs of the agent's tools (``siphon.agent.tools.ToolRegistry``)."""

    @property
    def specs(self) -> list[ToolSpec]: ...

    async def execute(
        self, call: ToolCall, context_factory: Callable[[str], Any]
    ) -> ToolResultLike: ...


class SessionHooks(Protocol):
    """The agent's lifecycle hooks (``siphon.agent.Agent`` implements them)."""

    async def on_enter(self, session: AgentSession) -> None: ...

    async def monitor_call(self, session: AgentSession) -> None: ...

    async def on_exit(self, session: AgentSession) -> None: ...

    async def on_dtmf(self, session: AgentSession, event: DtmfReceived) -> None: ...

    async def on_user_turn(self, session: AgentSession, turn: Turn) -> bool | None: ...

    async def on_agent_turn(self, session: AgentSession, turn: Turn) -> None: ...


# The utterance the running code belongs to (tools run inside a reply: their
# ``say``/``end_call`` join it instead of waiting for the floor it holds).
_current_speech: contextvars.ContextVar[Speech | None] = contextvars.ContextVar(
    "siphon_current_speech", default=None
)


class _CallOver(Exception):
    """Raised in the session's TaskGroup body to stop every task when the call ends."""


class AgentSession:
    def __init__(
        self,
        call: SipCall,
        *,
        llm: LLM,
        stt: STT,
        tts: TTS,
        vad: VAD,
        hooks: SessionHooks,
        options: VoiceOptions | None = None,
        system_instructions: str = "",
        tools: ToolExecutor | None = None,
        tool_context: Callable[[AgentSession, str], Any] | None = None,
        endpointing: EndpointingStrategy | None = None,
        agent_name: str = "agent",
    ) -> None:
        self.call = call
        self.llm, self.stt, self.tts, self.vad = llm, stt, tts, vad
        self.hooks = hooks
        self.options = options or VoiceOptions()
        self.agent_name = agent_name
        self.system_instructions = system_instructions
        self.tools = tools
        self._tool_context = tool_context
        opts = self.options
        self.transcript = Transcript()
        self.metrics: list[TurnMetrics] = []
        self.chat: list[ChatMessage] = []  # the model's history (system prompt not included)
        self.dtmf_digits: list[str] = []
        self.userdata: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {
            "call_id": call.call_id,
            "direction": call.direction,
            "from": call.from_uri,
            "to": call.to_uri,
            "called": call.called_user,
            "agent_name": agent_name,
        }
        self._activity = VoiceActivity(
            vad,
            activation_threshold=opts.activation_threshold,
            min_silence_duration=opts.min_silence_duration,
            prefix_padding_duration=opts.prefix_padding_duration,
        )
        self._endpointer = endpointing or endpointing_for(
            stt, opts.min_endpointing_delay, opts.max_endpointing_delay
        )
        self._stt_stream: STTStream | None = None
        self._stt_resampler = (
            Resampler(CALLER_RATE, stt.sample_rate) if stt.sample_rate != CALLER_RATE else None
        )
        self._floor = asyncio.Lock()
        self._current: Speech | None = None
        self._pending_reply: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._wake_turns = asyncio.Event()
        self._turn_ids = 0
        self._user_turn_start: float | None = None
        self._speech_ended_at: float | None = None
        self._pending_metrics: TurnMetrics | None = None
        self._end_after_speech: str | None = None
        self._closed = False
        self.finished = asyncio.Event()  # set once on_exit has run and the call is over
        self.errors = 0  # utterances a provider failure cut short
        self.stt_restarts = 0
        # on_agent_turn tasks: not in the call's TaskGroup, whose shutdown at the end of
        # the call would cancel the hook of the last turn; _finish awaits them instead.
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self.user_speaking = False
        self.started_at = 0.0
        self.last_activity = 0.0
        self.end_reason: str | None = None

    # -- facts -------------------------------------------------------------------------
    @property
    def call_id(self) -> str:
        return self.call.call_id

    @property
    def agent_speaking(self) -> bool:
        """An utterance holds the floor (being generated or played)."""
        return self._current is not None

    @property
    def timezone(self) -> str | None:
        return self.options.timezone

    def idle_seconds(self, now: float | None = None) -> float:
        """Seconds since anyone spoke (0 while someone speaks or a reply is pending)."""
        if self.user_speaking or self._current is not None or self._pending_reply is not None:
            return 0.0
        now = asyncio.get_running_loop().time() if now is None else now
        return max(0.0, now - self.last_activity)

    # -- running the call ----------------------------------------------------------------
    async def run(self) -> None:
        """Run until the call ends; ``on_exit`` always runs, whatever ended the call."""
        loop = asyncio.get_running_loop()
        self.started_at = self.last_activity = loop.time()
        cid = self.call.call_id
        log.info("call %s: agent %s session started", cid, self.agent_name)
        try:
            self._stt_stream = self.stt.stream(language=self.options.language)
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(self._audio_loop(), name=f"audio:{cid}")
                group.create_task(self._stt_loop(), name=f"stt:{cid}")
                group.create_task(self._turn_loop(), name=f"turns:{cid}")
                group.create_task(self._guard(self.hooks.on_enter, "on_enter"), name=f"enter:{cid}")
                group.create_task(
                    self._guard(self.hooks.monitor_call, "monitor_call"), name=f"monitor:{cid}"
                )
                self.end_reason = await self._call_events()
                raise _CallOver
        except* _CallOver:
            pass
        finally:
            self._group = None
            await self._finish()

    async def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stt_stream is not None:
            try:
                await self._stt_stream.aclose()
            except Exception:
                log.exception("call %s: closing the STT stream failed", self.call_id)
        if self._hook_tasks:
            await asyncio.wait(set(self._hook_tasks), timeout=EXIT_HOOK_TIMEOUT)
        try:
            async with asyncio.timeout(EXIT_HOOK_TIMEOUT):
                await self.hooks.on_exit(self)
        except Exception:
            log.exception("call %s: on_exit failed", self.call_id)
        if not self.call.ended:
            await self.call.hangup("agent session ended")
        self.finished.set()
        log.info(
            "call %s: session ended (%s): %d turns",
            self.call_id,
            self.end_reason or self.call.end_reason,
            len(self.transcript),
        )

    async def _guard(self, hook: Callable[[AgentSession], Awaitable[None]], name: str) -> None:
        """A failing user hook is logged; it does not end the call."""
        try:
            await hook(self)
        except Exception:
            log.exception("call %s: %s failed", self.call_id, name)

    async def _call_events(self) -> str:
        async for event in self.call.iter_events():
            if isinstance(event, CallEnded):
                return event.reason
            if isinstance(event, DtmfReceived):
                self.dtmf_digits.append(event.digit)
                self._touch()
                try:
                    await self.hooks.on_dtmf(self, event)
                except Exception:
                    log.exception("call %s: on_dtmf failed", self.call_id)
            elif isinstance(event, HoldChanged):
                log.info("call %s: %s", self.call_id, "on hold" if event.on_hold else "resumed")
        return self.call.end_reason or "ended"

    def _touch(self) -> None:
        self.last_activity = asyncio.get_running_loop().time()

    # -- caller audio -----------------------------------------------------------------
    async def _audio_loop(self) -> None:
        loop = asyncio.get_running_loop()
        activity = self._activity
        opts = self.options
        n = 0
        async for frame in self.call.frames():
            t = n * FRAME_SECONDS
            n += 1
            now = loop.time()
            pushed = False
            for event in activity.process(frame, t):
                if isinstance(event, SpeechStarted):
                    self._on_speech_started(event, now)
                    self._push_stt(event.prefix)  # the onset, this frame included
                    pushed = True
                elif isinstance(event, SpeechEnded):
                    if not pushed:
                        self._push_stt(frame)
                        pushed = True
                    self._on_speech_ended(event, now)
            if activity.speaking:
                if not pushed:
                    self._push_stt(frame)
                speech = self._current
                if (
                    speech is not None
                    and speech.allow_interruptions
                    and not speech.interrupted
                    and activity.speech_duration_so_far(t + FRAME_SECONDS)
                    >= opts.min_interruption_duration
                ):
                    self.interrupt()

    def _on_speech_started(self, event: SpeechStarted, now: float) -> None:
        self.user_speaking = True
        self.last_activity = now
        if self._user_turn_start is None:
            self._user_turn_start = now - (event.detected_at - event.time)
        self._endpointer.on_speech_start(now)
        self._wake_turns.set()

    def _on_speech_ended(self, event: SpeechEnded, now: float) -> None:
        self.user_speaking = False
        self.last_activity = now
        # The VAD reports the end after min_silence_duration: map it back to the loop clock.
        ended_at = now - (event.detected_at - event.time)
        self._speech_ended_at = ended_at
        if self._stt_stream is not None:
            self._stt_stream.flush()
        # Endpointing delays count from when the silence was established (the VAD's
        # min_silence_duration), so max_endpointing_delay is the STT's time to finalise.
        self._endpointer.on_speech_end(now)
        self._wake_turns.set()

    def _push_stt(self, pcm: PcmArray) -> None:
        if self._stt_stream is None or not len(pcm):
            return
        if self._stt_resampler is not None:
            pcm = self._stt_resampler.process(pcm)
        self._stt_stream.push(pcm)

    async def _stt_loop(self) -> None:
        """Recogniser events into the turn detector; a failed stream is reopened.

        Cloud recognisers drop connections mid-call; the call should survive that
        with a gap in recognition, not end. Words spoken while the stream was down
        are lost (the caller may have to repeat); after ``MAX_STT_RESTARTS``
        failures the error ends the session.
        """
        loop = asyncio.get_running_loop()
        restarts = 0
        while True:
            stream = self._stt_stream
            assert stream is not None
            try:
                async for event in stream:
                    now = loop.time()
                    if event.type is SpeechEventType.FINAL and event.text:
                        self._metrics_in_progress().stt_final_at = now
                    self._endpointer.on_transcript(event, now)
                    self._wake_turns.set()
            except Exception:
                restarts += 1
                self.stt_restarts = restarts
                if restarts > MAX_STT_RESTARTS:
                    raise
                log.exception(
                    "call %s: STT stream failed, reopening (%d/%d)",
                    self.call_id,
                    restarts,
                    MAX_STT_RESTARTS,
                )
                with contextlib.suppress(Exception):
                    await stream.aclose()
                await asyncio.sleep(STT_RESTART_DELAY * restarts)
                self._stt_stream = self.stt.stream(language=self.options.language)
                continue
            log.debug("call %s: STT stream ended", self.call_id)
            return

    def _metrics_in_progress(self) -> TurnMetrics:
        if self._pending_metrics is None:
            self._pending_metrics = TurnMetrics(turn_id=self._turn_ids + 1)
        return self._pending_metrics

    # -- turn detection -----------------------------------------------------------------
    async def _turn_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            deadline = self._endpointer.next_deadline()
            self._wake_turns.clear()
            if deadline is None:
                await self._wake_turns.wait()
            else:
                delay = deadline - loop.time()
                if delay > 0:
                    try:
                        async with asyncio.timeout(delay):
                            await self._wake_turns.wait()
                    except TimeoutError:
                        pass
            decision = self._endpointer.poll(loop.time())
            if decision is not None:
                await self._commit_user_turn(decision)

    async def _commit_user_turn(self, decision: TurnDecision) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        metrics = self._metrics_in_progress()
        self._pending_metrics = None
        self._turn_ids += 1
        metrics.turn_id = self._turn_ids
        metrics.speech_ended_at = self._speech_ended_at or decision.speech_ended_at
        metrics.endpoint_at = decision.decided_at
        metrics.endpoint_reason = decision.reason
        started = self._user_turn_start if self._user_turn_start is not None else now
        self._user_turn_start = None
        turn = Turn(
            role="user",
            text=decision.text,
            started_at=started,
            ended_at=metrics.speech_ended_at or now,
            turn_id=metrics.turn_id,
        )
        self.transcript.append(turn)
        log.info("call %s: user: %s", self.call_id, decision.text)
        try:
            verdict = await self.hooks.on_user_turn(self, turn)
        except Exception:
            log.exception("call %s: on_user_turn failed", self.call_id)
            verdict = None
        self.chat.append(ChatMessage("user", decision.text))
        if verdict is False:  # the hook answered the caller itself
            return
        self._start_reply(metrics)

    def _start_reply(self, metrics: TurnMetrics | None, instructions: str | None = None) -> None:
        """Queue a reply for the floor; a reply still waiting for it is superseded."""
        pending = self._pending_reply
        if pending is not None and not pending.done():
            pending.cancel()  # it never spoke; the new reply sees the newer history
        speech = Speech(
            turn_id=metrics.turn_id if metrics else self._turn_ids,
            source="reply",
            allow_interruptions=self.options.allow_interruptions,
            metrics=metrics,
        )
        if metrics is not None:
            self.metrics.append(metrics)
        self._pending_reply = self._spawn(
            self._hold_floor(speech, self._generate(speech, instructions), pending=True),
            f"reply:{self.call_id}:{speech.turn_id}",
        )
        speech.task = self._pending_reply

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        group = self._group
        if group is None:
            raise RuntimeError("the agent session is not running (the call has ended)")
        return group.create_task(coro, name=name)  # type: ignore[arg-type]

    # -- the floor: one utterance at a time -------------------------------------------------
    async def _hold_floor(
        self, speech: Speech, produce: Awaitable[None], *, pending: bool = False
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with self._floor:
                if pending and self._pending_reply is asyncio.current_task():
                    self._pending_reply = None
                playout = self.call.media.playout
                speech.epoch = playout.epoch
                speech.started_at = loop.time()
                self._current = speech
                token = _current_speech.set(speech)
                try:
                    try:
                        await produce
                    except Exception:
                        # A provider failing mid-reply ends this utterance, not the call.
                        self.errors += 1
                        log.exception("call %s: %s failed", self.call_id, speech.source)
                    await self._wait_played(playout.end_of_utterance(speech.epoch))
                finally:
                    _current_speech.reset(token)
                    self._current = None
                    self._close_speech(speech, loop.time())
        finally:
            if pending and self._pending_reply is asyncio.current_task():
                self._pending_reply = None
            if inspect.iscoroutine(produce):
                produce.close()  # superseded before it ran: no "never awaited" warning
            speech.done.set()
        if self._end_after_speech is not None and self._current is None:
            reason, self._end_after_speech = self._end_after_speech, None
            await self.call.hangup(reason)

    def _close_speech(self, speech: Speech, now: float) -> None:
        text = speech.played_text()
        if speech.interrupted:
            self._rewrite_history(speech)
        turn = Turn(
            role="agent",
            text=text,
            started_at=speech.started_at,
            ended_at=now,
            interrupted=speech.interrupted,
            turn_id=speech.turn_id,
            tool_calls=speech.tool_calls,
            metrics=speech.metrics,
        )
        speech.turn = turn
        self.last_activity = now
        if not text and not speech.tool_calls and not speech.interrupted:
            return  # nothing was said or done (an empty reply)
        self.transcript.insert_in_order(turn)
        if speech.metrics is not None:
            speech.metrics.interrupted = speech.interrupted
            log.info("call %s: %s", self.call_id, speech.metrics.summary())
        log.info(
            "call %s: agent: %s%s",
            self.call_id,
            text,
            " [interrupted]" if speech.interrupted else "",
        )
        task = asyncio.create_task(
            self._agent_turn_hook(turn), name=f"agent-turn:{self.call_id}:{speech.turn_id}"
        )
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)

    async def _agent_turn_hook(self, turn: Turn) -> None:
        try:
            await self.hooks.on_agent_turn(self, turn)
        except Exception:
            log.exception("call %s: on_agent_turn failed", self.call_id)

    def _rewrite_history(self, speech: Speech) -> None:
        """The model must not believe the caller heard what was cut off.

        Each step's message keeps the words that played; tool calls the
        interruption left unanswered get a result saying so (the chat APIs reject
        a tool call without one); a step left with neither is removed.
        """
        answered = {m.tool_call_id for m in self.chat if m.role == "tool"}
        for index, message in enumerate(speech.step_messages):
            heard = [speech.played_part(p) for p in speech.phrases if p.step == index]
            message.content = " ".join(t for t in heard if t)
            if message not in self.chat:
                continue
            if not message.content and not message.tool_calls:
                self.chat.remove(message)
                continue
            at = self.chat.index(message) + 1
            for call in message.tool_calls:
                if call.id not in answered:
                    note = "cancelled: the caller interrupted before this finished"
                    self.chat.insert(
                        at, ChatMessage("tool", note, tool_call_id=call.id, name=call.name)
                    )
                    at += 1

    def _wait_played(self, position: int) -> Awaitable[bool]:
        """Resolves (True: played, False: flushed) when the frame at ``position`` went out."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def done(played: bool, now: float) -> None:
            if not future.done():
                future.set_result(played)

        if position < 0 or self.call.ended:
            future.set_result(True)
        else:
            self.call.media.playout.notify_played(position, done)
            self.call.on_ended(lambda: done(False, 0.0))
        return future

    # -- producing speech ------------------------------------------------------------------
    async def _generate(self, speech: Speech, instructions: str | None) -> None:
        """LLM -> phrases -> TTS, with up to ``max_tool_steps`` rounds of tool calls."""
        loop = asyncio.get_running_loop()
        tools = self.tools
        specs = tools.specs if tools is not None else []
        metrics = speech.metrics
        for step in range(self.options.max_tool_steps + 1):
            # The last step offers no tools: the model must answer in words.
            offered = specs if step < self.options.max_tool_steps else []
            messages = self._messages(instructions)  # before this step's own message
            phrases: asyncio.Queue[str | None] = asyncio.Queue()
            calls: list[ToolCall] = []
            written: list[str] = []
            message = ChatMessage("assistant", "")
            speech.step_messages.append(message)
            self.chat.append(message)  # filled in as the model writes
            chunker = PhraseChunker()
            async with asyncio.TaskGroup() as group:
                group.create_task(
                    self._synthesize(speech, phrases, step), name=f"tts:{self.call_id}"
                )
                try:
                    async for chunk in self.llm.chat(messages, offered):
                        if chunk.text:
                            if metrics is not None and metrics.llm_first_token_at is None:
                                metrics.llm_first_token_at = loop.time()
                            written.append(chunk.text)
                            for phrase in chunker.push(chunk.text):
                                phrases.put_nowait(phrase)
                        calls.extend(chunk.tool_calls)
                        if chunk.usage is not None and metrics is not None:
                            metrics.prompt_tokens += chunk.usage.prompt_tokens
                            metrics.completion_tokens += chunk.usage.completion_tokens
                    for phrase in chunker.flush():
                        phrases.put_nowait(phrase)
                finally:
                    phrases.put_nowait(None)
            message.content = "".join(written).strip()
            message.tool_calls = list(calls)
            if not calls:
                return
            if metrics is not None:
                metrics.tool_calls += len(calls)
            results = await asyncio.gather(*(self._run_tool(speech, c) for c in calls))
            for call, result in zip(calls, results, strict=True):
                self.chat.append(
                    ChatMessage("tool", result.content, tool_call_id=call.id, name=call.name)
                )

    async def _run_tool(self, speech: Speech, call: ToolCall) -> ToolResultLike:
        assert self.tools is not None
        started = asyncio.get_running_loop().time()
        factory = self._tool_context
        result = await self.tools.execute(
            call, (lambda tool_call_id: factory(self, tool_call_id)) if factory else _no_context
        )
        speech.tool_calls.append(
            ToolCallRecord(
                name=call.name,
                arguments=call.arguments,
                result=result.content,
                is_error=result.is_error,
                started_at=started,
                duration=result.duration,
            )
        )
        level = logging.WARNING if result.is_error else logging.INFO
        log.log(level, "call %s: tool %s -> %s", self.call_id, call.name, result.content[:200])
        return result

    async def _synthesize(
        self, speech: Speech, phrases: asyncio.Queue[str | None], step: int
    ) -> None:
        while (text := await phrases.get()) is not None:
            await self._speak_phrase(speech, text, step)

    async def _speak_phrase(self, speech: Speech, text: str, step: int) -> None:
        loop = asyncio.get_running_loop()
        phrase = Phrase(text, step)
        speech.phrases.append(phrase)
        resampler = (
            Resampler(self.tts.sample_rate, CALLER_RATE)
            if self.tts.sample_rate != CALLER_RATE
            else None
        )
        metrics = speech.metrics
        async for pcm in _aiter(self.tts.synthesize(text)):
            audio = resampler.process(pcm) if resampler is not None else pcm
            self._queue_audio(speech, phrase, audio, metrics, loop.time())
        if resampler is not None:
            self._queue_audio(speech, phrase, resampler.flush(), metrics, loop.time())

    def _queue_audio(
        self,
        speech: Speech,
        phrase: Phrase,
        audio: PcmArray,
        metrics: TurnMetrics | None,
        now: float,
    ) -> None:
        if not len(audio):
            return
        playout = self.call.media.playout
        if playout.epoch != speech.epoch:
            return  # interrupted: nothing of this utterance may play
        if speech.first_position < 0:
            # Synthesisers often open with a stretch of near-silence (Piper: up to
            # ~400 ms, varying run to run): the caller would wait for it.
            audio = _trim_leading_quiet(audio)
            if not len(audio):
                return
        if metrics is not None and metrics.tts_first_audio_at is None:
            metrics.tts_first_audio_at = now
        before = playout.queued
        if speech.first_position < 0 and metrics is not None:
            # Registered first: the first frame may go out inside put() (early send).
            playout.notify_played(before, _first_rtp_recorder(metrics))
        last = playout.put(audio, speech.epoch)
        if last >= before:
            if phrase.first < 0:
                phrase.first = before
            phrase.last = last
            if speech.first_position < 0:
                speech.first_position = before

    # -- what the agent (and its tools and hooks) can do ---------------------------------------
    async def say(self, text: str, *, allow_interruptions: bool | None = None) -> Turn | None:
        """Speak ``text``. Waits until it has played (or was cut off) and returns its turn.

        Called from a tool while a reply is speaking, the text joins that reply
        (queued after what it has said so far) and this returns once it is queued.
        """
        current = _current_speech.get()
        if current is not None and current is self._current:
            step = len(current.step_messages) - 1
            await self._speak_phrase(current, text, max(step, 0))
            return None
        speech = Speech(
            turn_id=self._turn_ids,
            source="say",
            allow_interruptions=(
                self.options.allow_interruptions
                if allow_interruptions is None
                else allow_interruptions
            ),
        )

        async def produce() -> None:
            message = ChatMessage("assistant", text)
            speech.step_messages.append(message)
            self.chat.append(message)
            await self._speak_phrase(speech, text, 0)

        task = self._spawn(self._hold_floor(speech, produce()), f"say:{self.call_id}")
        speech.task = task
        await speech.done.wait()
        return speech.turn

    async def generate_reply(self, instructions: str | None = None) -> Turn | None:
        """Have the model speak now (a greeting, a nudge), with optional extra instructions."""
        speech = Speech(
            turn_id=self._turn_ids,
            source="reply",
            allow_interruptions=self.options.allow_interruptions,
            metrics=None,
        )
        task = self._spawn(
            self._hold_floor(speech, self._generate(speech, instructions)),
            f"reply:{self.call_id}:{speech.turn_id}",
        )
        speech.task = task
        await speech.done.wait()
        return speech.turn

    def interrupt(self) -> bool:
        """Stop the agent's current utterance now (barge-in). False when none is interruptible."""
        speech = self._current
        if speech is None or speech.interrupted:
            return False
        playout = self.call.media.playout
        speech.interrupted = True
        speech.played_upto = playout.last_played
        playout.flush(asyncio.get_running_loop().time())
        if speech.task is not None:
            speech.task.cancel()
        log.info("call %s: agent interrupted by the caller", self.call_id)
        return True

    async def hangup(self, reason: str = "agent hangup") -> None:
        await self.call.hangup(reason)

    async def end_call(self, reason: str = "agent ended the call") -> None:
        """Hang up once the current speech has finished playing (never cut it off)."""
        if _current_speech.get() is not None:
            # Called from inside the speech (the end_call tool): hang up when it ends.
            self._end_after_speech = reason
            return
        while self._current is not None:
            await self._current.done.wait()
        playout = self.call.media.playout
        await self._wait_played(playout.queued - 1)
        await self.call.hangup(reason)

    async def transfer(self, destination: str) -> Any:
        """Cold transfer (SIP REFER) after what has been said so far has played.

        Returns the transfer's outcome (``ok``, ``status``, ``reason``); on success
        the agent leaves the call.
        """
        playout = self.call.media.playout
        await self._wait_played(playout.queued - 1)
        transfer = getattr(self.call, "transfer", None)
        if transfer is None:
            raise RuntimeError("this call cannot be transferred (no SIP REFER support)")
        outcome = await transfer(destination)
        log.info(
            "call %s: transfer to %s: %s %s",
            self.call_id,
            destination,
            outcome.status,
            outcome.reason,
        )
        if outcome.ok:
            self._end_after_speech = None
            await self.call.hangup("transferred")
        return outcome

    def send_dtmf(self, digits: str) -> None:
        """Send digits to the caller as RFC 4733 telephone-events."""
        self.call.send_dtmf(digits)

    # -- the model's view -----------------------------------------------------------------
    def _messages(self, instructions: str | None) -> list[ChatMessage]:
        messages = []
        if self.system_instructions:
            messages.append(ChatMessage("system", self.system_instructions))
        messages.extend(self.chat)
        if instructions:
            messages.append(ChatMessage("system", instructions))
        return messages


def _first_rtp_recorder(metrics: TurnMetrics) -> Callable[[bool, float], None]:
    def first_out(played: bool, at: float) -> None:
        if played and metrics.first_rtp_at is None:
            metrics.first_rtp_at = at

    return first_out


# A 10 ms block quieter than this (RMS, about -50 dBFS) opening an utterance is
# not speech yet: breath and synthesis noise (Piper opens with up to ~400 ms of it).
QUIET_RMS = 104
TRIM_BLOCK = 80  # 10 ms at 8 kHz
# Kept before the first loud block: the soft onset of the first word.
ONSET_KEEP_SAMPLES = 160


def _trim_leading_quiet(audio: PcmArray) -> PcmArray:
    blocks = len(audio) // TRIM_BLOCK
    if blocks:
        shaped = audio[: blocks * TRIM_BLOCK].astype(np.float32).reshape(blocks, TRIM_BLOCK)
        loud = np.flatnonzero(np.sqrt(np.mean(shaped * shaped, axis=1)) >= QUIET_RMS)
        if len(loud):
            return audio[max(0, int(loud[0]) * TRIM_BLOCK - ONSET_KEEP_SAMPLES) :]
    tail = audio[blocks * TRIM_BLOCK :].astype(np.float32)
    if len(tail) and float(np.sqrt(np.mean(tail * tail))) >= QUIET_RMS:
        return audio[max(0, blocks * TRIM_BLOCK - ONSET_KEEP_SAMPLES) :]
    return audio[:0]


def _no_context(tool_call_id: str) -> None:
    return None


async def _aiter(source: AsyncIterator[PcmArray]) -> AsyncIterator[PcmArray]:
    """TTS chunks as int16 (providers may hand float or other integer widths)."""
    async for chunk in source:
        array = np.asarray(chunk)
        if array.dtype != np.int16:
            if np.issubdtype(array.dtype, np.floating):
                array = np.clip(array * 32767.0, -32768, 32767).astype(np.int16)
            else:
                array = array.astype(np.int16)
        yield array
