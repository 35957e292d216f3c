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
differ per call, as SIPp sends them, and so does the To tag of the ACK and BYE, which
our 200 OK sets), each parsed once per repeat, so nothing is
measured on a value seen a moment before unless real traffic repeats it too (the
To of an INVITE, Contact, CSeq, Request-URI). Each figure is CPU time
(``time.process_time``, so time the core spends on other processes is not counted)
per operation over the ``--calls`` operations, repeated ``--repeat`` times; the
median and the best of the repeats are printed. The calls go by windows of
``--window`` calls in flight (see ``measure``). Pin it to one core:

    taskset -c 0 python benchmarks/sip_message_cost.py [--calls 5000] [--repeat 9] [--window 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

# SIPp 3.6's built-in "uac" scenario, as benchmarks/sip_inprocess.py feeds it.
from sip_inprocess import sipp_requests

from siphon.sip.message import Request
from siphon.sip.parser import parse_datagram

TAG = "8f2a61c04b7e"


def to_tag(n: int) -> str:
    """A To tag of call ``n``, as our UAS makes them: 12 hex digits, new in every call."""
    return f"{n * 0x9E3779B1 % 16**12:012x}"


def call_datagrams(n: int) -> tuple[bytes, bytes, bytes]:
    """INVITE, ACK and BYE of call ``n``: branch, tags and Call-ID differ per call."""
    invite, ack, bye = sipp_requests(n, to_tag(n))
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


Case = tuple[str, Callable[[Any], object], list[Any]]


def cases(calls: int) -> list[list[Case]]:
    """Groups of (name, operation, the items it is applied to, item i of call i).

    The cases of a group are measured together, call window by call window (see
    ``measure``): the INVITE, ACK and BYE of a call are parsed close together, as a
    server receives them, so what a call's INVITE leaves in the parser's memos (its
    From and Call-ID lines) is there for its ACK and BYE, as on a real server.
    """
    datagrams = [call_datagrams(n) for n in range(1, calls + 1)]
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
    responses: list[Case] = [
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
    return [
        [
            ("parse INVITE (with SDP)", parse_datagram, invites),
            ("parse ACK", parse_datagram, acks),
            ("parse BYE", parse_datagram, byes),
        ],
        [
            ("parse + reads, INVITE", lambda data: read_invite(parsed(data)), invites),
            ("parse + reads, ACK", lambda data: read_in_dialog(parsed(data)), acks),
            ("parse + reads, BYE", lambda data: read_in_dialog(parsed(data)), byes),
        ],
        *([case] for case in responses),
    ]


def measure(group: list[Case], repeat: int, window: int) -> list[list[float]]:
    """µs per operation of each case in each repeat (CPU time of this process).

    The calls go by windows of ``window`` calls in flight: each case runs over the
    window's calls, then the next case over the same calls, then the next window.
    """
    calls = len(group[0][2])
    for _, operation, items in group:  # warm up (header-name memo, regex cache)
        for item in items[:100]:
            operation(item)
    out: list[list[float]] = [[] for _ in group]
    clock = time.process_time_ns
    for _ in range(repeat):
        spent = [0] * len(group)
        for first in range(0, calls, window):
            for index, (_, operation, items) in enumerate(group):
                chunk = items[first : first + window]
                start = clock()
                for item in chunk:
                    operation(item)
                spent[index] += clock() - start
        for index, total in enumerate(spent):
            out[index].append(total / 1000 / calls)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calls", type=int, default=5000, help="distinct calls (operations per repeat)"
    )
    parser.add_argument("--repeat", type=int, default=9, help="repeats (median and best shown)")
    parser.add_argument(
        "--window",
        type=int,
        default=50,
        help="calls in flight: a call's INVITE, ACK and BYE are this many calls apart",
    )
    args = parser.parse_args()

    results: dict[str, float] = {}
    print(f"{'operation':<42} {'median µs':>10} {'best µs':>9}")
    for group in cases(args.calls):
        measured = measure(group, args.repeat, args.window)
        for (name, _, _), times in zip(group, measured, strict=True):
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
