"""siphon.agent.builtins against a fake CallControl."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from siphon.agent import builtins
from siphon.agent.builtins import (
    BUILTIN_TOOLS,
    CallControl,
    end_call,
    get_current_datetime,
    send_dtmf,
    transfer_call,
)
from siphon.agent.tools import RunContext, ToolRegistry, ToolResult
from siphon.plugins.base import ToolCall


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int
    reason: str


@dataclass
class FakeCall:
    """Records what the tools asked of the call."""

    timezone: str | None = None
    outcome: Outcome = field(default_factory=lambda: Outcome(True, 200, "OK"))
    ended: list[str] = field(default_factory=list)
    transfers: list[str] = field(default_factory=list)
    dtmf: list[str] = field(default_factory=list)

    async def end_call(self, reason: str = "agent ended the call") -> None:
        self.ended.append(reason)

    async def transfer(self, destination: str) -> Outcome:
        self.transfers.append(destination)
        return self.outcome

    def send_dtmf(self, digits: str) -> None:
        self.dtmf.append(digits)


async def execute(session: Any, name: str, **arguments: Any) -> ToolResult:
    registry = ToolRegistry(BUILTIN_TOOLS.values())
    call = ToolCall(id="tc", name=name, arguments=json.dumps(arguments))
    return await registry.execute(
        call,
        lambda tool_call_id: RunContext(call_id="c", tool_call_id=tool_call_id, session=session),
    )


def test_fake_satisfies_the_protocol_and_builtins_are_exported() -> None:
    assert isinstance(FakeCall(), CallControl)
    assert dict(BUILTIN_TOOLS) == {
        "end_call": end_call,
        "transfer_call": transfer_call,
        "send_dtmf": send_dtmf,
        "get_current_datetime": get_current_datetime,
    }


def test_specs_hide_the_context() -> None:
    specs = {spec.name: spec for spec in ToolRegistry(BUILTIN_TOOLS.values()).specs}
    assert specs["end_call"].parameters["properties"] == {}
    assert specs["end_call"].description == "End the call after the current speech finishes."
    assert list(specs["transfer_call"].parameters["properties"]) == ["destination"]
    assert specs["send_dtmf"].parameters["required"] == ["digits"]
    assert specs["get_current_datetime"].parameters["properties"] == {}


async def test_end_call() -> None:
    call = FakeCall()
    result = await execute(call, "end_call")
    assert (result.is_error, result.content) == (False, "call ending")
    assert call.ended == ["agent ended the call"]


async def test_end_call_without_call_control_is_an_error_result() -> None:
    result = await execute(None, "end_call")
    assert result.is_error
    assert "cannot control the call" in result.content


async def test_transfer_success() -> None:
    call = FakeCall()
    result = await execute(call, "transfer_call", destination=" sip:sales@example.com ")
    assert call.transfers == ["sip:sales@example.com"]
    assert not result.is_error
    assert "transfer to sip:sales@example.com succeeded" in result.content


async def test_transfer_failure_tells_the_model_status_and_reason() -> None:
    call = FakeCall(outcome=Outcome(False, 603, "Declined"))
    result = await execute(call, "transfer_call", destination="+15551234567")
    assert result.content == (
        "transfer to +15551234567 failed: 603 Declined. Tell the caller and offer alternatives."
    )


async def test_transfer_needs_a_destination() -> None:
    call = FakeCall()
    result = await execute(call, "transfer_call", destination="  ")
    assert result.is_error and call.transfers == []


async def test_dtmf_sends_valid_keys_uppercased() -> None:
    call = FakeCall()
    result = await execute(call, "send_dtmf", digits="0123456789*#abcD")
    assert (result.is_error, result.content) == (False, "sent DTMF 0123456789*#ABCD")
    assert call.dtmf == ["0123456789*#ABCD"]


@pytest.mark.parametrize(
    ("digits", "fragment"),
    [
        ("12x4", "'X' (position 3) is not a DTMF key"),
        ("1 2", "' ' (position 2) is not a DTMF key"),
        ("!", "'!' (position 1)"),  # hook flash: an event, not a key
        ("", "digits is empty"),
        ("1" * 65, "at most 64 digits"),
    ],
)
async def test_dtmf_rejects_anything_but_the_sixteen_keys(digits: str, fragment: str) -> None:
    call = FakeCall()
    result = await execute(call, "send_dtmf", digits=digits)
    assert result.is_error
    assert fragment in result.content, result.content
    assert call.dtmf == []


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> None:
    instant = dt.datetime(2025, 3, 4, 13, 5, 0, 123456, tzinfo=dt.UTC)  # a Tuesday
    monkeypatch.setattr(builtins, "_now", lambda zone: instant.astimezone(zone))


@pytest.mark.parametrize(
    ("timezone", "expected"),
    [
        ("Europe/Paris", "Tuesday 2025-03-04T14:05:00+01:00 (Europe/Paris)"),
        ("America/Los_Angeles", "Tuesday 2025-03-04T05:05:00-08:00 (America/Los_Angeles)"),
        ("Pacific/Kiritimati", "Wednesday 2025-03-05T03:05:00+14:00 (Pacific/Kiritimati)"),
        (None, "Tuesday 2025-03-04T13:05:00+00:00 (UTC)"),
        ("Not/AZone", "Tuesday 2025-03-04T13:05:00+00:00 (UTC)"),
    ],
)
@pytest.mark.usefixtures("frozen_now")
async def test_current_datetime_in_the_session_timezone(
    timezone: str | None, expected: str
) -> None:
    result = await execute(FakeCall(timezone=timezone), "get_current_datetime")
    assert (result.is_error, result.content) == (False, expected)


async def test_current_datetime_is_real_and_timezone_aware() -> None:
    result = await execute(None, "get_current_datetime")  # no session: UTC
    weekday, stamp, zone = result.content.split(" ")
    now = dt.datetime.fromisoformat(stamp)
    assert zone == "(UTC)" and now.utcoffset() == dt.timedelta(0)
    assert weekday == f"{now:%A}"
    assert abs((dt.datetime.now(dt.UTC) - now).total_seconds()) < 5
