"""Smoke run of ``benchmarks/turn_overhead.py --quick``: it completes and prints figures.

Benchmarks print their figures and are never timed assertions (DESIGN.md): this
checks only that the agent and caller processes ran, turns were measured for each
N, and the result lines came out.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.benchmarks.quick_run import run_quick

QUICK_CALLS = (1, 10)


@pytest.mark.timeout(420)
def test_quick_run_prints_figures_for_each_call_count(tmp_path: Path) -> None:
    output, figures = run_quick("turn_overhead.py", tmp_path, timeout=400)
    for calls in QUICK_CALLS:
        # A table row: N, calls up, turns, then overhead p50/p95/p99/max as numbers.
        row = re.search(rf"^\s*{calls}\s+(\d+)\s+(\d+)\s+\|\s+([\d.]+/){{3}}[\d.]+\s", output, re.M)
        assert row is not None, f"no figures for N={calls}:\n{output}"
        assert int(row.group(1)) == calls and int(row.group(2)) > 0, output
    assert "== result ==" in output and "p95 overhead at 100 calls" in output, output
    for calls in QUICK_CALLS:
        assert figures[str(calls)]["turns"] > 0, figures[str(calls)]
