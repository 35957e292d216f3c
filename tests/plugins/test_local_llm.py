"""The offline rules engine ``siphon.plugins.local.RulesLLM``: matching, tools, streaming."""

from __future__ import annotations

import asyncio
import doctest
import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import siphon.plugins.local.llm
from siphon.agent import Agent, end_call, function_tool
from siphon.errors import ConfigError
from siphon.plugins.base import LLM, ChatMessage, LLMChunk, ToolCall, ToolSpec
from siphon.plugins.local import (
    Intent,
    RulesLLM,
    RulesReply,
    extract,
    extract_day,
    extract_time,
    normalize,
)
from siphon.testing import AgentHarness, FakeSTT, FakeTTS, speech_like

HOURS = "We're open Monday to Friday, 8 AM to 6 PM."
ADDRESS = "We're at 12 Harbour Street, next to the library."
INSURANCE = "Yes, we accept most major dental plans."
BILLING = "sip:billing@brightsmile.example"
ALL_TOOLS = ("book_appointment", "transfer_call", "end_call")


def receptionist(**options: Any) -> RulesLLM:
    """The dental receptionist of the module docstring."""
    return RulesLLM(
        intents=[
            Intent("hours", keywords=("hours", "open", "close"), reply=HOURS),
            Intent(
                "address", keywords=("address", "where", "located", "directions"), reply=ADDRESS
            ),
            Intent(
                "book",
                keywords=("book", "appointment", "schedule"),
                reply="Let me check the calendar.",
                tool="book_appointment",
                arguments=extract(day=extract_day, time=extract_time),
                requires=("day", "time"),
                ask="Which {missing} would suit you?",
                after_tool="You're booked for {result}. See you then!",
            ),
            Intent(
                "billing",
                keywords=("bill", "billing", "invoice", "payment"),
                reply="I'll put you through to billing.",
                tool="transfer_call",
                arguments={"destination": BILLING},
            ),
        ],
        faq={"Do you take insurance?": INSURANCE, "Is there parking nearby?": "Yes, behind us."},
        greeting="Bright Smile Dental, how can I help you?",
        **options,
    )


def specs(*names: str) -> list[ToolSpec]:
    return [ToolSpec(name, f"the {name} tool", {"type": "object"}) for name in names]


def ask(llm: RulesLLM, text: str, tools: Sequence[str] = ALL_TOOLS) -> RulesReply:
    messages = [ChatMessage("system", "You are a receptionist."), ChatMessage("user", text)]
    return llm.respond(messages, specs(*tools))


async def collect(
    llm: LLM, messages: Sequence[ChatMessage], tools: Sequence[str] = ()
) -> list[LLMChunk]:
    return [chunk async for chunk in llm.chat(messages, specs(*tools))]


def text_of(chunks: Sequence[LLMChunk]) -> str:
    return "".join(c.text for c in chunks)


def tool_result(reply: RulesReply, result: str) -> list[ChatMessage]:
    """The messages the runtime appends after running ``reply``'s tool call."""
    assert reply.tool_call is not None
    call = reply.tool_call
    return [
        ChatMessage("assistant", reply.text, tool_calls=[call]),
        ChatMessage("tool", result, tool_call_id=call.id, name=call.name),
    ]


# -- matching: utterance -> intent, reply, tool call -------------------------------------------
@pytest.mark.parametrize(
    ("utterance", "intent", "reply", "tool"),
    [
        ("what are your opening hours", "hours", HOURS, None),
        ("When do you close on Fridays?", "hours", HOURS, None),
        ("are you opened on saturday", "hours", HOURS, None),
        ("WHAT TIME DO YOU OPEN!!!", "hours", HOURS, None),
        ("where are you located", "address", ADDRESS, None),
        ("what's the address", "address", ADDRESS, None),
        ("can I get directions", "address", ADDRESS, None),
        (
            "book me for monday at 3 pm",
            "book",
            "Let me check the calendar.",
            ("book_appointment", {"day": "monday", "time": "15:00"}),
        ),
        (
            "I'd like to schedule an appointment tomorrow at nine thirty in the morning",
            "book",
            "Let me check the calendar.",
            ("book_appointment", {"day": "tomorrow", "time": "09:30"}),
        ),
        (
            "booking for Thursday, 4:15pm",
            "book",
            "Let me check the calendar.",
            ("book_appointment", {"day": "thursday", "time": "16:15"}),
        ),
        ("I'd like an appointment", "book", "Which day and time would suit you?", None),
        ("book something on wednesday", "book", "Which time would suit you?", None),
        (
            "I have a question about my bill",
            "billing",
            "I'll put you through to billing.",
            ("transfer_call", {"destination": BILLING}),
        ),
        ("do you accept insurance", "faq: Do you take insurance?", INSURANCE, None),
        ("is there any parking", "faq: Is there parking nearby?", "Yes, behind us.", None),
        ("ok thanks, bye", "goodbye", "Goodbye!", ("end_call", {})),
        ("No, that's all.", "goodbye", "Goodbye!", ("end_call", {})),
        ("Goodbye", "goodbye", "Goodbye!", ("end_call", {})),
    ],
)
def test_utterance_table(
    utterance: str, intent: str, reply: str, tool: tuple[str, dict[str, Any]] | None
) -> None:
    answer = ask(receptionist(), utterance)
    assert (answer.intent, answer.text) == (intent, reply)
    if tool is None:
        assert answer.tool_call is None
    else:
        assert answer.tool_call is not None
        assert (answer.tool_call.name, answer.tool_call.parsed_arguments()) == tool


@pytest.mark.parametrize(
    "utterance",
    ["", "   ", "?!...", "blah blah", "the weather is nice", "when can I come in", "\u200b\ufeff"],
)
def test_fallback_when_nothing_matches(utterance: str) -> None:
    answer = ask(receptionist(), utterance)
    assert answer.kind == "fallback"
    assert answer.text == "Sorry, I didn't catch that. Could you say it another way?"
    assert answer.tool_call is None


def test_fallback_is_configurable() -> None:
    llm = receptionist(fallback="I can only help with hours, bookings and billing.")
    assert ask(llm, "sing me a song").text == "I can only help with hours, bookings and billing."


def test_ties_go_to_the_intent_declared_first() -> None:
    first = Intent("first", keywords=("price",), reply="One.")
    second = Intent("second", keywords=("price",), reply="Two.")
    assert ask(RulesLLM([first, second]), "what's the price").intent == "first"
    assert ask(RulesLLM([second, first]), "what's the price").intent == "second"


def test_more_words_matched_beat_fewer() -> None:
    llm = RulesLLM(
        [
            Intent("cleaning", keywords=("cleaning",), reply="Cleanings are 80 dollars."),
            Intent("whitening", keywords=("teeth whitening", "whiten"), reply="Whitening is 300."),
        ]
    )
    assert ask(llm, "how much for a cleaning").intent == "cleaning"
    # "teeth whitening" (2 words) outweighs "cleaning" (1) in the same sentence.
    assert ask(llm, "cleaning or teeth whitening, which is cheaper").intent == "whitening"


def test_multiword_keywords_match_contiguous_words_only() -> None:
    llm = RulesLLM([Intent("emergency", keywords=("tooth ache",), reply="Come in now.")])
    assert ask(llm, "I have a terrible tooth ache").intent == "emergency"
    assert ask(llm, "my tooth does not ache").kind == "fallback"
    assert ask(llm, "toothache").kind == "fallback"  # word boundaries: no substrings


def test_phrases_match_by_content_words() -> None:
    llm = RulesLLM(
        [Intent("kids", phrases=("do you treat children",), reply="Yes, from age three.")],
        goodbye=None,
    )
    assert ask(llm, "Can my child be treated there?").intent == "kids"  # stems: treat, child
    assert ask(llm, "do you").kind == "fallback"  # function words only


def test_stemming_and_synonyms() -> None:
    llm = RulesLLM(
        [Intent("address", keywords=("address",), reply=ADDRESS)], synonyms={"located": "address"}
    )
    assert ask(llm, "where are you located").intent == "address"
    assert ask(llm, "what are your addresses").intent == "address"
    assert ask(receptionist(), "okay bye").intent == "goodbye"


def test_min_score_raises_the_bar() -> None:
    llm = receptionist(min_score=2)
    assert ask(llm, "what are your hours").kind == "fallback"  # one word is not enough
    assert ask(llm, "what are your opening hours").intent == "hours"  # open + hour


def test_match_reports_intent_and_score() -> None:
    match = receptionist().match("what are your opening hours")
    assert match is not None and (match.intent.name, match.score) == ("hours", 2)
    assert receptionist().match("nothing relevant here") is None


# -- greeting, reprompt -------------------------------------------------------------------------
def test_greeting_before_any_user_turn() -> None:
    messages = [
        ChatMessage("system", "You are the receptionist of Bright Smile Dental."),
        ChatMessage("system", "Greet the caller briefly and ask how you can help."),
    ]
    answer = receptionist().respond(messages, specs(*ALL_TOOLS))
    assert answer == RulesReply("greeting", "Bright Smile Dental, how can I help you?")


@pytest.mark.parametrize("instructions", ["Say: Welcome to Acme!", "Hello there.", ""])
def test_instructions_are_never_spoken(instructions: str) -> None:
    llm = RulesLLM(greeting="Hi, Acme here.")
    answer = llm.respond([ChatMessage("system", instructions)])
    assert answer.text == "Hi, Acme here."
    assert llm.respond([]).text == "Hi, Acme here."


def test_nudge_after_the_conversation_began_is_a_reprompt() -> None:
    llm = receptionist()
    messages = [
        ChatMessage("assistant", "Bright Smile Dental, how can I help you?"),
        ChatMessage("user", "what are your hours"),
        ChatMessage("assistant", HOURS),
        ChatMessage("system", "Ask whether the caller needs anything else."),
    ]
    answer = llm.respond(messages)
    assert answer == RulesReply("reprompt", "Is there anything else I can help you with?")


# -- tools -------------------------------------------------------------------------------------
def test_tool_is_called_only_when_offered(caplog: pytest.LogCaptureFixture) -> None:
    llm = receptionist()
    with caplog.at_level(logging.WARNING, "siphon.plugins.local.llm"):
        for _ in range(3):
            answer = ask(llm, "book me monday at 3 pm", tools=("end_call",))
            assert (answer.text, answer.tool_call) == ("Let me check the calendar.", None)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # once, not per turn
    assert "'book_appointment'" in warnings[0] and "Agent(tools=" in warnings[0]
    # The goodbye without end_call still says goodbye.
    assert ask(llm, "bye", tools=()).text == "Goodbye!"


def test_tool_only_intent_without_its_tool_says_so() -> None:
    llm = RulesLLM([Intent("menu", keywords=("menu",), tool="send_menu")])
    assert ask(llm, "send me the menu", tools=()).text == "Sorry, I couldn't do that just now."
    answer = ask(llm, "send me the menu", tools=("send_menu",))
    assert answer.text == "" and answer.tool_call is not None


def test_after_tool_reply_uses_the_result_and_the_arguments() -> None:
    llm = RulesLLM(
        [
            Intent(
                "book",
                keywords=("book",),
                tool="book_appointment",
                arguments=extract(day=extract_day, time=extract_time),
                after_tool="Done: {result} ({day}, {time}){nothing}",
            )
        ]
    )
    user = [ChatMessage("user", "book friday at 10 am")]
    first = llm.respond(user, specs("book_appointment"))
    assert first.tool_call == ToolCall(
        "rules_0_1", "book_appointment", '{"day": "friday", "time": "10:00"}'
    )
    after = llm.respond([*user, *tool_result(first, "confirmed")], specs("book_appointment"))
    assert after == RulesReply("after_tool", "Done: confirmed (friday, 10:00)", intent="book")


@pytest.mark.parametrize(
    ("after_tool", "result", "said"),
    [
        (None, "Your balance is 40 dollars.", "Your balance is 40 dollars."),  # short: verbatim
        (None, "x " * 100, "Done."),  # long: not speech
        (None, "error: database offline", "Sorry, I couldn't do that just now."),
        (
            "Your balance: {result}",
            "error: ValueError: bad id",
            "Sorry, I couldn't do that just now.",
        ),
        (lambda r: f"Got {len(r)} characters.", "error: boom", "Got 11 characters."),
        ("", "anything", ""),
    ],
)
def test_after_tool_defaults_and_errors(after_tool: Any, result: str, said: str) -> None:
    llm = RulesLLM(
        [Intent("balance", keywords=("balance",), tool="get_balance", after_tool=after_tool)]
    )
    user = [ChatMessage("user", "what's my balance")]
    first = llm.respond(user, specs("get_balance"))
    assert llm.respond([*user, *tool_result(first, result)]).text == said


def test_after_tool_with_the_instructions_repeated_last() -> None:
    # generate_reply(instructions) appends the instructions after the tool results.
    llm = receptionist()
    user = [ChatMessage("user", "book monday at 3pm")]
    first = llm.respond(user, specs(*ALL_TOOLS))
    messages = [*user, *tool_result(first, "Monday at 3 PM"), ChatMessage("system", "Be brief.")]
    assert llm.respond(messages).text == "You're booked for Monday at 3 PM. See you then!"


def test_goodbye_calls_end_call_then_says_nothing_more() -> None:
    llm = receptionist()
    user = [ChatMessage("user", "that's all, goodbye")]
    first = llm.respond(user, specs("end_call"))
    assert first.text == "Goodbye!"
    assert first.tool_call is not None and first.tool_call.name == "end_call"
    assert llm.respond([*user, *tool_result(first, "call ending")]).text == ""


def test_goodbye_can_be_replaced_or_disabled() -> None:
    assert ask(receptionist(goodbye=None), "bye").kind == "fallback"
    polite = Intent(
        "bye", keywords=("bye",), reply="Thanks for calling Bright Smile!", tool="end_call"
    )
    assert ask(receptionist(goodbye=polite), "bye").text == "Thanks for calling Bright Smile!"


@pytest.mark.parametrize(
    ("result", "said"),
    [
        (f"transfer to {BILLING} succeeded; the caller is now connected there.", ""),
        (
            f"transfer to {BILLING} failed: 486 Busy Here. Tell the caller and offer alternatives.",
            "Sorry, I couldn't do that just now.",
        ),
    ],
)
def test_transfer_intent(result: str, said: str) -> None:
    llm = receptionist()
    user = [ChatMessage("user", "billing please")]
    first = llm.respond(user, specs(*ALL_TOOLS))
    assert first.tool_call is not None
    assert first.tool_call.parsed_arguments() == {"destination": BILLING}
    assert llm.respond([*user, *tool_result(first, result)]).text == said


def test_tool_results_of_another_model_are_matched_by_tool_name() -> None:
    llm = receptionist()
    call = ToolCall("call_abc", "book_appointment", '{"day": "monday"}')
    messages = [
        ChatMessage("user", "book monday"),
        ChatMessage("assistant", "", tool_calls=[call]),
        ChatMessage("tool", "Monday at 9", tool_call_id="call_abc", name="book_appointment"),
    ]
    assert llm.respond(messages).text == "You're booked for Monday at 9. See you then!"


# -- asking for missing arguments -----------------------------------------------------------------
def test_missing_arguments_are_asked_for_and_the_answer_completes_the_request() -> None:
    llm = receptionist()
    tools = specs(*ALL_TOOLS)
    history = [ChatMessage("user", "I need an appointment")]
    steps = [
        ("friday", "ask", "Which time would suit you?", None),
        ("at half past two", "intent", "Let me check the calendar.", ("friday", "14:30")),
    ]
    first = llm.respond(history, tools)
    assert first.text == "Which day and time would suit you?"
    history.append(ChatMessage("assistant", first.text))
    for said, kind, reply, booked in steps:
        history.append(ChatMessage("user", said))
        answer = llm.respond(history, tools)
        assert (answer.kind, answer.text) == (kind, reply)
        if booked is None:
            assert answer.tool_call is None
        else:
            assert answer.tool_call is not None
            assert answer.tool_call.parsed_arguments() == {"day": booked[0], "time": booked[1]}
        history.append(ChatMessage("assistant", answer.text))


def test_the_caller_may_change_the_subject_after_a_question() -> None:
    llm = receptionist()
    history = [
        ChatMessage("user", "I'd like an appointment"),
        ChatMessage("assistant", "Which day and time would suit you?"),
        ChatMessage("user", "actually, where are you located?"),
    ]
    assert llm.respond(history).intent == "address"
    # ...but an answer that gives a missing argument stays with the booking.
    history[-1] = ChatMessage("user", "monday at 10, and where are you?")
    assert llm.respond(history, specs(*ALL_TOOLS)).intent == "book"


def test_an_interrupted_question_is_not_a_pending_request() -> None:
    # The runtime keeps only the words that played: that is not our question.
    llm = receptionist()
    history = [
        ChatMessage("user", "I'd like an appointment"),
        ChatMessage("assistant", "Which day"),
        ChatMessage("user", "monday at 3"),
    ]
    assert llm.respond(history).kind == "fallback"


def test_follow_ups_are_bounded() -> None:
    llm = receptionist()
    history = [ChatMessage("user", "book an appointment")]
    kinds = []
    for _ in range(6):
        answer = llm.respond(history)
        kinds.append(answer.kind)
        history += [ChatMessage("assistant", answer.text), ChatMessage("user", "um")]
    # Asked, then the three follow-ups were read as answers, then it gave up.
    assert kinds == ["ask", "ask", "ask", "ask", "fallback", "fallback"]


def test_failing_argument_function_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken(text: str) -> dict[str, Any]:
        raise RuntimeError("bug")

    llm = RulesLLM(
        [
            Intent(
                "order", keywords=("order",), tool="place_order", arguments=broken, requires="item"
            )
        ]
    )
    with caplog.at_level(logging.ERROR):
        answer = ask(llm, "I want to order", tools=("place_order",))
    assert (answer.kind, answer.text) == ("ask", "Could you tell me the item?")
    assert "arguments of intent 'order' failed" in caplog.text


# -- argument helpers -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("monday", "monday"),
        ("Can I come in on Tuesday?", "tuesday"),
        ("next WEDNESDAY please", "wednesday"),
        ("thurs morning", "thursday"),
        ("fridays are best", "friday"),
        ("this saturday or sunday", "sunday"),  # the last mention wins
        ("Monday, no, Tuesday", "tuesday"),
        ("tomorrow", "tomorrow"),
        ("today at noon", "today"),
        ("tonight", "today"),
        ("sometime next week", None),
        ("", None),
        ("mondayish", None),
    ],
)
def test_extract_day(text: str, day: str | None) -> None:
    assert extract_day(text) == day


@pytest.mark.parametrize(
    ("text", "time"),
    [
        ("at 3 pm", "15:00"),
        ("3pm", "15:00"),
        ("3 P.M.", "15:00"),
        ("at 3", "15:00"),  # a bare afternoon hour
        ("at 3 in the morning", "03:00"),
        ("at 9", "09:00"),
        ("at 11 am", "11:00"),
        ("12 pm", "12:00"),
        ("12 am", "00:00"),
        ("three thirty", "15:30"),
        ("nine forty-five am", "09:45"),
        ("15:00", "15:00"),
        ("10:05", "10:05"),
        ("at 3:30pm", "15:30"),
        ("four o'clock", "16:00"),
        ("half past ten", "10:30"),
        ("quarter to four", "15:45"),
        ("quarter past 3 am", "03:15"),
        ("quarter to one", "12:45"),
        ("noon", "12:00"),
        ("midnight", "00:00"),
        ("at 2, no, at 4", "16:00"),  # the last one wins
        ("book 2 people", None),
        ("13 pm", None),
        ("at 25", None),
        ("in 2024", None),
        ("", None),
    ],
)
def test_extract_time(text: str, time: str | None) -> None:
    assert extract_time(text) == time


def test_extract_time_without_the_afternoon_guess() -> None:
    assert extract_time("at 3", assume_pm_before=0) == "03:00"


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("What's UP?", "whats up"),
        ("twenty-five past three", "25 past 3"),
        ("Café  Ünïcode", "cafe unicode"),
        ("it\u2019s 3pm", "its 3 pm"),
        ("\uff26\uff35\uff2c\uff2c width", "full width"),  # full-width letters
        ("snake_case\ttabs\nnewlines", "snake case tabs newlines"),
        ("", ""),
    ],
)
def test_normalize(text: str, normal: str) -> None:
    assert normalize(text) == normal


def test_extract_combines_extractors_and_drops_missing_values() -> None:
    arguments = extract(day=extract_day, time=extract_time, shout=str.upper)
    assert arguments("monday please") == {"day": "monday", "shout": "MONDAY PLEASE"}


# -- protocol, streaming, determinism -------------------------------------------------------
def test_protocol_conformance() -> None:
    llm = RulesLLM()
    assert isinstance(llm, LLM)
    assert "not a language model" in repr(llm)
    assert "not a language model" in (RulesLLM.__doc__ or "").lower()
    agent = Agent(agent_name="bot", llm=llm, stt=FakeSTT(), tts=FakeTTS())
    assert agent.llm is llm


def test_start_up_log_says_what_it_is(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "siphon.plugins.local.llm"):
        receptionist()
    assert "not a language model" in caplog.text
    assert "5 configured intents and 2 FAQ entries" in caplog.text


async def test_stream_is_word_deltas_then_tool_call_then_usage() -> None:
    messages = [
        ChatMessage("system", "Be nice."),
        ChatMessage("user", "book me for monday at 3 pm"),
    ]
    llm = receptionist()
    chunks = await collect(llm, messages, ALL_TOOLS)
    deltas = [c.text for c in chunks if c.text]
    assert deltas == ["Let", " me", " check", " the", " calendar."]
    assert text_of(chunks) == llm.respond(messages, specs(*ALL_TOOLS)).text
    (call,) = [c for chunk in chunks for c in chunk.tool_calls]
    assert call.name == "book_appointment"
    assert chunks[-1].usage is not None and chunks[-1].text == "" and not chunks[-1].tool_calls
    assert chunks[-1].usage.prompt_tokens == 2 + 7
    assert chunks[-1].usage.completion_tokens == 5 + len(f"{call.name} {call.arguments}".split())


@pytest.mark.parametrize(
    "utterance", ["what are your opening hours", "do you take insurance", "huh", "bye"]
)
async def test_streamed_deltas_concatenate_to_the_reply(utterance: str) -> None:
    llm = receptionist()
    messages = [ChatMessage("user", utterance)]
    chunks = await collect(llm, messages, ALL_TOOLS)
    reply = llm.respond(messages, specs(*ALL_TOOLS))
    assert text_of(chunks) == reply.text
    assert len([c for c in chunks if c.text]) == len(reply.text.split())


async def test_the_decision_is_taken_when_chat_is_called() -> None:
    # The runtime fills in messages while it streams: the answer must not change.
    llm = receptionist()
    messages = [ChatMessage("user", "what are your hours")]
    stream = llm.chat(messages)
    messages[0].content = "bye"
    assert text_of([c async for c in stream]) == HOURS


async def test_delay_paces_the_words() -> None:
    llm = RulesLLM(greeting="one two three four", delay=0.02)
    loop = asyncio.get_running_loop()
    started = loop.time()
    chunks = await collect(llm, [])
    assert text_of(chunks) == "one two three four"
    assert loop.time() - started >= 3 * 0.02 - 0.005  # no pause before the first word


async def test_deterministic_across_instances_and_calls() -> None:
    conversation = [
        ChatMessage("user", "I need an appointment"),
        ChatMessage("assistant", "Which day and time would suit you?"),
        ChatMessage("user", "tuesday at four"),
    ]
    runs = []
    for _ in range(3):
        llm = receptionist()
        runs.append(
            [
                (c.text, c.tool_calls, c.usage)
                async for c in llm.chat(conversation, specs(*ALL_TOOLS))
            ]
        )
        runs.append(
            [
                (c.text, c.tool_calls, c.usage)
                async for c in llm.chat(conversation, specs(*ALL_TOOLS))
            ]
        )
    assert all(run == runs[0] for run in runs)


def test_very_long_and_odd_input() -> None:
    llm = receptionist()
    long = "please " * 50_000 + "what are your hours"
    assert ask(llm, long).kind == "fallback"  # beyond the cap: not read
    assert ask(llm, "what are your hours " + "la " * 50_000).intent == "hours"
    for odd in [
        "\x00\x01",
        "\ud800 hours",
        "🦷🦷 opening hours 🦷",
        "\u0397ours",  # a Greek capital eta
        "Öffnungszeiten",
        "\u0301",
    ]:
        answer = ask(llm, odd)
        assert answer.text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_never_raises_and_always_answers(text: str) -> None:
    llm = receptionist()
    answer = ask(llm, text)
    assert answer.text.strip() or answer.tool_call is not None
    if answer.tool_call is not None:
        json.loads(answer.tool_call.arguments)
    assert ask(llm, text) == answer


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(["user", "assistant", "tool", "system"]), max_size=8),
    st.text(max_size=40),
)
def test_random_histories_never_raise(roles: list[str], text: str) -> None:
    messages = [ChatMessage(role, text, tool_call_id="x", name="end_call") for role in roles]  # type: ignore[arg-type]
    answer = receptionist().respond(messages, specs(*ALL_TOOLS))
    assert isinstance(answer.text, str)


# -- configuration errors -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Intent("", keywords=("x",), reply="y"), "non-empty name"),
        (lambda: Intent("a", reply="y"), "could never match"),
        (lambda: Intent("a", keywords=("x",)), "a reply, a tool, or both"),
        (lambda: Intent("a", keywords=("x",), reply="{oops"), "not a valid template"),
        (lambda: Intent("a", keywords=("x",), tool="t", arguments={"when": object()}), "JSON"),
        (lambda: Intent("a", keywords=(1,), reply="y"), "must be strings"),  # type: ignore[arg-type]
        (lambda: RulesLLM([Intent("a", keywords=("?!",), reply="y")]), "has no words"),
        (
            lambda: RulesLLM(
                [Intent("a", keywords=("x",), reply="1"), Intent("a", keywords=("y",), reply="2")]
            ),
            "unique",
        ),
        (lambda: RulesLLM(fallback=" "), "must say something"),
        (lambda: RulesLLM(min_score=0), "min_score"),
        (lambda: RulesLLM(delay=-1), "delay"),
        (lambda: RulesLLM(synonyms={"two words": "x"}), "one word to one word"),
    ],
)
def test_configuration_errors(build: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_single_strings_are_one_entry() -> None:
    intent = Intent("hours", keywords="opening hours", reply=HOURS, requires="day")
    assert (intent.keywords, intent.requires) == (("opening hours",), ("day",))


def test_faq_answers_are_said_as_written() -> None:
    llm = RulesLLM(faq=[("what is the code", "It is {1234}.")])
    assert ask(llm, "what's the code").text == "It is {1234}."


def test_doctests() -> None:
    assert doctest.testmod(siphon.plugins.local.llm).failed == 0


# -- through the real runtime ---------------------------------------------------------------
async def test_receptionist_call_through_the_runtime() -> None:
    booked: list[tuple[str, str]] = []

    @function_tool
    def book_appointment(day: str, time: str) -> str:
        """Book a dental appointment."""
        booked.append((day, time))
        return f"{day.capitalize()} at {int(time[:2]) % 12 or 12} PM"

    agent = Agent(
        agent_name="receptionist",
        llm=receptionist(),
        stt=FakeSTT(["what are your opening hours", "book me for monday at 3 pm"]),
        tts=FakeTTS(chars_per_second=60),  # quick speech: the call takes seconds, not 15
        system_instructions="You are the receptionist of Bright Smile Dental.",
        tools=[book_appointment, end_call],
        silence_timeout=None,
    )
    async with AgentHarness(agent) as harness, harness.call() as caller:
        await caller.wait_for_agent_speech()  # the greeting...
        await caller.wait_for_agent_silence()  # ...has played
        for _ in range(2):
            await caller.say(speech_like(1.0))
            await caller.wait_for_agent_speech()
            await caller.wait_for_agent_silence()
        session = caller.session
    assert booked == [("monday", "15:00")]
    said = [(t.role, t.text) for t in session.transcript]
    assert said == [
        ("agent", "Bright Smile Dental, how can I help you?"),
        ("user", "what are your opening hours"),
        ("agent", HOURS),
        ("user", "book me for monday at 3 pm"),
        ("agent", "Let me check the calendar. You're booked for Monday at 3 PM. See you then!"),
    ]
    (record,) = session.transcript[-1].tool_calls
    assert json.loads(record.arguments) == {"day": "monday", "time": "15:00"}
    assert not record.is_error
