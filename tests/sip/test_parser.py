"""The SIP parser: datagrams, stream framing, limits, errors, RFC 4475 conformance, fuzzing.

Fixtures are raw wire bytes in ``fixtures/`` (CRLF line endings, any byte allowed):
``rfc4475/valid`` and ``rfc4475/invalid`` hold the RFC 4475 torture messages (the
mpart01 S/MIME blob is replaced by synthetic binary of the same shape), ``real``
holds messages as sent by carriers, PBXs and softphones (the SIPp ones were captured
from ``sipp -sn uac`` / ``-sn uas``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siphon.errors import RemoteProtocolError
from siphon.sip.message import CSeq, Message, Request, Response
from siphon.sip.parser import (
    MAX_DATAGRAM_SIZE,
    MAX_HEADER_COUNT,
    MAX_LINE_LENGTH,
    MAX_STREAM_MESSAGE_SIZE,
    MAX_URI_LENGTH,
    StreamParser,
    parse_datagram,
)
from siphon.sip.uri import SipUri, TelUri

FIXTURES = Path(__file__).parent / "fixtures"
ALL_FIXTURES = sorted(
    p.relative_to(FIXTURES).with_suffix("").as_posix() for p in FIXTURES.rglob("*.sip")
)
VALID_FIXTURES = [n for n in ALL_FIXTURES if not n.startswith("rfc4475/invalid/")]
INVALID_FIXTURES = [n for n in ALL_FIXTURES if n.startswith("rfc4475/invalid/")]


def wire(name: str) -> bytes:
    return (FIXTURES / f"{name}.sip").read_bytes()


def parse(data: bytes) -> Request | Response:
    return parse_datagram(data)


def request(data: bytes) -> Request:
    msg = parse_datagram(data)
    assert isinstance(msg, Request)
    return msg


def response(data: bytes) -> Response:
    msg = parse_datagram(data)
    assert isinstance(msg, Response)
    return msg


def raises(data: bytes, status: int = 400, reason: str | None = None) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        parse_datagram(data)
    assert info.value.status_hint == status, info.value
    if reason is not None:
        assert info.value.reason == reason, info.value
    assert info.value.reason  # a reason phrase naming the problem, always
    return info.value


def build(
    start: str = "INVITE sip:bob@example.com SIP/2.0",
    *headers: str,
    body: bytes = b"",
    base: bool = True,
    length: bool = True,
) -> bytes:
    """A request (or response) with the mandatory headers, then ``headers``."""
    lines = [start]
    if base:
        method = start.split(" ")[0] if not start.upper().startswith("SIP/") else "INVITE"
        lines += [
            "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds",
            "Max-Forwards: 70",
            "To: Bob <sip:bob@example.com>",
            'From: "Alice" <sip:alice@example.com>;tag=1928301774',
            "Call-ID: a84b4c76e66710@pc33.example.com",
            f"CSeq: 314159 {method}",
        ]
    lines += headers
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# =============================================================================================
# The table: (name, wire bytes, expectations), used for parsing and round-trip assertions.
# =============================================================================================


@dataclass
class Case:
    name: str
    data: bytes
    expect: dict[str, Any] = field(default_factory=dict)
    canonical: bool = False  # already in canonical form: the round trip is byte-identical


def fixture(name: str, canonical: bool = False, **expect: Any) -> Case:
    return Case(name, wire(name), expect, canonical)


def inline(name: str, data: bytes, canonical: bool = False, **expect: Any) -> Case:
    return Case(name, data, expect, canonical)


_SDP_150 = (
    "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\n"
)

CASES: list[Case] = [
    # --- RFC 4475 §3.1.1 valid messages -----------------------------------------------------
    fixture(
        "rfc4475/valid/wsinv",
        method="INVITE",
        uri="sip:vivekg@chair-dnrc.example.com;unknownparam",
        ruri_params={"unknownparam": None},
        call_id="wsinv.ndaksdj@192.0.2.1",
        cseq=CSeq(9, "INVITE"),
        to_uri="sip:vivekg@chair-dnrc.example.com",
        to_tag="1918181833n",
        from_display='J Rosenberg \\"',
        from_tag="98asjd8",
        vias=[
            ("UDP", "192.0.2.2", None, "390skdjuw"),
            ("TCP", "spindle.example.com", None, "z9hG4bK9ikj8"),
            ("UDP", "192.168.255.111", None, "z9hG4bK30239"),
        ],
        contacts=["sip:jdrosen@example.com"],
        contact_params=[{"newparam": "newvalue", "secondparam": None, "q": "0.33"}],
        contact_displays=['Quoted string ""'],
        routes=["sip:services.example.com;lr;unknownwith=value;unknown-no-value"],
        headers={
            "Max-Forwards": "0068",
            "Subject": "",
            "NewFangledHeader": "newfangled value continued newfangled value",
            "UnknownHeaderWithUnusualValue": ";;,,;;,;",
            "Content-Type": "application/sdp",
        },
        header_count={"Via": 2, "Contact": 1},
        body_len=150,
        body_start=_SDP_150,
    ),
    fixture(
        "rfc4475/valid/intmeth",
        method="!interesting-Method0123456789_*+`.%indeed'~",
        ruri_user="1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*",
        ruri_password="&it+has=1,weird!*pas$wo~d_too.(doesn't-it)",
        call_id="intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
        cseq=CSeq(139122385, "!interesting-Method0123456789_*+`.%indeed'~"),
        to_display="BEL:\x07 NUL:\x00 DEL:\x7f",
        to_uri="sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com",
        from_display="token1~` token2'+_ token3*%!.-",
        from_params={"fromparam''~+*_!.-%": "работающий", "tag": "_token~1'+`*%!-."},
        vias=[("TCP", "host1.example.com", None, "z9hG4bK-.!%66*_+`'~")],
        max_forwards=255,
        headers={"extensionHeader-!.%*+_`'~": "\ufeff大停電"},
        body_len=0,
    ),
    fixture(
        "rfc4475/valid/esc01",
        method="INVITE",
        ruri_user="sips:user@example.com",
        ruri_host="example.net",
        to_uri="sip:user@example.com",
        from_user="I have spaces",
        from_tag="938",
        call_id="esc01.239409asdfakjkn23onasd0-3234",
        contacts=["sip:caller@host5.example.net;lr;name=value%2541"],
        max_forwards=87,
        content_type="application/sdp",
        body_len=150,
    ),
    fixture(
        "rfc4475/valid/escnull",
        method="REGISTER",
        to_user="null-\x00-null",
        from_user="null-\x00-null",
        contact_users=["\x00", "\x00\x00"],
        headers={"Content-Length": "0"},
        body_len=0,
    ),
    fixture(
        "rfc4475/valid/esc02",
        method="RE%47IST%45R",
        cseq=CSeq(29344, "RE%47IST%45R"),
        to_display="%Z%45",
        vias=[("TCP", "host.example.com", None, "z9hG4bK209%fzsnel234")],
        contacts=["sip:alias1@host1.example.com", "sip:alias3@host3.example.com"],
        headers={"C%6Fntact": "<sip:alias2@host2.example.com>"},
    ),
    fixture(
        "rfc4475/valid/lwsdisp",
        method="OPTIONS",
        from_display="caller",
        from_tag="323",
        to_uri="sip:user@example.com",
        body_len=0,
    ),
    fixture(
        "rfc4475/valid/longreq",
        method="INVITE",
        to_display="I have a user name of " + "extreme" * 10 + " proportion",
        to_port=6000,
        from_tag="12" + "982" * 50 + "424",
        call_id="longreq.one" + "really" * 20 + "longcallid",
        via_count=34,
        first_via=("TCP", "sip33.example.com", None, None),
        last_via=("TCP", "host.example.com", None, "very" + "long" * 50 + "branchvalue"),
        last_via_received="192.0.2.5",
        max_forwards=70,
        body_len=150,
    ),
    fixture(
        "rfc4475/valid/dblreq",
        method="REGISTER",
        call_id="dblreq.0ha0isndaksdj99sdfafnl3lk233412",
        contacts=["sip:j.user@host.example.com"],
        body_len=0,  # the INVITE after the REGISTER is discarded (RFC 3261 §18.3)
    ),
    fixture(
        "rfc4475/valid/semiuri",
        method="OPTIONS",
        ruri_user="user;par=u@example.net",
        ruri_host="example.com",
        accept=[
            "application/sdp",
            "application/pkcs7-mime",
            "multipart/mixed",
            "multipart/signed",
            "message/sip",
            "message/sipfrag",
        ],
    ),
    fixture(
        "rfc4475/valid/transports",
        method="OPTIONS",
        call_id="transports.kijh4akdnaqjkwendsasfdj",
        via_transports=["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"],
    ),
    fixture(
        "rfc4475/valid/mpart01",
        canonical=True,
        method="MESSAGE",
        content_type="multipart/mixed",
        routes=["sip:127.0.0.1:5080"],
        vias=[("UDP", "127.0.0.1", 5070, "z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-")],
        body_len=495,
    ),
    fixture(
        "rfc4475/valid/unreason",
        canonical=True,
        status=200,
        reason="= 2**3 * 5**2 но сто девяносто девять - простое",
        body_len=154,
    ),
    fixture("rfc4475/valid/noreason", canonical=True, status=100, reason="", to_tag="902jndnke3"),
    # RFC 4475 §3.1.2.12 lets an element accept a bad Date; we keep it verbatim.
    fixture(
        "rfc4475/valid/baddate",
        canonical=True,
        method="INVITE",
        headers={"Date": "Fri, 01 Jan 2010 16:00:00 EST"},
    ),
    # RFC 4475 §3.1.2.13: a proxy need not notice; the Contact accessor refuses it.
    fixture("rfc4475/valid/regbadct", method="REGISTER", accessor_errors={"contacts"}),
    fixture(
        "rfc4475/valid/badbranch", method="OPTIONS", vias=[("UDP", "192.0.2.1", None, "z9hG4bK")]
    ),
    fixture(
        "rfc4475/valid/unksm2",
        method="REGISTER",
        to_scheme="isbn",
        from_scheme="http",
        contacts=["name:John_Smith"],
    ),
    fixture(
        "rfc4475/valid/bext01",
        canonical=True,
        method="OPTIONS",
        require=["nothingsupportsthis", "nothingsupportsthiseither"],
        vias=[("TLS", "fold-and-staple.example.com", None, "z9hG4bKkdjuw")],
    ),
    fixture(
        "rfc4475/valid/invut",
        canonical=True,
        method="INVITE",
        content_type="application/unknownformat",
        body_len=40,
    ),
    fixture(
        "rfc4475/valid/regaut01",
        method="REGISTER",
        headers={"Authorization": "NoOneKnowsThisScheme opaque-data=here"},
    ),
    fixture(
        "rfc4475/valid/bcast",
        canonical=True,
        status=200,
        vias=[
            ("UDP", "192.0.2.198", None, "z9hG4bK1324923"),
            ("UDP", "255.255.255.255", None, "z9hG4bK1saber23"),
        ],
    ),
    fixture("rfc4475/valid/zeromf", canonical=True, method="OPTIONS", max_forwards=0),
    fixture(
        "rfc4475/valid/cparam01",
        method="REGISTER",
        contacts=["sip:+19725552222@gw1.example.net"],
        contact_params=[{"unknownparam": None}],
    ),
    fixture(
        "rfc4475/valid/cparam02",
        method="REGISTER",
        contacts=["sip:+19725552222@gw1.example.net;unknownparam"],
        contact_params=[{}],
    ),
    fixture(
        "rfc4475/valid/regescrt",
        method="REGISTER",
        contact_uri_headers=[{"Route": "<sip:sip.example.com>"}],
    ),
    fixture(
        "rfc4475/valid/sdp01",
        canonical=True,
        method="INVITE",
        headers={"Accept": "text/nobodyKnowsThis"},
    ),
    fixture(
        "rfc4475/valid/inv2543",
        method="INVITE",
        max_forwards=None,
        vias=[("UDP", "iftgw.example.com", None, None)],
        from_tag=None,
        record_routes=["sip:UserB@example.com;maddr=ss1.example.com"],
        body_len=105,  # no Content-Length over UDP: the body is the rest of the datagram
    ),
    # --- real-world messages --------------------------------------------------------------------
    fixture(
        "real/twilio_invite",
        canonical=True,
        method="INVITE",
        ruri_user="+14155550100",
        from_display="+14155550199",
        from_tag="33146188_c3356d0b_7c4b8b33",
        record_routes=[
            "sip:54.172.60.1;lr;r2=on;ftag=33146188_c3356d0b_7c4b8b33",
            "sip:10.193.0.12;lr;r2=on;ftag=33146188_c3356d0b_7c4b8b33",
        ],
        via_rport=(True, None),
        max_forwards=69,
        headers={
            "X-Twilio-CallSid": "CA0123456789abcdef0123456789abcdef",
            "User-Agent": "Twilio Gateway",
        },
        allow=["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE", "INFO", "NOTIFY", "REFER", "UPDATE"],
    ),
    fixture(
        "real/telnyx_invite",
        canonical=True,
        method="INVITE",
        from_display="TELNYX",
        max_forwards=68,
        headers={
            "Session-Expires": "1800;refresher=uac",
            "X-Telnyx-Session-ID": "2f1c7b4e-1111-2222-3333-444455556666",
        },
    ),
    fixture(
        "real/asterisk_pjsip_invite",
        method="INVITE",
        headers={"User-Agent": "Asterisk PBX 20.5.0", "Content-Length": str(241)},
        via_rport=(True, None),
        supported=["100rel", "timer", "replaces", "norefersub"],
    ),
    fixture(
        "real/asterisk_chan_sip_invite",
        canonical=True,
        method="INVITE",
        from_tag="as6d4a2f1e",
        call_id="2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e@192.0.2.10:5060",
    ),
    fixture(
        "real/freeswitch_invite",
        canonical=True,
        method="INVITE",
        contacts=["sip:mod_sofia@192.0.2.40:5060"],
        headers={"X-FS-Support": "update_display,send_info"},
        vias=[("UDP", "192.0.2.40", None, "z9hG4bKQ3a7pN5cg6H9F")],
    ),
    fixture(
        "real/baresip_invite",
        canonical=True,
        method="INVITE",
        contacts=["sip:alice-0x55d1c2a3b4c0@192.168.1.23:5060"],
        allow=[
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "OPTIONS",
            "NOTIFY",
            "SUBSCRIBE",
            "INFO",
            "MESSAGE",
            "UPDATE",
            "REFER",
        ],
    ),
    fixture(
        "real/baresip_register",
        canonical=True,
        method="REGISTER",
        contact_params=[
            {
                "expires": "3600",
                "+sip.instance": "<urn:uuid:3f2e1d0c-0000-1111-2222-333344445555>",
                "reg-id": "1",
            }
        ],
    ),
    fixture(
        "real/linphone_invite",
        canonical=True,
        method="INVITE",
        to_uri="sip:bob@sip.linphone.org",
        from_tag="Hc4yP6~oX",
        contact_params=[{"+org.linphone.specs": "ephemeral/1.1,groupchat/1.1,lime"}],
        vias=[("TCP", "192.168.1.42", 48813, "z9hG4bK.Vb2nJzXlq")],
    ),
    fixture(
        "real/registrar_401",
        canonical=True,
        status=401,
        via_received="203.0.113.7",
        via_rport=(True, 5060),
        www_authenticate=[
            'Digest realm="sip.example.com", nonce="5f3e2d1c0b", algorithm=MD5, qop="auth"'
        ],
    ),
    fixture(
        "real/carrier_183",
        canonical=True,
        status=183,
        record_routes=["sip:192.76.120.10;lr;ftag=x1y2z3", "sip:10.13.1.5;lr;ftag=x1y2z3"],
    ),
    fixture(
        "real/ipv6_register",
        canonical=True,
        method="REGISTER",
        ruri_host="[2001:db8::10]",
        vias=[("UDP", "[2001:db8::9:1]", None, "z9hG4bKas3-111")],
        contacts=["sip:caller@[2001:db8::1]"],
    ),
    fixture(
        "real/ipv6_port_register",
        canonical=True,
        method="REGISTER",
        ruri_host="[2001:db8::10]",
        ruri_port=5070,
        vias=[("UDP", "[2001:db8::9:1]", 6050, "z9hG4bKas3-111")],
        via_received="[2001:db8::9:255]",
    ),
    fixture(
        "real/compact_all",
        method="INVITE",
        headers={
            "Via": "SIP/2.0/TCP client.example.com:5060;branch=z9hG4bKcompact1",
            "From": '"Alice" <sip:alice@example.com>;tag=c0mp4ct',
            "To": "<sip:bob@example.com>",
            "Call-ID": "compact.all.forms@client.example.com",
            "Contact": "<sip:alice@client.example.com;transport=tcp>",
            "Supported": "timer, 100rel",
            "Subject": "Compact forms everywhere",
            "Event": "presence",
            "Allow-Events": "presence, dialog",
            "Refer-To": "<sip:carol@example.com>",
            "Referred-By": "<sip:alice@example.com>",
            "Session-Expires": "1800;refresher=uac",
            "Identity": "eyJhbGciOiJFUzI1NiJ9.eyJ0ZXN0IjoxfQ.c2lnbmF0dXJl;info=<https://cert.example.org/passport.cer>;alg=ES256;ppt=shaken",
            "Content-Encoding": "identity",
            "Content-Type": "application/sdp",
            "Content-Length": "237",
        },
        names=[
            "Via",
            "From",
            "To",
            "Call-ID",
            "CSeq",
            "Max-Forwards",
            "Contact",
            "Supported",
            "Subject",
            "Event",
            "Allow-Events",
            "Refer-To",
            "Referred-By",
            "Session-Expires",
            "Identity",
            "Content-Encoding",
            "Content-Type",
            "Content-Length",
        ],
    ),
    fixture(
        "real/tel_invite",
        canonical=True,
        method="INVITE",
        ruri_tel="+1-415-555-0100",
        to_scheme="tel",
    ),
    fixture(
        "real/in_dialog_bye",
        canonical=True,
        method="BYE",
        routes=[
            "sip:54.172.60.1;lr;r2=on;ftag=33146188_c3356d0b_7c4b8b33",
            "sip:10.193.0.12;lr;r2=on;ftag=33146188_c3356d0b_7c4b8b33",
            "sip:10.193.0.13;lr",
        ],
        headers={"Reason": 'Q.850;cause=16;text="Normal call clearing"'},
    ),
    fixture(
        "real/notify_refer",
        canonical=True,
        method="NOTIFY",
        content_type="message/sipfrag",
        body=b"SIP/2.0 200 OK\r\n",
    ),
    fixture(
        "real/refer",
        canonical=True,
        method="REFER",
        headers={
            "Refer-To": "<sip:carol@example.com?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2>"
        },
    ),
    fixture(
        "real/message_utf8",
        canonical=True,
        method="MESSAGE",
        from_display="Zoë Ñandú",
        body="Grüße aus Köln — 你好 👋\r\n".encode(),
    ),
    fixture("real/ack_2xx", canonical=True, method="ACK", cseq=CSeq(1, "ACK")),
    fixture("real/cancel", method="CANCEL", cseq=CSeq(28931, "CANCEL")),
    fixture("real/options_ping", canonical=True, method="OPTIONS", ruri_user=None, ruri_port=5060),
    fixture("real/ok_200_canonical", canonical=True, status=200, to_tag="siphon1"),
    fixture(
        "real/sipp_uac_invite",
        method="INVITE",
        uri="sip:service@127.0.0.1:5070",
        from_display="sipp",
        contacts=["sip:sipp@127.0.0.1:5061"],
        headers={"Subject": "Performance Test", "Content-Length": "129"},
        body_len=129,
    ),
    fixture(
        "real/sipp_uas_180", canonical=True, status=180, reason="Ringing", to_tag="4875SIPpTag011"
    ),
    fixture(
        "real/sipp_uas_200", status=200, contacts=["sip:127.0.0.1:5080;transport=UDP"], body_len=129
    ),
    # --- small crafted messages ------------------------------------------------------------------
    inline(
        "crafted/minimal-canonical",
        build("OPTIONS sip:a@example.com SIP/2.0"),
        canonical=True,
        method="OPTIONS",
    ),
    inline(
        "crafted/bare-lf",
        build("OPTIONS sip:a@example.com SIP/2.0").replace(b"\r\n", b"\n"),
        method="OPTIONS",
        call_id="a84b4c76e66710@pc33.example.com",
    ),
    inline(
        "crafted/leading-crlf",
        b"\r\n\r\n\n" + build("OPTIONS sip:a@example.com SIP/2.0"),
        method="OPTIONS",
    ),
    inline(
        "crafted/folded-tab",
        build(
            "OPTIONS sip:a@example.com SIP/2.0",
            "Subject:\r\n\tline one\r\n \t line two \r\n \r\n"[:-2],
        ),
        headers={"Subject": "line one line two"},
    ),
    inline(
        "crafted/fold-before-colon",
        build("OPTIONS sip:a@example.com SIP/2.0", "X-Fold\r\n  :  value"),
        headers={"X-Fold": "value"},
    ),
    inline(
        "crafted/odd-case-names",
        build("OPTIONS sip:a@example.com SIP/2.0", "sUbJeCt: hi", "x-lower: kept").replace(
            b"CSeq:", b"cSEQ:"
        ),
        headers={"Subject": "hi", "x-lower": "kept"},
        names=[
            "Via",
            "Max-Forwards",
            "To",
            "From",
            "Call-ID",
            "CSeq",
            "Subject",
            "x-lower",
            "Content-Length",
        ],
    ),
    inline(
        "crafted/tel-request-uri",
        build("INVITE tel:+14155550100 SIP/2.0"),
        ruri_tel="+14155550100",
    ),
    inline(
        "crafted/sips-request-uri",
        build("INVITE sips:bob@example.com;transport=tls SIP/2.0"),
        ruri_scheme="sips",
    ),
    inline(
        "crafted/quoted-nul",
        build("OPTIONS sip:a@example.com SIP/2.0", 'X-Q: "a\\\x00b"'),
        headers={"X-Q": '"a\\\x00b"'},
    ),
    inline(
        "crafted/lowercase-version",
        build("OPTIONS sip:a@example.com sip/2.0"),
        method="OPTIONS",
    ),
]

_CASE_IDS = [case.name for case in CASES]


def test_every_valid_fixture_is_in_the_table() -> None:
    assert sorted(c.name for c in CASES if not c.name.startswith("crafted/")) == VALID_FIXTURES


def _vias(msg: Message) -> list[tuple[str, str, int | None, str | None]]:
    return [(v.transport, v.host, v.port, v.branch) for v in msg.vias]


def _user(uri: object) -> str | None:
    assert isinstance(uri, SipUri)
    return uri.user


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "method": lambda m: m.method,
    "uri": lambda m: m.uri,
    "status": lambda m: m.status,
    "reason": lambda m: m.reason,
    "call_id": lambda m: m.call_id,
    "cseq": lambda m: m.cseq,
    "to_uri": lambda m: str(m.to_addr.uri),
    "to_user": lambda m: _user(m.to_addr.uri),
    "to_tag": lambda m: m.to_tag,
    "to_display": lambda m: m.to_addr.display_name,
    "to_port": lambda m: m.to_addr.uri.port,
    "to_scheme": lambda m: m.to_addr.uri.scheme,
    "from_display": lambda m: m.from_addr.display_name,
    "from_tag": lambda m: m.from_tag,
    "from_user": lambda m: _user(m.from_addr.uri),
    "from_params": lambda m: m.from_addr.params,
    "from_scheme": lambda m: m.from_addr.uri.scheme,
    "ruri_params": lambda m: m.request_uri.params,
    "ruri_user": lambda m: _user(m.request_uri),
    "ruri_password": lambda m: m.request_uri.password,
    "ruri_host": lambda m: m.request_uri.host,
    "ruri_port": lambda m: m.request_uri.port,
    "ruri_scheme": lambda m: m.request_uri.scheme,
    "ruri_tel": lambda m: m.request_uri.number if isinstance(m.request_uri, TelUri) else None,
    "vias": _vias,
    "via_count": lambda m: len(m.vias),
    "first_via": lambda m: _vias(m)[0],
    "last_via": lambda m: _vias(m)[-1],
    "last_via_received": lambda m: m.vias[-1].received,
    "via_received": lambda m: m.top_via.received,
    "via_rport": lambda m: (m.top_via.wants_rport, m.top_via.rport),
    "via_transports": lambda m: [v.transport for v in m.vias],
    "contacts": lambda m: [str(c.uri) for c in m.contacts],
    "contact_params": lambda m: [c.params for c in m.contacts],
    "contact_displays": lambda m: [c.display_name for c in m.contacts],
    "contact_users": lambda m: [_user(c.uri) for c in m.contacts],
    "contact_uri_headers": lambda m: [c.uri.headers for c in m.contacts],
    "routes": lambda m: [str(r.uri) for r in m.routes],
    "record_routes": lambda m: [str(r.uri) for r in m.record_routes],
    "max_forwards": lambda m: m.max_forwards,
    "content_type": lambda m: m.content_type,
    "body_len": lambda m: len(m.body),
    "body": lambda m: m.body,
    "body_start": lambda m: m.body[: len(_SDP_150)].decode(),
    "accept": lambda m: m.get_all("Accept"),
    "allow": lambda m: m.get_all("Allow"),
    "require": lambda m: m.option_tags("Require"),
    "supported": lambda m: m.option_tags("Supported"),
    "www_authenticate": lambda m: m.get_all("WWW-Authenticate"),
    "names": lambda m: [name for name, _ in m.headers],
}


@pytest.mark.parametrize("case", CASES, ids=_CASE_IDS)
def test_table_parse(case: Case) -> None:
    msg = parse_datagram(case.data)
    if "status" in case.expect:
        assert isinstance(msg, Response)
    elif "method" in case.expect:
        assert isinstance(msg, Request)
    for key, expected in case.expect.items():
        if key == "headers":
            for name, value in expected.items():
                assert msg.get(name) == value, name
        elif key == "header_count":
            for name, count in expected.items():
                assert msg.count(name) == count, name
        elif key == "accessor_errors":
            for name in expected:
                with pytest.raises(RemoteProtocolError):
                    getattr(msg, name)
        else:
            assert _CHECKS[key](msg) == expected, key
    _exercise(msg)


@pytest.mark.parametrize("case", CASES, ids=_CASE_IDS)
def test_table_round_trip(case: Case) -> None:
    msg = parse_datagram(case.data)
    first = msg.to_bytes()
    again = parse_datagram(first)
    _assert_same(msg, again)
    assert again.to_bytes() == first  # serialize -> parse -> serialize is stable
    assert _exercise(again) == _exercise(msg)
    # Canonical long names, and a correct Content-Length, always.
    head = first.split(b"\r\n\r\n", 1)[0].decode("utf-8", "surrogateescape")
    names = [line.partition(":")[0] for line in head.split("\r\n")[1:]]
    assert all(len(name) > 1 for name in names)
    assert names.count("Content-Length") == 1
    assert f"\r\nContent-Length: {len(msg.body)}\r\n" in head + "\r\n"
    if case.canonical:
        assert first == case.data


def test_wsinv_max_forwards_accessor() -> None:
    assert parse_datagram(wire("rfc4475/valid/wsinv")).max_forwards == 68


# =============================================================================================
# RFC 4475 §3.1.2 / §3.3 invalid messages: RemoteProtocolError with the right hint.
# =============================================================================================

INVALID: dict[str, tuple[int, str]] = {
    "badinv01": (400, "Bad Via"),  # 3.1.2.1 ";;,;,," in Via
    "clerr": (400, "Bad Content-Length"),  # 3.1.2.2 Content-Length larger than the message
    "ncl": (400, "Bad Content-Length"),  # 3.1.2.3 negative Content-Length
    "scalar02": (400, "Bad CSeq"),  # 3.1.2.4 overlarge values
    "scalarlg": (400, "Bad CSeq"),  # 3.1.2.5 overlarge values in a response
    "quotbal": (400, "Bad Header"),  # 3.1.2.6 unterminated quoted string
    "ltgtruri": (400, "Bad URI"),  # 3.1.2.7 <> around the Request-URI
    "lwsruri": (400, "Bad Request Line"),  # 3.1.2.8 LWS inside the Request-URI
    "lwsstart": (400, "Bad Request Line"),  # 3.1.2.9 several SP in the request line
    "trws": (400, "Bad Request Line"),  # 3.1.2.10 SP at the end of the request line
    "escruri": (400, "Bad Request-URI"),  # 3.1.2.11 escaped headers in the Request-URI
    "badaspec": (400, "Bad URI"),  # 3.1.2.14 spaces inside <>
    "baddn": (400, "Bad Header"),  # 3.1.2.15 unquoted non-token display name
    "badvers": (505, "Version Not Supported"),  # 3.1.2.16 SIP/7.0
    "mismatch01": (400, "CSeq Method Mismatch"),  # 3.1.2.17
    "mismatch02": (400, "CSeq Method Mismatch"),  # 3.1.2.18
    "bigcode": (400, "Bad Status Line"),  # 3.1.2.19 status code 4294967301
    "insuf": (400, "Missing Call-ID"),  # 3.3.1 missing mandatory headers
    "unkscm": (416, "Unsupported URI Scheme"),  # 3.3.2
    "novelsc": (416, "Unsupported URI Scheme"),  # 3.3.3
    "multi01": (400, "Duplicate Header"),  # 3.3.9 several Call-ID, To, From, CSeq
    "mcl01": (400, "Duplicate Header"),  # 3.3.10 several Content-Length
}


def test_every_invalid_fixture_is_in_the_table() -> None:
    assert sorted(f"rfc4475/invalid/{name}" for name in INVALID) == INVALID_FIXTURES


@pytest.mark.parametrize(("name", "expected"), sorted(INVALID.items()), ids=sorted(INVALID))
def test_rfc4475_invalid(name: str, expected: tuple[int, str]) -> None:
    data = wire(f"rfc4475/invalid/{name}")
    exc = raises(data, *expected)
    if data.startswith(b"SIP/"):
        assert exc.partial is None
    else:
        # The request line was readable: a partial request lets a server answer.
        assert isinstance(exc.partial, Request)
        if name != "insuf":
            assert exc.partial.get("Call-ID")
        assert exc.partial.get("Via")
    # Over a stream: an error too, or (clerr) a wait for body bytes that never come.
    with contextlib.suppress(RemoteProtocolError):
        assert StreamParser().feed(data) == [] and name == "clerr"


def test_partial_of_a_bad_request_line_keeps_the_method() -> None:
    exc = raises(wire("rfc4475/invalid/lwsruri"), 400, "Bad Request Line")
    assert isinstance(exc.partial, Request)
    assert exc.partial.method == "INVITE"
    assert exc.partial.call_id == "lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423"
    assert exc.partial.top_via.branch == "z9hG4bKkdjuw2395"


# =============================================================================================
# Start lines
# =============================================================================================


@pytest.mark.parametrize(
    ("start", "method", "uri"),
    [
        ("INVITE sip:bob@example.com SIP/2.0", "INVITE", "sip:bob@example.com"),
        ("NEWMETHOD sip:bob@example.com SIP/2.0", "NEWMETHOD", "sip:bob@example.com"),
        (
            "INVITE sips:bob@[::1]:5061;transport=tls SIP/2.0",
            "INVITE",
            "sips:bob@[::1]:5061;transport=tls",
        ),
        ("INVITE tel:+14155550100 SIP/2.0", "INVITE", "tel:+14155550100"),
        ("INVITE sip:bob@example.com sip/2.0", "INVITE", "sip:bob@example.com"),
    ],
)
def test_request_line(start: str, method: str, uri: str) -> None:
    msg = request(build(start))
    assert (msg.method, msg.uri) == (method, uri)
    assert msg.start_line() == f"{method} {uri} SIP/2.0"


@pytest.mark.parametrize(
    ("start", "status", "reason"),
    [
        ("SIP/2.0 200 OK", 200, "OK"),
        ("SIP/2.0 180 Ringing", 180, "Ringing"),
        ("SIP/2.0 486 Busy  Here ", 486, "Busy  Here "),
        ("SIP/2.0 699 Custom\tReason", 699, "Custom\tReason"),
        ("SIP/2.0 100 ", 100, ""),
        ("SIP/2.0 100", 100, ""),
        ("sip/2.0 200 OK", 200, "OK"),
        ("SIP/2.0 200 Ñandú", 200, "Ñandú"),
    ],
)
def test_status_line(start: str, status: int, reason: str) -> None:
    msg = parse(build(start))
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (status, reason)
    assert msg.start_line() == f"SIP/2.0 {status} {reason}"


@pytest.mark.parametrize(
    "start",
    [
        "",
        "INVITE",
        "INVITE sip:bob@example.com",
        "INVITE sip:bob@example.com HTTP/1.1",
        "GET / HTTP/1.1",
        "INV@TE sip:bob@example.com SIP/2.0",
        "INVITE\tsip:bob@example.com SIP/2.0",
        "INVITE sip:bob@example.com SIP/2.0\n",  # was 505: a bare LF is no version
        "INVITE sip:bob@example.com SIP/2.0x",
        "INVITE sip:bob@example.com SIP/",
        "SIP/2.0",
        "SIP/2.0 OK",
        "SIP/2.0 20 OK",
        "SIP/2.0 2000 OK",
        "SIP/2.0 700 Nope",
        "SIP/2.0 099 Nope",
        "SIP/2.0  200 OK",
        "SIP/3.0 200 OK",
        "SIP/2.0 200 O\x00K",
        "SIP/2.0 200 O\rK",
        "SIP/2.0 200 O\x1bK",
        "SIP/2.0 200 OK\x7f",
    ],
)
def test_bad_start_lines(start: str) -> None:
    exc = raises(build(start), 400)
    assert exc.partial is None


@pytest.mark.parametrize("version", ["SIP/3.0", "SIP/2.1", "sip/1.0", "SIP/7.0"])
def test_unsupported_version_is_505_with_partial(version: str) -> None:
    exc = raises(build(f"INVITE sip:bob@example.com {version}"), 505, "Version Not Supported")
    assert isinstance(exc.partial, Request)
    assert exc.partial.call_id == "a84b4c76e66710@pc33.example.com"


@pytest.mark.parametrize(
    "uri",
    [
        "<sip:bob@example.com>",
        "sip:bob@exa\x00mple.com",
        "sip:bob@example.com\x7f",
        "tel:+1\n",  # was accepted: "$" matched before the newline
        "sip:bob@example.com\x1b",
        "sip:",
        "tel:5551234",  # local number without phone-context
        "sip:2001:db8::10",  # RFC 5118 §4.2: an IPv6 reference needs brackets
    ],
)
def test_bad_request_uris(uri: str) -> None:
    exc = raises(build(f"INVITE {uri} SIP/2.0"), 400)
    assert isinstance(exc.partial, Request)


@pytest.mark.parametrize(
    "uri", ["http://example.com/", "urn:service:sos", "im:alice@example.com", "mailto:a@b"]
)
def test_unsupported_uri_scheme_is_416(uri: str) -> None:
    exc = raises(build(f"OPTIONS {uri} SIP/2.0").replace(b"314159 INVITE", b"314159 OPTIONS"), 416)
    assert exc.reason == "Unsupported URI Scheme"
    assert isinstance(exc.partial, Request)


# =============================================================================================
# Headers
# =============================================================================================


def test_compact_forms_all_letters() -> None:
    data = build(
        "OPTIONS sip:a@example.com SIP/2.0",
        "e: gzip",
        "c: text/plain",
        "k: timer",
        "s: subject",
        "o: dialog",
        "u: dialog",
        "r: <sip:c@example.com>",
        "b: <sip:d@example.com>",
        "x: 90",
        "y: token",
        "m: <sip:alice@192.0.2.1>",
        base=False,
        length=False,
    ).replace(
        b"\r\n\r\n",
        b"\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=1\r\nt: <sip:c@d>\r\n"
        b"i: cid\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n",
    )
    msg = parse(data)
    assert [name for name, _ in msg.headers] == [
        "Content-Encoding", "Content-Type", "Supported", "Subject", "Event", "Allow-Events",
        "Refer-To", "Referred-By", "Session-Expires", "Identity", "Contact", "Via", "From",
        "To", "Call-ID", "CSeq", "Content-Length",
    ]  # fmt: skip
    assert msg.call_id == "cid" and msg.from_tag == "1"
    assert b"\r\nContent-Encoding: gzip\r\n" in msg.to_bytes()


def test_comma_separated_values_split_correctly() -> None:
    msg = parse(
        build(
            "OPTIONS sip:a@example.com SIP/2.0",
            'Contact: "Doe, John" <sip:j@example.com;x=1,2>;q=0.5, <sip:k@example.com>,'
            "sip:l@example.com;expires=9",
            "Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>",
            "Route: <sip:p3.example.com;lr>",
            'WWW-Authenticate: Digest realm="a,b", nonce="c"',
            "Date: Sat, 13 Nov 2010 23:29:00 GMT",
        ).replace(b"314159 INVITE", b"314159 OPTIONS")
    )
    contacts = msg.contacts
    assert [c.display_name for c in contacts] == ["Doe, John", None, None]
    assert [str(c.uri) for c in contacts] == [
        "sip:j@example.com;x=1%2C2",  # "," is not a paramchar: escaped on output
        "sip:k@example.com",
        "sip:l@example.com",
    ]
    assert [c.params for c in contacts] == [{"q": "0.5"}, {}, {"expires": "9"}]
    assert [str(r.uri) for r in msg.routes] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
        "sip:p3.example.com;lr",
    ]
    assert msg.get_all("WWW-Authenticate") == ['Digest realm="a,b", nonce="c"']
    assert msg.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]


def test_unknown_headers_are_kept_verbatim() -> None:
    raw = "X-Weird_Name.!%*+`'~: <<a>>, \"unbalanced ;;,, %zz \\"
    msg = parse(
        build("OPTIONS sip:a@example.com SIP/2.0", raw).replace(b"314159 INVITE", b"314159 OPTIONS")
    )
    assert msg.headers[-2] == ("X-Weird_Name.!%*+`'~", '<<a>>, "unbalanced ;;,, %zz \\')
    assert raw.encode() in msg.to_bytes()


def _outcome_of(data: bytes) -> object:
    try:
        msg = parse_datagram(data)
    except RemoteProtocolError as exc:
        partial = exc.partial
        seen = None if partial is None else (partial.start_line(), partial.headers)
        return ("error", exc.status_hint, exc.reason, seen)
    return (msg.start_line(), msg.headers, msg.body)


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_known_header_names_path_reads_like_the_general_one(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Header lines read by name lookup (_KNOWN_NAMES) equal those read line by line."""
    from siphon.sip import parser

    data = wire(name)
    monkeypatch.setattr(parser, "_KNOWN_NAMES", {})  # nothing known: the general path
    first = _outcome_of(data)
    assert _outcome_of(data) == first  # the names it learnt now known


def test_unknown_name_after_known_ones_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The known-names path stops at an unseen name; the general path starts over."""
    from siphon.sip import parser

    monkeypatch.setattr(parser, "_KNOWN_NAMES", {})
    parse(build("OPTIONS sip:a@example.com SIP/2.0").replace(b"INVITE", b"OPTIONS"))
    data = build("OPTIONS sip:a@example.com SIP/2.0", "X-Never-Seen: 1", "Subject: s").replace(
        b"INVITE", b"OPTIONS"
    )
    msg = parse(data)
    names = [name for name, _ in msg.headers]
    assert names == [
        "Via",
        "Max-Forwards",
        "To",
        "From",
        "Call-ID",
        "CSeq",
        "X-Never-Seen",
        "Subject",
        "Content-Length",
    ]


def test_header_with_space_before_colon_and_no_space_after() -> None:
    msg = parse(
        build("OPTIONS sip:a@example.com SIP/2.0", "Subject \t:x", "X-Empty:").replace(
            b"INVITE", b"OPTIONS"
        )
    )
    assert msg.get("Subject") == "x"
    assert msg.get("X-Empty") == ""


def test_folding_regressions() -> None:
    # A fold after an empty value must not leave a leading space in the value.
    msg = parse(
        build("OPTIONS sip:a@example.com SIP/2.0", "Subject:\r\n   hello").replace(
            b"INVITE", b"OPTIONS"
        )
    )
    assert msg.get("Subject") == "hello"
    # A fold that is all white space must not leave a trailing space.
    msg = parse(
        build("OPTIONS sip:a@example.com SIP/2.0", "Subject: hello\r\n \t").replace(
            b"INVITE", b"OPTIONS"
        )
    )
    assert msg.get("Subject") == "hello"
    # Tolerated: folding between the header name and its colon (as in a draft of RFC 4475).
    msg = parse(
        build("OPTIONS sip:a@example.com SIP/2.0", "Subject\r\n :\r\n hello").replace(
            b"INVITE", b"OPTIONS"
        )
    )
    assert msg.get("Subject") == "hello"
    # Folding inside a typed header.
    data = build("OPTIONS sip:a@example.com SIP/2.0").replace(b"INVITE", b"OPTIONS")
    data = data.replace(b"CSeq: 314159 OPTIONS", b"CSeq: 314159\r\n\tOPTIONS")
    assert parse(data).cseq == CSeq(314159, "OPTIONS")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("No colon here", "Malformed Header Line"),
        ("Bad Name: x", "Malformed Header Line"),
        (": no name", "Malformed Header Line"),
        ("X-Ä: x", "Malformed Header Line"),
        ("X-A: a\x00b", "Bad Header Line"),
        ("X-A: a\rb", "Bad Header Line"),
        ("X-A: a\nb", "Bad Header Line"),
    ],
)
def test_bad_header_lines_give_a_partial_with_every_good_header(line: str, reason: str) -> None:
    # The bad line comes first: the partial still has Via, Call-ID, From, To, CSeq after it.
    start, rest = build().split(b"\r\n", 1)
    data = start + b"\r\n" + line.encode("utf-8") + b"\r\n" + rest
    exc = raises(data, 400, reason)
    partial = exc.partial
    assert isinstance(partial, Request)
    assert partial.method == "INVITE"
    assert partial.top_via.branch == "z9hG4bK776asdhds"
    assert partial.call_id == "a84b4c76e66710@pc33.example.com"
    assert partial.cseq == CSeq(314159, "INVITE")
    assert partial.from_tag == "1928301774"
    assert partial.get("Content-Length") == "0"


def test_continuation_before_any_header() -> None:
    start, rest = build().split(b"\r\n", 1)
    data = start + b"\r\n folded\r\n" + rest
    exc = raises(data, 400, "Bad Header Folding")
    assert isinstance(exc.partial, Request)


def test_bad_header_in_a_response_has_no_partial() -> None:
    _, rest = build().split(b"\r\n", 1)
    exc = raises(b"SIP/2.0 200 OK\r\nNo colon\r\n" + rest, 400, "Malformed Header Line")
    assert exc.partial is None


def test_mixed_line_endings_are_refused() -> None:
    data = build("OPTIONS sip:a@example.com SIP/2.0").replace(
        b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n"
    )
    raises(data, 400, "Bad Header Line")


def test_nul_only_as_quoted_pair() -> None:
    ok = build("INVITE sip:a@example.com SIP/2.0", 'X-Q: "N\\\x00L"', 'X-R: "\\\x00"')
    assert parse(ok).get("X-R") == '"\\\x00"'
    raises(build("OPTIONS sip:a@example.com SIP/2.0", 'X-N: "N\x00L"'), 400, "Bad Header Line")
    msg = parse(wire("rfc4475/valid/intmeth"))
    assert msg.to_addr.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        ("Via", "Missing Via"),
        ("Call-ID", "Missing Call-ID"),
        ("From", "Missing From"),
        ("To", "Missing To"),
        ("CSeq", "Missing CSeq"),
    ],
)
def test_missing_mandatory_header(missing: str, reason: str) -> None:
    data = b"\r\n".join(
        line for line in build().split(b"\r\n") if not line.startswith(missing.encode() + b":")
    )
    exc = raises(data, 400, reason)
    assert isinstance(exc.partial, Request)


@pytest.mark.parametrize(
    "duplicate",
    [
        "Call-ID: other@x",
        "CSeq: 1 INVITE",
        "From: <sip:x@y>;tag=2",
        "To: <sip:x@y>",
        "t: <sip:x@y>",
        "Max-Forwards: 10",
        "l: 0",
    ],
)
def test_duplicate_single_headers(duplicate: str) -> None:
    exc = raises(build("INVITE sip:bob@example.com SIP/2.0", duplicate), 400, "Duplicate Header")
    assert isinstance(exc.partial, Request)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Call-ID:   ", "Bad Call-ID"),
        ("CSeq: x INVITE", "Bad CSeq"),
        ("CSeq: 1 BYE", "CSeq Method Mismatch"),
        ("Max-Forwards: 256", "Bad Max-Forwards"),
        ("Max-Forwards: -1", "Bad Max-Forwards"),
        ("Max-Forwards: " + "9" * 5000, "Bad Max-Forwards"),
        ("Via: SIP/2.0/UDP", "Bad Via"),
        ("From: <sip:alice@example.com", "Bad Header"),
        ("To: Bob, Jr <sip:bob@example.com>", "Bad Header"),
    ],
)
def test_bad_typed_headers(header: str, reason: str) -> None:
    name = header.split(":")[0]
    lines = [line for line in build().split(b"\r\n") if not line.startswith(name.encode() + b":")]
    lines.insert(1, header.encode())
    exc = raises(b"\r\n".join(lines), 400, reason)
    assert isinstance(exc.partial, Request)


@pytest.mark.parametrize("value", ["0068", "00000000000000000070", "0255", " 0 "])
def test_max_forwards_with_leading_zeros_is_accepted(value: str) -> None:
    # RFC 4475 wsinv has "Max-Forwards: 0068" (the accessor: see test_message.py).
    msg = parse(
        build("OPTIONS sip:a@example.com SIP/2.0")
        .replace(b"Max-Forwards: 70", f"Max-Forwards: {value}".encode())
        .replace(b"314159 INVITE", b"314159 OPTIONS")
    )
    assert msg.get("Max-Forwards") == value.strip()
    bad = build().replace(b"Max-Forwards: 70", b"Max-Forwards: 0256")
    raises(bad, 400, "Bad Max-Forwards")


def test_response_validation() -> None:
    data = build("SIP/2.0 200 OK")
    assert response(data).status == 200
    raises(
        data.replace(b"Call-ID: a84b4c76e66710@pc33.example.com\r\n", b""), 400, "Missing Call-ID"
    )
    # No Max-Forwards or CSeq method check for responses.
    assert response(data.replace(b"Max-Forwards: 70", b"Max-Forwards: 999")).status == 200


# =============================================================================================
# Content-Length framing (datagrams)
# =============================================================================================


def test_extra_bytes_after_content_length_are_discarded() -> None:
    data = build(body=b"hello")
    msg = parse(data + b"garbage that is not part of the message")
    assert msg.body == b"hello"


def test_short_body_is_400() -> None:
    data = build(body=b"hello")[:-1]
    exc = raises(data, 400, "Bad Content-Length")
    assert isinstance(exc.partial, Request) and exc.partial.call_id


def test_no_content_length_over_udp_takes_the_rest() -> None:
    data = build(body=b"", length=False) + b"the body\r\n"
    assert parse(data).body == b"the body\r\n"


def test_content_length_zero_ignores_a_body() -> None:
    data = build(body=b"") + b"v=0\r\n"
    assert parse(data).body == b""


@pytest.mark.parametrize(
    "value", ["abc", "-1", "1e3", "+5", "\u0665", "5 5", "0x10", "", "9999999999"]
)
def test_bad_content_length(value: str) -> None:
    data = build(length=False, body=b"").replace(
        b"\r\n\r\n", f"\r\nContent-Length: {value}\r\n\r\n".encode()
    )
    exc = raises(data, 400, "Bad Content-Length")
    assert isinstance(exc.partial, Request)


def test_content_length_with_leading_zeros() -> None:
    data = build(length=False).replace(
        b"\r\n\r\n", b"\r\nContent-Length: 000000000000005\r\n\r\nhello"
    )
    assert parse(data).body == b"hello"


def test_missing_header_end() -> None:
    data = build()[:-4]
    exc = raises(data, 400, "Missing Header End")
    assert isinstance(exc.partial, Request)
    assert exc.partial.call_id == "a84b4c76e66710@pc33.example.com"
    raises(b"SIP/2.0 200 OK\r\nVia: x", 400)


@pytest.mark.parametrize("data", [b"", b"\r\n", b"\r\n\r\n\n\n", b"\n"])
def test_empty_datagram(data: bytes) -> None:
    exc = raises(data, 400)
    assert exc.partial is None


# =============================================================================================
# Limits
# =============================================================================================


def test_datagram_size_limit() -> None:
    overhead = len(build(body=b"x" * 60000)) - 60000  # Content-Length has 5 digits either way
    body = b"x" * (MAX_DATAGRAM_SIZE - overhead)
    exact = build(body=body)
    assert len(exact) == MAX_DATAGRAM_SIZE
    assert parse(exact).body == body
    too_big = build(body=body + b"x")
    assert len(too_big) == MAX_DATAGRAM_SIZE + 1
    exc = raises(too_big, 513, "Message Too Large")
    assert "exceeds" in str(exc)


def test_header_count_limit() -> None:
    mandatory = 7  # Via, Max-Forwards, To, From, Call-ID, CSeq, Content-Length
    fill = [f"X-Fill-{i}: {i}" for i in range(MAX_HEADER_COUNT - mandatory)]
    assert (
        len(parse(build("INVITE sip:bob@example.com SIP/2.0", *fill)).headers) == MAX_HEADER_COUNT
    )
    exc = raises(
        build("INVITE sip:bob@example.com SIP/2.0", *fill, "X-One-Too-Many: 1"),
        400,
        "Too Many Headers",
    )
    assert isinstance(exc.partial, Request)
    assert exc.partial.call_id == "a84b4c76e66710@pc33.example.com"


def test_header_line_length_limit() -> None:
    ok = "X-Long: " + "a" * MAX_LINE_LENGTH
    assert (
        parse(build("INVITE sip:bob@example.com SIP/2.0", ok)).get("X-Long")
        == "a" * MAX_LINE_LENGTH
    )
    exc = raises(build("INVITE sip:bob@example.com SIP/2.0", ok + "a"), 400, "Header Too Long")
    assert isinstance(exc.partial, Request) and exc.partial.call_id
    # Folding does not get around the limit.
    half = "a" * (MAX_LINE_LENGTH // 2 + 1)
    raises(
        build("INVITE sip:bob@example.com SIP/2.0", f"X-Long: {half}\r\n {half}"),
        400,
        "Header Too Long",
    )


def test_request_uri_length_limit_is_414() -> None:
    def uri(length: int) -> str:
        return "sip:" + "u" * (length - len("sip:@example.com")) + "@example.com"

    assert len(uri(MAX_URI_LENGTH)) == MAX_URI_LENGTH
    assert request(build(f"INVITE {uri(MAX_URI_LENGTH)} SIP/2.0")).uri == uri(MAX_URI_LENGTH)
    exc = raises(build(f"INVITE {uri(MAX_URI_LENGTH + 1)} SIP/2.0"), 414, "Request-URI Too Long")
    assert isinstance(exc.partial, Request)
    assert exc.partial.call_id == "a84b4c76e66710@pc33.example.com"


def test_start_line_length_limit() -> None:
    raises(build("SIP/2.0 200 " + "x" * MAX_LINE_LENGTH), 400, "Start Line Too Long")
    method = "M" * MAX_LINE_LENGTH  # a request line too long, but not for its URI
    exc = raises(build(f"{method} sip:bob@example.com SIP/2.0"), 400, "Start Line Too Long")
    assert isinstance(exc.partial, Request)


# =============================================================================================
# Stream framing
# =============================================================================================


def _stream_wire(name: str) -> bytes:
    """The fixture's bytes when its Content-Length frames it exactly, else its serialization."""
    data = wire(name)
    msg = parse(data)
    length = msg.get("Content-Length")
    if (
        length is not None
        and int(length) == len(msg.body)
        and data.endswith(b"\r\n\r\n" + msg.body)
    ):
        return data
    return msg.to_bytes()


def test_stream_two_messages_in_one_datagram_fixture() -> None:
    # RFC 4475 dblreq: one UDP message, but a stream frames two by Content-Length.
    parser = StreamParser()
    out = parser.feed(wire("rfc4475/valid/dblreq"))
    assert [m.cseq.method for m in out] == ["REGISTER", "INVITE"]
    assert len(out[1].body) == 150
    assert parser.buffered == 3  # the INVITE's SDP is 3 bytes longer than its Content-Length


STREAM_FIXTURES = VALID_FIXTURES


@pytest.mark.parametrize("name", STREAM_FIXTURES)
def test_stream_every_split_point(name: str) -> None:
    data = _stream_wire(name)
    expected = parse(data)
    for i in range(len(data) + 1):
        parser = StreamParser()
        first = parser.feed(data[:i])
        second = parser.feed(data[i:])
        assert len(first) + len(second) == 1, i
        _assert_same((first + second)[0], expected)
        assert parser.buffered == 0
        assert parser.pings == 0


def test_stream_one_byte_at_a_time_and_all_at_once() -> None:
    wires = [_stream_wire(name) for name in STREAM_FIXTURES]
    expected = [parse(w) for w in wires]
    blob = b"".join(wires)
    parser = StreamParser()
    at_once = parser.feed(blob)
    assert len(at_once) == len(wires)
    for got, want in zip(at_once, expected, strict=True):
        _assert_same(got, want)
    parser = StreamParser()
    one_by_one: list[Request | Response] = []
    for i in range(len(blob)):
        one_by_one += parser.feed(blob[i : i + 1])
    assert len(one_by_one) == len(wires)
    for got, want in zip(one_by_one, expected, strict=True):
        _assert_same(got, want)
    assert parser.buffered == 0


def test_stream_keepalive_pings() -> None:
    message = _stream_wire("real/options_ping")
    blob = b"\r\n\r\n" + message + b"\r\n\r\n\r\n\r\n" + message + b"\r\n" + message + b"\r\n\r\n"
    parser = StreamParser()
    assert len(parser.feed(blob)) == 3
    assert parser.pings == 4  # the lone CRLF between two messages is no ping
    assert parser.buffered == 0
    # Every split point, including ones inside a ping.
    for i in range(len(blob) + 1):
        parser = StreamParser()
        out = parser.feed(blob[:i]) + parser.feed(blob[i:])
        assert len(out) == 3, i
        assert parser.pings == 4, i


def test_stream_pings_fed_byte_by_byte() -> None:
    parser = StreamParser()
    for byte in b"\r\n\r\n" * 5:
        assert parser.feed(bytes([byte])) == []
    assert parser.pings == 5
    assert parser.buffered == 0
    parser.feed(b"\r\n")  # a pong (single CRLF) is not a ping
    assert parser.pings == 5


def test_stream_missing_content_length() -> None:
    parser = StreamParser()
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(build(length=False))
    assert info.value.reason == "Missing Content-Length"
    assert isinstance(info.value.partial, Request)


def test_stream_waits_for_the_body() -> None:
    data = build(body=b"0123456789")
    parser = StreamParser()
    assert parser.feed(data[:-5]) == []
    assert parser.buffered == 5
    (msg,) = parser.feed(data[-5:] + data[:10])
    assert msg.body == b"0123456789"
    assert parser.buffered == 10


def test_stream_size_limits() -> None:
    parser = StreamParser()
    header_block = (
        b"INVITE sip:bob@example.com SIP/2.0\r\nX-Filler: " + b"a" * MAX_STREAM_MESSAGE_SIZE
    )
    with pytest.raises(RemoteProtocolError) as info:
        for i in range(0, len(header_block), 4096):
            parser.feed(header_block[i : i + 4096])
    assert info.value.status_hint == 513
    parser = StreamParser()
    big = build(length=False).replace(b"\r\n\r\n", b"\r\nContent-Length: 70000\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(big)
    assert info.value.status_hint == 513
    assert isinstance(info.value.partial, Request)


def test_stream_errors_are_remote_protocol_errors() -> None:
    for data in (
        b"garbage\r\n\r\n",
        b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        build("INVITE sip:bob@example.com SIP/2.0", "CSeq: 2 INVITE"),
        build("INVITE sip:bob@example.com SIP/2.0", "Content-Length: 1", body=b"x"),
    ):
        parser = StreamParser()
        with pytest.raises(RemoteProtocolError):
            parser.feed(data)


def test_stream_bare_lf_and_leading_crlf() -> None:
    data = (
        build("OPTIONS sip:a@example.com SIP/2.0")
        .replace(b"\r\n", b"\n")
        .replace(b"INVITE", b"OPTIONS")
    )
    parser = StreamParser()
    out = parser.feed(b"\r\n" + data + data)
    assert [m.call_id for m in out] == ["a84b4c76e66710@pc33.example.com"] * 2


def test_stream_large_message_byte_by_byte() -> None:
    # Feeding a big header block in tiny pieces must not rescan it from the start each time.
    data = build(
        "INVITE sip:bob@example.com SIP/2.0", *[f"X-H{i}: {'v' * 200}" for i in range(200)]
    )
    parser = StreamParser()
    out: list[Request | Response] = []
    for i in range(0, len(data), 3):
        out += parser.feed(data[i : i + 3])
    assert len(out) == 1 and out[0].get("X-H199") == "v" * 200


# =============================================================================================
# Properties: only RemoteProtocolError may escape, and what parses round-trips.
# =============================================================================================

ACCESSORS = (
    "call_id",
    "cseq",
    "from_addr",
    "to_addr",
    "from_tag",
    "to_tag",
    "vias",
    "top_via",
    "contacts",
    "record_routes",
    "routes",
    "max_forwards",
    "content_type",
)


def _exercise(msg: Message) -> dict[str, str]:
    """Call every typed accessor; they may raise only RemoteProtocolError."""
    seen: dict[str, str] = {}
    names = ACCESSORS + (("request_uri",) if isinstance(msg, Request) else ())
    for name in names:
        try:
            value = getattr(msg, name)
        except RemoteProtocolError as exc:
            assert exc.reason
            seen[name] = "error"
            continue
        seen[name] = repr(value)
        if name == "vias":
            for via in value:
                seen[name] += repr(
                    (via.branch, via.received, via.rport, via.wants_rport, via.sent_by, str(via))
                )
        elif name in ("contacts", "routes", "record_routes"):
            seen[name] += repr([(str(a), a.tag) for a in value])
        elif name in ("from_addr", "to_addr", "request_uri"):
            seen[name] += str(value)
    try:
        seen["options"] = repr(msg.option_tags("Supported") + msg.option_tags("Require"))
    except RemoteProtocolError:
        seen["options"] = "error"
    if isinstance(msg, Request):
        response = msg.make_response(400, "Bad Request", to_tag="t")
        seen["response"] = repr(response.to_bytes())
    return seen


def _assert_same(a: Message, b: Message) -> None:
    assert type(a) is type(b)
    assert a.start_line() == b.start_line()
    assert a.body == b.body

    def headers(m: Message) -> list[tuple[str, str]]:
        return [(n, v) for n, v in m.headers if n != "Content-Length"]

    assert headers(a) == headers(b)


def _check_round_trip(msg: Message) -> None:
    data = msg.to_bytes()
    if len(data) > MAX_DATAGRAM_SIZE or len(msg.headers) >= MAX_HEADER_COUNT:
        return
    again = parse_datagram(data)
    _assert_same(msg, again)
    assert again.to_bytes() == data
    assert _exercise(again) == _exercise(msg)


def _check_datagram(data: bytes) -> None:
    try:
        msg = parse_datagram(data)
    except RemoteProtocolError as exc:
        assert exc.reason and 400 <= exc.status_hint < 600
        if exc.partial is not None:
            assert isinstance(exc.partial, Request)
            _exercise(exc.partial)
        return
    _exercise(msg)
    _check_round_trip(msg)


def _check_stream(data: bytes, chunks: list[int]) -> None:
    parser = StreamParser()
    pos = 0
    try:
        for size in [*chunks, len(data)]:
            for msg in parser.feed(data[pos : pos + size]):
                _exercise(msg)
                _check_round_trip(msg)
            pos += size
    except RemoteProtocolError as exc:
        assert exc.reason
        if isinstance(exc.partial, Request):
            _exercise(exc.partial)


CORPUS = [wire(name) for name in ALL_FIXTURES]
SPECIAL = [
    b"\r", b"\n", b"\r\n", b"\r\n\r\n", b"\r\n ", b"\x00", b'"', b"\\", b"<", b">", b"%", b"%0",
    b";", b",", b":", b" ", b"\t", b"=", b"?", b"@", b"[", b"]", b"\xff", b"\xc3", b"\x7f",
    b"sip:", b"tel:", b"SIP/2.0", b";tag=", b";rport=\xc2\xb2", b";rport=99999999999999999999",
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 8))):
        n = len(data)
        op = draw(
            st.sampled_from(
                ["flip", "truncate", "duplicate", "insert", "delete", "replace", "case"]
            )
        )
        i = draw(st.integers(0, n))
        if op == "flip" and i < n:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[i:]
        elif op == "duplicate":
            j = draw(st.integers(i, min(n, i + 64)))
            data[j:j] = data[i:j]
        elif op == "insert":
            data[i:i] = draw(st.sampled_from(SPECIAL))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 16))]
        elif op == "replace":
            data[i : i + 1] = draw(st.sampled_from(SPECIAL))
        elif op == "case" and i < n:
            data[i : i + 8] = bytes(data[i : i + 8]).swapcase()
    return bytes(data)


_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    _check_datagram(data)
    _check_stream(data, [len(data) // 2])


@_SETTINGS
@given(
    st.lists(
        st.sampled_from([*SPECIAL, b"INVITE ", b"Via: ", b"Content-Length: 5", b"a"]), max_size=40
    )
)
def test_random_tokens(parts: list[bytes]) -> None:
    data = b"".join(parts)
    _check_datagram(b"INVITE sip:a@b SIP/2.0\r\n" + data)
    _check_datagram(data)


@_SETTINGS
@given(mutated())
def test_mutated_fixtures_datagram(data: bytes) -> None:
    _check_datagram(data)


@_SETTINGS
@given(mutated(), st.lists(st.integers(1, 300), max_size=12))
def test_mutated_fixtures_stream(data: bytes, chunks: list[int]) -> None:
    _check_stream(data, chunks)


@_SETTINGS
@given(
    st.sampled_from(VALID_FIXTURES), st.lists(st.integers(1, 200), max_size=20), st.integers(0, 3)
)
def test_valid_fixtures_random_chunking(name: str, chunks: list[int], pings: int) -> None:
    data = _stream_wire(name)
    blob = b"\r\n\r\n" * pings + data + b"\r\n\r\n" * pings + data
    parser = StreamParser()
    out: list[Request | Response] = []
    pos = 0
    for size in [*chunks, len(blob)]:
        out += parser.feed(blob[pos : pos + size])
        pos += size
    assert len(out) == 2 and parser.pings == 2 * pings and parser.buffered == 0
    expected = parse(data)
    for msg in out:
        _assert_same(msg, expected)
