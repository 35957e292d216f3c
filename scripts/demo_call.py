"""``make demo`` until the voice issues land: one real SIP call to examples/echo.py.

Starts ``siphon dev examples/echo.py`` on a free port, lets SIPp (an independent
SIP implementation) call it and play 8 s of G.711 speech, and prints the SIP
exchange as SIPp saw it, the call's RTP statistics and where the stereo recording
is (left = caller, right = the echo). The voice demo (``examples/receptionist.py``
with a simulated caller) replaces this with issue 5.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    if not shutil.which("sipp"):
        print("sipp not found: 'make demo' installs it (Debian package sip-tester)")
        return 2
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "siphon.log"
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "siphon.cli",
                    "dev",
                    str(ROOT / "examples/echo.py"),
                    "--sip-port",
                    str(port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 15
            while "ready:" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            print(f"agent: examples/echo.py listening on sip:127.0.0.1:{port}")
            print("caller: SIPp plays 8 s of G.711 speech (g711a.pcap) into the call...\n")
            trace = Path(tmp) / "messages.log"
            result = subprocess.run(
                [
                    "sipp",
                    f"127.0.0.1:{port}",
                    "-sf",
                    str(ROOT / "tests/sipp/uac_pcap.xml"),
                    "-s",
                    "demo",
                    "-i",
                    "127.0.0.1",
                    "-p",
                    str(free_port()),
                    "-mp",
                    str(free_port() & ~1),
                    "-m",
                    "1",
                    "-nostdin",
                    "-timeout",
                    "30s",
                    "-trace_msg",
                    "-message_file",
                    str(trace),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            ladder = re.findall(
                r"^(UDP message (?:sent|received)).*?\n\n(.+?)$",
                trace.read_text(errors="replace"),
                re.MULTILINE | re.DOTALL,
            )
            for direction, first_line in ladder:
                arrow = "caller -> agent" if "sent" in direction else "agent -> caller"
                print(f"  {arrow}: {first_line.strip()}")
        finally:
            server.terminate()
            server.wait(10)
        print()
        for line in log_path.read_text().splitlines():
            if "ended" in line or "ready" in line:
                print("  agent log:", line)
        recordings = sorted(Path("recordings").glob("*.wav"), key=lambda p: p.stat().st_mtime)
        if recordings:
            print(f"\n  stereo recording (left = caller, right = echo): {recordings[-1]}")
    ok = result.returncode == 0
    print("\ndemo call:", "OK — answered, 8 s of audio echoed, hung up cleanly" if ok else "FAILED")
    if not ok:
        print(result.stdout[-2000:], result.stderr[-2000:])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
