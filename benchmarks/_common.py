"""Helpers the benchmarks share: child processes, /proc readings, percentiles, and the
plumbing of their helper scripts (port ranges, JSON events, the event loop, the ramp,
the simulated callers' user agent).

Not a benchmark. The scripts in this folder import it as ``_common`` (running
``python benchmarks/X.py`` puts the folder on ``sys.path``). It imports nothing of
siphon at module level, so that a parent benchmark stays a light process that only
starts, samples and stops others; ``loopback_user_agent`` imports siphon when called.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import math
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from siphon.io.user_agent import UaConfig, UserAgent

T = TypeVar("T")
UA = TypeVar("UA", bound="UserAgent")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Loaded once, here: dlopen in a child between fork and exec could deadlock.
_LIBC = ctypes.CDLL(None)
_children: list[subprocess.Popen[bytes]] = []


# -- child processes ---------------------------------------------------------------------
def die_with_parent() -> None:
    """In the child before exec: SIGKILL it if this process dies (even by SIGKILL)."""
    with contextlib.suppress(AttributeError):
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def pinned(core: str, cmd: list[str]) -> list[str]:
    """``cmd`` run under ``taskset -c core``; ``cmd`` as is without taskset or a second CPU."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", core, *cmd]
    return cmd


def spawn(cmd: list[str], workdir: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in ``workdir`` (``popen``: more ``subprocess.Popen`` arguments).

    The child dies with this process, and ``stop_all`` stops it if it is still tracked.
    """
    proc = subprocess.Popen(cmd, cwd=workdir, preexec_fn=die_with_parent, **popen)
    _children.append(proc)
    return proc


def forget(proc: subprocess.Popen[bytes]) -> None:
    """No longer track ``proc`` (it has been reaped, or its caller sees to it)."""
    if proc in _children:
        _children.remove(proc)


def stop(proc: subprocess.Popen[bytes], wait: float = 10.0, sig: int = signal.SIGINT) -> None:
    """``sig`` (SIGINT: siphon drains and exits), then SIGKILL after ``wait`` seconds;
    always reaped and forgotten."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    forget(proc)


def stop_all() -> None:
    """Stop every child still tracked (3 s each before SIGKILL): at exit, however it came."""
    for proc in list(_children):
        stop(proc, wait=3.0)


def free_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rtp_port_ranges(base: int, max_calls: int) -> tuple[str, str]:
    """Two adjacent RTP port ranges from ``base`` ("A-B" each, server's then callers'),
    wide enough for ``max_calls`` calls and 64 to spare."""
    span = 2 * (max_calls + 64)
    server = (base, base + span)
    callers = (server[1] + 2, server[1] + 2 + span)
    return f"{server[0]}-{server[1]}", f"{callers[0]}-{callers[1]}"


class LineReader:
    """A child's stdout lines, read by a thread, so the parent can wait with a timeout."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(b"")  # end of output

    def next(self, deadline: float) -> bytes | None:
        """The next line; b"" at the end of the output, None when the deadline passed."""
        try:
            return self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None


# -- /proc ---------------------------------------------------------------------------------
def stat_cpu_seconds(path: Path) -> float:
    """utime + stime of a /proc stat file (a process's or a thread's), in seconds;
    NaN when it is gone."""
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return math.nan


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat); NaN when it is gone."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def core_times(core: int | str) -> list[int]:
    """The ``cpuN`` line of /proc/stat: user nice system idle iowait irq softirq steal..."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{core} "):
                return [int(x) for x in line.split()[1:]]
    return []


def core_busy_pct(a: list[int], b: list[int]) -> float:
    """How busy a core was between two ``core_times`` samples, whatever ran there (%)."""
    if not a or not b:
        return math.nan
    delta = [y - x for x, y in zip(a, b, strict=False)]
    total = sum(delta[:8]) or 1
    return 100.0 * (total - delta[3] - delta[4]) / total


# -- figures -------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Nearest rank (the smallest value with at least q of them at or below it); NaN for
    no values. p95 of 20 values is the 19th."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def percentile_upper(values: list[float], q: float, empty: float = math.nan) -> float:
    """The sorted values' element at index int(q * n), clamped to the last: the nearest
    rank, or one rank above it when q * n is whole (p95 of 20 values is the 20th).

    ``turn_overhead.py`` and ``_rtp_loadgen.py`` have always reported this one; kept so
    that their figures compare with earlier runs. ``empty`` for no values.
    """
    if not values:
        return empty
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- helper scripts (the processes a benchmark starts) ------------------------------------
def parse_port_range(text: str) -> tuple[int, int]:
    """``--rtp-ports A-B`` as (A, B)."""
    start, _, end = text.partition("-")
    return int(start), int(end)


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout for the parent: the event, ``time.monotonic()``, ``fields``."""
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


class LoopRunner(Protocol):
    """``asyncio.run`` or ``uvloop.run``: runs a coroutine to its result."""

    def __call__(self, main: Coroutine[Any, Any, T], /) -> T: ...


def event_loop_runner() -> LoopRunner:
    """``uvloop.run`` when uvloop is installed (as the siphon CLI serves), else ``asyncio.run``."""
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return asyncio.run
    runner: LoopRunner = uvloop.run
    return runner


async def ramp(
    count: int, rate: float, start_one: Callable[[int], Coroutine[Any, Any, T]]
) -> list[T]:
    """Start ``start_one(0)`` .. ``start_one(count - 1)``, ``rate`` per second on absolute
    deadlines; their results, in order, once all have finished."""
    tasks: list[asyncio.Task[T]] = []
    began = time.monotonic()
    for i in range(count):
        tasks.append(asyncio.create_task(start_one(i)))
        await asyncio.sleep(max(0.0, began + (i + 1) / rate - time.monotonic()))
    return list(await asyncio.gather(*tasks))


async def loopback_user_agent(
    agent_class: type[UA], name: str, rtp_ports: tuple[int, int], config: UaConfig
) -> UA:
    """Simulated callers' user agent: ``agent_class`` (``UserAgent`` or a subclass) on its
    own ``SipStack`` (User-Agent ``name``, UDP on 127.0.0.1, any port), RTP ports from
    the range ``rtp_ports``. Close it with ``ua.stack.close()``."""
    from siphon.io.ports import RtpPortAllocator
    from siphon.io.sip_stack import SipStack

    stack = SipStack(user_agent=name)
    await stack.listen("127.0.0.1", 0, ("udp",))
    return agent_class(stack, ports=RtpPortAllocator(*rtp_ports), config=config)
