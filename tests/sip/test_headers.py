"""Header names and the shared header grammars (RFC 3261 §7.3, §25.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siphon.errors import RemoteProtocolError
from siphon.sip.headers import (
    COMPACT_FORMS,
    LIST_HEADERS,
    canonical_name,
    format_params,
    is_token,
    parse_params,
    quote,
    split_list,
    unquote,
)

# --- names --------------------------------------------------------------------------

EXPECTED_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "f": "From",
    "t": "To",
    "v": "Via",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "y": "Identity",
}


def test_every_compact_form_is_known() -> None:
    assert COMPACT_FORMS == EXPECTED_COMPACT


@pytest.mark.parametrize(("compact", "long"), sorted(EXPECTED_COMPACT.items()))
def test_compact_forms_expand_in_either_case(compact: str, long: str) -> None:
    assert canonical_name(compact) == long
    assert canonical_name(compact.upper()) == long
    assert canonical_name(long.lower()) == long
    assert canonical_name(long.upper()) == long


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("cAlL-iD", "Call-ID"),
        ("CSEQ", "CSeq"),
        ("cseq", "CSeq"),
        ("www-authenticate", "WWW-Authenticate"),
        ("max-forwards", "Max-Forwards"),
        ("MaX-fOrWaRdS", "Max-Forwards"),
        ("record-ROUTE", "Record-Route"),
        ("rack", "RAck"),
        ("sip-etag", "SIP-ETag"),
        ("mime-version", "MIME-Version"),
    ],
)
def test_known_names_are_case_insensitive(written: str, canonical: str) -> None:
    assert canonical_name(written) == canonical


@pytest.mark.parametrize("name", ["X-Custom-Thing", "NewFangledHeader", "C%6Fntact", "a", "z"])
def test_unknown_names_are_kept_as_sent(name: str) -> None:
    assert canonical_name(name) == name


def test_list_headers() -> None:
    for name in ("via", "contact", "route", "record-route", "allow", "supported", "require"):
        assert name in LIST_HEADERS
    # These carry commas that are not separators.
    for name in ("www-authenticate", "authorization", "date", "subject", "call-id", "from"):
        assert name not in LIST_HEADERS


def test_is_token() -> None:
    assert is_token("INVITE")
    assert is_token("!interesting-Method0123456789_*+`.%indeed'~")
    assert not is_token("")
    assert not is_token("a b")
    assert not is_token("a,b")
    assert not is_token('a"b')
    assert not is_token("a:b")


# --- comma lists --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("", []),
        ("   ", []),
        ("INVITE", ["INVITE"]),
        ("INVITE, ACK,BYE ,  CANCEL", ["INVITE", "ACK", "BYE", "CANCEL"]),
        ("a,,b,", ["a", "b"]),
        (",", []),
        (
            '"Doe, John" <sip:j@example.com>, <sip:x@y>',
            ['"Doe, John" <sip:j@example.com>', "<sip:x@y>"],
        ),
        ("<sip:a@b;x=1,2>, <sip:c@d>", ["<sip:a@b;x=1,2>", "<sip:c@d>"]),
        ('"a \\" , b" <sip:a@b>, c', ['"a \\" , b" <sip:a@b>', "c"]),
        ('"a \\\\", b', ['"a \\\\"', "b"]),
        (
            '<sip:u@h>;+sip.instance="<urn:uuid:1,2>";reg-id=1, <sip:v@h>',
            ['<sip:u@h>;+sip.instance="<urn:uuid:1,2>";reg-id=1', "<sip:v@h>"],
        ),
        ("SIP/2.0/UDP a;branch=1 ,\tSIP/2.0/TCP b", ["SIP/2.0/UDP a;branch=1", "SIP/2.0/TCP b"]),
    ],
)
def test_split_list(value: str, parts: list[str]) -> None:
    assert split_list(value) == parts


@pytest.mark.parametrize("value", ['"unterminated, a', 'a, "b', '"ends in backslash\\", x'])
def test_split_list_unterminated_quote(value: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        split_list(value)
    assert info.value.status_hint == 400


# --- parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ("", {}),
        (";tag=abc", {"tag": "abc"}),
        ("tag=abc", {"tag": "abc"}),
        (";TAG=AbC;Lr", {"tag": "AbC", "lr": None}),
        ("  ;   tag    = 1918181833n", {"tag": "1918181833n"}),
        (";;;;", {}),
        (";expires=", {"expires": ""}),
        (';reason="a;b"', {"reason": "a;b"}),
        (';text="say \\"hi\\""', {"text": 'say "hi"'}),
        (
            ';+sip.instance="<urn:uuid:abc>";reg-id=1',
            {"+sip.instance": "<urn:uuid:abc>", "reg-id": "1"},
        ),
        (
            "; q = 0.33 ; secondparam ; newparam = newvalue",
            {"q": "0.33", "secondparam": None, "newparam": "newvalue"},
        ),
    ],
)
def test_parse_params(text: str, params: dict[str, str | None]) -> None:
    assert parse_params(text) == params


@pytest.mark.parametrize("text", [";=value", ";tag=1;=2", ';x="unterminated', ';x="a\\"'])
def test_parse_params_errors(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_params(text)


def test_format_params() -> None:
    assert format_params({}) == ""
    assert format_params({"tag": "abc", "lr": None}) == ";tag=abc;lr"
    assert format_params({"received": "[2001:db8::1]"}) == ";received=[2001:db8::1]"
    assert format_params({"maddr": "239.255.255.1"}) == ";maddr=239.255.255.1"
    assert format_params({"text": "two words"}) == ';text="two words"'
    assert format_params({"e": ""}) == ';e=""'
    assert format_params({"q": 'a"b'}) == ';q="a\\"b"'


_PARAM_NAMES = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=8
)
_PARAM_VALUES = st.one_of(
    st.none(),
    st.text(
        alphabet=st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="\r\n"),
        max_size=12,
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_PARAM_NAMES, _PARAM_VALUES, max_size=5))
def test_format_then_parse_round_trips(params: dict[str, str | None]) -> None:
    assert parse_params(format_params(params)) == params


# --- quoting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quoted", "text"),
    [
        ('""', ""),
        ('"Alice"', "Alice"),
        ('"J Rosenberg \\\\\\""', 'J Rosenberg \\"'),
        ('"Quoted string \\"\\""', 'Quoted string ""'),
        ('"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f"', "BEL:\x07 NUL:\x00 DEL:\x7f"),
    ],
)
def test_unquote(quoted: str, text: str) -> None:
    assert unquote(quoted) == text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_quote_unquote_round_trip(text: str) -> None:
    quoted = quote(text)
    assert quoted.startswith('"') and quoted.endswith('"')
    assert unquote(quoted) == text
    # A quoted string is one list element and one parameter value.
    assert split_list(f"{quoted} <sip:a@b>, <sip:c@d>")[0] == f"{quoted} <sip:a@b>"
    assert parse_params(f";p={quoted};q=1") == {"p": text, "q": "1"}


@settings(max_examples=3000, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                ";",
                "=",
                "a",
                "Tag",
                "branch=z9hG4bK1",
                "rport",
                '"',
                "\\",
                " ",
                "\t",
                "\x0b",
                "\u3000",
                "é",
                "==",
            ]
        ),
        max_size=10,
    ).map("".join)
)
def test_parse_params_fast_path_agrees_with_the_general_one(text: str) -> None:
    from siphon.sip import headers

    def outcome(parse: object) -> object:
        try:
            return parse(text)  # type: ignore[operator]
        except RemoteProtocolError as exc:
            return ("error", exc.reason)

    assert outcome(headers.parse_params) == outcome(headers._parse_params_general)
