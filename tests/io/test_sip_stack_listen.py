"""SipStack.listen with port 0 over several transports: one shared port number."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from siphon.io import sip_stack as stack_module
from siphon.io.sip_stack import SipStack


async def test_a_port_taken_for_tcp_makes_both_transports_try_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_listen = stack_module.TcpTransport.listen
    refused: list[int] = []

    async def busy_once(stack: SipStack, host: str, port: int) -> Any:
        if not refused:  # as when another socket holds that TCP port
            refused.append(port)
            raise OSError(errno.EADDRINUSE, "address already in use")
        return await real_listen(stack, host, port)

    monkeypatch.setattr(stack_module.TcpTransport, "listen", staticmethod(busy_once))
    stack = SipStack()
    try:
        await stack.listen("127.0.0.1", 0, ("udp", "tcp"))
        udp, tcp = stack._listeners["UDP"], stack._listeners["TCP"]
        assert udp.transport.local_address[1] == tcp.transport.local_address[1]
        assert refused and refused[0] != 0
    finally:
        stack.close()


async def test_a_fixed_port_in_use_is_reported_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    async def busy(stack: SipStack, host: str, port: int) -> Any:
        calls.append(port)
        raise OSError(errno.EADDRINUSE, "address already in use")

    monkeypatch.setattr(stack_module.TcpTransport, "listen", staticmethod(busy))
    stack = SipStack()
    try:
        with pytest.raises(OSError):
            await stack.listen("127.0.0.1", 0, ("tcp",))  # one transport: nothing to share
        assert len(calls) == 1
    finally:
        stack.close()
