"""Runs a benchmark's ``--quick`` smoke run for the tests in this folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"


def run_quick(script: str, workdir: Path, timeout: float) -> tuple[str, dict[str, Any]]:
    """``benchmarks/<script> --quick --json FILE`` in ``workdir``: its stdout + stderr and
    the figures it wrote; the test fails (with the output) unless it exits 0."""
    figures_path = workdir / "figures.json"
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--json", str(figures_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=workdir,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    figures: dict[str, Any] = json.loads(figures_path.read_text())
    return output, figures
