"""`siphon call`: the simulated caller on the command line, against a served agent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from siphon.agent import Agent
from siphon.testing import FakeLLM, FakeSTT, FakeTTS
from tests.conftest import start_server, stop_server


def _siphon_call(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "siphon.cli", "call", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "user,accepted",
    [
        ("receptionist", True),
        ("Receptionist", True),
        ("front-desk", True),  # an alias in sip_users
        ("+15550001", True),  # a trunk's number in sip_users
        ("nobody", False),
        ("", True),  # no user part: the request is for the host
        (None, True),
    ],
)
def test_agents_answer_their_name_and_aliases_only(user: str | None, accepted: bool) -> None:
    agent = Agent(
        agent_name="Receptionist",
        llm=FakeLLM(),
        stt=FakeSTT(),
        tts=FakeTTS(),
        sip_users=["front_desk", "+15550001"],
    )
    assert agent.accepts_user(user) is accepted


def test_siphon_call_to_a_user_nobody_serves_exits_with_the_404(tmp_path: Path) -> None:
    server = start_server("tests/apps/fake_agent.py", tmp_path)
    try:
        result = _siphon_call(
            f"sip:nobody@127.0.0.1:{server.port}", "--say", "hello", "--voice", "espeak", "--json"
        )
    finally:
        stop_server(server)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert (report["ok"], report["status"]) == (False, 404)
    assert "404 Not Found" in result.stderr
    assert "no agent 'nobody'" in server.log()


def test_siphon_call_holds_a_conversation_and_reports_it(tmp_path: Path) -> None:
    server = start_server("tests/apps/fake_agent.py", tmp_path)
    wav = tmp_path / "call.wav"
    try:
        result = _siphon_call(
            f"sip:fake@127.0.0.1:{server.port}",
            "--wait-greeting",
            "--say",
            "hello there",
            "--voice",
            "espeak",
            "--record",
            str(wav),
            "--json",
        )
    finally:
        stop_server(server)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["status"] == 200
    roles = [turn["role"] for turn in report["turns"]]
    assert roles == ["agent", "caller", "agent"]  # greeting, question, answer
    answer = report["turns"][-1]
    assert answer["latency_ms"] is not None and 0 < answer["latency_ms"] < 3000
    assert report["recording"] == str(wav) and wav.stat().st_size > 8000
    assert report["ended_by"] == "caller"


def test_siphon_call_needs_something_to_do() -> None:
    result = _siphon_call("sip:x@127.0.0.1:9")
    assert result.returncode == 2 and "--say" in result.stderr
