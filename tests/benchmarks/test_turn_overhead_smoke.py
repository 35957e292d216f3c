"""Smoke run of ``benchmarks/turn_overhead.py --quick``: it completes and prints figures.

Benchmarks print their figures and are never timed assertions (DESIGN.md): this
checks only that the agent and caller processes ran, turns were measured for each
N, and the result lines came out.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "turn_overhead.py"
QUICK_CALLS = (1, 10)


@pytest.mark.timeout(420)
def test_quick_run_prints_figures_for_each_call_count(tmp_path: Path) -> None:
    figures_path = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(figures_path)],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    for calls in QUICK_CALLS:
        # A table row: N, calls up, turns, then overhead p50/p95/p99/max as numbers.
        row = re.search(rf"^\s*{calls}\s+(\d+)\s+(\d+)\s+\|\s+([\d.]+/){{3}}[\d.]+\s", output, re.M)
        assert row is not None, f"no figures for N={calls}:\n{output}"
        assert int(row.group(1)) == calls and int(row.group(2)) > 0, output
    assert "== result ==" in output and "p95 overhead at 100 calls" in output, output
    figures = json.loads(figures_path.read_text())
    for calls in QUICK_CALLS:
        assert figures[str(calls)]["turns"] > 0, figures[str(calls)]
