"""The second round of message-layer fast paths against the code they stand in for.

- ``parse_datagram`` looks up the shape of a message (its header keys in order) for
  where the values it checks are, and the usual request lines in a memo;
- ``parse_via`` reads a Via from a template of the same text without its branch value,
  and ``name_addr_parts`` a lone ``;tag=`` without the parameter regex;
- SipUri, NameAddr and Via are built without their dataclass ``__init__``;
- a parsed message keeps its header keys (``_keys``) to find headers without a loop;
- responses keep the wire form of the lines they copy from their request, and of the
  lines they add, and write it out in one piece.

Each must give exactly what the general code gives: the same message, views, errors
and bytes.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siphon.errors import RemoteProtocolError
from siphon.sip import message as message_module
from siphon.sip import parser, uri
from siphon.sip.message import Message, Request, Response
from siphon.sip.parser import parse_datagram
from siphon.sip.uri import NameAddr, SipUri, Via, parse_name_addr, parse_uri, parse_via
from tests.sip.test_message_fast_paths import (
    SIPP_INVITE,
    _NeverKnown,
    full_parse,
    outcome,
    reference_response,
)

# --- parse_datagram: shapes and request lines against the full parse -----------------


@contextmanager
def no_memos(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The full parse of test_message_fast_paths, the memos of this round off too."""
    with full_parse(monkeypatch), monkeypatch.context() as patch:
        patch.setattr(parser, "_REQUEST_LINES", _NeverKnown())
        patch.setattr(message_module, "_PLAIN_MAX_FORWARDS", {})
        yield


def fast_and_full(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    fast = outcome(data)
    assert outcome(data) == fast  # memos filled now
    with no_memos(monkeypatch):
        full = outcome(data)
    return fast, full


_LINES = SIPP_INVITE.split("\r\n")
_START, _HEAD, _BODY = _LINES[0], _LINES[1:11], "\r\n".join(_LINES[11:])


def _message(start: str, head: list[str]) -> bytes:
    return "\r\n".join([start, *head, _BODY]).encode("utf-8", "surrogateescape")


_EXTRA_LINES = [
    "Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bK77",
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1, SIP/2.0/TCP p;branch=z9hG4bK2",
    "Max-Forwards: 69",
    "Max-Forwards: 256",
    "Content-Length: 4",
    "l: 4",
    "Content-Length: 5",
    "Call-ID: other",
    "CSeq: 2 INVITE",
    "From: <sip:x@y>;tag=2",
    "To: <sip:x@y>",
    "t: <sip:x@y>",
    "Record-Route: <sip:p1;lr>",
    "Record-Route: <sip:p2;lr>",
    "Timestamp: 5",
    "Require: 100rel",
]


def test_shapes_parse_as_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers dropped, repeated, moved and added: every shape, new or seen, as before."""
    rnd = random.Random(3261)
    starts = [_START, "SIP/2.0 180 Ringing", "SIP/2.0 200 OK", "BYE sip:a@b SIP/2.0"]
    for _ in range(400):
        head = [line for line in _HEAD if rnd.random() > 0.1]
        head += rnd.sample(_EXTRA_LINES, rnd.randint(0, 3))
        rnd.shuffle(head)
        data = _message(rnd.choice(starts), head)
        fast, full = fast_and_full(data, monkeypatch)
        assert fast == full, data


@pytest.mark.parametrize(
    "start",
    [
        _START,
        "INVITE sip:service@127.0.0.1:5060 SIP/2.0 ",
        "INVITE  sip:service@127.0.0.1:5060 SIP/2.0",
        "INVITE sip:service@127.0.0.1:5060 sip/2.0",
        "INVITE sip:service@127.0.0.1:5060 SIP/3.0",
        "FOO sip:service@127.0.0.1:5060 SIP/2.0",
        "INVITE sip:a@b?x=y SIP/2.0",
        "INVITE " + "sip:" + "a" * 300 + "@b SIP/2.0",  # longer than the memo keeps
        "INVITE " + "sip:" + "a" * 9000 + "@b SIP/2.0",  # 414
    ],
)
def test_request_lines_parse_as_in_full(start: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, full = fast_and_full(_message(start, _HEAD), monkeypatch)
    assert fast == full


def test_a_response_may_repeat_max_forwards() -> None:
    data = _message("SIP/2.0 200 OK", [*_HEAD, "Max-Forwards: 3"])
    assert parse_datagram(data).count("Max-Forwards") == 2
    with pytest.raises(RemoteProtocolError, match="more than one Max-Forwards"):
        parse_datagram(_message(_START, [*_HEAD, "Max-Forwards: 3"]))


# --- Via templates and lone tags --------------------------------------------------------

_BRANCH_PIECES = ["z9hG4bK", "-1", "x", "", " ", "\t", "\u3000", '"', "(", ")", "=", ",", "é", ";"]
_OTHER_PARAMS = ["", ";rport", ";rport=5", ";received=1.2.3.4", ";BRANCH=y", ";branch=", ";x"]


def _outcome(parse: Any, text: str) -> object:
    try:
        return parse(text)
    except RemoteProtocolError as exc:
        return ("error", exc.reason)


_SENT_BYS = [
    "SIP/2.0/UDP 127.0.0.1:5061",
    "SIP/2.0/tcp h",
    "SIP/2.0/UDP [::1]:99999",
    "SIP / 2.0/UDP h",
]


@settings(max_examples=1500, deadline=None)
@given(
    sent_by=st.sampled_from(_SENT_BYS),
    before=st.sampled_from(_OTHER_PARAMS),
    branch=st.lists(st.sampled_from(_BRANCH_PIECES), max_size=4).map("".join),
    after=st.sampled_from(_OTHER_PARAMS),
)
def test_via_templates_agree_with_the_general_parser(
    sent_by: str, before: str, branch: str, after: str
) -> None:
    # The template made from one text, then used for it and for another branch.
    for value in (branch, branch, "z9hG4bKother"):
        text = f"{sent_by}{before};branch={value}{after}"
        assert _outcome(parse_via, text) == _outcome(uri._parse_via_general, text), text


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP h;branch=a;BRANCH=b",
        "SIP/2.0/UDP h;branch=;branch=b",
        "SIP/2.0/UDP h;branch=a;branch=",
        "SIP/2.0/UDP h;rport;branch=z9hG4bK1",
        "SIP/2.0/UDP h;branch=z9hG4bK1;rport;received=1.2.3.4",
        "SIP/2.0/UDP h;branch=z9hG4bK1 (comment)",
        "SIP/2.0/UDP h;branch=z9hG4bK(1)",
        'SIP/2.0/UDP h;branch="z9hG4bK1"',
        "SIP/2.0/UDP h;branch=z9\u3000",
        "SIP/2.0/UDP h;branch=z9\x00",
        "SIP/2.0/UDP h ;branch=z9hG4bK1",
        "SIP/2.0/UDP h;branch",
        "SIP/2.0/UDP h;xbranch=1;branch=2",
    ],
)
def test_via_templates_on_tricky_cases(text: str) -> None:
    for branch in ("z9hG4bK1", "z9hG4bK2"):
        varied = text.replace("z9hG4bK1", branch)
        expected = _outcome(uri._parse_via_general, varied)
        assert _outcome(parse_via, varied) == expected, varied
        assert _outcome(parse_via, varied) == expected, varied


@settings(max_examples=1000, deadline=None)
@given(
    addr=st.sampled_from(["sipp <sip:sipp@127.0.0.1:5061>", "<sip:a@b>", '"a>b" <sip:a@b>']),
    tag=st.lists(st.sampled_from(_BRANCH_PIECES), max_size=4).map("".join),
)
def test_lone_tags_agree_with_the_general_parser(addr: str, tag: str) -> None:
    text = f"{addr};tag={tag}"
    expected = _outcome(uri._parse_name_addr_general, text)
    assert _outcome(parse_name_addr, text) == expected
    assert _outcome(parse_name_addr, text) == expected


# --- objects built without __init__ ---------------------------------------------------


def _every_field_set(obj: Any) -> bool:
    return all(hasattr(obj, f.name) for f in dataclasses.fields(obj))


def test_fast_built_objects_equal_constructed_ones() -> None:
    addr = parse_name_addr("Bob <sip:bob@example.com:5070;transport=tcp>;tag=1;q=0.5")
    assert addr == NameAddr(
        SipUri("example.com", "bob", None, 5070, "sip", {"transport": "tcp"}, {}),
        "Bob",
        {"tag": "1", "q": "0.5"},
        False,
    )
    assert _every_field_set(addr) and _every_field_set(addr.uri)
    bare = parse_name_addr("<sip:h>")
    assert bare == NameAddr(SipUri("h")) and _every_field_set(bare.uri)
    ruri = parse_uri("sips:a@h;lr")
    assert ruri == SipUri("h", "a", None, None, "sips", {"lr": None}, {})
    assert _every_field_set(ruri)
    for text, params in [
        ("SIP/2.0/UDP h:5;branch=z9hG4bK1", {"branch": "z9hG4bK1"}),
        ("SIP/2.0/UDP h:5;rport;branch=z9hG4bK1", {"rport": None, "branch": "z9hG4bK1"}),
    ]:
        for _ in range(2):  # the template made, then used
            via = parse_via(text)
            assert via == Via("UDP", "h", 5, params) and _every_field_set(via)
            assert list(via.params) == list(params)


def test_fast_built_objects_share_nothing() -> None:
    text = "SIP/2.0/UDP h:5;rport;branch=z9hG4bK1"
    first, second = parse_via(text), parse_via(text)
    first.params["rport"] = "9"
    assert second.params == {"rport": None, "branch": "z9hG4bK1"}
    one, two = parse_uri("sip:a@h;lr"), parse_uri("sip:a@h;lr")
    one.params["x"] = "y"
    assert two.params == {"lr": None}


# --- header keys kept by the parser -----------------------------------------------------

_CHANGES = [
    lambda m: m.add("Require", "timer"),
    lambda m: m.prepend("Record-Route", "<sip:p;lr>"),
    lambda m: m.set("Max-Forwards", "9"),
    lambda m: m.set("Contact", "<sip:c@d>"),
    lambda m: m.remove("Subject"),
    lambda m: m.remove("Contact"),
    lambda m: m.add("Contact", "<sip:second@d>"),
    lambda m: m.replace_top_via(Via("UDP", "h", 5, {"branch": "z9hG4bK5"})),
]


def _reads(message: Message) -> object:
    names = ["Via", "v", "Contact", "m", "Max-Forwards", "Require", "Record-Route"]
    names += ["Subject", "X-None", "content-length"]
    return (
        message.headers,
        [message.get(n) for n in names],
        [message.get_all(n) for n in names],
        [message.count(n) for n in names],
        [n in message for n in names],
        message.max_forwards,
        message.contacts,
        message.record_routes,
        message.option_tags("Require"),
        message.content_type,
    )


def test_kept_keys_follow_header_changes() -> None:
    data = _message(_START, [*_HEAD, "Record-Route: <sip:p1;lr>", "Record-Route: <sip:p2;lr>"])
    for change in _CHANGES:
        parsed = parse_datagram(data)
        assert parsed._keys is not None
        built = Request("INVITE", parsed.uri, parsed.headers, parsed.body)
        assert built._keys is None  # looked up line by line
        assert _reads(parsed) == _reads(built)
        change(parsed)
        change(built)
        assert _reads(parsed) == _reads(built)


@pytest.mark.parametrize("value", ["70", "070", "0", "255", "256", " 7", "\u0667", "", "x"])
def test_max_forwards_read_as_before(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = Request("OPTIONS", "sip:a@b", [("Max-Forwards", value)])

    def read() -> object:
        try:
            return msg.max_forwards
        except RemoteProtocolError as exc:
            return ("error", exc.reason, str(exc))

    fast = read()
    monkeypatch.setattr(message_module, "_PLAIN_MAX_FORWARDS", {})
    assert read() == fast
    if value in ("70", "070", " 7"):
        assert fast == int(value)


# --- responses written from kept wire forms ---------------------------------------------


def _request(extra: str = "") -> Request:
    msg = parse_datagram(SIPP_INVITE.replace("Subject", extra + "Subject").encode())
    assert isinstance(msg, Request)
    return msg


_ADDED = (("Contact", "<sip:me@h>"), ("Server", "x"), ("Record-Route", "<sip:p;lr>"))


_EXTRA_REQUEST_LINES = ["", "Timestamp: 54\r\n", "Via: SIP/2.0/TCP p;branch=z9hG4bK2\r\n"]


@pytest.mark.parametrize("extra", _EXTRA_REQUEST_LINES)
def test_responses_in_any_order(extra: str) -> None:
    rnd = random.Random(17)
    for _ in range(30):
        request = _request(extra)
        for _ in range(6):
            status = rnd.choice([100, 180, 183, 200, 486, 487])
            tag = rnd.choice([None, "", "t1", "t2"])
            added = tuple(rnd.sample(_ADDED, rnd.randint(0, 3)))
            body = rnd.choice([b"", b"v=0\r\n"])
            response = request.make_response(status, to_tag=tag, headers=added, body=body)
            assert response.to_bytes() == reference_response(request, status, tag, added, body)


def test_responses_to_a_request_with_a_to_tag() -> None:
    request = parse_datagram(
        SIPP_INVITE.replace(
            "To: service <sip:service@127.0.0.1:5060>", "To: <sip:s@h>;tag=theirs"
        ).encode()
    )
    assert isinstance(request, Request)
    for status, tag in ((180, "t1"), (200, "t1"), (200, "t2"), (100, "t1")):
        response = request.make_response(status, to_tag=tag)
        assert response.to_bytes() == reference_response(request, status, tag)


def test_responses_to_a_request_without_to() -> None:
    request = Request("INVITE", "sip:a@b", [("Via", "SIP/2.0/UDP h;branch=z9hG4bK1")])
    response = request.make_response(400, to_tag="t")
    assert response.to_bytes() == reference_response(request, 400, "t")


def test_a_changed_response_is_written_from_its_lines() -> None:
    request = _request()
    for change in [
        lambda r: r.add("Warning", '399 h "x"'),
        lambda r: r.set("To", "<sip:o@h>;tag=9"),
        lambda r: r.remove("Server"),
        lambda r: r.prepend("Via", "SIP/2.0/UDP first;branch=z9hG4bK4"),
    ]:
        response = request.make_response(180, to_tag="t", headers=[("Server", "x")])
        change(response)
        expected = Response(response.status, response.reason, response.headers, response.body)
        assert response.to_bytes() == expected.to_bytes()
        assert b"Content-Length: 0\r\n\r\n" in response.to_bytes()


def test_a_content_length_among_the_added_lines() -> None:
    request = _request()
    response = request.make_response(
        200, to_tag="t", headers=[("Content-Length", "99"), ("l", "1"), ("X-A", "1")], body=b"ab"
    )
    data = response.to_bytes()
    assert data.count(b"Content-Length") == 1 and b"Content-Length: 2\r\nX-A: 1\r\n\r\nab" in data


def test_added_lines_given_as_lists_and_odd_names() -> None:
    request = _request()
    pairs: Any = [["Server", "x"], ("m", "<sip:me@h>"), ("X-Odd", "é")]
    response = request.make_response(180, to_tag="t", headers=pairs)
    expected = reference_response(request, 180, "t", (("Server", "x"), ("Contact", "<sip:me@h>")))
    assert response.to_bytes() == expected.replace(
        b"Content-Length", "X-Odd: é\r\nContent-Length".encode()
    )
    assert response.headers[-3:] == [("Server", "x"), ("Contact", "<sip:me@h>"), ("X-Odd", "é")]


def test_the_added_lines_memo_is_bounded() -> None:
    request = _request()
    for n in range(message_module._MAX_ADDED + 10):
        response = request.make_response(200, headers=[("X-N", str(n))])
        assert response.to_bytes().endswith(f"X-N: {n}\r\nContent-Length: 0\r\n\r\n".encode())
    assert len(message_module._ADDED) <= message_module._MAX_ADDED
    long_value = "v" * (message_module._MAX_ADDED_VALUE + 1)
    request.make_response(200, headers=[("X-Long", long_value)])
    assert ("X-Long", long_value) not in message_module._ADDED
