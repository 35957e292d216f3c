"""How many concurrent echo calls one core carries with on-time RTP, and memory per call.

For each N, a fresh ``examples/echo.py`` (``siphon dev``, UDP) runs pinned to core 0
and our load generator (``benchmarks/_rtp_loadgen.py``: siphon's own UAC, in its own
process pinned to core 1) sets up N calls at ``--rate`` calls/s, sends every call
a 20 ms PCMA packet on one absolute-deadline timer, and timestamps the server's
packets on arrival over a ``--seconds`` window once all N calls are up.

    python benchmarks/media_capacity.py [--calls 50,100,200,300,400] [--seconds 10]
                                        [--no-record] [--no-baseline]

Per stream, a packet's due time is its first arrival + seq * 20 ms, with the
smallest offset over the window as zero (so a constant delay or clock offset
does not count); a packet more than 10 ms after its due time is late. Lost
packets are sequence gaps (a stream that received nothing lost the whole
window). The columns:

  up       calls answered out of N
  late %   server packets > 10 ms after their due time, by the kernel's receive
           timestamp (SO_TIMESTAMPNS; on loopback that is when the server sent it);
           p99/max: that lateness
  read %   the same by time.monotonic() when the generator read the packet (adds
           the generator's own scheduling delays)
  lost     server packets missing (sequence gaps)
  echo %   our frames the server did not play back (each payload names the tick that
           sent it; echo.py returns it 0.5 s later): what its receive path dropped
  srv CPU  server user+system CPU over the window (100% = the whole core); "of sys"
           is the kernel's part (on loopback a send also runs the receiver's UDP input)
  core0    how busy the server's core was, whatever ran there (the server, interrupts,
           any other process): above "srv CPU", something else took the core
  gen      load generator CPU, and its own send timer's worst lateness
  RSS      server VmRSS at steady state; MB/call = (RSS - idle RSS) / N
  idle     after BYE to every call, the server holds no more sockets than before

The largest N with every call up, < 0.5% late and 0 lost is the capacity; the
memory per call is the least-squares slope of RSS over N. Targets: >= 300 calls
on one core, <= 3 MB per call. Recording is on (stereo WAV per call, as in
production) unless ``--no-record``.

Baseline, same invocation: the generator's streams (N = the largest asked) go to a
trivial asyncio UDP reflector on core 0 instead of SIPHON. The reflector answers at
once, so its row is the generator's own send timing: the floor of the method.

The window is steady state: no call is set up or torn down during it. On a shared
VM, CPU figures move by 10-15 points between runs; compare two server variants by
interleaving runs at one N (e.g. ``--calls 300`` several times each).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (  # shared benchmark helpers (this script's folder)
    forget,
    free_port,
    pinned,
    rtp_port_ranges,
    spawn,
    stop,
    stop_all,
)

ROOT = Path(__file__).resolve().parent.parent
LOADGEN = Path(__file__).resolve().parent / "_rtp_loadgen.py"
SERVER_CORE = "0"
LOAD_CORE = "1"
# RTP port ranges (server, then load generator) stay below Linux's ephemeral range.
RTP_BASE = 20000
LATE_LIMIT_PCT = 0.5


def spawn_logged(cmd: list[str], log: Path, workdir: Path, **env: str) -> subprocess.Popen[bytes]:
    """``spawn`` with stdout and stderr to ``log``, and ``env`` added to the environment."""
    with log.open("wb") as out:
        return spawn(cmd, workdir, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env})


def wait_sip_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> bool:
    """Send OPTIONS until the server answers anything."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        local = sock.getsockname()[1]
        while time.monotonic() < deadline and proc.poll() is None:
            branch = "z9hG4bK" + secrets.token_hex(6)
            sock.sendto(
                (
                    f"OPTIONS sip:echo@127.0.0.1:{port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch={branch};rport\r\n"
                    "From: <sip:probe@127.0.0.1>;tag=probe\r\n"
                    f"To: <sip:echo@127.0.0.1:{port}>\r\n"
                    f"Call-ID: {secrets.token_hex(8)}\r\nCSeq: 1 OPTIONS\r\n"
                    "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                ).encode(),
                ("127.0.0.1", port),
            )
            try:
                sock.recvfrom(65536)
                return True
            except TimeoutError:
                continue
    return False


def run_loadgen(
    mode: str,
    target: int,
    pid: int,
    calls: int,
    args: argparse.Namespace,
    workdir: Path,
    rtp_ports: str,
) -> dict[str, Any] | None:
    cmd = pinned(
        LOAD_CORE,
        [
            sys.executable,
            str(LOADGEN),
            mode,
            "--target-port",
            str(target),
            "--server-pid",
            str(pid),
            "--calls",
            str(calls),
            "--rate",
            str(args.rate),
            "--settle",
            str(args.settle),
            "--seconds",
            str(args.seconds),
            "--rtp-ports",
            rtp_ports,
            "--server-core",
            SERVER_CORE,
        ],
    )
    limit = calls / args.rate + args.settle + args.seconds + 90
    proc = spawn(cmd, workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        stop(proc)
        print(f"  load generator timed out after {limit:.0f} s", flush=True)
        return None
    finally:
        forget(proc)
    lines = out.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        print(f"  load generator failed ({proc.returncode}): {err.decode()[-2000:]}", flush=True)
        return None
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def trial_siphon(calls: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any] | None:
    server_ports, client_ports = rtp_port_ranges(RTP_BASE, max(args.calls))
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "siphon.cli",
        "dev",
        str(ROOT / "examples" / "echo.py"),
        "--sip-port",
        str(port),
        "--transport",
        "udp",
        "--log-level",
        "warning",
        "--rtp-ports",
        server_ports,
    ]
    if args.no_record:
        cmd.append("--no-record")
    recordings = workdir / f"recordings-{calls}"
    log = workdir / f"siphon-{calls}.log"
    server = spawn_logged(
        pinned(SERVER_CORE, cmd), log, workdir, SIPHON_RECORDINGS_DIR=str(recordings)
    )
    try:
        if not wait_sip_ready(port, server):
            print(f"  server did not start: {log.read_text()[-2000:]}", flush=True)
            return None
        time.sleep(0.5)  # let start-up allocations settle before the idle RSS is read
        result = run_loadgen("sip", port, server.pid, calls, args, workdir, client_ports)
    finally:
        stop(server)
        shutil.rmtree(recordings, ignore_errors=True)
    complaints = [
        line for line in log.read_text(errors="replace").splitlines() if "WARNING" in line
    ]
    if result is not None:
        result["server_warnings"] = len(complaints)
        if complaints:
            print(f"  server logged {len(complaints)} warnings, first: {complaints[0]}")
    return result


def trial_baseline(calls: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any] | None:
    _, client_ports = rtp_port_ranges(RTP_BASE, max(args.calls))
    port = free_port()
    reflector = spawn_logged(
        pinned(SERVER_CORE, [sys.executable, str(LOADGEN), "reflect", "--port", str(port)]),
        workdir / "reflector.log",
        workdir,
    )
    try:
        time.sleep(1.0)
        return run_loadgen("raw", port, reflector.pid, calls, args, workdir, client_ports)
    finally:
        stop(reflector)


def passed(r: dict[str, Any]) -> bool:
    return bool(r["up"] == r["calls"] and r["late_pct"] < LATE_LIMIT_PCT and r["lost"] == 0)


HEADER = (
    f"{'N':>5} {'up':>5} {'late %':>7} {'p99/max ms':>11} {'read %':>7} {'lost':>6} "
    f"{'echo %':>7} {'srv CPU':>7} {'of sys':>6} {'core0':>6} {'gen CPU/late':>13} {'RSS MB':>7} "
    f"{'MB/call':>7} {'idle':>5}  verdict"
)


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def row(label: str, r: dict[str, Any], *, idle_check: bool = True) -> str:
    rss = r["server_rss_kb"] / 1024
    per_call = (r["server_rss_kb"] - r["idle_rss_kb"]) / 1024 / max(1, r["up"])
    idle = ("yes" if r.get("idle_ok") else "NO") if idle_check else "-"
    verdict = "ok" if passed(r) else "FAIL"
    return (
        f"{label:>5} {r['up']:>5} {r['late_pct']:>7.2f} "
        f"{_ms(r['lateness_p99_ms']):>5}/{_ms(r['lateness_max_ms']):<5} {r['late_app_pct']:>7.2f} "
        f"{r['lost']:>6} "
        f"{r['echo_missing_pct']:>7.2f} {r['server_cpu_pct']:>6.0f}% {r['server_sys_pct']:>5.0f}% "
        f"{r['core_busy_pct']:>5.0f}% "
        f"{r['gen_cpu_pct']:>6.0f}%/{r['gen_tick_late_max_ms']:>3.0f}ms "
        f"{rss:>7.1f} {per_call:>7.3f} {idle:>5}  {verdict}"
    )


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calls",
        type=lambda text: sorted({int(n) for n in text.split(",")}),
        default=[50, 100, 200, 300, 400],
        help="comma list of concurrent call counts (default 50,100,200,300,400)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    parser.add_argument("--settle", type=float, default=2.0, help="wait after the last call is up")
    parser.add_argument("--rate", type=float, default=50.0, help="calls set up per second")
    parser.add_argument("--no-record", action="store_true", help="run the server --no-record")
    parser.add_argument("--no-baseline", action="store_true", help="skip the reflector baseline")
    parser.add_argument("--json", type=Path, help="also write every trial's raw figures here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, Any] = {}
    began = time.monotonic()
    recording = "off (--no-record)" if args.no_record else "on (stereo WAV per call)"
    print(
        f"examples/echo.py on core {SERVER_CORE}, load generator on core {LOAD_CORE}; "
        f"{args.seconds:.0f} s window, calls set up at {args.rate:.0f}/s; recording {recording}",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="siphon-media-") as tmp:
            workdir = Path(tmp)
            print(HEADER, flush=True)
            points: list[tuple[int, float]] = []
            best = 0
            for calls in args.calls:
                result = trial_siphon(calls, args, workdir)
                if result is None:
                    print(f"{calls:>5}  no result", flush=True)
                    continue
                results[str(calls)] = result
                print(row(str(calls), result), flush=True)
                if result["failures"]:
                    print(f"        failed calls: {result['failures']}", flush=True)
                points.append((result["up"], (result["server_rss_kb"] - result["idle_rss_kb"])))
                if passed(result):
                    best = max(best, calls)
            baseline = None
            if not args.no_baseline:
                baseline = trial_baseline(max(args.calls), args, workdir)
                if baseline is not None:
                    results["baseline"] = baseline
                    print(row("base", baseline, idle_check=False) + "  (UDP reflector)")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the server and the load generator", file=sys.stderr)
        return 130
    finally:
        stop_all()
    per_call_mb = slope(points) / 1024
    print("\n== result ==")
    print(
        f"capacity: {best} concurrent calls on one core with < {LATE_LIMIT_PCT}% late and 0 lost "
        f"(target >= 300)"
    )
    noisy = [n for n, r in results.items() if n.isdigit() and int(n) < best and not passed(r)]
    if noisy:
        print(f"          (N = {', '.join(noisy)} failed although a larger N passed: noise?)")
    print(f"memory:   {per_call_mb:.3f} MB per additional call (RSS slope; target <= 3 MB)")
    if baseline is not None:
        print(
            f"baseline: the load generator alone, {baseline['up']} streams through a UDP "
            f"reflector: {baseline['late_pct']:.2f}% late, p99 {baseline['lateness_p99_ms']:.1f} "
            f"ms, max {baseline['lateness_max_ms']:.1f} ms, {baseline['lost']} lost"
        )
    print(f"({time.monotonic() - began:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
