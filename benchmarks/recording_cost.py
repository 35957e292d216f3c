"""CPU cost per call of call recording (``siphon.io.recording.RecordingWriter``).

Models the SIP call-setup benchmark (zero-length calls at a high rate): inside a
running asyncio loop each loop iteration opens ``--group`` new recordings (the
calls answered in that iteration), writes ``--frames`` interleaved stereo 20 ms
frames (640 bytes) to the ones opened in the previous iteration and closes them
(their BYEs), then yields to the loop: at once (``--rate 0``, a saturated server)
or sleeping until the next group is due at ``--rate`` calls per second (a server
waiting for datagrams, so the writer thread mostly runs while the loop is idle).
At the end it drains the writer so every file is on disk, in a temporary folder.

Per call it prints the process CPU time (``time.process_time``: every thread, the
writer thread included, which on a one-core server competes with the loop), the
part of it spent in the kernel (mostly the file system creating files: on a shared
disk very noisy, hence ``--dir /dev/shm``), and the event-loop thread's own CPU
time (``time.thread_time``), each minus a baseline run of the same loop that
records nothing, plus the wall time and the process's context switches (thread
wake-ups, GIL hand-overs). Each figure is the median of ``--repeat`` runs. Pin
it to one core like the server:

    taskset -c 0 python benchmarks/recording_cost.py [--calls 20000] [--frames 0] \\
        [--group 10] [--rate 0] [--loop asyncio|uvloop] [--dir /dev/shm] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NamedTuple

from siphon.io.recording import Recording, RecordingWriter

FRAME = b"\x01\x00" * 320  # 20 ms of 8 kHz 16-bit stereo


class Run(NamedTuple):
    process: float  # CPU seconds, all threads
    kernel: float  # of which in the kernel
    loop: float  # CPU seconds of the event-loop thread
    wall: float
    switches: float  # context switches of the process (thread wake-ups, GIL hand-overs)


async def calls(
    writer: RecordingWriter | None, folder: Path, n: int, group: int, frames: int, rate: float
) -> float:
    """Run ``n`` calls; the loop thread's CPU seconds up to the last close."""
    start_cpu = time.thread_time()
    start = time.perf_counter()
    previous: list[Recording] = []
    for k, first in enumerate(range(0, n + group, group)):
        if writer is not None:
            for recording in previous:
                for _ in range(frames):
                    writer.write(recording, FRAME)
                writer.close(recording)
            previous = [
                writer.open(folder / f"call-{i}.wav") for i in range(first, min(first + group, n))
            ]
        # The loop's next iteration, as between datagrams: at once, or when the next is due.
        delay = start + (k + 1) * group / rate - time.perf_counter() if rate else 0.0
        await asyncio.sleep(max(0.0, delay))
    return time.thread_time() - start_cpu


def one_run(
    args: argparse.Namespace,
    record: bool,
    run: Callable[[Coroutine[Any, Any, float]], float],
) -> Run:
    with tempfile.TemporaryDirectory(prefix="siphon-rec-bench-", dir=args.dir) as tmp:
        folder = Path(tmp) / "recordings"
        writer = RecordingWriter() if record else None
        if writer is not None:  # start the thread outside the measurement
            writer.drain()
        start, wall = time.process_time(), time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_SELF)
        loop = run(calls(writer, folder, args.calls, args.group, args.frames, args.rate))
        if writer is not None:
            if not writer.drain(timeout=600):
                print("  warning: the writer did not drain")
            if writer.errors:
                print(f"  warning: {writer.errors} recording errors")
        after = resource.getrusage(resource.RUSAGE_SELF)
        result = Run(
            time.process_time() - start,
            after.ru_stime - before.ru_stime,
            loop,
            time.perf_counter() - wall,
            after.ru_nvcsw + after.ru_nivcsw - before.ru_nvcsw - before.ru_nivcsw,
        )
        shutil.rmtree(folder, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--frames", type=int, default=0, help="frames written per call")
    parser.add_argument("--group", type=int, default=10, help="calls per loop iteration")
    parser.add_argument("--rate", type=float, default=0, help="calls/s, 0 = flat out")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--dir",
        default=None,
        help="where the temporary folder goes (default: the system's; /dev/shm takes "
        "the file system's own, very noisy, cost of creating files out of the figures)",
    )
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        run: Callable[[Coroutine[Any, Any, float]], float] = uvloop.run
    else:
        run = asyncio.run

    base, rec = [], []
    for _ in range(args.repeat):
        base.append(one_run(args, False, run))
        rec.append(one_run(args, True, run))

    def per_call(field: str, scale: float = 1e6) -> tuple[float, float]:
        """(recording's cost, the baseline's) per call, in us for times."""
        b = statistics.median(getattr(r, field) for r in base)
        r = statistics.median(getattr(r, field) for r in rec)
        return (r - b) * scale / args.calls, b * scale / args.calls

    print(
        f"{args.calls} calls, {args.frames} frame(s) each, {args.group} per loop iteration, "
        f"{f'{args.rate:g}/s' if args.rate else 'flat out'}, {args.loop}, "
        f"median of {args.repeat}; per call, recording minus baseline (baseline)"
    )
    for label, field, scale in [
        ("process CPU us", "process", 1e6),
        ("  in the kernel", "kernel", 1e6),
        ("loop-thread CPU", "loop", 1e6),
        ("wall us", "wall", 1e6),
        ("context switches", "switches", 1.0),
    ]:
        cost, baseline = per_call(field, scale)
        print(f"  {label:<16} {cost:8.2f}  ({baseline:.2f})")


if __name__ == "__main__":
    main()
