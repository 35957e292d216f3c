"""SIPp (a real, independent SIP implementation) against ``siphon dev`` on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SIPP_DIR, ServerProcess, run_sipp, start_server, stop_server

pytestmark = pytest.mark.sipp


def _explain(result: object) -> str:
    return f"{result!r}"


def test_200_calls_udp(answer_server: ServerProcess, tmp_path: Path) -> None:
    result = run_sipp(
        answer_server.port, tmp_path, "-sn", "uac", "-m", "200", "-r", "20", "-l", "100"
    )
    assert result.ok, result.errors[-3000:] + result.output[-3000:]
    assert "Successful call" in result.output


def test_200_calls_tcp(answer_server: ServerProcess, tmp_path: Path) -> None:
    result = run_sipp(
        answer_server.port, tmp_path, "-sn", "uac", "-t", "t1", "-m", "200", "-r", "20", "-l", "100"
    )
    assert result.ok, result.errors[-3000:] + result.output[-3000:]


def test_cancel_before_answer_gets_487(tmp_path: Path) -> None:
    server = start_server("tests/apps/ring_forever.py", tmp_path)
    try:
        result = run_sipp(
            server.port, tmp_path, "-sf", str(SIPP_DIR / "uac_cancel.xml"), "-m", "5", "-r", "5"
        )
        assert result.ok, result.errors[-3000:] + result.output[-3000:]
    finally:
        stop_server(server)
    assert "cancelled" in server.log()


def test_invite_challenged_with_401_and_retried(tmp_path: Path) -> None:
    server = start_server("examples/answer.py", tmp_path, "--auth", "alice:s3cret")
    try:
        result = run_sipp(
            server.port,
            tmp_path,
            "-sf",
            str(SIPP_DIR / "uac_auth.xml"),
            "-au",
            "alice",
            "-ap",
            "s3cret",
            "-m",
            "5",
            "-r",
            "5",
        )
        assert result.ok, result.errors[-3000:] + result.output[-3000:]
        wrong = run_sipp(
            server.port,
            tmp_path,
            "-sf",
            str(SIPP_DIR / "uac_auth.xml"),
            "-au",
            "alice",
            "-ap",
            "wrong",
            "-m",
            "1",
            "-recv_timeout",
            "3s",
        )
        assert not wrong.ok, "a wrong password must not get through"
    finally:
        stop_server(server)


def test_options_ping(answer_server: ServerProcess, tmp_path: Path) -> None:
    result = run_sipp(
        answer_server.port, tmp_path, "-sf", str(SIPP_DIR / "uac_options.xml"), "-m", "3"
    )
    assert result.ok, result.errors[-3000:] + result.output[-3000:]


def test_reinvite_hold_resume_and_info_dtmf(answer_server: ServerProcess, tmp_path: Path) -> None:
    result = run_sipp(
        answer_server.port, tmp_path, "-sf", str(SIPP_DIR / "uac_hold.xml"), "-m", "2"
    )
    assert result.ok, result.errors[-3000:] + result.output[-3000:]
    log = answer_server.log()
    assert "on hold" in log and "resumed" in log


@pytest.mark.parametrize(("transport", "sipp_flag"), [("UDP", "u1"), ("TCP", "t1")])
async def test_our_uac_calls_sipp_uas(transport: str, sipp_flag: str, tmp_path: Path) -> None:
    import asyncio

    from tests.conftest import free_port, require_sipp
    from tests.io.helpers import client_agent

    port = free_port()
    sipp = await asyncio.create_subprocess_exec(
        require_sipp(),
        "-sn",
        "uas",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-t",
        sipp_flag,
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "20s",
        "-timeout_error",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        await asyncio.sleep(0.5)
        async with client_agent() as ua:
            call = await ua.call(f"sip:service@127.0.0.1:{port}", transport=transport)
            assert call.final_response is not None and call.final_response.status == 200
            assert call.dialog is not None and call.dialog.remote_tag
            await asyncio.sleep(0.2)
            await call.hangup()
            code = await asyncio.wait_for(sipp.wait(), 15)
        assert code == 0, "SIPp's UAS saw a failed call (ACK or BYE wrong)"
    finally:
        if sipp.returncode is None:
            sipp.kill()
            await sipp.wait()
