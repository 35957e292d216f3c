"""Agents and their tools: what users program against.

from siphon.agent import Agent, function_tool
"""

from siphon.agent.agent import Agent
from siphon.agent.builtins import (
    BUILTIN_TOOLS,
    CallControl,
    TransferOutcome,
    end_call,
    get_current_datetime,
    send_dtmf,
    transfer_call,
)
from siphon.agent.tools import (
    FunctionTool,
    RunContext,
    ToolError,
    ToolRegistry,
    ToolResult,
    Toolset,
    function_tool,
)

__all__ = [
    "BUILTIN_TOOLS",
    "Agent",
    "CallControl",
    "FunctionTool",
    "RunContext",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "Toolset",
    "TransferOutcome",
    "end_call",
    "function_tool",
    "get_current_datetime",
    "send_dtmf",
    "transfer_call",
]
