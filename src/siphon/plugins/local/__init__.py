"""Offline providers: no keys, no network. VAD: ``WebRtcVAD`` (default), ``SileroVAD``
(needs ``pip install 'siphon[silero]'`` and the model file, see its docstring)."""

from __future__ import annotations

from siphon.plugins.local.llm import (
    Intent,
    RulesLLM,
    RulesReply,
    extract,
    extract_day,
    extract_time,
    normalize,
)
from siphon.plugins.local.stt import STT
from siphon.plugins.local.tts import TTS
from siphon.plugins.local.vad import SileroVAD, WebRtcVAD

__all__ = [
    "STT",
    "TTS",
    "Intent",
    "RulesLLM",
    "RulesReply",
    "SileroVAD",
    "WebRtcVAD",
    "extract",
    "extract_day",
    "extract_time",
    "normalize",
]
