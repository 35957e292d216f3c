"""CPU cost of the SIP message layer on the UAS path, in µs per operation.

What a call through our UAS asks of ``siphon.sip.parser`` and ``siphon.sip.message``
for SIPp's built-in ``uac`` scenario (the same datagrams as
``benchmarks/sip_inprocess.py``), measured one operation at a time, without the
transaction layer, the user agent or the event loop:

- ``parse_datagram`` of the INVITE (with SDP), the ACK and the BYE;
- each request parsed, then read the way the stack and the user agent read it
  (top Via several times, From/To and their tags, CSeq, Call-ID, Contact,
  Record-Route, Request-URI); printed with the parse included and without;
- ``make_response(...)`` + ``to_bytes()`` for 100 Trying, 180 Ringing, the 200 OK
  with the SDP answer, and the 200 OK to the BYE, from an already parsed request.

Requests are those of ``--calls`` distinct calls (branch, From tag and Call-ID
differ per call, as SIPp sends them), each parsed once per repeat, so nothing is
measured on a value seen a moment before unless real traffic repeats it too (the
To of an INVITE, Contact, CSeq, Request-URI). Each figure is CPU time
(``time.process_time``, so time the core spends on other processes is not counted)
per operation over the ``--calls`` operations, repeated ``--repeat`` times; the
median and the best of the repeats are printed. Pin it to one core:

    taskset -c 0 python benchmarks/sip_message_cost.py [--calls 5000] [--repeat 9]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

# SIPp 3.6's built-in "uac" scenario, as benchmarks/sip_inprocess.py feeds it.
from sip_inprocess import _SDP, IN_DIALOG, INVITE

from siphon.sip.message import Request
from siphon.sip.parser import parse_datagram

TAG = "8f2a61c04b7e"


def call_datagrams(n: int) -> tuple[bytes, bytes, bytes]:
    """INVITE, ACK and BYE of call ``n``: branch, From tag and Call-ID differ per call."""
    invite = INVITE.format(n=n, step=1, to_tag="", cseq="1 INVITE", length=len(_SDP))
    ack = IN_DIALOG.format(method="ACK", n=n, step=2, to_tag=f";tag={TAG}", cseq="1 ACK")
    bye = IN_DIALOG.format(method="BYE", n=n, step=3, to_tag=f";tag={TAG}", cseq="2 BYE")
    return invite.encode(), ack.encode(), bye.encode()


# What our answer carries (user_agent.py): Contact, Allow, Supported, Server.
CONTACT = ("Contact", "<sip:127.0.0.1:5060;transport=udp>")
SERVER = ("Server", "SIPHON/0.1")
ALLOW = ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER")
SDP_ANSWER = (
    b"v=0\r\no=siphon 1 1 IN IP4 127.0.0.1\r\ns=siphon\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 20000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)


def read_invite(request: Request) -> object:
    """The reads of an INVITE by the stack, the transaction layer and the user agent."""
    via = request.top_via  # sip_stack._request_received: rport / received
    via = request.top_via  # transaction.server_key
    branch, host = via.branch, via.host
    request.top_via  # noqa: B018 - ServerTxn: response destination, twice
    request.top_via  # noqa: B018
    request.to_tag  # noqa: B018 - a new dialog or an in-dialog request?
    contacts = request.contacts
    request.record_routes  # noqa: B018
    request.call_id  # noqa: B018
    # Dialog.from_uas
    return (
        branch,
        host,
        request.from_tag,
        contacts[0].uri,
        request.call_id,
        request.to_addr,
        request.from_addr,
        request.get_all("Record-Route"),
        request.cseq.seq,
        request.request_uri,
    )


def read_in_dialog(request: Request) -> object:
    """The reads of an ACK or a BYE: transaction key, dialog id, CSeq check."""
    via = request.top_via
    via = request.top_via
    request.top_via  # noqa: B018
    request.to_tag  # noqa: B018
    return (
        via.branch,
        via.host,
        request.call_id,
        request.to_tag,
        request.from_tag,
        request.cseq.seq,
        request.cseq.method,
    )


def parsed(data: bytes) -> Request:
    request = parse_datagram(data)
    assert isinstance(request, Request)
    return request


def cases(calls: int) -> list[tuple[str, Callable[[Any], object], list[Any]]]:
    """(name, operation, the items it is applied to one after the other)."""
    datagrams = [call_datagrams(n) for n in range(calls)]
    invites = [d[0] for d in datagrams]
    acks = [d[1] for d in datagrams]
    byes = [d[2] for d in datagrams]
    invite = parsed(invites[0])
    bye = parsed(byes[0])
    read_invite(invite)  # views cached, as when the user agent answers
    read_in_dialog(bye)
    ok_headers = [
        CONTACT,
        ALLOW,
        ("Supported", "replaces, timer"),
        ("Content-Type", "application/sdp"),
        SERVER,
    ]
    return [
        ("parse INVITE (with SDP)", parse_datagram, invites),
        ("parse ACK", parse_datagram, acks),
        ("parse BYE", parse_datagram, byes),
        ("parse + reads, INVITE", lambda data: read_invite(parsed(data)), invites),
        ("parse + reads, ACK", lambda data: read_in_dialog(parsed(data)), acks),
        ("parse + reads, BYE", lambda data: read_in_dialog(parsed(data)), byes),
        (
            "100 Trying: make_response + to_bytes",
            lambda r: r.make_response(100, headers=[SERVER]).to_bytes(),
            [invite] * calls,
        ),
        (
            "180 Ringing: make_response + to_bytes",
            lambda r: r.make_response(180, to_tag=TAG, headers=[CONTACT, SERVER]).to_bytes(),
            [invite] * calls,
        ),
        (
            "200 OK + SDP: make_response + to_bytes",
            lambda r: r.make_response(
                200, to_tag=TAG, headers=ok_headers, body=SDP_ANSWER
            ).to_bytes(),
            [invite] * calls,
        ),
        (
            "200 OK to BYE: make_response + to_bytes",
            lambda r: r.make_response(200, headers=[SERVER]).to_bytes(),
            [bye] * calls,
        ),
    ]


def measure(operation: Callable[[Any], object], items: list[Any], repeat: int) -> list[float]:
    """µs per operation in each repeat (CPU time of this process)."""
    for item in items[:100]:  # warm up (header-name memo, regex cache)
        operation(item)
    out = []
    for _ in range(repeat):
        start = time.process_time_ns()
        for item in items:
            operation(item)
        out.append((time.process_time_ns() - start) / 1000 / len(items))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calls", type=int, default=5000, help="distinct calls (operations per repeat)"
    )
    parser.add_argument("--repeat", type=int, default=9, help="repeats (median and best shown)")
    args = parser.parse_args()

    results: dict[str, float] = {}
    print(f"{'operation':<42} {'median µs':>10} {'best µs':>9}")
    for name, operation, items in cases(args.calls):
        times = measure(operation, items, args.repeat)
        results[name] = statistics.median(times)
        print(f"{name:<42} {results[name]:>10.2f} {min(times):>9.2f}")
    print()
    for kind in ("INVITE", "ACK", "BYE"):
        label = "parse INVITE (with SDP)" if kind == "INVITE" else f"parse {kind}"
        reads = results[f"parse + reads, {kind}"] - results[label]
        print(f"{'reads alone (difference), ' + kind:<42} {reads:>10.2f}")
    per_call = sum(
        value
        for name, value in results.items()
        if name.startswith("parse + reads") or "make_response" in name
    )
    print(f"{'per call (3 parses + reads, 4 responses)':<42} {per_call:>10.2f}")


if __name__ == "__main__":
    main()
