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
