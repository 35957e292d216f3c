"""Built-in tools: hang up, transfer, send DTMF, tell the time.

Add them like any tool: ``Agent(..., tools=[end_call, transfer_call, my_tool])``.
They act on the call through ``ctx.session``, which must implement ``CallControl``
(the voice session does).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from siphon.agent.tools import FunctionTool, RunContext, ToolError, function_tool
from siphon.rtp.dtmf import DIGITS

__all__ = [
    "BUILTIN_TOOLS",
    "MAX_DTMF_DIGITS",
    "CallControl",
    "TransferOutcome",
    "end_call",
    "get_current_datetime",
    "send_dtmf",
    "transfer_call",
]

MAX_DTMF_DIGITS = 64
"""Most digits one send_dtmf call may send: enough for any menu path or account
number, few enough that a confused model cannot queue minutes of tones."""


class TransferOutcome(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def status(self) -> int: ...  # the SIP status of the transfer (NOTIFY sipfrag or REFER)
    @property
    def reason(self) -> str: ...


@runtime_checkable
class CallControl(Protocol):
    """What the built-in tools need of the per-call session."""

    @property
    def timezone(self) -> str | None:
        """IANA name ("Europe/Paris") for dates and times said to the caller; None = UTC."""
        ...

    async def end_call(self, reason: str = "agent ended the call") -> None:
        """Hang up once the current speech has finished playing."""
        ...

    async def transfer(self, destination: str) -> TransferOutcome:
        """Transfer the caller (SIP REFER) to a SIP URI or phone number."""
        ...

    def send_dtmf(self, digits: str) -> None:
        """Send RFC 4733 telephone-events."""
        ...


def _control(ctx: RunContext) -> CallControl:
    session = ctx.session
    if not isinstance(session, CallControl):
        raise ToolError("error: this session cannot control the call")
    return session


@function_tool
async def end_call(ctx: RunContext) -> str:
    """End the call after the current speech finishes.

    Say goodbye first: the call ends once what you said has been played.
    """
    await _control(ctx).end_call("agent ended the call")
    return "call ending"


@function_tool
async def transfer_call(destination: str, ctx: RunContext) -> str:
    """Transfer the caller to another phone number or SIP address.

    Args:
        destination: A phone number in E.164 form (+15551234567) or a SIP URI
            (sip:sales@example.com).
    """
    destination = destination.strip()
    if not destination:
        raise ToolError("error: destination is empty; give a phone number or a SIP URI")
    outcome = await _control(ctx).transfer(destination)
    if outcome.ok:
        return f"transfer to {destination} succeeded; the caller is now connected there."
    # A sentence the model can relay: the caller is still on the line with us.
    return (
        f"transfer to {destination} failed: {outcome.status} {outcome.reason}. "
        "Tell the caller and offer alternatives."
    )


# async although nothing is awaited: sync tools run in a worker thread, and the call's
# media objects (where the digits are queued) belong to the event loop's thread.
@function_tool
async def send_dtmf(digits: str, ctx: RunContext) -> str:
    """Press phone keys (DTMF), e.g. to navigate an automated phone menu.

    Args:
        digits: The keys to press, in order: 0-9, *, # and A-D.
    """
    keys = digits.upper()
    if not keys:
        raise ToolError("error: digits is empty; send at least one of 0-9, *, #, A-D")
    if len(keys) > MAX_DTMF_DIGITS:
        raise ToolError(f"error: at most {MAX_DTMF_DIGITS} digits per call; got {len(keys)}")
    for position, key in enumerate(keys, start=1):
        if key not in DIGITS:  # the 16 RFC 4733 key events (0-15); not flash, not pauses
            raise ToolError(
                f"error: {key!r} (position {position}) is not a DTMF key; "
                "use only 0-9, *, # and A-D"
            )
    _control(ctx).send_dtmf(keys)
    return f"sent DTMF {keys}"


@function_tool
async def get_current_datetime(ctx: RunContext) -> str:  # async: too quick for a thread hop
    """Get the current date, time and weekday where the call is handled."""
    name = getattr(ctx.session, "timezone", None) or "UTC"
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # A misconfigured zone must not leave the model without any time at all.
        zone, name = ZoneInfo("UTC"), "UTC"
    now = _now(zone)
    return f"{now:%A} {now.isoformat(timespec='seconds')} ({name})"


def _now(zone: dt.tzinfo) -> dt.datetime:
    """The current time in ``zone``; tests replace this."""
    return dt.datetime.now(zone)


BUILTIN_TOOLS: Mapping[str, FunctionTool[..., Any]] = MappingProxyType(
    {tool.name: tool for tool in (end_call, transfer_call, send_dtmf, get_current_datetime)}
)
"""The built-in tools by name, e.g. for configuration that lists tools as strings."""
