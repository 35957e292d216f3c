"""The message layer's fast paths and memos against the full parse.

``parse_datagram`` reads the usual messages without the general code: known header
lines come from a memo, From, To and the Request-URI are only split into memoised
parts at validation (their objects built when read), a Via's sent-by is memoised,
and responses copy header lines picked out once per request. Each of these must
give exactly what the full parse gives: the same message, the same views, the same
error (status hint, reason and text), and objects no other message shares.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siphon.errors import RemoteProtocolError
from siphon.sip import message as message_module
from siphon.sip import parser, uri
from siphon.sip.message import Message, Request, Response, reason_phrase
from siphon.sip.parser import parse_datagram
from siphon.sip.uri import SipUri, Via

FIXTURES = Path(__file__).parent / "fixtures"
ALL_FIXTURES = sorted(str(p.relative_to(FIXTURES).with_suffix("")) for p in FIXTURES.rglob("*.sip"))

SIPP_INVITE = (
    "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1\r\n"
    "From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001\r\n"
    "To: service <sip:service@127.0.0.1:5060>\r\n"
    "Call-ID: 1-4242@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: sip:sipp@127.0.0.1:5061\r\n"
    "Max-Forwards: 70\r\n"
    "Subject: Performance Test\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 4\r\n"
    "\r\n"
    "v=0\n"
)


class _NeverKnown(dict[str, Any]):
    """A memo that never hits and keeps nothing."""

    def get(self, key: str, default: Any = None) -> Any:
        return default

    def __setitem__(self, key: str, value: Any) -> None:
        pass


# --- the reference: the full parse, as it was before the fast paths -------------------
# parse_datagram, _content_length and _validate as they read every message before
# (every typed header parsed in full at validation), with the general parsers of
# uri.py for every view and every header line through the general header code.


def _reference_content_length(message: Message) -> int | None:
    value = message._first("content-length")
    if value is None:
        return None
    value = value.strip()
    digits = value.lstrip("0")
    if not value.isascii() or not value.isdigit() or len(digits) > 9:
        raise RemoteProtocolError(
            f"bad Content-Length {value[:20]!r}",
            reason="Bad Content-Length",
            partial=_partial(message),
        )
    return int(digits or "0")


def _reference_validate(message: Message) -> None:
    partial = _partial(message)
    keys = [header[0] for header in message._headers]
    present = set(keys)
    for key, name in parser._MANDATORY:
        if key not in present:
            raise RemoteProtocolError(
                f"missing {name} header", reason=f"Missing {name}", partial=partial
            )
    for key in ("call-id", "cseq", "from", "to", "content-length"):
        if keys.count(key) > 1:
            what = "Content-Length" if key == "content-length" else f"{key} header"
            raise RemoteProtocolError(
                f"more than one {what}", reason="Duplicate Header", partial=partial
            )
    try:
        if not message.call_id:
            raise RemoteProtocolError("empty Call-ID", reason="Bad Call-ID")
        cseq = message.cseq
        message.top_via  # noqa: B018
        message.from_addr  # noqa: B018
        message.to_addr  # noqa: B018
        if isinstance(message, Request):
            if cseq.method != message.method:
                raise RemoteProtocolError(
                    f"CSeq method {cseq.method} does not match {message.method}",
                    reason="CSeq Method Mismatch",
                )
            if keys.count("max-forwards") > 1:
                raise RemoteProtocolError("more than one Max-Forwards", reason="Duplicate Header")
            max_forwards = message._first("max-forwards")
            if max_forwards is not None and not parser._max_forwards_ok(max_forwards):
                raise RemoteProtocolError(
                    f"bad Max-Forwards {max_forwards[:20]!r}", reason="Bad Max-Forwards"
                )
            ruri = message.request_uri
            if ruri.scheme not in ("sip", "sips", "tel"):
                raise RemoteProtocolError(
                    f"unsupported URI scheme {ruri.scheme[:20]!r}", status_hint=416
                )
            if isinstance(ruri, SipUri) and ruri.headers:
                raise RemoteProtocolError(
                    "header fields in the Request-URI", reason="Bad Request-URI"
                )
    except RemoteProtocolError as exc:
        exc.partial = partial
        raise


def _partial(message: Message) -> Request | None:
    return message if isinstance(message, Request) else None


def _reference_parse(data: bytes) -> Message:
    if len(data) > parser.MAX_DATAGRAM_SIZE:
        raise RemoteProtocolError(
            f"datagram of {len(data)} bytes exceeds {parser.MAX_DATAGRAM_SIZE}",
            status_hint=513,
        )
    offset = 0 if data[:1] not in (b"\r", b"\n") else len(data) - len(data.lstrip(b"\r\n"))
    if offset >= len(data):
        raise RemoteProtocolError("empty message")
    head_end, body_start = parser._find_head_end(data, offset)
    if head_end == -1:
        message = parser._parse_head(data[offset:].rstrip(b"\r\n"))
        raise RemoteProtocolError(
            "no empty line after the headers",
            reason="Missing Header End",
            partial=_partial(message),
        )
    message = parser._parse_head(data[offset:head_end])
    length = _reference_content_length(message)
    available = len(data) - body_start
    if length is None:
        message.body = data[body_start:]
    elif length > available:
        raise RemoteProtocolError(
            f"Content-Length {length} exceeds the {available} body bytes received",
            reason="Bad Content-Length",
            partial=_partial(message),
        )
    else:
        message.body = data[body_start : body_start + length]
    _reference_validate(message)
    return message


@contextmanager
def full_parse(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``parse_datagram`` is the reference parse, the views the general parsers."""
    with monkeypatch.context() as patch:
        patch.setattr(parser, "_KNOWN_NAMES", _NeverKnown())
        patch.setattr(parser, "_HEADER_LINES", _NeverKnown())
        patch.setattr(message_module, "name_addr_parts", lambda value: None)
        patch.setattr(message_module, "parse_name_addr", uri._parse_name_addr_general)
        patch.setattr(message_module, "parse_uri", uri._parse_uri_general)
        patch.setattr(message_module, "parse_via", uri._parse_via_general)
        patch.setattr(sys.modules[__name__], "parse_datagram", _reference_parse)
        yield


def outcome(data: bytes) -> object:
    """Everything a reader can see of a parse: the message and its views, or the error."""
    try:
        msg = parse_datagram(data)
    except RemoteProtocolError as exc:
        partial = exc.partial
        return (
            "error",
            exc.status_hint,
            exc.reason,
            str(exc),
            None if partial is None else (partial.start_line(), partial.headers),
        )
    views: list[object] = [msg.start_line(), msg.headers, msg.body, msg.to_bytes()]
    for name in ("call_id", "cseq", "vias", "from_addr", "to_addr", "from_tag", "to_tag"):
        views.append(getattr(msg, name))
    for name in ("contacts", "record_routes", "routes", "max_forwards"):
        try:
            views.append(getattr(msg, name))
        except RemoteProtocolError as exc:
            views.append(("error", exc.reason))
    if isinstance(msg, Request):
        views.append(msg.request_uri)
    return views


def both_ways(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    fast = outcome(data)
    again = outcome(data)  # memos filled now
    assert again == fast
    with full_parse(monkeypatch):
        full = outcome(data)
    return fast, full


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_fixtures_parse_as_in_full(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = (FIXTURES / f"{name}.sip").read_bytes()
    fast, full = both_ways(data, monkeypatch)
    assert fast == full


# Values mixed into the mandatory headers and the Request-URI: forms at the edges of
# the fast paths (quotes, escapes, ports, brackets, white space, commas, ">").
_PIECES = [
    "sip:",
    "sips:",
    "tel:",
    "SIP:",
    "alice",
    "Bob",
    "@",
    ":",
    ";",
    "=",
    "?",
    "%41",
    ",",
    "example.com",
    "127.0.0.1",
    "[::1]",
    "5060",
    "65536",
    "lr",
    ";tag=",
    "tag=x",
    "<",
    ">",
    '"',
    "\\",
    " ",
    "\t",
    "\x0b",
    "é",
    "(",
    ")",
    "SIP/2.0/",
    "UDP",
    ";branch=z9hG4bK1",
    "rport",
    "sipp <sip:sipp@127.0.0.1:5061>",
    "<sip:a@b>",
    "1",
    "INVITE",
]
_values = st.lists(st.sampled_from(_PIECES), max_size=10).map("".join)

_FIELDS = {
    "from": "From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001",
    "to": "To: service <sip:service@127.0.0.1:5060>",
    "via": "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1",
    "cseq": "CSeq: 1 INVITE",
    "call-id": "Call-ID: 1-4242@127.0.0.1",
    "max-forwards": "Max-Forwards: 70",
    "content-length": "Content-Length: 4",
    "contact": "Contact: sip:sipp@127.0.0.1:5061",
}


def _with(field: str, value: str) -> bytes:
    if field == "ruri":
        return SIPP_INVITE.replace(
            "INVITE sip:service@127.0.0.1:5060 SIP/2.0", f"INVITE {value} SIP/2.0"
        ).encode("utf-8", "surrogateescape")
    line = _FIELDS[field]
    return SIPP_INVITE.replace(line, f"{line.split(':')[0]}: {value}").encode(
        "utf-8", "surrogateescape"
    )


@settings(max_examples=600, deadline=None)
@given(field=st.sampled_from([*_FIELDS, "ruri"]), value=_values)
def test_mutated_headers_parse_as_in_full(field: str, value: str) -> None:
    data = _with(field, value)
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, full = both_ways(data, monkeypatch)
    assert fast == full


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("from", '"a>b" <sip:x@y>;tag=1'),  # a ">" in the quoted name
        ("from", '"<sip:c@d>" <sip:x@y>;tag=1'),
        ("from", "<sip:x@y:99999>;tag=1"),  # port out of range: the general path
        ("from", "<sip:x@y> ;tag=1"),
        ("from", "<sip:x@y>;tag=1 ;x"),
        ("from", "<sip:x@y>;tag=\u3000"),
        ("from", "<sip:x@y>>;tag=1"),
        ("from", "a>b <sip:x@y>"),
        ("to", "<sip:x@y>;tag=a;tag=b"),
        ("to", "sip:x@y;tag=1"),
        ("to", "sip:x,y@z"),
        ("via", "SIP/2.0/UDP 127.0.0.1:5061"),
        ("via", "SIP/2.0/UDP 127.0.0.1:5061;"),
        ("via", "SIP/2.0/UDP 127.0.0.1:5061;;branch=x"),
        ("via", "SIP/2.0/UDP 127.0.0.1:70000;branch=x"),
        ("via", "SIP/2.0/UDP 127.0.0.1:5061;branch=x (comment)"),
        ("via", "SIP/2.0/UDP 127.0.0.1:5061;branch=x, SIP/2.0/TCP h;branch=y"),
        ("via", "SIP/2.0/UDP 127.0.0.1:5061;branch=\u3000"),
        ("via", "  "),
        ("via", "sip/2.0/udp 127.0.0.1;branch=x"),
        ("max-forwards", "070"),
        ("max-forwards", "256"),
        ("max-forwards", "\u0667"),
        ("content-length", "0004"),
        ("content-length", "\u0664"),
        ("content-length", "4 "),
        ("content-length", "9999999999"),
        ("cseq", "1  INVITE"),
        ("call-id", " "),
        ("ruri", "sip:a@b?x=y"),
        ("ruri", "urn:x"),
        ("ruri", "tel:+1555"),
        ("ruri", "SIP:a@b"),
    ],
)
def test_edge_values_parse_as_in_full(
    field: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, full = both_ways(_with(field, value), monkeypatch)
    assert fast == full


def test_random_line_shapes_parse_as_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines the memo knows, then the same lines folded, repeated, unknown or broken."""
    rnd = random.Random(4475)
    lines = SIPP_INVITE.split("\r\n")
    head, body = lines[1:11], "\r\n".join(lines[11:])
    variants = [
        lambda line: line,
        lambda line: line.replace(": ", ":\r\n "),
        lambda line: line.replace(": ", " : "),
        lambda line: line + "\r\n" + line,
        lambda line: line.replace(":", ""),
        lambda line: "X-" + line,
        lambda line: line + "\n",
        lambda line: line.replace(": ", ":\x00"),
        lambda line: line.lower(),
    ]
    for _ in range(300):
        picked = [rnd.choice(variants)(line) if rnd.random() < 0.3 else line for line in head]
        rnd.shuffle(picked)
        data = "\r\n".join([lines[0], *picked, body]).encode()
        fast, full = both_ways(data, monkeypatch)
        assert fast == full, data


@pytest.mark.parametrize(
    "data",
    [
        b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n\nbody\r\n\r\nmore",
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n\nx\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\nX: 1\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\n\r\n",
        SIPP_INVITE.replace("Subject: Performance Test\r\n", "Subject: a\nb\r\n").encode(),
        SIPP_INVITE.replace("\r\n\r\n", "\n\n\r\n\r\n").encode(),
    ],
)
def test_bare_line_feeds_end_the_head_as_before(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, full = both_ways(data, monkeypatch)
    assert fast == full


# --- memoised parts are never shared --------------------------------------------------


def test_views_of_two_messages_are_independent() -> None:
    data = SIPP_INVITE.encode()
    first = parse_datagram(data)
    assert isinstance(first, Request)
    first.from_addr.params["tag"] = "changed"
    first.from_addr.uri.params["x"] = "y"
    first.to_addr.params["tag"] = "t"
    first.vias[0].params["branch"] = "changed"
    first.contacts[0].params["expires"] = "1"
    first.request_uri.params["user"] = "phone"
    second = parse_datagram(data)
    assert isinstance(second, Request)
    assert second.from_tag == "4242SIPpTag001"
    assert second.from_addr.params == {"tag": "4242SIPpTag001"}
    assert second.from_addr.uri.params == {}
    assert second.to_tag is None and second.to_addr.params == {}
    assert second.top_via.branch == "z9hG4bK-1-1"
    assert second.contacts[0].params == {}
    assert second.request_uri.params == {}
    # And the first keeps what was done to it.
    assert first.from_tag == "changed" and first.to_tag == "t"


def test_tags_follow_header_changes() -> None:
    msg = parse_datagram(SIPP_INVITE.encode())
    assert msg.to_tag is None and msg.from_tag == "4242SIPpTag001"
    msg.set("To", "<sip:service@127.0.0.1:5060>;tag=abc")
    msg.set("From", '"X" <sip:x@y>;tag=def')
    assert msg.to_tag == "abc" and msg.from_tag == "def"
    assert msg.from_addr.display_name == "X"
    msg.remove("To")
    with pytest.raises(RemoteProtocolError, match="missing To"):
        msg.to_tag  # noqa: B018


def test_release_views_then_read_again() -> None:
    msg = parse_datagram(SIPP_INVITE.encode())
    before = (msg.from_addr, msg.to_addr, msg.vias, msg.request_uri, msg.from_tag)
    msg.release_views()
    assert msg.from_tag == before[4]
    assert (msg.from_addr, msg.to_addr, msg.vias, msg.request_uri) == before[:4]


# --- responses ----------------------------------------------------------------------------


def reference_response(
    request: Request,
    status: int,
    to_tag: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
) -> bytes:
    """RFC 3261 §8.2.6: the response written out line by line from the request."""
    lines = [f"SIP/2.0 {status} {reason_phrase(status)}"]
    for name, value in request.headers:
        key = name.lower()
        if key in ("via", "from", "call-id", "cseq") or (key == "timestamp" and status == 100):
            lines.append(f"{name}: {value}")
        elif key == "to":
            if to_tag and status != 100 and request.to_tag is None:
                value = f"{value};tag={to_tag}"
            lines.append(f"{name}: {value}")
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _answer_all(request: Request) -> None:
    for status, tag in ((100, None), (180, "t1"), (200, "t1"), (486, "t2")):
        extra = (("Contact", "<sip:me@h>"), ("Server", "x"))
        response = request.make_response(status, to_tag=tag, headers=extra, body=b"b")
        assert response.to_bytes() == reference_response(request, status, tag, extra, b"b")


def test_responses_copy_the_request_lines() -> None:
    msg = parse_datagram(
        SIPP_INVITE.replace("Subject", "Timestamp: 54\r\nSubject")
        .replace("CSeq: 1 INVITE\r\n", "CSeq: 1 INVITE\r\nVia: SIP/2.0/TCP p;branch=z9hG4bK2\r\n")
        .encode()
    )
    assert isinstance(msg, Request)
    _answer_all(msg)
    _answer_all(msg)  # from the lines picked out the first time


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.set("To", "<sip:other@h>;tag=zz"),
        lambda r: r.set("From", "<sip:other@h>;tag=ff"),
        lambda r: r.add("Via", "SIP/2.0/UDP added;branch=z9hG4bK3"),
        lambda r: r.prepend("Via", "SIP/2.0/UDP first;branch=z9hG4bK4"),
        lambda r: r.replace_top_via(Via("UDP", "h", 5, {"branch": "z9hG4bK5", "rport": "9"})),
        lambda r: r.remove("To"),
        lambda r: r.add("Timestamp", "1"),
        lambda r: r.set("CSeq", "7 INVITE"),
        lambda r: r.set("Call-ID", "other"),
        lambda r: r.add("t", "<sip:second@h>"),
    ],
)
def test_responses_follow_request_changes(change: Any) -> None:
    msg = parse_datagram(SIPP_INVITE.encode())
    assert isinstance(msg, Request)
    _answer_all(msg)
    change(msg)
    _answer_all(msg)


def test_to_bytes_with_content_length_headers() -> None:
    msg = Response(200, None, [("Via", "v"), ("Content-Length", "99"), ("X-A", "1")], b"abc")
    msg.add("l", "5")
    assert msg.to_bytes() == (b"SIP/2.0 200 OK\r\nVia: v\r\nContent-Length: 3\r\nX-A: 1\r\n\r\nabc")
    assert Response(100).to_bytes() == b"SIP/2.0 100 Trying\r\nContent-Length: 0\r\n\r\n"
