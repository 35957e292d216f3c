"""Agents as processes: `siphon dev file.py` finds them; agent.start() drains on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from siphon.agent import Agent
from siphon.cli import load_handlers
from tests.conftest import ROOT, free_port, start_server, stop_server
from tests.io.helpers import RawUdpClient, client_agent, request


def test_the_cli_finds_agents_in_a_file() -> None:
    handlers = load_handlers(str(ROOT / "tests/apps/fake_agent.py"))
    assert list(handlers) == ["agent"]
    assert isinstance(handlers["agent"], Agent)


def test_siphon_dev_serves_an_agent(tmp_path: Path) -> None:
    server = start_server("tests/apps/fake_agent.py", tmp_path)
    try:

        async def call() -> list[str]:
            async with client_agent() as ua:
                placed = await ua.call(f"sip:fake@127.0.0.1:{server.port}", timeout=5)
                await asyncio.sleep(1.0)  # the greeting plays
                stats = placed.stats
                await placed.hangup()
                return [str(stats.packets_in)]

        (packets,) = asyncio.run(call())
        assert int(packets) > 20
    finally:
        stop_server(server)
    log = server.log()
    assert "agent fake session started" in log and "agent: Okay." in log, log


async def _sigterm_drain(port: int, proc: subprocess.Popen[str]) -> tuple[int, int, float]:
    async with client_agent() as ua:
        placed = await ua.call(f"sip:fake@127.0.0.1:{port}", timeout=5)
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        client = await RawUdpClient.open(port)
        try:
            client.send(request("OPTIONS", port, client_port=client.port))
            options = (await client.recv_final()).status
            client.send(request("INVITE", port, client_port=client.port))
            invite = await client.recv_final()
            assert invite.get("Retry-After") is not None
        finally:
            client.close()
        assert proc.poll() is None, "the process must wait for the active call"
        assert not placed.ended
        await placed.hangup()
        hung_up = time.monotonic()
        return options, invite.status, hung_up


def test_agent_start_drains_active_calls_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/apps/fake_agent.py"),
            "--host",
            "127.0.0.1",
            "--sip-port",
            str(port),
            "--rtp-ports",
            "24000-24098",
            "--no-record",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 20
        lines: list[str] = []
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "ready:" in line:
                break
        options, invite, hung_up = asyncio.run(_sigterm_drain(port, proc))
        code = proc.wait(10)
        exited = time.monotonic()
        rest = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (options, invite) == (503, 503)
    assert code == 0
    assert exited - hung_up < 5
    # Production logs are JSON lines.
    records = [json.loads(line) for line in (lines + rest.splitlines()) if line.strip()]
    assert any("ready:" in r["msg"] for r in records)
    assert any("waiting up to" in r["msg"] for r in records)


def test_hooks_can_be_set_after_construction() -> None:
    import pytest

    from siphon.testing import FakeLLM, FakeSTT, FakeTTS

    agent = Agent(agent_name="x", llm=FakeLLM(), stt=FakeSTT(), tts=FakeTTS())
    assert agent.hook("on_exit") == agent.on_exit  # the method until replaced

    def on_exit(session: object) -> None:
        return None

    agent.set_hook("on_exit", on_exit)
    assert agent.hook("on_exit") is on_exit
    with pytest.raises(ValueError, match="hooks are on_enter"):
        agent.set_hook("on_hangup", on_exit)
    with pytest.raises(TypeError, match="not callable"):
        agent.set_hook("on_exit", 42)  # type: ignore[arg-type]


async def test_an_outbound_call_offers_the_codecs_asked_for() -> None:
    from siphon.sip.sdp import PCMA, TELEPHONE_EVENT
    from tests.io.helpers import running_server

    async def answer(call: object) -> None:
        await call.answer()  # type: ignore[attr-defined]
        await call.wait_ended()  # type: ignore[attr-defined]

    async with running_server(answer) as server, client_agent() as ua:
        placed = await ua.call(
            f"sip:x@127.0.0.1:{server.sip_port}", timeout=5, codecs=(PCMA, TELEPHONE_EVENT)
        )
        assert placed.negotiated is not None and placed.negotiated.codec.name == "PCMA"
        assert b"RTP/AVP 8 101" in (placed.invite.body or b"")
        await placed.hangup()
