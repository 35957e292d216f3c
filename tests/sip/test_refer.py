"""REFER helpers (RFC 3515), sipfrag (RFC 3420), Event / Subscription-State (RFC 6665)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siphon.errors import LocalProtocolError, RemoteProtocolError
from siphon.sip.message import Request
from siphon.sip.refer import (
    SipfragStatus,
    parse_event,
    parse_sipfrag,
    parse_subscription_state,
    read_refer,
    refer_notify_headers,
    refer_to_uri,
    sipfrag,
)

# -- sipfrag -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"SIP/2.0 100 Trying\r\n", 100, "Trying"),
        (b"SIP/2.0 200 OK", 200, "OK"),  # no CRLF at all
        (b"SIP/2.0 603 Declined\r\n", 603, "Declined"),
        (b"sip/2.0  486   Busy Here  \n", 486, "Busy Here"),  # case, spaces, bare LF
        (b"\r\n  SIP/2.0 180 Ringing\r\n", 180, "Ringing"),  # leading blank line
        (b"SIP/2.0 200\r\n", 200, "OK"),  # no reason: the standard phrase
        (b"SIP/2.0 299\r\n", 299, "Unknown"),
        # Headers after the status line are allowed (RFC 3420 §2) and ignored.
        (b"SIP/2.0 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n", 503, "Service Unavailable"),
        (b"SIP/2.0 200 Tr\xc3\xa8s bien\r\n", 200, "Tr\u00e8s bien"),
    ],
)
def test_parse_sipfrag(body: bytes, status: int, reason: str) -> None:
    frag = parse_sipfrag(body)
    assert frag == SipfragStatus(status, reason)
    assert frag.final is (status >= 200)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n\r\n",
        b"garbage",
        b"SIP/2.0 99 Too Low",
        b"SIP/2.0 700 Too High",
        b"SIP/2.0 20 OK",
        b"SIP/2.0 2000 OK",
        b"SIP/3.0 200 OK",
        b"HTTP/1.1 200 OK",
        b"INVITE sip:bob@example.com SIP/2.0\r\n",  # a request-line sipfrag: not a report
        b"SIP/2.0 abc OK",
        b"SIP/2.0200 OK",
        b"\xff\xfe\x00\x01",
        b"SIP/2.0 \xd9\xa2\xd9\xa0\xd9\xa0 OK",  # Arabic-Indic digits are not digits here
    ],
)
def test_parse_sipfrag_rejects_garbage(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_sipfrag(body)
    assert info.value.status_hint == 400
    assert info.value.reason == "Bad Sipfrag"


def test_sipfrag_reason_is_one_printable_line() -> None:
    frag = parse_sipfrag(b"SIP/2.0 200 O\x1bK\x07 " + b"x" * 500)
    assert frag.reason.startswith("OK ")
    assert len(frag.reason) <= 128 and frag.reason.isprintable()


@given(st.binary(max_size=300))
def test_parse_sipfrag_never_raises_anything_else(body: bytes) -> None:
    try:
        frag = parse_sipfrag(body)
    except RemoteProtocolError:
        return
    assert 100 <= frag.status <= 699
    assert frag.reason and frag.reason.isprintable()


@given(st.integers(100, 699), st.text(max_size=40))
def test_sipfrag_round_trips(status: int, reason: str) -> None:
    frag = parse_sipfrag(sipfrag(status, reason))
    assert frag.status == status
    if reason.split() and reason.isprintable():
        assert frag.reason == " ".join(reason.split())[:128].strip()


def test_sipfrag_body() -> None:
    assert sipfrag(200, "OK") == b"SIP/2.0 200 OK\r\n"
    assert sipfrag(603, "") == b"SIP/2.0 603 Decline\r\n"
    assert sipfrag(486, "Busy\r\nVia: evil") == b"SIP/2.0 486 Busy Via: evil\r\n"
    with pytest.raises(LocalProtocolError):
        sipfrag(99, "Nope")
    with pytest.raises(LocalProtocolError):
        sipfrag(700, "Nope")


# -- Refer-To we send ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "uri"),
    [
        ("sip:bob@127.0.0.1:5070", "sip:bob@127.0.0.1:5070"),
        ("  sip:bob@example.com;transport=tcp ", "sip:bob@example.com;transport=tcp"),
        ("sips:bob@example.com", "sips:bob@example.com"),
        ('"Bob" <sip:bob@example.com>', "sip:bob@example.com"),
        ("tel:+1-555-010-2030", "sip:+15550102030@trunk.example.com:5060;user=phone"),
        ("+1 (555) 010-2030", "sip:+15550102030@trunk.example.com:5060;user=phone"),
        ("1001", "sip:1001@trunk.example.com:5060"),
        ("*72", "sip:*72@trunk.example.com:5060"),
        ("12#", "sip:12%23@trunk.example.com:5060"),
    ],
)
def test_refer_to_uri(target: str, uri: str) -> None:
    assert refer_to_uri(target, "trunk.example.com", 5060) == uri


def test_refer_to_uri_without_peer_port() -> None:
    assert refer_to_uri("+15550102030", "10.0.0.1") == "sip:+15550102030@10.0.0.1;user=phone"


@pytest.mark.parametrize(
    "target", ["", "bob", "http://example.com", "sip:", "mailto:bob@example.com", "<garbage"]
)
def test_refer_to_uri_rejects(target: str) -> None:
    with pytest.raises(LocalProtocolError):
        refer_to_uri(target, "trunk.example.com", 5060)


# -- REFER we receive ------------------------------------------------------------------------


def _refer(*headers: tuple[str, str]) -> Request:
    request = Request("REFER", "sip:me@127.0.0.1")
    for name, value in headers:
        request.add(name, value)
    return request


def test_read_refer() -> None:
    refer = read_refer(
        _refer(
            ("Refer-To", "<sip:carol@example.com;transport=udp>"),
            ("Referred-By", '"Agent" <sip:agent@127.0.0.1:5060>'),
        )
    )
    assert refer.target == "sip:carol@example.com;transport=udp"
    assert refer.referred_by == "sip:agent@127.0.0.1:5060"


def test_read_refer_compact_form_and_no_referred_by() -> None:
    refer = read_refer(_refer(("r", "sip:carol@example.com")))
    assert refer.target == "sip:carol@example.com"
    assert refer.referred_by is None


def test_read_refer_ignores_an_unreadable_referred_by() -> None:
    refer = read_refer(_refer(("Refer-To", "<sip:c@example.com>"), ("Referred-By", "<<<")))
    assert refer.referred_by is None


@pytest.mark.parametrize(
    "headers",
    [
        (),
        (("Refer-To", "<sip:a@example.com>"), ("Refer-To", "<sip:b@example.com>")),
        (("Refer-To", "<not a uri>"),),
    ],
)
def test_read_refer_needs_exactly_one_readable_refer_to(
    headers: tuple[tuple[str, str], ...],
) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        read_refer(_refer(*headers))
    assert info.value.status_hint == 400


# -- Event and Subscription-State ----------------------------------------------------------


def test_parse_event() -> None:
    assert parse_event("refer") == parse_event(" Refer ")
    event = parse_event("refer;id=93809824")
    assert (event.package, event.id) == ("refer", "93809824")
    assert parse_event("presence").package == "presence"
    with pytest.raises(RemoteProtocolError):
        parse_event("")
    with pytest.raises(RemoteProtocolError):
        parse_event("re fer")


def test_parse_subscription_state() -> None:
    active = parse_subscription_state("active;expires=60")
    assert (active.state, active.expires, active.terminated) == ("active", 60, False)
    done = parse_subscription_state("Terminated;reason=noresource")
    assert (done.terminated, done.reason, done.expires) == (True, "noresource", None)
    assert parse_subscription_state("active;expires=soon").expires is None
    with pytest.raises(RemoteProtocolError):
        parse_subscription_state(";expires=5")


def test_refer_notify_headers() -> None:
    assert refer_notify_headers(7, 100) == [
        ("Event", "refer;id=7"),
        ("Subscription-State", "active;expires=60"),
    ]
    assert refer_notify_headers(7, 603) == [
        ("Event", "refer;id=7"),
        ("Subscription-State", "terminated;reason=noresource"),
    ]
