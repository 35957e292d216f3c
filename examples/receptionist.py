"""A receptionist for Bright Smile Dental, running entirely offline.

    siphon dev examples/receptionist.py --sip-port 5070
    siphon call sip:receptionist@127.0.0.1:5070 --say "What are your opening hours?"

Speech recognition is pocketsphinx with a small language model built from the
phrases callers are expected to say (``CALLER_PHRASES``); the voice is Piper's
CC0 "joe"; the "LLM" is ``RulesLLM``, a rules engine that matches keywords and
says so (see its docstring). Swap in cloud providers for a real model: the rest
of the agent stays the same.

Set ``BILLING_URI`` to the SIP URI of the billing desk (cold transfer, REFER).
"""

from __future__ import annotations

import os
import threading

from siphon.agent import Agent, end_call, function_tool, transfer_call
from siphon.plugins.local import STT, TTS, Intent, RulesLLM, extract, extract_day, extract_time

CLINIC = "Bright Smile Dental"
HOURS = "We are open Monday to Friday from nine in the morning to five in the evening."
ADDRESS = "We are at forty two Elm Street, next to the library."
BILLING_URI = os.environ.get("BILLING_URI", "sip:billing@127.0.0.1:5090")

# What callers are expected to say: the recogniser's vocabulary (numbers as words).
CALLER_PHRASES = [
    "what are your opening hours",
    "when are you open",
    "are you open on saturday",
    "where are you located",
    "what is your address",
    "i would like to book an appointment",
    "can i book an appointment on monday at three pm",
    "book me in for tuesday at ten am",
    "do you take insurance",
    "do you see children",
    "can i speak to billing",
    "i have a question about my bill",
    "thank you goodbye",
    "that is all thanks bye",
    "yes please",
    "no thank you",
]

_bookings: list[tuple[str, str]] = []
_bookings_lock = threading.Lock()  # sync tools run in worker threads


@function_tool
def book_appointment(day: str, time: str) -> str:
    """Book a dental check-up.

    Args:
        day: Day of the week, e.g. "monday".
        time: Time as HH:MM, 24-hour clock.
    """
    hour, _, minute = time.partition(":")
    if not hour.isdigit() or not 8 <= int(hour) <= 16:
        return f"no slot at {time}: appointments run from 8:00 to 16:00"
    with _bookings_lock:
        _bookings.append((day, time))
    spoken = f"{int(hour) % 12 or 12}{':' + minute if minute not in ('', '00') else ''}"
    return f"{day.capitalize()} at {spoken} {'PM' if int(hour) >= 12 else 'AM'}"


llm = RulesLLM(
    greeting=f"Hello, thank you for calling {CLINIC}. How can I help you?",
    intents=[
        Intent("hours", keywords=("hours", "open", "opening", "close"), reply=HOURS),
        Intent("address", keywords=("address", "where", "located"), reply=ADDRESS),
        Intent(
            "book",
            keywords=("book", "appointment"),
            reply="Let me check the calendar.",
            tool="book_appointment",
            arguments=extract(day=extract_day, time=extract_time),
            requires=("day", "time"),
            ask="Which day and time would suit you?",
            after_tool="You are booked for {result}. See you then!",
        ),
        Intent(
            "billing",
            keywords=("billing", "bill", "invoice"),
            reply="I will put you through to our billing team.",
            tool="transfer_call",
            arguments={"destination": BILLING_URI},
        ),
    ],
    faq={
        "Do you take insurance?": "Yes, we accept most major dental insurance plans.",
        "Do you see children?": "Yes, we see patients of all ages, children included.",
    },
)

agent = Agent(
    agent_name="receptionist",
    llm=llm,
    stt=STT(phrases=CALLER_PHRASES),
    tts=TTS(),
    system_instructions=f"You are the receptionist of {CLINIC}. Be brief and friendly.",
    tools=[book_appointment, transfer_call, end_call],
    silence_timeout=20.0,
)

if __name__ == "__main__":
    agent.dev()
