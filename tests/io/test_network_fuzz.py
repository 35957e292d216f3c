"""A live server fed mutated real messages keeps serving and never hits an internal error."""

from __future__ import annotations

import asyncio
import contextlib
import random

from siphon.errors import RemoteProtocolError
from siphon.io.call import SipCall
from tests.io.helpers import SDP_OFFER, RawUdpClient, request, running_server, tcp_exchange

INSERTS = [
    b"\r\n",
    b"\n",
    b"\x00",
    b'"',
    b"<",
    b">",
    b"%",
    b";",
    b",",
    b":",
    b" ",
    b"\xff",
    b"\r\n\r\n",
    b"SIP/2.0",
    b"z9hG4bK",
    b"tag=",
    b";rport",
    b"Content-Length: 99\r\n",
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(5)
        pos = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif op == 1:
            out[pos:pos] = rng.choice(INSERTS)
        elif op == 2:
            del out[pos : pos + rng.randint(1, 20)]
        elif op == 3:
            out = out[: max(1, pos)]
        else:
            chunk = out[pos : pos + rng.randint(1, 40)]
            out[pos:pos] = chunk
    return bytes(out)


async def _answer(call: SipCall) -> None:
    await call.answer()
    await call.wait_ended()


async def test_mutated_messages_over_udp_and_tcp() -> None:
    rng = random.Random(20261121)
    async with running_server(_answer) as server:
        port = server.sip_port
        client = await RawUdpClient.open(port)
        seeds = [
            request("INVITE", port, client_port=client.port, body=SDP_OFFER).encode(),
            request("OPTIONS", port, client_port=client.port).encode(),
            request("BYE", port, client_port=client.port, to_tag="x", cseq=2).encode(),
            request("CANCEL", port, client_port=client.port).encode(),
            request("INFO", port, client_port=client.port, to_tag="y").encode(),
        ]
        for i in range(1500):
            client.send(mutate(rng, rng.choice(seeds)))
            if i % 50 == 0:
                await asyncio.sleep(0)
        for _ in range(40):
            data = mutate(rng, rng.choice(seeds).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
            # An incomplete message gets no answer; a 400 may echo a header our own
            # parser rejects (RFC 3261 §8.2.6.2 copies it as received).
            with contextlib.suppress(TimeoutError, RemoteProtocolError):
                await tcp_exchange(port, data, expect=1, timeout=0.2)
        await asyncio.sleep(0.5)
        stats = server.stack.stats
        assert stats["internal_errors"] == 0, dict(stats)
        assert stats["bad_messages"] > 100
        # Still serving, and every call the fuzz opened is accounted for.
        probe = await RawUdpClient.open(port)
        probe.send(request("OPTIONS", port, client_port=probe.port))
        assert (await probe.recv_final()).status == 200
        probe.close()
        client.close()
