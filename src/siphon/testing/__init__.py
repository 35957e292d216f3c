"""Test helpers for SIPHON agents: scripted providers and synthetic caller audio.

Everything here runs offline and deterministically, so an agent's behaviour can
be tested in a plain pytest run::

    from siphon.testing import FakeLLM, FakeReply, FakeSTT, FakeTTS, FakeVAD, speech_like

    llm = FakeLLM(["Hi! How can I help?", FakeReply(tool_calls=[("end_call", {})])])
    stt = FakeSTT(["that's all, thanks"])

See ``siphon.testing.fakes`` for the providers, ``siphon.testing.audio`` for
the signal helpers, and ``siphon.testing.harness`` to drive an agent through a
real call on loopback (``AgentHarness``) with a simulated caller.
"""

from __future__ import annotations

from siphon.testing.audio import dbfs, frames, silence, speech_like, tone
from siphon.testing.caller import HeardPacket, HeardSpeech, SentSpeech, SimulatedCaller
from siphon.testing.fakes import (
    FakeLLM,
    FakeLLMCall,
    FakeLLMExhausted,
    FakeReply,
    FakeSTT,
    FakeSTTStream,
    FakeTranscript,
    FakeTTS,
    FakeVAD,
    FakeVADStream,
)
from siphon.testing.harness import AgentHarness

__all__ = [
    "AgentHarness",
    "FakeLLM",
    "FakeLLMCall",
    "FakeLLMExhausted",
    "FakeReply",
    "FakeSTT",
    "FakeSTTStream",
    "FakeTTS",
    "FakeTranscript",
    "FakeVAD",
    "FakeVADStream",
    "HeardPacket",
    "HeardSpeech",
    "SentSpeech",
    "SimulatedCaller",
    "dbfs",
    "frames",
    "silence",
    "speech_like",
    "tone",
]
