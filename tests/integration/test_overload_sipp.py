"""Overload control against SIPp: offered twice what it can set up, a server refuses the
excess at once with 503 (a proxy in front tries another server) and completes every
call it admits. Without it, the excess waited in the SIP socket until the callers gave
up on it (measured: the same 43% completed, the other calls failed by timeout)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from siphon.io.call import SipCall
from siphon.sip.timers import SipTimers
from tests.integration.sipp_async import start_sipp
from tests.io.helpers import free_port_base, running_server

pytestmark = pytest.mark.sipp

# Each call holds the event loop this long, as a CPU-heavy setup would: the server can
# set up at most ~1/SETUP_COST calls a second, whatever the machine.
SETUP_COST = 0.004
RATE = 2 * round(1 / SETUP_COST)
SECONDS = 4
_COUNT = re.compile(r"^\s*(Successful call|Failed call)\s*\|\s*\d+\s*\|\s*(\d+)", re.MULTILINE)


async def slow_setup(call: SipCall) -> None:
    await call.ring()
    time.sleep(SETUP_COST)  # noqa: ASYNC251 - the point: the loop is busy with this call
    await call.answer()
    await call.wait_ended()


async def test_twice_the_capacity_is_refused_in_part_and_the_rest_completes(
    tmp_path: Path,
) -> None:
    calls = RATE * SECONDS
    # Enough RTP ports for every call admitted within the 2 s a pair stays in quarantine.
    rtp = free_port_base(2 * RATE * 2, 20000, 26000)
    # RFC 3261 timers (not the tests' fast ones): SIPp retransmits at T1 = 500 ms.
    async with running_server(
        slow_setup,
        timers=SipTimers(),
        record=False,
        rtp_port_start=rtp,
        rtp_port_end=rtp + 4 * RATE - 2,
    ) as server:
        assert server.load is not None  # on by default
        sipp, port = await start_sipp(
            tmp_path,
            f"127.0.0.1:{server.sip_port}",
            "-sn",
            "uac",
            "-r",
            str(RATE),
            "-l",
            str(RATE),
            "-recv_timeout",
            "10s",
            calls=calls,
            timeout=60,
        )
        try:
            await asyncio.wait_for(sipp.wait(), 90)
        finally:
            if sipp.returncode is None:
                sipp.kill()
                await sipp.wait()
        output = (tmp_path / f"sipp-{port}.log").read_text(errors="replace")
        counts = {m.group(1): int(m.group(2)) for m in _COUNT.finditer(output)}
        ok, failed = counts.get("Successful call", 0), counts.get("Failed call", 0)
        refused = server.stack.stats["rejected_overload"]
        detail = f"ok {ok}, failed {failed}, refused {refused}\n{output[-2000:]}"
        # Every call SIPp placed ended, one way or the other...
        assert ok + failed == calls, detail
        # ...the excess was refused (503: SIPp counts those as failed calls)...
        assert refused > calls // 10, detail
        # ...and nothing else failed: no request waited past the callers' timers.
        assert failed <= refused + calls // 100, detail
        assert ok >= calls // 5, detail
        assert server.load.congested_samples > 0
        # Once the load is gone, every call is admitted again.
        for _ in range(40):
            if not server.load.overloaded:
                break
            await asyncio.sleep(0.05)
        assert not server.load.overloaded
