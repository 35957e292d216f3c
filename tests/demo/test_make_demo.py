"""`make demo` is the main job: its script runs in the suite (a broken demo is a broken product)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_the_demo_holds_a_conversation_and_shuts_down_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/demo_call.py")],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    lowered = out.lower()
    # The caller heard (and pocketsphinx recognised) the answers.
    for words in ("bright smile dental", "monday to friday", "elm street", "booked for monday"):
        assert words in lowered, out
    assert "answer latency as heard by the caller" in out
    assert "turn 1: response" in out  # the agent's own per-turn breakdown
    assert "stereo recording" in out and ".wav" in out
