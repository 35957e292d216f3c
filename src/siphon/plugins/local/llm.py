"""A rules engine standing in for a language model: offline, deterministic, honest.

``RulesLLM`` is **not a language model**. It does not read the agent's
instructions and cannot improvise: it matches what the caller said against the
intents and FAQ entries you configure and answers with the replies (and tool
calls) you wrote. It speaks the ``LLM`` protocol only so that an agent runs
with no keys and no network: for demos, tests, and phone menus simple enough
that keywords do the job.

How it answers each ``chat()`` (one per step of the runtime):

- No caller turn yet (the greeting): ``greeting``. Instructions (system
  messages) are never spoken; the engine cannot follow them.
- A caller turn: the words are normalised (case, accents, punctuation, "three
  thirty" -> "3 30"), stemmed lightly ("opening hours" matches "open" and
  "hour") and scored against every intent: each ``keywords`` entry found (a word
  or a contiguous phrase) scores its number of words; the best ``phrases`` entry
  (an example sentence) scores its content words found when at least half of
  them are. FAQ questions are example sentences. The best score of at least
  ``min_score`` wins, ties going to the intent declared first (your intents, then
  the FAQ, then the goodbye). Nothing matches: ``fallback``.
- An intent with a ``tool`` calls it (JSON arguments, static or computed from the
  caller's words) when the runtime offers that tool, after saying ``reply``; its
  ``after_tool`` answers once the result comes back. Arguments named in
  ``requires`` that the caller did not give are asked for (``ask``), and the
  caller's next turn is read together with the first.
- A turn with nothing left to say (a nudge after the conversation began):
  ``reprompt``.

It does not understand negation, sarcasm or anything it was not told: "I don't
want to book" is a booking. Say so to whoever configures it.

Example, a dental receptionist::

    from siphon.agent import Agent, end_call, function_tool, transfer_call
    from siphon.plugins.local import Intent, RulesLLM, extract, extract_day, extract_time

    @function_tool
    def book_appointment(day: str, time: str) -> str:
        \"\"\"Book a dental appointment.\"\"\"
        return calendar.book(day, time)          # e.g. "Monday at 3 PM"

    llm = RulesLLM(
        greeting="Bright Smile Dental, how can I help you?",
        intents=[
            Intent("hours", keywords=("hours", "open", "close"),
                   reply="We're open Monday to Friday, 8 AM to 6 PM."),
            Intent("address", keywords=("address", "where", "located", "directions"),
                   reply="We're at 12 Harbour Street, next to the library."),
            Intent("book", keywords=("book", "appointment", "schedule"),
                   reply="Let me check the calendar.",
                   tool="book_appointment",
                   arguments=extract(day=extract_day, time=extract_time),
                   requires=("day", "time"),
                   ask="Which day and time would suit you?",
                   after_tool="You're booked for {result}. See you then!"),
            Intent("billing", keywords=("bill", "billing", "invoice", "payment"),
                   reply="I'll put you through to billing.",
                   tool="transfer_call",
                   arguments={"destination": "sip:billing@brightsmile.example"}),
        ],
        faq={"Do you take insurance?": "Yes, we accept most major dental plans."},
    )   # the default goodbye intent ("bye", "that's all"...) says Goodbye! and calls end_call
    agent = Agent(agent_name="Receptionist", llm=llm, stt=..., tts=...,
                  tools=[book_appointment, transfer_call, end_call])
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import string
import unicodedata
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal

from siphon.errors import ConfigError
from siphon.plugins.base import LLM, ChatMessage, LLMChunk, ToolCall, ToolSpec, Usage

__all__ = [
    "DEFAULT_GOODBYE",
    "Intent",
    "IntentMatch",
    "RulesLLM",
    "RulesReply",
    "extract",
    "extract_day",
    "extract_time",
    "normalize",
]

log = logging.getLogger("siphon.plugins.local.llm")

MAX_INPUT_CHARS: Final = 2000
"""Caller text beyond this is ignored: a phone turn is a few sentences (an STT
final is rarely 300 characters), and the cap bounds the work on garbage input."""

MAX_FOLLOW_UPS: Final = 3
"""How many times in a row an intent asks for missing arguments before the
engine stops reading the caller's answers as part of that request."""

MAX_VERBATIM_WORDS: Final = 30
"""A tool result this short is read to the caller when the intent says nothing
else; a longer one (a JSON dump, a list) is not speech."""

DEFAULT_ASK: Final = "Could you tell me the {missing}?"

# Built-in call-control tools: their results ("call ending", "transfer ...
# succeeded") are for a model, and the caller is gone or leaving anyway.
_CALL_CONTROL: Final = frozenset({"end_call", "transfer_call"})

ReplyKind = Literal["greeting", "intent", "ask", "fallback", "after_tool", "reprompt"]


# -- normalisation ------------------------------------------------------------------------
_APOSTROPHES: Final = re.compile("['\u2019\u02bc`\u00b4]")  # that's -> thats, o'clock -> oclock
_NON_WORD: Final = re.compile(r"[\W_]+")
_DIGIT_LETTER: Final = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")  # 3pm -> 3 pm
_UNITS: Final = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS: Final = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS: Final = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_TENS_DIGITS: Final = frozenset(str(v) for v in _TENS.values())

# Function words that say nothing about what the caller wants; question words are
# here too, or "when can I come in" would match "When are you open?".
_STOP_TEXT: Final = """
    a about am an and any are as at be can could did do does for from get give have how i id
    if im in is it its just know like me my need of on or our please so some tell than thank
    thanks that thats the their them then there these they this to us want was we were what
    whats when where which who why will with would you your youre
"""
_STOP_WORDS: Final = frozenset(_STOP_TEXT.split())

# Spoken variants to one canonical word (matched by stem, see RulesLLM's ``synonyms``).
DEFAULT_SYNONYMS: Final[Mapping[str, str]] = MappingProxyType(
    {"okay": "ok", "yeah": "yes", "yep": "yes", "yup": "yes", "nope": "no", "appt": "appointment"}
)


def normalize(text: str) -> str:
    """Caller text as the matcher sees it: lower case, no accents or punctuation,
    digits for number words ("Three-thirty P.M.!" -> "3 30 p m").

    >>> normalize("What're your opening HOURS?  Café at twenty-five past three")
    'whatre your opening hours cafe at 25 past 3'
    """
    text = unicodedata.normalize("NFKD", text[:MAX_INPUT_CHARS])
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = _NON_WORD.sub(" ", _APOSTROPHES.sub("", text))
    return " ".join(_number_words(_DIGIT_LETTER.sub(" ", text).split()))


def _number_words(tokens: list[str]) -> list[str]:
    """Number words to digits, 0-99 (times, small counts): "twenty five" -> "25"."""
    out: list[str] = []
    for token in tokens:
        unit = _UNITS.get(token)
        if unit is not None and out and out[-1] in _TENS_DIGITS and unit > 0:
            out[-1] = str(int(out[-1]) + unit)  # "twenty" then "five"
            continue
        value = unit if unit is not None else _TEENS.get(token, _TENS.get(token))
        out.append(str(value) if value is not None else token)
    return out


def _stem(word: str) -> str:
    """A deliberately tiny stemmer: both sides go through it, so it only has to be
    consistent (hours/hour, opening/open, closes/closed/close, billing/bill)."""
    if word.isdigit():
        return word
    for suffixes in (("ies", "es", "s"), ("ing", "ed")):  # plural first: cleanings -> clean
        for suffix in suffixes:
            if not word.endswith(suffix) or len(word) - len(suffix) < 3:
                continue
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                break  # address, bus, this: not plurals
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouy":
        word = word[:-1]  # running -> runn -> run; bill and billing meet at "bil"
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]  # close and closing meet at "clos"
    return word


@dataclass(frozen=True, slots=True)
class _Words:
    """One text, analysed once: stems in order, where each occurs, content stems."""

    stems: tuple[str, ...]
    positions: Mapping[str, tuple[int, ...]]
    content: frozenset[str]


def _analyse(text: str, synonyms: Mapping[str, str]) -> _Words:
    stems: list[str] = []
    content: set[str] = set()
    for token in normalize(text).split():
        stem = _stem(token)
        stem = synonyms.get(stem, stem)
        stems.append(stem)
        if token not in _STOP_WORDS:
            content.add(stem)
    positions: dict[str, list[int]] = {}
    for index, stem in enumerate(stems):
        positions.setdefault(stem, []).append(index)
    return _Words(tuple(stems), {k: tuple(v) for k, v in positions.items()}, frozenset(content))


def _contains(words: _Words, phrase: tuple[str, ...]) -> bool:
    """``phrase`` occurs in ``words`` as contiguous stems (word boundaries by construction)."""
    n = len(phrase)
    return any(
        words.stems[start : start + n] == phrase for start in words.positions.get(phrase[0], ())
    )


# -- argument helpers ------------------------------------------------------------------------
_DAYS: Final = {
    **{d: d for d in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday")},
    "sunday": "sunday", "today": "today", "tonight": "today", "tomorrow": "tomorrow",
    "tues": "tuesday", "weds": "wednesday", "thurs": "thursday",
}  # fmt: skip

_TIME: Final = re.compile(
    r"""\b(?:
        (?P<word>noon|midday|midnight)
      | (?P<frac>half|quarter)\ (?P<dir>past|to)\ (?P<fh>[0-9]{1,2})(?:\ (?P<fs>am|pm))?
      | (?P<at>at\ )?(?P<h>[0-9]{1,2})(?:\ (?P<m>[0-5][0-9]))?(?:\ (?P<suffix>am|pm|oclock))?
    )\b""",
    re.VERBOSE,
)
_AM_PM: Final = re.compile(r"\b([ap]) m\b")  # "p.m." normalises to "p m"


def extract_day(text: str) -> str | None:
    """The last day the caller named: "monday".."sunday", "today" or "tomorrow".

    Relative days stay relative (the engine has no clock; the tool has one).
    The last mention wins, so "Monday, no, Tuesday" is "tuesday".

    >>> extract_day("Can I come in next Monday?"), extract_day("tomorrow morning")
    ('monday', 'tomorrow')
    """
    found = None
    for token in normalize(text).split():
        day = _DAYS.get(token) or _DAYS.get(token.removesuffix("s"))  # "mondays"
        if day is not None:
            found = day
    return found


def extract_time(text: str, *, assume_pm_before: int = 7) -> str | None:
    """The last clock time the caller said, as 24-hour "HH:MM".

    Understands "3 pm", "3pm", "three thirty", "15:00", "at 3", "3 o'clock",
    "half past 3", "quarter to 4", "noon" and "midnight". A bare hour needs "at",
    a minute or a suffix ("book 2 people" is not a time). An hour below
    ``assume_pm_before`` with no am/pm is read as afternoon (people booking by
    phone mean 3 PM by "at three"), unless the caller says "morning".

    >>> extract_time("at three thirty"), extract_time("9am"), extract_time("at 3")
    ('15:30', '09:00', '15:00')
    """
    normal = _AM_PM.sub(r"\1m", normalize(text))
    morning = "morning" in normal.split()
    found = None
    for match in _TIME.finditer(normal):
        parsed = _parse_time(match, morning, assume_pm_before)
        if parsed is not None:
            found = parsed
    return found


def _parse_time(match: re.Match[str], morning: bool, assume_pm_before: int) -> str | None:
    if match["word"]:
        return "00:00" if match["word"] == "midnight" else "12:00"
    if match["frac"]:
        hour, minute = int(match["fh"]), 30 if match["frac"] == "half" else 15
        if match["dir"] == "to":
            hour, minute = (hour - 1) or 12, 60 - minute  # quarter to one: 12:45
        suffix = match["fs"]
    else:
        hour, minute, suffix = int(match["h"]), int(match["m"] or 0), match["suffix"]
        if not (match["at"] or match["m"] or suffix):
            return None  # a bare number is not a time
    if suffix in ("am", "pm"):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if suffix == "pm" else 0)
    elif not 0 <= hour <= 23:
        return None
    elif 1 <= hour < assume_pm_before and not morning:
        hour += 12
    return f"{hour:02d}:{minute:02d}"


def extract(**fields: Callable[[str], Any]) -> Callable[[str], dict[str, Any]]:
    """Tool arguments computed from the caller's words, one extractor per argument.

    Arguments whose extractor returns None are left out (and asked for, when the
    intent ``requires`` them).

    >>> extract(day=extract_day, time=extract_time)("Monday at 3 pm please")
    {'day': 'monday', 'time': '15:00'}
    """

    def arguments(text: str) -> dict[str, Any]:
        values = {name: fn(text) for name, fn in fields.items()}
        return {name: value for name, value in values.items() if value is not None}

    return arguments


# -- configuration ----------------------------------------------------------------------------
Arguments = Mapping[str, Any] | Callable[[str], Mapping[str, Any]]


@dataclass(frozen=True, eq=False)
class Intent:
    """Something a caller may want, how to recognise it, and what to do about it.

    - ``keywords``: words or short phrases ("hours", "opening times"), matched at
      word boundaries with light stemming; each found scores its word count.
    - ``phrases``: example sentences ("when do you close on friday"), matched by
      the content words they share with the caller's turn (at least half).
    - ``reply``: said first (may use the arguments: "Booking {day}..."); with a
      ``tool`` it may be empty.
    - ``tool``: the name of a tool to call, with ``arguments`` (a mapping, or a
      function of the caller's text returning one, e.g. ``extract(...)``).
    - ``requires``: argument names that must be present before the tool is
      called; when some are missing the engine says ``ask`` (``{missing}`` names
      them) and reads the caller's next turn as the rest of this request.
    - ``after_tool``: said once the tool has answered: a template with
      ``{result}`` and the arguments, or a function of the result. Left None, a
      short result is read as is. Results that are errors ("error: ...") get
      ``RulesLLM.tool_failed`` instead, unless ``after_tool`` is a function.

    A single string for ``keywords``, ``phrases`` or ``requires`` is one entry.
    """

    name: str
    keywords: Sequence[str] = ()
    phrases: Sequence[str] = ()
    reply: str | None = None
    tool: str | None = None
    arguments: Arguments = field(default_factory=dict)
    requires: Sequence[str] = ()
    ask: str | None = None
    after_tool: str | Callable[[str], str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"an Intent needs a non-empty name, got {self.name!r}")
        for attr in ("keywords", "phrases", "requires"):
            value = getattr(self, attr)
            entries = (value,) if isinstance(value, str) else tuple(value)
            if not all(isinstance(e, str) for e in entries):
                raise ConfigError(f"intent {self.name!r}: {attr} must be strings, got {value!r}")
            object.__setattr__(self, attr, entries)
        if not self.keywords and not self.phrases:
            raise ConfigError(
                f"intent {self.name!r} has no keywords and no phrases: it could never match"
            )
        if self.reply is None and self.tool is None:
            raise ConfigError(f"intent {self.name!r} needs a reply, a tool, or both")
        if not callable(self.arguments):
            if not isinstance(self.arguments, Mapping):
                raise ConfigError(
                    f"intent {self.name!r}: arguments must be a mapping or a function of the "
                    f"caller's text, got {self.arguments!r}"
                )
            try:
                json.dumps(dict(self.arguments))
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"intent {self.name!r}: arguments must be JSON values ({exc})"
                ) from None
            object.__setattr__(self, "arguments", MappingProxyType(dict(self.arguments)))
        for attr in ("reply", "ask", "after_tool"):
            template = getattr(self, attr)
            if isinstance(template, str):
                _check_template(template, f"intent {self.name!r}: {attr}")


def _check_template(template: str, where: str) -> None:
    try:
        list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{where} is not a valid template ({exc}); write {{{{ for {{") from None


class _Lenient(dict[str, Any]):
    """Template fields nobody supplied become "" rather than a KeyError mid-call."""

    def __missing__(self, key: str) -> str:
        return ""


def _render(template: str, values: Mapping[str, Any]) -> str:
    try:
        return template.format_map(_Lenient(values)).strip()
    except (ValueError, AttributeError, IndexError, KeyError):
        # "{day.upper}" and friends: say the template's text rather than fail the turn.
        log.warning("RulesLLM: cannot fill template %r", template)
        return template.strip()


DEFAULT_GOODBYE: Final = Intent(
    "goodbye",
    keywords=("bye", "goodbye", "that's all", "that is all", "hang up"),
    reply="Goodbye!",
    tool="end_call",
    after_tool="",  # the call is ending: nothing to add once end_call answers
)
"""The built-in goodbye: says "Goodbye!" and calls ``end_call`` when the agent has it."""


# -- results -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IntentMatch:
    """The intent a text matched best, and its score (see ``RulesLLM.match``)."""

    intent: Intent
    score: float


@dataclass(frozen=True, slots=True)
class RulesReply:
    """What ``RulesLLM`` answers to one ``chat()``: ``chat`` streams exactly this.

    ``intent`` names the intent (FAQ entries are "faq: <question>") behind the
    reply, None for the greeting, the fallback and the reprompt. ``context`` is
    the caller text the intent was read from (several turns after an ``ask``).
    """

    kind: ReplyKind
    text: str
    tool_call: ToolCall | None = None
    intent: str | None = None
    context: str = ""


@dataclass(frozen=True, slots=True)
class _Compiled:
    intent: Intent
    order: int
    keywords: tuple[tuple[str, ...], ...]
    phrases: tuple[frozenset[str], ...]

    def score(self, words: _Words) -> float:
        score = float(sum(len(k) for k in self.keywords if _contains(words, k)))
        best_phrase = 0
        for phrase in self.phrases:
            overlap = len(phrase & words.content)
            if overlap * 2 >= len(phrase):
                best_phrase = max(best_phrase, overlap)
        return score + best_phrase


@dataclass(frozen=True, slots=True)
class _Pending:
    """An intent that asked for missing arguments, and what the caller had said."""

    compiled: _Compiled
    text: str


_CALL_ID: Final = re.compile(r"rules_(\d+)_")


# -- the engine ---------------------------------------------------------------------------------
class RulesLLM:
    """Not a language model: keyword and FAQ rules that answer like one (see the module doc).

    ``greeting`` opens the call ("" to wait silently for the caller);
    ``fallback`` answers what matched nothing; ``reprompt`` answers a nudge
    after the conversation began; ``tool_failed`` is said when a tool returned
    an error or the agent does not have the tool. ``goodbye`` is an extra intent
    checked last (None: none). ``synonyms`` maps words to the word to read them
    as ({"located": "address"}), on top of a few spoken variants (okay -> ok).
    ``delay`` paces the words like a model (seconds between words; default none).
    """

    def __init__(
        self,
        intents: Sequence[Intent] = (),
        faq: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        *,
        greeting: str = "Hello, how can I help you?",
        fallback: str = "Sorry, I didn't catch that. Could you say it another way?",
        reprompt: str = "Is there anything else I can help you with?",
        tool_failed: str = "Sorry, I couldn't do that just now.",
        goodbye: Intent | None = DEFAULT_GOODBYE,
        synonyms: Mapping[str, str] | None = None,
        min_score: float = 1.0,
        delay: float = 0.0,
    ) -> None:
        if not fallback.strip() or not tool_failed.strip():
            raise ConfigError("RulesLLM: fallback and tool_failed must say something")
        if not min_score > 0:
            raise ConfigError(f"RulesLLM: min_score must be > 0, got {min_score}")
        if not delay >= 0:
            raise ConfigError(f"RulesLLM: delay must be >= 0, got {delay}")
        self.greeting, self.fallback, self.reprompt = greeting, fallback, reprompt
        self.tool_failed, self.min_score, self.delay = tool_failed, min_score, delay
        pairs = list(faq.items()) if isinstance(faq, Mapping) else list(faq)
        faq_intents = [
            # Answers are not templates: escape braces so they are said as written.
            Intent(f"faq: {q}", phrases=(q,), reply=a.replace("{", "{{").replace("}", "}}"))
            for q, a in pairs
        ]
        everything = [*intents, *faq_intents, *([goodbye] if goodbye is not None else [])]
        names = [i.name for i in everything]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"RulesLLM: intent names must be unique; repeated: {duplicates}")
        self._synonyms = self._stem_synonyms({**DEFAULT_SYNONYMS, **(synonyms or {})})
        self._compiled = [self._compile(i, order) for order, i in enumerate(everything)]
        self.intents: tuple[Intent, ...] = tuple(everything)
        self._warned: set[str] = set()  # tools already reported as missing
        log.info(
            "RulesLLM: not a language model; it matches the caller's words against "
            "%d configured intents and %d FAQ entries and says their scripted replies",
            len(intents) + (goodbye is not None),
            len(faq_intents),
        )

    def __repr__(self) -> str:
        return f"<RulesLLM (not a language model): {len(self.intents)} intents>"

    # -- LLM protocol ----------------------------------------------------------------------------
    def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMChunk]:
        """Stream ``respond(messages, tools)`` word by word, then its tool call and usage."""
        # Decided now, not when iteration starts: the runtime keeps mutating the
        # message objects (it fills in the reply being written) after this call.
        reply = self.respond(messages, tools)
        prompt_tokens = sum(len(m.content.split()) for m in messages)
        return self._stream(reply, prompt_tokens)

    async def _stream(self, reply: RulesReply, prompt_tokens: int) -> AsyncIterator[LLMChunk]:
        completion = 0
        for index, token in enumerate(re.findall(r"\s*\S+", reply.text)):
            if self.delay and index:
                await asyncio.sleep(self.delay)
            completion += 1
            yield LLMChunk(text=token)
        if reply.tool_call is not None:
            call = reply.tool_call
            completion += len(f"{call.name} {call.arguments}".split())
            yield LLMChunk(tool_calls=(call,))
        yield LLMChunk(usage=Usage(prompt_tokens, completion))

    # -- deciding ---------------------------------------------------------------------------------
    def respond(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> RulesReply:
        """The whole answer to a conversation, at once (``chat`` streams it)."""
        # System messages are instructions the engine cannot follow; empty
        # assistant messages are steps that said nothing (after end_call, say).
        history = [
            m
            for m in messages
            if m.role != "system" and (m.role != "assistant" or m.content.strip() or m.tool_calls)
        ]
        last = history[-1] if history else None
        if last is not None and last.role == "tool":
            return self._after_tools(history)
        if last is not None and last.role == "user":
            offered = frozenset(t.name for t in tools)
            return self._user_turn(history, len(history) - 1, offered)
        if any(m.role == "user" for m in history):
            return RulesReply("reprompt", self.reprompt)
        return RulesReply("greeting", self.greeting)

    def match(self, text: str) -> IntentMatch | None:
        """The intent (or FAQ entry) ``text`` matches best, if any reaches ``min_score``."""
        best = self._best(_analyse(text, self._synonyms))
        return IntentMatch(best[0].intent, best[1]) if best is not None else None

    def _best(self, words: _Words) -> tuple[_Compiled, float] | None:
        best: tuple[_Compiled, float] | None = None
        for compiled in self._compiled:  # declaration order: strict > keeps the first of a tie
            score = compiled.score(words)
            if score >= self.min_score and (best is None or score > best[1]):
                best = (compiled, score)
        return best

    def _user_turn(
        self,
        history: list[ChatMessage],
        index: int,
        offered: frozenset[str] | None,
        depth: int = 0,
    ) -> RulesReply:
        """Answer the user message at ``index``; ``offered`` None: replaying an earlier turn."""
        text = history[index].content
        turn = sum(1 for m in history[: index + 1] if m.role == "user")
        pending = self._pending(history, index, depth) if depth < MAX_FOLLOW_UPS else None
        best = self._best(_analyse(text, self._synonyms))
        if pending is not None:
            # The caller is answering our question, unless they clearly moved on.
            answered = self._arguments(pending.compiled.intent, text)
            if (
                best is None
                or best[0] is pending.compiled
                or any(k in answered for k in pending.compiled.intent.requires)
            ):
                return self._act(pending.compiled, f"{pending.text} {text}", offered, turn)
        if best is None:
            log.debug("RulesLLM: no intent for %r", text[:200])
            return RulesReply("fallback", self.fallback, context=text)
        log.debug("RulesLLM: %r -> %s (score %g)", text[:200], best[0].intent.name, best[1])
        return self._act(best[0], text, offered, turn)

    def _pending(self, history: list[ChatMessage], index: int, depth: int) -> _Pending | None:
        """The intent that asked the question this user turn answers, if it did.

        Stateless: the conversation is the state. The turn before the question is
        decided again (deterministic, so the same answer) and must have been that
        question, word for word as it reached the conversation.
        """
        if index < 2:
            return None
        asked, before = history[index - 1], history[index - 2]
        if asked.role != "assistant" or asked.tool_calls or before.role != "user":
            return None
        previous = self._user_turn(history, index - 2, None, depth + 1)
        if previous.kind != "ask" or previous.text != asked.content.strip():
            return None
        compiled = next(c for c in self._compiled if c.intent.name == previous.intent)
        return _Pending(compiled, previous.context)

    def _act(
        self, compiled: _Compiled, text: str, offered: frozenset[str] | None, turn: int
    ) -> RulesReply:
        intent = compiled.intent
        arguments = self._arguments(intent, text)
        missing = [k for k in intent.requires if arguments.get(k) in (None, "")]
        if missing:
            names = [m.replace("_", " ") for m in missing]
            spoken = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
            ask = _render(intent.ask or DEFAULT_ASK, {**arguments, "missing": spoken})
            return RulesReply("ask", ask or self.fallback, intent=intent.name, context=text)
        said = _render(intent.reply or "", arguments)
        call = None
        if intent.tool is not None and (offered is None or intent.tool in offered):
            call = ToolCall(
                f"rules_{compiled.order}_{turn}",  # the intent travels in the id (after_tool)
                intent.tool,
                json.dumps(arguments, ensure_ascii=False),
            )
        elif intent.tool is not None:
            if intent.tool not in self._warned:
                self._warned.add(intent.tool)
                log.warning(
                    "RulesLLM: intent %r wants tool %r but the agent does not offer it; "
                    "add it to Agent(tools=[...]). Saying the reply only.",
                    intent.name,
                    intent.tool,
                )
            said = said or self.tool_failed
        if not said and call is None:
            said = self.fallback  # a template that rendered to nothing
        return RulesReply("intent", said, call, intent.name, text)

    def _arguments(self, intent: Intent, text: str) -> dict[str, Any]:
        if not callable(intent.arguments):
            return dict(intent.arguments)
        try:
            values = dict(intent.arguments(text))
            json.dumps(values)
        except Exception:
            # A bug in one intent must not leave the caller in silence: say so in
            # the log, answer with no arguments (so `requires` asks for them).
            log.exception("RulesLLM: arguments of intent %r failed", intent.name)
            return {}
        return values

    def _after_tools(self, history: list[ChatMessage]) -> RulesReply:
        results: list[ChatMessage] = []
        for message in reversed(history):
            if message.role != "tool":
                break
            results.insert(0, message)
        asked = history[-len(results) - 1] if len(history) > len(results) else None
        calls = {c.id: c for c in asked.tool_calls} if asked is not None else {}
        said: list[str] = []
        names: list[str] = []
        for result in results:
            call = calls.get(result.tool_call_id or "")
            intent = self._intent_of(call)
            if intent is not None and intent.name not in names:
                names.append(intent.name)
            tool = call.name if call is not None else (result.name or "")
            said.append(self._after_tool(intent, call, tool, result.content))
        text = " ".join(s for s in said if s)
        return RulesReply("after_tool", text, intent=", ".join(names) or None)

    def _after_tool(
        self, intent: Intent | None, call: ToolCall | None, tool: str, result: str
    ) -> str:
        after = intent.after_tool if intent is not None else None
        if callable(after):
            try:
                return str(after(result)).strip()
            except Exception:
                log.exception("RulesLLM: after_tool of intent %r failed", intent and intent.name)
                return self.tool_failed
        if _failed(tool, result):
            return self.tool_failed
        if after is not None:
            try:
                arguments = call.parsed_arguments() if call is not None else {}
            except ValueError:
                arguments = {}
            return _render(after, {**arguments, "result": result})
        if tool in _CALL_CONTROL:
            return ""
        return result.strip() if len(result.split()) <= MAX_VERBATIM_WORDS else "Done."

    def _intent_of(self, call: ToolCall | None) -> Intent | None:
        """The intent that made ``call``: its position is in the id we gave the call."""
        if call is None:
            return None
        match = _CALL_ID.match(call.id)
        if match is not None and int(match[1]) < len(self._compiled):
            intent = self._compiled[int(match[1])].intent
            if intent.tool == call.name:
                return intent
        # Not one of ours (another model wrote the history): any intent with that tool.
        return next((i for i in self.intents if i.tool == call.name), None)

    # -- set-up -----------------------------------------------------------------------------------
    def _compile(self, intent: Intent, order: int) -> _Compiled:
        keywords = []
        phrases = []
        for keyword in intent.keywords:
            stems = _analyse(keyword, self._synonyms).stems
            if not stems:
                raise ConfigError(f"intent {intent.name!r}: keyword {keyword!r} has no words")
            keywords.append(stems)
        for phrase in intent.phrases:
            words = _analyse(phrase, self._synonyms)
            if words.content:
                phrases.append(words.content)
            elif words.stems:  # only function words ("that is all"): match it exactly
                keywords.append(words.stems)
            else:
                raise ConfigError(f"intent {intent.name!r}: phrase {phrase!r} has no words")
        return _Compiled(intent, order, tuple(keywords), tuple(phrases))

    @staticmethod
    def _stem_synonyms(synonyms: Mapping[str, str]) -> dict[str, str]:
        stemmed: dict[str, str] = {}
        for word, canonical in synonyms.items():
            key, value = normalize(word).split(), normalize(canonical).split()
            if len(key) != 1 or len(value) != 1:
                raise ConfigError(
                    f"RulesLLM: synonyms map one word to one word, got {word!r}: {canonical!r}"
                )
            stemmed[_stem(key[0])] = _stem(value[0])
        return stemmed


def _failed(tool: str, result: str) -> bool:
    """The registry's error convention ("error: ..."), and transfer_call's failure."""
    head = result.lstrip()[:200].lower()
    return head.startswith("error") or (tool == "transfer_call" and " failed:" in head)


if TYPE_CHECKING:  # mypy proves RulesLLM satisfies the protocol
    _llm: LLM = RulesLLM()
