"""Shared fixtures: a real ``siphon dev`` server process and a SIPp runner."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIPP_DIR = ROOT / "tests" / "sipp"


def free_port(kind: int = socket.SOCK_DGRAM, *, pair: bool = False) -> int:
    """A port free for UDP and TCP on 127.0.0.1 (and port+1 too when ``pair``)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if pair and port % 2:
            continue
        try:
            for p in (port, port + 1) if pair else (port,):
                for k in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, k) as probe:
                        probe.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    app: str,
    tmp_path: Path,
    *extra: str,
    rtp_base: int | None = None,
) -> ServerProcess:
    port = free_port()
    # Below the kernel's ephemeral range (32768+), where SIPp and clients bind.
    base = rtp_base or 10000 + secrets.randbelow(40) * 250
    log_path = tmp_path / f"siphon-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        "siphon.cli",
        "dev",
        str(ROOT / app),
        "--sip-port",
        str(port),
        "--rtp-ports",
        f"{base}-{base + 248}",
        *extra,
    ]
    log_file = log_path.open("w")
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if "ready:" in log_path.read_text(errors="replace"):
            return ServerProcess(proc, port, log_path)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"siphon server did not start:\n{log_path.read_text()}")


def stop_server(server: ServerProcess) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture
def answer_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_server("examples/answer.py", tmp_path)
    yield server
    stop_server(server)
    assert "Traceback" not in server.log(), server.log()


@dataclass
class SippResult:
    returncode: int
    output: str
    errors: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def require_sipp() -> str:
    path = shutil.which("sipp")
    if path is None:
        pytest.fail(
            "sipp is not installed: run 'make test' (it installs the Debian package "
            "sip-tester) or 'apt-get install sip-tester'"
        )
    return path


def run_sipp(target_port: int, tmp_path: Path, *args: str, timeout: float = 40) -> SippResult:
    sipp = require_sipp()
    local_port = free_port()
    media_port = free_port(pair=True)
    err_file = tmp_path / f"sipp-{local_port}-errors.log"
    cmd = [
        sipp,
        f"127.0.0.1:{target_port}",
        "-i",
        "127.0.0.1",
        "-p",
        str(local_port),
        "-mp",
        str(media_port),
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(err_file),
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30, cwd=tmp_path)
    errors = err_file.read_text(errors="replace") if err_file.exists() else ""
    return SippResult(proc.returncode, proc.stdout + proc.stderr, errors)


@pytest.fixture(autouse=True)
def _recordings_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recordings of in-process servers land in the test's own folder, not the repo."""
    monkeypatch.setenv("SIPHON_RECORDINGS_DIR", str(tmp_path / "recordings"))
