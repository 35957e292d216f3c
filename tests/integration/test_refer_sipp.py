"""Cold transfer (REFER, RFC 3515) against SIPp, an independent SIP implementation.

SIPHON runs in-process (``running_server``) so the test reads the ``TransferResult``
straight from the app; SIPp runs as a subprocess on loopback.

- SIPp is the transferee: it calls the agent, gets the REFER, answers 202 and
  reports 100 then 200 (or 603) in NOTIFYs; the agent then hangs up.
- Our UAC (``accept_refer=True``) is the transferee and SIPp the transfer target:
  ``-sn uas`` answers (success), ``refer_uas_603.xml`` declines (failure).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from siphon.events import TransferRequested
from siphon.io.call import CallFailed, SipCall, TransferResult
from tests.conftest import SIPP_DIR
from tests.integration.sipp_async import start_sipp as _sipp
from tests.integration.sipp_async import wait_sipp as _wait
from tests.io.helpers import client_agent, running_server

pytestmark = pytest.mark.sipp

TARGET = "sip:target@127.0.0.1:5999"  # what refer_uac_transferee.xml checks in Refer-To


def _transferor(
    results: asyncio.Queue[TransferResult], target: Callable[[], str]
) -> Callable[[SipCall], Awaitable[None]]:
    async def handle(call: SipCall) -> None:
        await call.ring()
        await call.answer()
        results.put_nowait(await call.transfer(target(), timeout=10))
        # Returning hangs up (BYE): after a transfer the agent leaves the call.

    return handle


# -- SIPp is the transferee ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("final", "ok"), [(("200", "OK"), True), (("603", "Declined"), False)], ids=["200", "603"]
)
async def test_sipp_transferee_reports_the_outcome(
    final: tuple[str, str], ok: bool, tmp_path: Path
) -> None:
    results: asyncio.Queue[TransferResult] = asyncio.Queue()
    async with running_server(_transferor(results, lambda: TARGET)) as server:
        sipp, port = await _sipp(
            tmp_path,
            f"127.0.0.1:{server.sip_port}",
            "-sf",
            str(SIPP_DIR / "refer_uac_transferee.xml"),
            "-key",
            "final_status",
            final[0],
            "-key",
            "final_reason",
            final[1],
        )
        result = await asyncio.wait_for(results.get(), 20)
        await _wait(sipp, port, tmp_path)  # it also checked Refer-To, Referred-By and our BYE
    assert result == TransferResult(ok, int(final[0]), final[1], TARGET, ((100, "Trying"),))


# -- SIPp is the transfer target -----------------------------------------------------------------


async def _follow_refer(server_port: int, *, expect_answer: bool) -> None:
    """Our UAC as the transferee: call the agent, follow its REFER, report the outcome."""
    async with client_agent() as ua:
        ua.config = dataclasses.replace(ua.config, accept_refer=True)
        call = await ua.call(f"sip:agent@127.0.0.1:{server_port}")
        async with asyncio.timeout(5):
            while not isinstance(event := await call.events.get(), TransferRequested):
                pass
        try:
            new_call = await ua.call(event.target, timeout=5)
        except CallFailed as exc:
            assert not expect_answer, exc
            await call.notify_transfer(exc.status, exc.reason)
        else:
            assert expect_answer
            await call.notify_transfer(200, "OK")
            await asyncio.sleep(0.2)
            await new_call.hangup()  # SIPp's UAS expects a BYE
        await asyncio.wait_for(call.wait_ended(), 5)  # the agent hangs up after the transfer


async def test_our_transferee_reaches_a_sipp_target(tmp_path: Path) -> None:
    results: asyncio.Queue[TransferResult] = asyncio.Queue()
    sipp, port = await _sipp(tmp_path, "-sn", "uas")
    target = f"sip:target@127.0.0.1:{port}"
    async with running_server(_transferor(results, lambda: target)) as server:
        await asyncio.sleep(0.3)  # SIPp binding its port
        await _follow_refer(server.sip_port, expect_answer=True)
        result = await asyncio.wait_for(results.get(), 5)
    await _wait(sipp, port, tmp_path)
    assert (result.ok, result.status, result.target) == (True, 200, target)


async def test_our_transferee_reports_a_sipp_target_declining(tmp_path: Path) -> None:
    results: asyncio.Queue[TransferResult] = asyncio.Queue()
    sipp, port = await _sipp(tmp_path, "-sf", str(SIPP_DIR / "refer_uas_603.xml"))
    target = f"sip:target@127.0.0.1:{port}"
    async with running_server(_transferor(results, lambda: target)) as server:
        await asyncio.sleep(0.3)
        await _follow_refer(server.sip_port, expect_answer=False)
        result = await asyncio.wait_for(results.get(), 5)
    await _wait(sipp, port, tmp_path)
    assert (result.ok, result.status, result.reason) == (False, 603, "Decline")
