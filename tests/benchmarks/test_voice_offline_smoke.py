"""Smoke run of ``benchmarks/voice_offline.py --quick``: it completes and prints figures.

Benchmarks print their figures and are never timed assertions (DESIGN.md): this
checks only that the offline receptionist answered the simulated caller's
questions, the agent's turn metrics were matched with what the caller heard, and
the table and the result line came out.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tests.benchmarks.quick_run import run_quick

QUICK_TURNS = 4


@pytest.mark.timeout(300)
def test_quick_run_prints_the_latency_table(tmp_path: Path) -> None:
    for module in ("pocketsphinx", "piper"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{module} is not installed: pip install 'siphon[local]'", pytrace=False)
    output, figures = run_quick("voice_offline.py", tmp_path, timeout=280)
    # The table: a header naming the turns, then rows of p50 / p95 / max.
    assert re.search(rf"ms over {QUICK_TURNS} turns\s+p50\s+p95\s+max", output), output
    for label in ("heard: last frame sent", "endpointing:", "LLM:", "TTS:", "framework:"):
        row = re.search(rf"^\s*{re.escape(label)}.*?\s(-?\d+)\s+(-?\d+)\s+(-?\d+)$", output, re.M)
        assert row is not None, f"no figures for {label!r}:\n{output}"
    assert "CPU-s per call-minute" in output and "STT word accuracy" in output, output
    assert "== result ==" in output and "voice-to-voice as heard by the caller" in output, output
    assert figures["summary"]["heard"]["n"] == QUICK_TURNS, figures["problems"]
    assert all(turn.get("response") is not None for turn in figures["turns"]), figures["turns"]
