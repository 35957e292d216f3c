"""CPU cost of one call through our UAS, measured in-process (no SIP sockets).

The same server ``benchmarks/sip_setup_rate.py`` starts (``SipServer`` running
``examples/answer.py`` on uvloop when installed, RFC 3261 default timers, the
garbage collector settings of the ``siphon`` command) is fed
the datagrams of SIPp's built-in ``uac`` scenario, one call after the other:

    INVITE -> 100 Trying, 180 Ringing, 200 OK (SDP answer)
    ACK
    BYE    -> 200 OK

What a call's time includes: parsing every request (``UdpTransport.datagram_received``,
the real entry point of the UDP transport), the transaction layer and its timers,
the user agent, the per-call task and handler, SDP negotiation, binding and closing
the call's RTP socket, building and serialising the four responses, and the event
loop iterations that run the call's tasks. What it excludes: the kernel's side of
the SIP socket (recvfrom/sendto: responses are handed to a stand-in transport that
keeps the bytes) and the loop's socket polling. The harness's own work is counted
too, about 4 µs a call: it waits for the 200 OK and fills its To tag into pre-built
ACK and BYE datagrams.

Transaction timers keep RFC values (Timer J/L: 64*T1 = 32 s), so in a short run
they are scheduled but never fire; ``--t1 0.005`` shrinks them so expiry and
cleanup are paid inside the run too. The garbage collector's time is printed on its
own line. Full collections rescan every lingering transaction, and with the
server's settings the first comes after tens of thousands of calls: give a large
CALLS (100000) to see their share over a long run.

    python benchmarks/sip_inprocess.py [CALLS] [--profile] [--top 30] [--t1 SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path

from _common import event_loop_runner  # shared benchmark helpers (this folder)

from siphon.app import ServerConfig, SipServer
from siphon.cli import load_handlers, tune_gc
from siphon.io.recording import recording_writer
from siphon.io.sip_transport import UdpTransport
from siphon.sip.timers import SipTimers

ROOT = Path(__file__).resolve().parent.parent
SERVER = ("127.0.0.1", 5060)
CLIENT = ("127.0.0.1", 5061)
WARMUP_CALLS = 300

# SIPp 3.6's built-in "uac" scenario (sipp -sd uac), byte for byte as SIPp sends it
# (captured from `sipp -sn uac`): per call only the call number ``n`` (from 1) varies,
# in the Call-ID ("[call_number]-[pid]@[local_ip]"), the From tag
# ("[pid]SIPpTag00[call_number]") and the branch ("z9hG4bK-[pid]-[call_number]-" and
# the index of the message in the scenario: INVITE 0, ACK 5, BYE 7); the To tag of the
# ACK and BYE is the one our 200 OK set. SIPp's pid, the ports and the SDP (o= too) are
# the same in every call, and SIPp pads the INVITE's Content-Length to 5 characters.
SIPP_PID = 4242
_SDP = (
    "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
_COMMON = (
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{pid}-{n}-{step}\r\n"
    "From: sipp <sip:sipp@127.0.0.1:5061>;tag={pid}SIPpTag00{n}\r\n"
    "To: service <sip:service@127.0.0.1:5060>{to_tag}\r\n"
    "Call-ID: {n}-{pid}@127.0.0.1\r\n"
    "CSeq: {cseq}\r\n"
    "Contact: sip:sipp@127.0.0.1:5061\r\n"
    "Max-Forwards: 70\r\n"
    "Subject: Performance Test\r\n"
)
INVITE = (
    "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    + _COMMON
    + "Content-Type: application/sdp\r\nContent-Length: {length:>5}\r\n\r\n"
    + _SDP
)
IN_DIALOG = (
    "{method} sip:service@127.0.0.1:5060 SIP/2.0\r\n" + _COMMON + "Content-Length: 0\r\n\r\n"
)


def sipp_requests(n: int, to_tag: str) -> tuple[str, str, str]:
    """The INVITE, ACK and BYE texts of SIPp's call ``n``; ``to_tag``: our 200 OK's."""
    invite = INVITE.format(pid=SIPP_PID, n=n, step=0, to_tag="", cseq="1 INVITE", length=len(_SDP))
    tag = f";tag={to_tag}"
    ack = IN_DIALOG.format(method="ACK", pid=SIPP_PID, n=n, step=5, to_tag=tag, cseq="1 ACK")
    bye = IN_DIALOG.format(method="BYE", pid=SIPP_PID, n=n, step=7, to_tag=tag, cseq="2 BYE")
    return invite, ack, bye


_TO_TAG = re.compile(rb"\r\nTo:[^\r]*;tag=([^;\r]+)")


class GcClock:
    """Time the cyclic garbage collector spends, through ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


class CapturingTransport:
    """Stands in for the loop's UDP transport: keeps what the server sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.answered: asyncio.Event = asyncio.Event()

    def sendto(self, data: bytes, addr: object = None) -> None:
        self.sent.append(data)
        if data.startswith(b"SIP/2.0 200") and b"INVITE\r\n" in data:
            self.answered.set()

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return SERVER if name == "sockname" else default

    def close(self) -> None:
        pass


def requests_for(n: int) -> tuple[bytes, str, str]:
    """The INVITE of call ``n`` and the ACK and BYE templates awaiting the To tag."""
    invite, ack, bye = sipp_requests(n, "{tag}")
    return invite.encode(), ack, bye


async def run_calls(
    udp: UdpTransport, fake: CapturingTransport, calls: list[tuple[bytes, str, str]]
) -> None:
    for invite, ack, bye in calls:
        fake.answered.clear()
        udp.datagram_received(invite, CLIENT)
        await fake.answered.wait()  # the call's task opens media, rings and answers
        match = _TO_TAG.search(fake.sent[-1])
        assert match is not None, fake.sent[-1]
        tag = match.group(1).decode()
        udp.datagram_received(ack.format(tag=tag).encode(), CLIENT)
        udp.datagram_received(bye.format(tag=tag).encode(), CLIENT)


async def calls_finished() -> None:
    """Wait for every call task the server runs (named ``call:...``) to return."""
    tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("call:")]
    if tasks:
        await asyncio.wait(tasks)


async def main(args: argparse.Namespace) -> int:
    tune_gc()  # as `siphon dev` and `siphon start` do
    timers = SipTimers(t1=args.t1, t2=max(4.0, args.t1), t4=max(5.0, args.t1))
    handler = load_handlers(str(ROOT / "examples" / "answer.py"))["app"]
    recordings = tempfile.TemporaryDirectory()
    config = ServerConfig(
        host="127.0.0.1",
        sip_port=0,
        transports=("udp",),
        timers=timers,
        drain_timeout=1.0,
        record=not args.no_record,
        # Calls are fed back to back, so the loop is on the CPU all the time: that is
        # what is measured here, not an overload to shed (siphon.io.overload).
        overload_control=False,
    )
    os.environ["SIPHON_RECORDINGS_DIR"] = recordings.name  # not into the working directory
    server = SipServer(handler, config)
    ready = asyncio.Event()
    serving = asyncio.create_task(server.serve(lambda _: ready.set()))
    started = asyncio.create_task(ready.wait())
    await asyncio.wait((started, serving), return_when=asyncio.FIRST_COMPLETED)
    if serving.done():  # it failed to start: say why instead of waiting for ever
        started.cancel()
        serving.result()
        raise RuntimeError("the server stopped before it was ready")
    # A UDP transport of our own, wired to the server's stack the way the loop wires
    # the real one; responses land in ``fake`` instead of a socket.
    udp = UdpTransport(server.stack)
    fake = CapturingTransport()
    udp.connection_made(fake)  # type: ignore[arg-type]

    warmup = [requests_for(n) for n in range(1, WARMUP_CALLS + 1)]
    measured = [requests_for(n) for n in range(WARMUP_CALLS + 1, WARMUP_CALLS + args.calls + 1)]
    await run_calls(udp, fake, warmup)
    await calls_finished()
    fake.sent.clear()
    gc.collect()

    profiler = cProfile.Profile() if args.profile else None
    gc_clock = GcClock()
    gc.callbacks.append(gc_clock)
    if args.no_gc:
        gc.disable()
    start = time.perf_counter()
    cpu_start = time.process_time()
    if profiler is not None:
        profiler.enable()
    await run_calls(udp, fake, measured)
    await calls_finished()  # the last calls' tasks finish inside the measurement too
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    gc.callbacks.remove(gc_clock)
    gc.enable()

    stats = dict(server.stack.stats)
    server.stop()
    await serving
    if not args.no_record:
        await asyncio.to_thread(recording_writer().drain)
    recordings.cleanup()
    expected_out = 4 * args.calls
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(
        f"{args.calls} calls in {elapsed:.3f} s: {elapsed / args.calls * 1e6:.1f} µs per call "
        f"({args.calls / elapsed:.0f} calls/s on one core; {loop_name} loop, T1={args.t1} s)"
        + (" -- under cProfile, so several times slower" if profiler is not None else "")
    )
    # CPU time of the whole process (the recording thread too): steadier than the wall
    # clock when other work shares the core.
    print(f"  process CPU: {cpu / args.calls * 1e6:.1f} µs per call")
    print(
        f"  of which the garbage collector: {gc_clock.seconds / args.calls * 1e6:.1f} µs per call "
        f"(collections by generation: {gc_clock.collections})"
    )
    # Tiny T1s let a 2xx retransmission slip in before the ACK: expected then.
    retransmitted = stats.get("2xx_retransmissions", 0)
    problems = {k: v for k, v in stats.items() if k not in _EXPECTED_STATS}
    if len(fake.sent) != expected_out + retransmitted or problems:
        print(f"unexpected: {len(fake.sent)} responses (wanted {expected_out}), stats {stats}")
        return 1
    if profiler is not None:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    return 0


_EXPECTED_STATS = {
    "requests_in",
    "responses_out",
    "calls_in",
    "calls_answered",
    "calls_ended",
    "2xx_retransmissions",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", type=int, nargs="?", default=5000, help="measured calls")
    parser.add_argument("--profile", action="store_true", help="cProfile the measured calls")
    parser.add_argument("--top", type=int, default=30, help="profile rows to print")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    parser.add_argument("--t1", type=float, default=0.5, help="SIP T1 in seconds (RFC: 0.5)")
    parser.add_argument(
        "--no-gc", action="store_true", help="disable the cyclic GC while measuring (diagnosis)"
    )
    parser.add_argument(
        "--no-record", action="store_true", help="no stereo WAV per call (siphon --no-record)"
    )
    parser.add_argument("--asyncio", action="store_true", help="plain asyncio even with uvloop")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    run = asyncio.run if arguments.asyncio else event_loop_runner()
    sys.exit(run(main(arguments)))
