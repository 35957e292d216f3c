"""The message model: ordered headers, typed views, serialization (RFC 3261 §7, §8.2.6)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from siphon.errors import RemoteProtocolError
from siphon.sip.message import (
    BRANCH_MAGIC,
    CSeq,
    Request,
    Response,
    new_branch,
    new_call_id,
    new_tag,
    parse_cseq,
    reason_phrase,
)
from siphon.sip.parser import parse_datagram
from siphon.sip.uri import SipUri, TelUri, Via


def invite(*extra: tuple[str, str], body: bytes = b"") -> Request:
    return Request(
        "INVITE",
        "sip:bob@example.com",
        [
            ("Via", "SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds"),
            (
                "Via",
                "SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, "
                "SIP/2.0/TCP p2.example.com;branch=z9hG4bK2",
            ),
            ("Max-Forwards", "70"),
            ("To", "Bob <sip:bob@example.com>"),
            ("From", '"Alice" <sip:alice@example.com>;tag=1928301774'),
            ("Call-ID", " a84b4c76e66710@pc33.example.com "),
            ("CSeq", "314159 INVITE"),
            ("Contact", "<sip:alice@pc33.example.com>, <sip:alice@192.0.2.4>;q=0.5"),
            *extra,
        ],
        body,
    )


# --- raw header access --------------------------------------------------------------------


def test_get_is_case_insensitive_and_knows_compact_forms() -> None:
    msg = invite(("X-Custom", "kept as sent"))
    for name in ("Call-ID", "call-id", "CALL-ID", "i", "I"):
        assert msg.get(name) == " a84b4c76e66710@pc33.example.com "
    assert msg.get("v") == "SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds"
    assert msg.get("x-custom") == "kept as sent"
    assert msg.get("Subject") is None
    assert msg.get("Subject", "dflt") == "dflt"
    assert "f" in msg and "Record-Route" not in msg and 3 not in msg


def test_added_names_are_canonical() -> None:
    msg = Request(
        "OPTIONS", "sip:a@b", [("v", "SIP/2.0/UDP h"), ("cseq", "1 OPTIONS"), ("x-Odd", "1")]
    )
    assert [name for name, _ in msg.headers] == ["Via", "CSeq", "x-Odd"]
    assert list(msg.iter_headers()) == msg.headers


def test_get_all_splits_only_list_headers() -> None:
    msg = invite(
        ("WWW-Authenticate", 'Digest realm="a", nonce="b"'),
        ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
    )
    assert msg.get_all("Via") == [
        "SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds",
        "SIP/2.0/UDP p1.example.com;branch=z9hG4bK1",
        "SIP/2.0/TCP p2.example.com;branch=z9hG4bK2",
    ]
    assert msg.count("Via") == 2
    assert msg.get_all("WWW-Authenticate") == ['Digest realm="a", nonce="b"']
    assert msg.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert msg.get_all("Route") == []


def test_add_prepend_set_remove_invalidate_typed_views() -> None:
    msg = invite()
    assert len(msg.vias) == 3
    msg.prepend("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKtop")
    assert msg.top_via.host == "proxy.example.com" and len(msg.vias) == 4
    msg.add("v", "SIP/2.0/UDP last.example.com")
    assert msg.vias[-1].host == "last.example.com"
    assert msg.cseq == CSeq(314159, "INVITE")
    msg.set("CSeq", "314160 INVITE")
    assert msg.cseq.seq == 314160
    msg.set("Via", "SIP/2.0/TCP only.example.com")
    assert msg.count("Via") == 1 and msg.headers[0] == ("Via", "SIP/2.0/TCP only.example.com")
    msg.set("Subject", "new")
    assert msg.headers[-1] == ("Subject", "new")
    msg.remove("via")
    assert msg.vias == []
    with pytest.raises(RemoteProtocolError) as info:
        msg.top_via  # noqa: B018
    assert info.value.reason == "Missing Via"


# --- cached views ---------------------------------------------------------------------------
# Each view is parsed once and kept until a header it is read from changes; a change
# to one header must drop that header's view and keep the others.

_VIEWS = ("vias", "from_addr", "to_addr", "cseq", "call_id", "contacts", "request_uri")


def _views(msg: Request) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in _VIEWS:
        try:
            out[name] = getattr(msg, name)
        except RemoteProtocolError as exc:
            out[name] = ("error", exc.reason)
    return out


def _fresh(msg: Request) -> Request:
    """The same message built again: nothing cached."""
    return Request(msg.method, msg.uri, msg.headers, msg.body)


def test_views_are_parsed_once() -> None:
    msg = invite()
    first = _views(msg)
    again = _views(msg)
    for name in _VIEWS:
        if name != "call_id":  # a str: equal, identity not promised
            assert again[name] is first[name], name


@pytest.mark.parametrize(
    ("change", "changed"),
    [
        (lambda m: m.add("Subject", "hello"), set()),
        (lambda m: m.add("v", "SIP/2.0/UDP last.example.com"), {"vias"}),
        (lambda m: m.prepend("Via", "SIP/2.0/TCP first.example.com"), {"vias"}),
        (lambda m: m.set("f", "<sip:carol@example.com>;tag=c"), {"from_addr"}),
        (lambda m: m.set("To", "Bob <sip:bob@example.com>;tag=b"), {"to_addr"}),
        (lambda m: m.set("CSeq", "314160 INVITE"), {"cseq"}),
        (lambda m: m.set("i", "other@example.com"), {"call_id"}),
        (lambda m: m.add("m", "<sip:alice@192.0.2.5>"), {"contacts"}),
        (lambda m: m.remove("Contact"), {"contacts"}),
        (lambda m: m.remove("Max-Forwards"), set()),
        (
            lambda m: m.replace_top_via(
                Via("UDP", "pc33.example.com", None, {"branch": "z9hG4bK776asdhds", "rport": "5"})
            ),
            {"vias"},
        ),
        (lambda m: setattr(m, "uri", "sip:carol@example.com"), {"request_uri"}),
    ],
)
def test_a_change_drops_only_the_views_of_the_changed_header(
    change: Callable[[Request], None], changed: set[str]
) -> None:
    msg = invite()
    before = _views(msg)
    change(msg)
    after = _views(msg)
    assert after == _views(_fresh(msg))  # as if parsed anew
    for name in set(_VIEWS) - changed - {"call_id"}:
        assert after[name] is before[name], name
    for name in changed:
        assert after[name] != before[name], name


def test_release_views_parses_again_to_equal_views() -> None:
    msg = invite()
    before = _views(msg)
    msg.release_views()
    after = _views(msg)
    assert after == before
    assert after["from_addr"] is not before["from_addr"]


def test_views_follow_every_kind_of_change_in_turn() -> None:
    msg = invite()
    steps: list[Callable[[Request], None]] = [
        lambda m: m.prepend("v", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKtop"),
        lambda m: m.replace_top_via(Via("TCP", "[2001:db8::1]", 5061, {"branch": "z9hG4bKx"})),
        lambda m: m.set("t", '"B, ob" <sip:bob@[::1]:5062>;tag=t1'),
        lambda m: m.remove("From"),
        lambda m: m.add("From", "sip:alice@example.com;tag=2"),
        lambda m: m.set("Contact", "*"),
        lambda m: m.set("CSeq", "bad"),
        lambda m: m.remove("Via"),
        lambda m: m.add("Via", "SIP/2.0/UDP again.example.com"),
        lambda m: m.release_views(),
    ]
    for step in steps:
        _views(msg)  # cache what there is
        step(msg)
        assert _views(msg) == _views(_fresh(msg))


def test_parse_cseq_memo_is_bounded_and_keeps_no_errors() -> None:
    from siphon.sip import message

    for seq in range(message._MAX_MEMO_CSEQS + 10):
        assert parse_cseq(f"{seq} INVITE") == CSeq(seq, "INVITE")
    assert len(message._CSEQS) <= message._MAX_MEMO_CSEQS
    for _ in range(2):
        with pytest.raises(RemoteProtocolError):
            parse_cseq("1 IN VITE")
    assert "1 IN VITE" not in message._CSEQS


# --- typed views --------------------------------------------------------------------------


def test_typed_views() -> None:
    msg = invite(
        ("Route", "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"),
        ("Record-Route", "<sip:rr.example.com;lr>"),
        ("Content-Type", "Application/SDP; charset=utf-8"),
        ("Supported", "Timer, 100REL"),
    )
    assert msg.call_id == "a84b4c76e66710@pc33.example.com"
    assert msg.cseq == CSeq(314159, "INVITE") and str(msg.cseq) == "314159 INVITE"
    assert msg.from_addr.display_name == "Alice" and msg.from_tag == "1928301774"
    assert msg.to_addr.display_name == "Bob" and msg.to_tag is None
    assert [c.params for c in msg.contacts] == [{}, {"q": "0.5"}]
    assert [str(r.uri) for r in msg.routes] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert [str(r.uri) for r in msg.record_routes] == ["sip:rr.example.com;lr"]
    assert msg.max_forwards == 70
    assert msg.content_type == "application/sdp"
    assert msg.option_tags("Supported") == ["timer", "100rel"]
    assert isinstance(msg.request_uri, SipUri) and msg.request_uri.user == "bob"
    msg.uri = "tel:+14155550100"
    assert isinstance(msg.request_uri, TelUri)


@pytest.mark.parametrize(
    ("name", "accessor"),
    [("Call-ID", "call_id"), ("CSeq", "cseq"), ("From", "from_addr"), ("To", "to_addr")],
)
def test_missing_required_header(name: str, accessor: str) -> None:
    msg = invite()
    msg.remove(name)
    with pytest.raises(RemoteProtocolError) as info:
        getattr(msg, accessor)
    assert info.value.reason == f"Missing {name}"
    assert info.value.status_hint == 400


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1 INVITE", CSeq(1, "INVITE")),
        ("  0009 INVITE ", CSeq(9, "INVITE")),
        ("4294967295 ACK", CSeq(4294967295, "ACK")),
        ("0 OPTIONS", CSeq(0, "OPTIONS")),
        ("1   BYE", CSeq(1, "BYE")),
    ],
)
def test_parse_cseq(value: str, expected: CSeq) -> None:
    assert parse_cseq(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "INVITE",
        "1",
        "-1 INVITE",
        "4294967296 INVITE",
        "36893488147419103232 REGISTER",  # RFC 4475 scalar02
        "\u0661 INVITE",
        "1.5 INVITE",
        "9" * 5000 + " INVITE",
    ],
)
def test_bad_cseq(value: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_cseq(value)
    assert info.value.reason == "Bad CSeq"


def test_cseq_separated_by_tab() -> None:
    # RFC 3261 §20.16: CSeq = 1*DIGIT LWS Method, and LWS includes HTAB.
    assert parse_cseq("1\tINVITE") == CSeq(1, "INVITE")


@pytest.mark.parametrize(("value", "expected"), [("70", 70), (" 0 ", 0), ("255", 255), ("1", 1)])
def test_max_forwards(value: str, expected: int) -> None:
    assert invite().max_forwards == 70
    msg = invite()
    msg.set("Max-Forwards", value)
    assert msg.max_forwards == expected


@pytest.mark.parametrize("value", ["256", "300", "-1", "abc", "", "\u0667\u0660", "9" * 5000])
def test_bad_max_forwards(value: str) -> None:
    msg = invite()
    msg.set("Max-Forwards", value)
    with pytest.raises(RemoteProtocolError) as info:
        msg.max_forwards  # noqa: B018
    assert info.value.reason == "Bad Max-Forwards"


def test_max_forwards_leading_zeros_rfc4475_wsinv() -> None:
    msg = invite()
    msg.set("Max-Forwards", "0068")
    assert msg.max_forwards == 68


def test_max_forwards_absent() -> None:
    msg = invite()
    msg.remove("Max-Forwards")
    assert msg.max_forwards is None


# --- serialization ----------------------------------------------------------------------------


def test_to_bytes_adds_content_length() -> None:
    msg = Request(
        "OPTIONS",
        "sip:bob@example.com",
        [("v", "SIP/2.0/UDP h;branch=z9hG4bK1"), ("i", "x@y"), ("CSeq", "1 OPTIONS")],
    )
    assert msg.to_bytes() == (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"Call-ID: x@y\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert bytes(msg) == msg.to_bytes()


def test_to_bytes_fixes_content_length_in_place() -> None:
    body = "héllo".encode()
    msg = Response(200, None, [("Content-Length", "999"), ("Call-ID", "x"), ("l", "3")], body)
    assert msg.reason == "OK"
    assert msg.to_bytes() == (b"SIP/2.0 200 OK\r\nContent-Length: 6\r\nCall-ID: x\r\n\r\n" + body)


def test_response_properties() -> None:
    assert Response(100).is_provisional and not Response(100).is_final
    assert Response(200).is_success and Response(200).is_final
    assert not Response(404).is_success and Response(404).reason == "Not Found"
    assert Response(299).reason == "Unknown"
    assert Response(200, "").start_line() == "SIP/2.0 200 "
    assert repr(Response(180)) == "<Response 180 Ringing>"
    assert repr(invite()) == "<Request INVITE sip:bob@example.com>"


def test_reason_phrase() -> None:
    assert reason_phrase(486) == "Busy Here"
    assert reason_phrase(799) == "Unknown"


def test_identifiers() -> None:
    branch = new_branch()
    assert branch.startswith(BRANCH_MAGIC) and len(branch) > len(BRANCH_MAGIC) + 8
    assert new_branch() != branch
    assert new_tag() != new_tag()
    assert new_call_id("host.example.com").endswith("@host.example.com")
    assert "@" not in new_call_id()


# --- make_response ---------------------------------------------------------------------------


def test_make_response_copies_the_right_headers() -> None:
    req = invite(("Timestamp", "54"), ("Subject", "hi"), ("Record-Route", "<sip:rr;lr>"))
    resp = req.make_response(180, to_tag="totag1", headers=[("Contact", "<sip:bob@192.0.2.9>")])
    assert resp.status == 180 and resp.reason == "Ringing"
    names = [name for name, _ in resp.headers]
    assert names == ["Via", "Via", "To", "From", "Call-ID", "CSeq", "Contact"]
    assert resp.get_all("Via") == req.get_all("Via")
    assert resp.to_tag == "totag1"
    assert resp.from_tag == "1928301774"
    assert resp.call_id == req.call_id and resp.cseq == req.cseq


def test_make_response_100_trying() -> None:
    req = invite(("Timestamp", "54"))
    resp = req.make_response(100, to_tag="ignored")
    assert resp.to_tag is None  # RFC 3261 §8.2.6.2
    assert resp.get("Timestamp") == "54"  # RFC 3261 §8.2.6.1


def test_make_response_keeps_an_existing_to_tag() -> None:
    req = invite()
    req.set("To", "<sip:bob@example.com> ; tag = old")
    resp = req.make_response(200, "Fine", to_tag="new")
    assert resp.reason == "Fine"
    assert resp.to_tag == "old"


def test_make_response_on_a_partial_request() -> None:
    wire = (
        b"INVITE sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n"
        b"Bad Header Line\r\n"
        b"Call-ID: partial@pc33\r\n"
        b"From: <sip:alice@example.com>;tag=1\r\n"
        b"To: <sip:bob@example.com>\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    with pytest.raises(RemoteProtocolError) as info:
        parse_datagram(wire)
    partial = info.value.partial
    assert isinstance(partial, Request)
    resp = partial.make_response(info.value.status_hint, info.value.reason, to_tag="t")
    assert resp.status == 400 and resp.reason == "Malformed Header Line"
    assert resp.call_id == "partial@pc33"
    assert resp.top_via.branch == "z9hG4bK776asdhds"
    assert resp.to_tag == "t"
    again = parse_datagram(resp.to_bytes())
    assert isinstance(again, Response) and again.status == 400
