"""Tests of the voice pipeline's pure parts, and the speech sample they share."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

SPEECH_PCAP = Path("/usr/share/sip-tester/g711a.pcap")  # SIPp's 7 s PCMA speech sample


@cache
def _load_speech() -> npt.NDArray[np.int16]:
    from tests.integration.test_media_sipp import pcap_audio

    return pcap_audio(SPEECH_PCAP).astype(np.int16)


def speech_8k() -> npt.NDArray[np.int16]:
    """Real telephone speech at 8 kHz (skips when sip-tester is not installed)."""
    if not SPEECH_PCAP.exists():
        pytest.skip(f"{SPEECH_PCAP} missing: apt-get install sip-tester")
    return _load_speech()
