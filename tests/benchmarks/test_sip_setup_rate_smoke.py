"""Smoke run of ``benchmarks/sip_setup_rate.py`` at one low rate for both UASs.

Benchmarks print their figures and are never timed assertions (DESIGN.md): this
checks only that both sides ran under SIPp's UAC, passed at a rate any machine
sustains, and that the result lines (placed rates, CPU per call, both ratios)
came out.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_sipp

pytestmark = pytest.mark.sipp


@pytest.mark.timeout(180)
def test_one_low_rate_passes_on_both_sides_and_prints_both_ratios(tmp_path: Path) -> None:
    require_sipp()
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "sip_setup_rate.py"),
            "--rates",
            "100",
            "--seconds",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=tmp_path,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    trials = re.findall(
        r"^\s+100 calls/s: (\d+)/(\d+) ok, (\d+) failed .* ok\s+\[placed (\d+)/s", output, re.M
    )
    assert len(trials) == 3, output  # SIPHON without and with recording, then SIPp
    for ok, attempted, failed, placed in trials:
        assert int(ok) == int(attempted) and int(failed) == 0, output
        assert int(placed) > 0, output
    for label in ("SIPHON UAS", "SIPHON UAS\\+rec", "SIPp UAS"):
        line = re.search(
            rf"^{label}\s+asked 100/s, placed \d+ calls/s; .* = (\d+) µs per call", output, re.M
        )
        assert line is not None and int(line.group(1)) > 0, output
    for label in ("SIPHON UAS", "SIPHON UAS\\+rec"):
        assert re.search(rf"^ratio, calls/s sustained, {label}: [\d.]+x", output, re.M), output
        assert re.search(rf"^ratio, CPU per call \(SIPp / {label}\): [\d.]+x", output, re.M), output
