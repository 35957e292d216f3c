"""SIPp as an asyncio subprocess, for tests whose SIPHON side runs in the test's event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import free_port, require_sipp


async def start_sipp(
    tmp_path: Path, *args: str, timeout: float = 20, calls: int = 1
) -> tuple[asyncio.subprocess.Process, int]:
    """Start SIPp (``-m calls``) on a free port of its own; its output goes to
    ``tmp_path / f"sipp-{port}.log"``."""
    port = free_port()
    log = (tmp_path / f"sipp-{port}.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        require_sipp(),
        *args,
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-mp",
        str(free_port(pair=True)),
        "-m",
        str(calls),
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(tmp_path / f"sipp-{port}-errors.log"),
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        stdout=log,
        stderr=log,
        cwd=tmp_path,
    )
    log.close()
    return proc, port


async def wait_sipp(
    proc: asyncio.subprocess.Process, port: int, tmp_path: Path, timeout: float = 25
) -> None:
    try:
        code = await asyncio.wait_for(proc.wait(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    errors = tmp_path / f"sipp-{port}-errors.log"
    detail = errors.read_text(errors="replace")[-3000:] if errors.exists() else ""
    detail += (tmp_path / f"sipp-{port}.log").read_text(errors="replace")[-2000:]
    assert code == 0, f"SIPp failed ({code}):\n{detail}"
