"""SIP, SIPS and tel URIs, name-addr / addr-spec, and Via (RFC 3261 §19.1, §20.10, §20.42)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siphon.errors import RemoteProtocolError
from siphon.sip.uri import (
    AbsoluteUri,
    NameAddr,
    SipUri,
    TelUri,
    Via,
    parse_host,
    parse_name_addr,
    parse_uri,
    parse_via,
)


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


# --- SIP and SIPS URIs --------------------------------------------------------------


def test_minimal_sip_uri() -> None:
    uri = sip("sip:alice@example.com")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sip",
        "alice",
        None,
        "example.com",
        None,
    )
    assert uri.params == {} and uri.headers == {}
    assert uri.transport is None
    assert str(uri) == "sip:alice@example.com"


def test_sips_uri_with_everything() -> None:
    uri = sip(
        "sips:alice:secret@example.com:5061;transport=TLS;lr;maddr=239.255.255.1?subject=project%20x&priority=urgent"
    )
    assert uri.scheme == "sips"
    assert uri.user == "alice"
    assert uri.password == "secret"
    assert uri.hostport == "example.com:5061"
    assert uri.params == {"transport": "TLS", "lr": None, "maddr": "239.255.255.1"}
    assert uri.transport == "tls"
    assert uri.headers == {"subject": "project x", "priority": "urgent"}
    assert sip(str(uri)) == uri


def test_scheme_is_case_insensitive() -> None:
    uri = sip("SIP:alice@Example.COM")
    assert uri.scheme == "sip"
    assert uri.host == "Example.COM"


def test_uri_without_user() -> None:
    uri = sip("sip:example.com;lr")
    assert uri.user is None and uri.host == "example.com" and uri.params == {"lr": None}
    assert str(uri) == "sip:example.com;lr"


@pytest.mark.parametrize(
    ("text", "user", "rendered"),
    [
        ("sip:%61lice@example.com", "alice", "sip:alice@example.com"),
        ("sip:I%20have%20spaces@example.net", "I have spaces", "sip:I%20have%20spaces@example.net"),
        ("sip:sips%3Auser%40example.com@example.net", "sips:user@example.com", None),
        ("sip:null-%00-null@example.com", "null-\x00-null", "sip:null-%00-null@example.com"),
        ("sip:user;par=u%40example.net@example.com", "user;par=u@example.net", None),
        ("sip:%C3%A9t%C3%A9@example.com", "été", "sip:%C3%A9t%C3%A9@example.com"),
        ("sip:%FF@example.com", "\udcff", "sip:%FF@example.com"),
        (
            "sip:+1-(415)555.0100@example.com",
            "+1-(415)555.0100",
            "sip:+1-(415)555.0100@example.com",
        ),
    ],
)
def test_user_part_escapes(text: str, user: str, rendered: str | None) -> None:
    uri = sip(text)
    assert uri.user == user
    if rendered is not None:
        assert str(uri) == rendered
    assert sip(str(uri)) == uri  # two spellings of one URI are one URI


def test_escaped_parameters_rfc4475_esc01() -> None:
    uri = sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.user == "caller"
    # Unescaped exactly once: "%25%34%31" is "%41", not "A".
    assert uri.params == {"lr": None, "name": "value%41"}
    assert sip(str(uri)) == uri


def test_wide_range_of_valid_characters_rfc4475_intmeth() -> None:
    uri = sip(
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    )
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert uri.params == {} and uri.headers == {}


def test_uri_headers() -> None:
    uri = sip("sip:user@example.com?Route=%3Csip:sip.example.com%3E")
    assert uri.headers == {"Route": "<sip:sip.example.com>"}
    again = sip(str(uri))
    assert again.headers == uri.headers


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),
        ("sip:[2001:db8::10]:5070", "[2001:db8::10]", 5070),
        ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),  # RFC 5118 §4.3
        ("sip:user@[::1]:5060;transport=tcp", "[::1]", 5060),
        ("sip:[2001:db8::192.0.2.1]", "[2001:db8::192.0.2.1]", None),
        ("sip:192.0.2.1:5060", "192.0.2.1", 5060),
        ("sip:host.example.com.", "host.example.com.", None),
        ("sip:a", "a", None),
        ("sip:my_host.example.com:0", "my_host.example.com", 0),
        ("sip:h:65535", "h", 65535),
    ],
)
def test_hosts_and_ports(text: str, host: str, port: int | None) -> None:
    uri = sip(text)
    assert (uri.host, uri.port) == (host, port)
    assert sip(str(uri)) == uri


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:@example.com",
        "sip:alice@",
        "sip:2001:db8::10",  # RFC 5118 §4.2: IPv6 without brackets
        "sip:[2001:db8::10",
        "sip:[2001:db8::10]x",
        "sip:[zz::1]",
        "sip:host:",
        "sip:host:65536",
        "sip:host:123456",
        "sip:host:5o60",
        "sip:host:\u0665\u0660\u0666\u0660",  # non-ASCII digits
        "sip:-host.example.com",
        "sip:ho st.example.com",
        "sip:alice@example.com\n",
        "sip:alice@example.com\r",
        "sip:al\x00ice@example.com",
        "sip:alice@exa\x7fmple.com",
        "sip:alice\t@example.com",
        "sip:<alice@example.com>",
        'sip:"alice"@example.com',
        "sip:a%2@example.com",
        "sip:a%zz@example.com",
        "sip:a@example.com;%",
        "sip:host;;lr",
        "sip:host;",
        "sip:host;=x",
        "sip:host?",
        "sip:host?x",
        "sip:host?=x",
        "sip:host?a=1&&b=2",
        "sip:exa%6dple.com",
    ],
)
def test_bad_sip_uris(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_uri(text)
    assert info.value.status_hint == 400
    assert info.value.reason == "Bad URI"


def test_parse_host_direct() -> None:
    assert parse_host("example.com:5060", "x") == ("example.com", 5060)
    assert parse_host("[::1]", "x") == ("[::1]", None)
    with pytest.raises(RemoteProtocolError):
        parse_host("example.com\n", "x")  # "$" would have matched before the newline
    with pytest.raises(RemoteProtocolError):
        parse_host("[::1]\n", "x")


# --- tel and other schemes ---------------------------------------------------------------


def test_global_tel_uri() -> None:
    uri = parse_uri("tel:+1-201-555-0123;ext=1234")
    assert isinstance(uri, TelUri)
    assert uri.scheme == "tel"
    assert uri.is_global
    assert uri.number == "+1-201-555-0123"
    assert uri.digits == "+12015550123"
    assert uri.params == {"ext": "1234"}
    assert parse_uri(str(uri)) == uri


def test_local_tel_uri_needs_phone_context() -> None:
    uri = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(uri, TelUri)
    assert not uri.is_global
    assert uri.params == {"phone-context": "example.com"}
    with pytest.raises(RemoteProtocolError):
        parse_uri("tel:7042")
    assert isinstance(parse_uri("TEL:*69#;phone-context=+1"), TelUri)


@pytest.mark.parametrize(
    "text",
    ["tel:", "tel:+", "tel:+-", "tel:++1", "tel:+1 555", "tel:+1\n", "tel:+1\x00", "tel:+1x2"],
)
def test_bad_tel_uris(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_uri(text)


@pytest.mark.parametrize(
    ("text", "scheme"),
    [
        ("urn:service:sos", "urn"),
        ("http://www.example.com", "http"),
        ("isbn:2983792873", "isbn"),
        ("name:John_Smith", "name"),
        ("soap.beep://192.0.2.103:3002", "soap.beep"),
        ("nobodyKnowsThisScheme:totallyopaquecontent", "nobodyknowsthisscheme"),
    ],
)
def test_other_schemes_are_kept_verbatim(text: str, scheme: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, AbsoluteUri)
    assert uri.scheme == scheme
    assert str(uri) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nocolon",
        ":x",
        "1abc:foo",
        "mailto:",
        "http://exa mple.com",
        "urn:a<b",
        "urn:\x00",
        "<sip:a@b>",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_uri(text)


# --- name-addr and addr-spec -------------------------------------------------------------


def test_name_addr_with_quoted_display_name() -> None:
    na = parse_name_addr('"Alice Smith" <sip:alice@example.com;transport=tcp>;tag=abc;expires=60')
    assert na.display_name == "Alice Smith"
    assert isinstance(na.uri, SipUri)
    assert na.uri.params == {"transport": "tcp"}  # URI parameters ...
    assert na.params == {"tag": "abc", "expires": "60"}  # ... are not header parameters
    assert na.tag == "abc"
    assert not na.wildcard
    assert parse_name_addr(str(na)) == na


def test_addr_spec_parameters_belong_to_the_header() -> None:
    # RFC 3261 §20.10: in the addr-spec form, parameters after the URI are header params.
    na = parse_name_addr("sip:alice@example.com;tag=abc;user=phone")
    assert na.display_name is None
    assert isinstance(na.uri, SipUri)
    assert na.uri.params == {}
    assert na.params == {"tag": "abc", "user": "phone"}
    # RFC 4475 §3.3.13 cparam01 / cparam02
    cparam01 = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam")
    assert cparam01.params == {"unknownparam": None}
    assert isinstance(cparam01.uri, SipUri) and cparam01.uri.params == {}
    cparam02 = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert cparam02.params == {}
    assert isinstance(cparam02.uri, SipUri) and cparam02.uri.params == {"unknownparam": None}


def test_addr_spec_with_tel_uri() -> None:
    na = parse_name_addr("tel:+14155550100;tag=x")
    assert isinstance(na.uri, TelUri) and na.uri.params == {}
    assert na.tag == "x"


@pytest.mark.parametrize(
    ("value", "display"),
    [
        ("caller<sip:caller@example.com>;tag=323", "caller"),  # RFC 4475 lwsdisp
        ("Alice Smith <sip:a@example.com>", "Alice Smith"),
        (
            "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>",
            "token1~` token2'+_ token3*%!.-",
        ),
        ("José Ñandú <sip:j@example.com>", "José Ñandú"),
        ('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>', 'J Rosenberg \\"'),
        ('"Quoted string \\"\\"" <sip:jdrosen@example.com>', 'Quoted string ""'),
        ('"Bell, Alexander" <sip:a.g.bell@example.com>', "Bell, Alexander"),
        ('"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:a@example.com>', "BEL:\x07 NUL:\x00 DEL:\x7f"),
        ('""<sip:a@example.com>', ""),
        ("<sip:a@example.com>", None),
        ("  <sip:a@example.com>  ", None),
    ],
)
def test_display_names(value: str, display: str | None) -> None:
    na = parse_name_addr(value)
    assert na.display_name == display
    reparsed = parse_name_addr(str(na))
    assert reparsed.uri == na.uri and reparsed.params == na.params


def test_wildcard_contact() -> None:
    na = parse_name_addr(" * ")
    assert na.wildcard
    assert str(na) == "*"


def test_unknown_scheme_in_name_addr() -> None:
    na = parse_name_addr("<http://www.example.com>;tag=3234233")
    assert isinstance(na.uri, AbsoluteUri) and na.uri.scheme == "http"
    assert na.tag == "3234233"


def test_with_tag() -> None:
    na = parse_name_addr("<sip:a@example.com>;expires=5")
    tagged = na.with_tag("xyz")
    assert tagged.tag == "xyz" and tagged.params == {"expires": "5", "tag": "xyz"}
    assert na.tag is None


@pytest.mark.parametrize(
    "value",
    [
        '"Mr. J. User <sip:j.user@example.com>',  # RFC 4475 quotbal
        '"Alice" sip:alice@example.com',  # display name without <>
        "<sip:alice@example.com",  # unterminated <
        "<sip:alice@example.com> garbage",
        "<sip:alice@example.com>;=x",
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # RFC 4475 baddn
        'Joe "x" <sip:joe@example.com>',
        "Joe@home <sip:joe@example.com>",
        "< sip:t.watson@example.org >",  # RFC 4475 badaspec
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # RFC 4475 regbadct
        "sip:a@example.com, sip:b@example.com",
        "",
        "<>",
        '"unterminated \\" <sip:a@b>',
        '<sip:a@b>;tag="x',
    ],
)
def test_bad_name_addrs(value: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_name_addr(value)
    assert info.value.status_hint == 400


# --- Via ---------------------------------------------------------------------------------


def test_via_ipv4_with_branch_and_rport_flag() -> None:
    via = parse_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport")
    assert (via.transport, via.host, via.port) == ("UDP", "192.0.2.1", 5060)
    assert via.branch == "z9hG4bK776asdhds"
    assert via.wants_rport and via.rport is None
    assert via.received is None
    assert via.sent_by == ("192.0.2.1", 5060)
    assert parse_via(str(via)) == via


def test_via_received_and_rport_value() -> None:
    via = parse_via(
        "SIP/2.0/UDP pc33.example.com;branch=z9hG4bKnashds8;received=192.0.2.7;rport=5061"
    )
    assert via.host == "pc33.example.com" and via.port is None
    assert via.received == "192.0.2.7"
    assert via.rport == 5061 and via.wants_rport


def test_via_ipv6() -> None:
    via = parse_via(
        "SIP/2.0/TCP [2001:db8::9:1]:6050;received=[2001:db8::9:255];branch=z9hG4bKas3-111"
    )
    assert (via.transport, via.host, via.port) == ("TCP", "[2001:db8::9:1]", 6050)
    assert via.received == "[2001:db8::9:255]"
    assert via.branch == "z9hG4bKas3-111"
    assert parse_via(str(via)) == via
    no_delim = parse_via("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3")
    assert no_delim.received == "2001:db8::9:255"


def test_via_with_lws_everywhere_rfc4475_wsinv() -> None:
    via = parse_via("SIP  /   2.0 /UDP     192.0.2.2;branch=390skdjuw")
    assert (via.transport, via.host, via.branch) == ("UDP", "192.0.2.2", "390skdjuw")
    via = parse_via("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
    assert (via.transport, via.host, via.branch) == ("TCP", "spindle.example.com", "z9hG4bK9ikj8")


def test_via_transport_is_upper_cased_and_extension_transports_pass() -> None:
    assert parse_via("sip/2.0/udp h").transport == "UDP"
    for transport in ("SCTP", "TLS", "WS", "WSS", "TLS-SCTP", "UNKNOWN"):
        assert parse_via(f"SIP/2.0/{transport} h;branch=z9hG4bK1").transport == transport


def test_via_comment_is_ignored() -> None:
    via = parse_via("SIP/2.0/UDP h.example.com;branch=z9hG4bK1 (this is a comment)")
    assert via.branch == "z9hG4bK1"


@pytest.mark.parametrize("rport", ["\u00b2", "\u0665", "-1", "", "9" * 5000, "123456", "0x10"])
def test_via_rport_never_raises(rport: str) -> None:
    via = parse_via(f"SIP/2.0/UDP h;rport={rport};branch=z9hG4bK1")
    assert via.rport is None
    assert via.wants_rport


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0 host",
        "SIP/3.0/UDP host",
        "SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw",  # RFC 4475 badvers
        "HTTP/2.0/UDP host",
        "SIP/2.0/UDP host garbage",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP [::1",
        "SIP/2.0/UDP -host",
        "SIP/2.0/UDP host;=x",
        'SIP/2.0/UDP host;branch="x',
        ";",
        "SIP/2.0/U@P host",
    ],
)
def test_bad_vias(value: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_via(value)
    assert info.value.status_hint == 400


def test_via_str() -> None:
    via = Via("TLS", "[::1]", 5061, {"branch": "z9hG4bK1", "rport": None, "alias": None})
    assert str(via) == "SIP/2.0/TLS [::1]:5061;branch=z9hG4bK1;rport;alias"


# --- properties ----------------------------------------------------------------------------

_USER = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], max_codepoint=0x2FF),
    min_size=1,
    max_size=15,
)
_HOST = st.sampled_from(["example.com", "192.0.2.1", "[2001:db8::1]", "a", "h-1.example.org."])


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.one_of(st.none(), _USER),
    password=st.one_of(st.none(), _USER),
    host=_HOST,
    port=st.one_of(st.none(), st.integers(0, 65535)),
    params=st.dictionaries(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=6),
        st.one_of(st.none(), _USER),
        max_size=3,
    ),
    headers=st.dictionaries(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC", min_size=1, max_size=6), _USER, max_size=2
    ),
)
def test_sip_uri_str_round_trip(
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: dict[str, str | None],
    headers: dict[str, str],
) -> None:
    uri = SipUri(host, user, password if user is not None else None, port, scheme, params, headers)
    assert parse_uri(str(uri)) == uri


@settings(max_examples=300, deadline=None)
@given(
    display=st.one_of(st.none(), st.text(max_size=20)),
    tag=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=10),
)
def test_name_addr_str_round_trip(display: str | None, tag: str) -> None:
    na = NameAddr(SipUri("example.com", "alice"), display or None, {"tag": tag})
    again = parse_name_addr(str(na))
    assert again == na


# --- fast paths against the general parser ----------------------------------------------
# parse_uri, parse_name_addr and parse_via read common forms with one regular
# expression each; on anything they accept, the general parser must agree exactly.

_PIECES = [
    "sip:",
    "sips:",
    "tel:",
    "alice",
    "Bob",
    "@",
    ":",
    ";",
    "=",
    "?",
    "&",
    "%41",
    "%",
    ",",
    "example.com",
    "host-1.",
    "127.0.0.1",
    "[::1]",
    "5060",
    "65536",
    "0",
    "lr",
    "tag",
    "transport=TCP",
    "user=phone",
    "<",
    ">",
    '"',
    "\\",
    " ",
    "\t",
    "\x0b",
    "\u3000",
    "é",
    "*",
    "(",
    ")",
    "SIP/2.0/",
    "sip/2.0/",
    "UDP",
    "tcp",
    "branch=z9hG4bK1",
    "rport",
    "+",
    "SIP:",
    "[2001:db8::1]",
    "[::1]:5061",
    ";tag=",
    "sips:a@[::1]",
]
_texts = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)


def _outcome(parse: object, text: str) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except RemoteProtocolError as exc:
        return ("error", exc.reason)


@pytest.mark.parametrize(
    ("fast", "general"),
    [
        (parse_uri, "_parse_uri_general"),
        (parse_name_addr, "_parse_name_addr_general"),
        (parse_via, "_parse_via_general"),
    ],
)
@settings(max_examples=3000, deadline=None)
@given(text=_texts)
def test_fast_paths_agree_with_the_general_parser(fast: object, general: str, text: str) -> None:
    from siphon.sip import uri

    assert _outcome(fast, text) == _outcome(getattr(uri, general), text)


@pytest.mark.parametrize(
    "text",
    [
        "sip:service@127.0.0.1:5060",
        "sips:a@b.example;transport=tcp;lr",
        "sip:a@b:65536",
        "sip:a;b@host",
        "sip:host;maddr=[::1]",
        "sip:a@b;x=y=z",
        "sip:a%41@b",
        "sipp <sip:sipp@127.0.0.1:5061>;tag=1",
        '"Alice \\"A\\"" <sip:a@b>',
        '"" <sip:a@b>;tag=x',
        "sip:sipp@127.0.0.1:5061",
        "sip:a@b;tag=1",
        "sip:a,b@c",
        "Bob\u3000<sip:a@b>",
        "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1",
        "SIP/2.0/UDP host:99999;branch=x",
        "SIP/2.0/tcp h;received=1.2.3.4 (comment)",
    ],
)
def test_fast_paths_agree_on_known_cases(text: str) -> None:
    from siphon.sip import uri

    for fast, general in (
        (parse_uri, uri._parse_uri_general),
        (parse_name_addr, uri._parse_name_addr_general),
        (parse_via, uri._parse_via_general),
    ):
        assert _outcome(fast, text) == _outcome(general, text), (fast, text)


def _structured_samples(seed: int, count: int) -> list[tuple[str, str]]:
    """URI, name-addr and Via texts built like real ones, with odd characters mixed in."""
    rnd = random.Random(seed)
    odd = [*"-._!~*'()&=+$,;?/:@[] \t\"<>é", "%4", "%41"]

    def word(n: int = 4) -> str:
        return "".join(
            rnd.choice(odd) if rnd.random() < 0.3 else rnd.choice("abcXYZ0189")
            for _ in range(rnd.randint(0, n))
        )

    def host() -> str:
        return rnd.choice(["example.com", "h", "127.0.0.1", "[::1]", "a-b.c.", "-x", "x_", word(5)])

    def port() -> str:
        return rnd.choice(["5060", "0", "65535", "65536", "123456", "", word(2)])

    def params() -> str:
        return "".join(
            ";" + word() + ("=" + word() if rnd.random() < 0.6 else "")
            for _ in range(rnd.randint(0, 3))
        )

    def sip_uri() -> str:
        text = rnd.choice(["sip:", "sips:", "SIP:", "sip:"])
        if rnd.random() < 0.6:
            text += word(5) + (":" + word(3) if rnd.random() < 0.2 else "") + "@"
        text += host() + (":" + port() if rnd.random() < 0.5 else "") + params()
        return text + ("?" + word() if rnd.random() < 0.1 else "")

    def name_addr() -> str:
        display = rnd.choice(["", "Bob ", "Bob  Smith\t", '"Al ice" ', '"A\\"B" ', '""', "é "])
        text = display + "<" + sip_uri() + ">" if rnd.random() < 0.7 else sip_uri()
        text += rnd.choice(["", " "]) + params()
        return rnd.choice(["", " "]) + text + rnd.choice(["", " ", "\x0b"])

    def via() -> str:
        text = rnd.choice(["SIP/2.0/", "sip/2.0/", "SIP / 2.0 / "]) + rnd.choice(["UDP", "tcp"])
        text += (
            rnd.choice([" ", "  ", "\t"]) + host() + (":" + port() if rnd.random() < 0.5 else "")
        )
        text += params() + (" (" + word(3) + ")" if rnd.random() < 0.1 else "")
        return text

    kinds = [("uri", sip_uri), ("name-addr", name_addr), ("via", via)]
    return [(kind, make()) for _ in range(count) for kind, make in kinds]


def test_fast_paths_agree_on_structured_samples() -> None:
    from siphon.sip import uri

    parsers = {
        "uri": (parse_uri, uri._parse_uri_general),
        "name-addr": (parse_name_addr, uri._parse_name_addr_general),
        "via": (parse_via, uri._parse_via_general),
    }
    for kind, text in _structured_samples(seed=3261, count=20_000):
        fast, general = parsers[kind]
        assert _outcome(fast, text) == _outcome(general, text), (kind, text)


# Tricky texts near the edges of the fast paths: each parser must give exactly what
# the general one gives (result or error reason).
_TRICKY_URIS = [
    "sip:alice@example.com",
    "sips:alice@example.com:5061;transport=tcp;lr",
    "SIP:alice@example.com",  # upper-case scheme: general path, lowered
    "Sip:alice@EXAMPLE.com;Transport=UDP",
    "sip:example.com.",
    "sip:alice@[2001:db8::1]:5060;transport=udp",
    "sip:[::1]",
    "sip:[::1]:65535",
    "sip:[::1]:65536",
    "sip:[::1",
    "sip:[::g]",
    "sip:[::1]x",
    "sip:[::1];maddr=[::2]",
    "sip:al%69ce@example.com",
    "sip:alice@example.com;na%6De=v",
    "sip:alice@example.com;%",
    "sip:alice:secret@example.com",
    "sip:alice@example.com?subject=hi",
    "sip:alice@example.com;lr;ttl=;x",
    "sip:alice@example.com;;lr",
    "sip:alice@example.com;=x",
    "sip:alice@example.com;a=b=c",
    "sip:alice@example.com:0",
    "sip:alice@example.com:99999",
    "sip:alice@example.com:",
    "sip:@example.com",
    "sip:a,b@example.com",
    "sip:alice@-bad.com",
    "sip:alice@under_score",
    "sip:alice@exa mple.com",
    "sip:alice@example.com\n",
    "sip:alice@é.com",
    "tel:+1-415-555-0100;ext=1",
    "urn:service:sos",
    "sip:",
    "",
]
_TRICKY_NAME_ADDRS = [
    "sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001",
    "<sip:service@127.0.0.1:5060>",
    "  Bob  Smith\t<sip:bob@example.com> ;tag=1 ",
    '"Alice" <sip:alice@example.com>;tag=1928301774',
    '"Smith, Bob" <sip:bob@example.com>;tag=1',  # comma in a quoted name
    '"Al \\"the\\" Ice" <sip:alice@example.com>',  # escaped quotes
    '"back\\\\slash" <sip:a@b>',
    '"" <sip:a@b>;tag=x',
    '"unterminated <sip:a@b>',
    '"a<b>" <sip:a@b>',
    "é <sip:a@b>",
    "Bob\u3000<sip:a@b>",
    "Bob, Smith <sip:a@b>",
    "<sip:alice@[2001:db8::1]:5060>;tag=v6",
    "<sip:alice@[::1]:99999>",
    "<sip:al%69ce@example.com>;tag=x",
    "<SIP:alice@example.com>;tag=x",
    "<sips:alice@example.com;transport=tcp;lr>;expires=60;q=0.5",
    '<sip:alice@example.com>;+sip.instance="<urn:uuid:1>"',
    "<sip:alice@example.com>;tag",
    "<sip:alice@example.com>;tag=",
    "<sip:alice@example.com>;TAG=Mixed",
    "<sip:alice@example.com>;;tag=x",
    "<sip:alice@example.com>;tag = x",
    "<sip:alice@example.com>tag=x",
    "<sip:alice@example.com?Route=%3Csip:p%3E>",
    "<sip:alice@example.com",
    "<tel:+14155550100>;tag=t",
    "<urn:x>",
    "sip:sipp@127.0.0.1:5061",
    "sip:alice@example.com;tag=1;expires=60",
    "sips:alice@[::1]:5061;lr",
    "sip:alice@example.com?x=y",
    "sip:a,b@example.com",
    "sip:al%69ce@example.com",
    "SIP:alice@example.com",
    "sip:alice@example.com:99999",
    "*",
    "",
]
_TRICKY_VIAS = [
    "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1",
    "SIP/2.0/udp host;branch=z9hG4bK1;rport",
    "SIP/2.0/TCP [2001:db8::9]:5060;branch=z9hG4bK1;received=192.0.2.1",
    "SIP/2.0/UDP [::1]:99999;branch=x",
    "SIP/2.0/UDP [::1",
    "SIP/2.0/UDP host:65536;branch=x",
    "SIP/2.0/UDP host:;branch=x",
    "SIP/2.0/UDP host;branch=",
    "SIP/2.0/UDP host;;branch=x",
    "SIP/2.0/UDP host;=x",
    "SIP/2.0/UDP host;branch=a=b",
    'SIP/2.0/UDP host;maddr="x"',
    "SIP/2.0/UDP host ;branch=x",
    "SIP/2.0/UDP  host;branch=x",
    "SIP/2.0/UDP host;branch=x (comment)",
    "SIP/2.0/UDP host;branch=x(comment)",
    "sip/2.0/udp host;branch=x",
    "SIP / 2.0 / UDP host;branch=x",
    "SIP/2.0/UDP h\u00e9;branch=x",
    "SIP/2.0/UDP host;BRANCH=Z9hG4bK",
    "SIP/2.0/UDP",
    "",
]


def _general_of(parse: object) -> object:
    from siphon.sip import uri

    return {
        parse_uri: uri._parse_uri_general,
        parse_name_addr: uri._parse_name_addr_general,
        parse_via: uri._parse_via_general,
    }[parse]  # type: ignore[index]


@pytest.mark.parametrize(
    ("parse", "text"),
    [(parse_uri, t) for t in _TRICKY_URIS]
    + [(parse_name_addr, t) for t in _TRICKY_NAME_ADDRS]
    + [(parse_via, t) for t in _TRICKY_VIAS],
)
def test_fast_paths_agree_on_tricky_cases(parse: object, text: str) -> None:
    assert _outcome(parse, text) == _outcome(_general_of(parse), text)


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_uri, "sip:service@127.0.0.1:5060"),
        (parse_uri, "sips:alice@[2001:db8::1]:5061;transport=tls;lr"),
        (parse_name_addr, "sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001"),
        (parse_name_addr, '"Alice" <sip:alice@example.com;user=phone>;tag=1;q=0.5'),
        (parse_name_addr, "<sip:alice@[::1]:5061>"),
        (parse_name_addr, "sip:sipp@127.0.0.1:5061"),
        (parse_name_addr, "sip:alice@example.com;expires=60"),
        (parse_via, "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1;rport"),
        (parse_via, "SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bK1"),
    ],
)
def test_common_forms_take_the_fast_path(
    parse: object, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forms every call carries never reach the general parser (nor parse_params)."""
    from siphon.sip import headers, uri

    expected = _outcome(_general_of(parse), text)

    def refuse(*args: object) -> object:
        raise AssertionError("general path taken")

    for name in ("_parse_uri_general", "_parse_name_addr_general", "_parse_via_general"):
        monkeypatch.setattr(uri, name, refuse)
    monkeypatch.setattr(headers, "_parse_params_general", refuse)
    assert parse(text) == expected  # type: ignore[operator]
