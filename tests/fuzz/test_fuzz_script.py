"""The standalone fuzz script keeps working: a short run in the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("fuzz_parser.py")


def test_fuzz_script_runs_clean_for_a_few_seconds(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--seconds",
            "3",
            "--seed",
            "7",
            "--engine",
            "random",
            "--crash-dir",
            str(tmp_path / "crashes"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert not (tmp_path / "crashes").exists() or not any((tmp_path / "crashes").iterdir())
