"""Offline providers: no keys, no network. VAD: ``WebRtcVAD`` (default), ``SileroVAD``
(needs ``pip install 'siphon[silero]'`` and the model file, see its docstring)."""

from __future__ import annotations

from siphon.plugins.local.vad import SileroVAD, WebRtcVAD

__all__ = ["SileroVAD", "WebRtcVAD"]
