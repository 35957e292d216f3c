"""Providers (VAD, STT, LLM, TTS). Protocols in ``siphon.plugins.base``; the offline
defaults in ``siphon.plugins.local``; cloud providers each behind an extra
(``pip install 'siphon[deepgram]'``) whose import guard prints the install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from siphon.errors import ConfigError


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency or raise ``ConfigError`` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{module!r} is not installed: pip install 'siphon[{extra}]' ({exc})"
        ) from exc
