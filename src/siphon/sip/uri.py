"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), name-addr, and Via (RFC 3261 §20.42).

Parsing raises only ``RemoteProtocolError``. The user part is stored unescaped so
two spellings of one URI compare equal; ``str()`` escapes what must be escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote as _pct_quote
from urllib.parse import unquote as _pct_unquote

from siphon.errors import RemoteProtocolError
from siphon.sip.headers import (
    SIMPLE_PARAM,
    format_params,
    parse_params,
    quote,
    split_simple_params,
    unquote,
)

# RFC 3261 §25.1: characters allowed unescaped in the user part and in parameters.
_USER_SAFE = "-_.!~*'()&=+$,;?/"
_PARAM_SAFE = "-_.!~*'()[]/:&+$"
_HEADER_SAFE = "-_.!~*'()[]/?:+$"

# All matched with fullmatch(): "$" would also match before a trailing newline.
_HOSTNAME = r"[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9_])?\.?"
_HOSTNAME_RE = re.compile(_HOSTNAME)
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_TEL_GLOBAL_RE = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")
_TEL_LOCAL_RE = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# Never allowed unescaped in a URI (RFC 3261 §25.1, RFC 3986 §2): controls, space,
# DEL, and the delimiters < > " that frame or quote it in header fields.
_BAD_URI_CHAR_RE = re.compile(r'[\x00-\x20\x7f<>"]')
# An unquoted display name is one or more tokens separated by LWS (RFC 3261 §25.1);
# non-ASCII letters are let through, as real user agents send them.
_DISPLAY_TOKENS_RE = re.compile(
    r"[A-Za-z0-9\-.!%*_+`'~\u0080-\U0010ffff]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~\u0080-\U0010ffff]+)*"
)


# Fast paths. The usual forms of a SIP URI, a name-addr and a Via are read by one
# regular expression each, the URI and the parameters included (parsing is a good
# part of what a call costs us). Each accepts only text on which the general parser
# gives the same result (no %-escapes, no password, no URI headers, no quoting, no
# white space among parameters...), so where one does not match, the general parser
# decides, errors included. tests/sip/test_uri.py checks the two against each other.
#
# host[:port]: a host name, IPv4 address or IPv6 reference exactly as parse_host
# accepts it (_HOSTNAME_RE, _IPV6_RE); the port is checked against 65535 after the
# match.
_HOSTPORT = rf"({_HOSTNAME}|\[[0-9A-Fa-f:.]+\])(?::([0-9]{{1,5}}))?"
# user@host:port;params after "sip:" or "sips:" (four groups). The user and the
# parameters leave out "@" (so the first "@" is the one that ends the user), "%",
# ";", "?" and ":" (user only): the characters the general parser treats specially.
_SIP_URI_PARTS = (
    r"(?:([A-Za-z0-9\-_.!~*'()&=+$,]+)@)?"
    + _HOSTPORT
    + r"((?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$]*)?)*)"
)
# The scheme in lower case only: "SIP:" goes to the general parser, which lowers it.
_FAST_SIP_URI_RE = re.compile(rf"(sips?):{_SIP_URI_PARTS}")
# [display-name tokens] or "quoted display name" without escapes (two groups).
_DISPLAY_NAME = (
    r"(?:([A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~]+)*)[ \t]*"
    r'|"([^"\\\r\n]*)"[ \t]*)?'
)
# The usual From, To and Contact: [display name] <simple sip URI> [;simple params],
# after strip(): eight groups, read without any further parsing.
_FAST_SIP_ADDR = rf"{_DISPLAY_NAME}<(sips?):{_SIP_URI_PARTS}>"
_FAST_HEADER_PARAMS = rf"[ \t]*({SIMPLE_PARAM}*)"
_FAST_SIP_NAME_ADDR_RE = re.compile(_FAST_SIP_ADDR + _FAST_HEADER_PARAMS)
# The same in two pieces: up to the ">" that ends the URI (seven groups), and after.
_FAST_SIP_ADDR_RE = re.compile(_FAST_SIP_ADDR)
_FAST_HEADER_PARAMS_RE = re.compile(_FAST_HEADER_PARAMS)
# [display name] <any uri> [;any params], after strip(): the URI goes to parse_uri
# and the parameters to parse_params.
_FAST_NAME_ADDR_RE = re.compile(rf"{_DISPLAY_NAME}<([^<>]*)>[ \t]*(;.*)?", re.DOTALL)


def _bad_uri(text: str, why: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"bad URI {text!r}: {why}", reason="Bad URI")


def _check_escapes(text: str, original: str) -> None:
    i = text.find("%")
    while i != -1:
        hexpart = text[i + 1 : i + 3]
        if len(hexpart) != 2 or any(c not in "0123456789abcdefABCDEF" for c in hexpart):
            raise _bad_uri(original, "invalid %-escape")
        i = text.find("%", i + 3)


def _unescape(text: str, original: str) -> str:
    if "%" not in text:
        return text
    _check_escapes(text, original)
    return _pct_unquote(text, errors="surrogateescape")


def _escape(text: str, safe: str) -> str:
    return _pct_quote(text, safe=safe, errors="surrogateescape")


def parse_host(hostport: str, original: str) -> tuple[str, int | None]:
    """Split ``host[:port]``; IPv6 references keep their brackets."""
    if hostport[:1] == "[":
        end = hostport.find("]")
        if end == -1:
            raise _bad_uri(original, "unterminated IPv6 reference")
        host = hostport[: end + 1]
        rest = hostport[end + 1 :]
        if not _IPV6_RE.fullmatch(host):
            raise _bad_uri(original, "invalid IPv6 reference")
        if rest and not rest.startswith(":"):
            raise _bad_uri(original, "garbage after IPv6 reference")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_raw = hostport.partition(":")
        port_text = port_text_raw if colon else None
        if not host or not _HOSTNAME_RE.fullmatch(host):
            raise _bad_uri(original, f"invalid host {host!r}")
    if port_text is None:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise _bad_uri(original, f"invalid port {port_text!r}")
    port = int(port_text)
    if port > 65535:
        raise _bad_uri(original, f"port out of range {port}")
    return host, port


@dataclass(slots=True)
class SipUri:
    """``sip:`` or ``sips:`` URI (RFC 3261 §19.1)."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(_escape(self.user, _USER_SAFE))
            if self.password is not None:
                out.append(":" + _escape(self.password, "-_.!~*'()&=+$,"))
            out.append("@")
        out.append(self.hostport)
        for name, value in self.params.items():
            out.append(";" + _escape(name, _PARAM_SAFE))
            if value is not None:
                out.append("=" + _escape(value, _PARAM_SAFE))
        if self.headers:
            out.append(
                "?"
                + "&".join(
                    f"{_escape(k, _HEADER_SAFE)}={_escape(v, _HEADER_SAFE)}"
                    for k, v in self.headers.items()
                )
            )
        return "".join(out)


@dataclass(slots=True)
class TelUri:
    """``tel:`` URI (RFC 3966); ``number`` keeps its visual separators."""

    number: str
    params: dict[str, str | None] = field(default_factory=dict)

    scheme = "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1)."""
        return "".join(ch for ch in self.number if ch not in "-.()")

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"


@dataclass(slots=True)
class AbsoluteUri:
    """Any other scheme (``http:``, ``urn:``…), kept verbatim."""

    scheme: str
    text: str

    def __str__(self) -> str:
        return self.text


Uri = SipUri | TelUri | AbsoluteUri

# The fast paths build their SipUri, NameAddr and Via with this and set every field
# (what the dataclass __init__ would do, a third cheaper without its call): several
# are built for every request. tests/sip/test_message_memos.py checks they equal
# the objects the constructors build, every field set.
_new_object = object.__new__


# Text -> the arguments its objects are built from, for the texts the fast paths
# read: the same From, To, Contact and Request-URI recur in every request of a call,
# and To, Contact and Request-URI across calls, so each is matched once. The objects
# are built afresh on every parse (they are mutable: no two messages share one).
# Bounded because the texts come from the network: emptied when full, and longer
# texts (rare in real traffic) are not kept, so the memos hold at most ~1 MiB.
_MAX_MEMO_ENTRIES = 1024
_MAX_MEMO_TEXT = 512
# scheme, user, host, port, params
_UriParts = tuple[str, str | None, str, int | None, dict[str, str | None]]
_URI_PARTS: dict[str, _UriParts] = {}


_Parts = TypeVar("_Parts")


def _memo_put(memo: dict[str, _Parts], text: str, parts: _Parts) -> None:
    """Remember ``parts`` for ``text`` within the bounds above."""
    if len(text) <= _MAX_MEMO_TEXT:
        if len(memo) >= _MAX_MEMO_ENTRIES:
            memo.clear()
        memo[text] = parts


def sip_uri_parts(text: str) -> _UriParts | None:
    """The parts of a SIP URI in the usual form (``parse_uri``'s fast path), else None.

    A URI with parts is a ``sip``/``sips`` URI with no headers: one ``parse_uri``
    accepts as it is. Otherwise the general parser decides.
    """
    parts = _URI_PARTS.get(text)
    if parts is None:
        fast = _FAST_SIP_URI_RE.fullmatch(text)
        if fast is None:
            return None
        scheme, user, host, port_text, params_text = fast.groups()
        port = int(port_text) if port_text else None
        if port is not None and port > 65535:
            return None
        parts = (scheme, user, host, port, split_simple_params(params_text) if params_text else {})
        _memo_put(_URI_PARTS, text, parts)
    return parts


def parse_uri(text: str) -> Uri:
    """Parse a URI; SIP/SIPS/tel get full structure, other schemes are kept verbatim."""
    parts = _URI_PARTS.get(text) or sip_uri_parts(text)
    if parts is not None:
        scheme, user, host, port, params = parts
        return _sip_uri(scheme, user, host, port, params)
    return _parse_uri_general(text)


def _sip_uri(
    scheme: str, user: str | None, host: str, port: int | None, params: dict[str, str | None]
) -> SipUri:
    """``SipUri(host, user, None, port, scheme, params.copy(), {})``, its __init__ inlined.

    The parts are shared (memoised): the URI gets a copy of ``params`` (a new empty
    dict is cheaper than a copy). See ``_new_object``.
    """
    uri = _new_object(SipUri)
    uri.host = host
    uri.user = user
    uri.password = None
    uri.port = port
    uri.scheme = scheme
    uri.params = params.copy() if params else {}
    uri.headers = {}
    return uri


def _parse_uri_general(text: str) -> Uri:
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.fullmatch(scheme):
        raise _bad_uri(text, "missing or invalid scheme")
    if not rest or _BAD_URI_CHAR_RE.search(rest):
        raise _bad_uri(text, "empty, or contains spaces, controls, quotes or angle brackets")
    lowered = scheme.lower()
    if lowered in ("sip", "sips"):
        return _parse_sip_uri(lowered, rest, text)
    if lowered == "tel":
        return _parse_tel_uri(rest, text)
    return AbsoluteUri(lowered, text)


def _parse_sip_uri(scheme: str, rest: str, original: str) -> SipUri:
    user: str | None = None
    password: str | None = None
    at = rest.find("@")  # '@' is never unescaped in the user part (RFC 3261 §25.1)
    if at != -1:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        user_raw, pcolon, pass_raw = userinfo.partition(":")
        if not user_raw:
            raise _bad_uri(original, "empty user part")
        user = _unescape(user_raw, original) if "%" in user_raw else user_raw
        password = _unescape(pass_raw, original) if pcolon else None
    rest, qmark, headers_text = rest.partition("?")
    hostport, semi, params_text = rest.partition(";")
    host, port = parse_host(hostport, original)
    params: dict[str, str | None] = {}
    if semi:
        for item in params_text.split(";"):
            if not item:
                raise _bad_uri(original, "empty parameter")
            name, eq, value = item.partition("=")
            if not name:
                raise _bad_uri(original, "empty parameter name")
            params[_unescape(name, original).lower()] = _unescape(value, original) if eq else None
    headers: dict[str, str] = {}
    if qmark:
        for item in headers_text.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise _bad_uri(original, "malformed URI header")
            headers[_unescape(name, original)] = _unescape(value, original)
    return SipUri(host, user, password, port, scheme, params, headers)


def _parse_tel_uri(rest: str, original: str) -> TelUri:
    number, semi, params_text = rest.partition(";")
    if not (_TEL_GLOBAL_RE.fullmatch(number) or _TEL_LOCAL_RE.fullmatch(number)):
        raise _bad_uri(original, "invalid telephone number")
    params = parse_params(params_text) if semi else {}
    if not number.startswith("+") and "phone-context" not in params:
        # RFC 3966 §5.1.5: local numbers MUST carry a phone-context.
        raise _bad_uri(original, "local number without phone-context")
    return TelUri(number, params)


@dataclass(slots=True)
class NameAddr:
    """``"Display" <uri>;params`` as in From, To, Contact, Route (RFC 3261 §20.10).

    ``params`` are the *header* parameters (tag, expires, q…), not the URI's.
    ``wildcard`` is the ``Contact: *`` form.
    """

    uri: Uri
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    wildcard: bool = False

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        return NameAddr(self.uri, self.display_name, {**self.params, "tag": tag})

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        name = f"{quote(self.display_name)} " if self.display_name else ""
        return f"{name}<{self.uri}>{format_params(self.params)}"


# display name, scheme, user, host, port, URI params, header params
NameAddrParts = tuple[
    str | None, str, str | None, str, int | None, dict[str, str | None], dict[str, str | None]
]
_NAME_ADDR_PARTS: dict[str, NameAddrParts] = {}


def name_addr_parts(value: str) -> NameAddrParts | None:
    """The parts of a name-addr with a SIP URI in the usual forms, else None.

    What ``parse_name_addr`` builds its result from when its fast paths read
    ``value``: a value with parts is one it accepts; otherwise it decides itself.
    Memoised (see ``_MAX_MEMO_ENTRIES``): validation reads From and To with this, and
    the tags are read from the parts, so a value is matched once however it is read.
    """
    parts = _NAME_ADDR_PARTS.get(value)
    if parts is None:
        parts = _match_name_addr(value)
        if parts is not None:
            _memo_put(_NAME_ADDR_PARTS, value, parts)
    return parts


def _match_name_addr(value: str) -> NameAddrParts | None:
    text = value.strip()
    if text.startswith(("sip:", "sips:")):
        # The addr-spec form, as SIPp's Contact (a display name before "<" is quoted
        # or tokens, and a token has no ":"). Parameters after the URI belong to the
        # header (RFC 3261 §20.10). A "," (allowed in the user part of a URI) is an
        # error there, which the general parser reports.
        fast = _FAST_SIP_URI_RE.fullmatch(text)
        if fast is None or "," in text:
            return None
        scheme, user, host, port_text, params_text = fast.groups()
        port = int(port_text) if port_text else None
        if port is not None and port > 65535:
            return None
        params = split_simple_params(params_text) if params_text else {}
        return (None, scheme, user, host, port, {}, params)
    # The display name and URI recur (the caller's, the number called) where the tag
    # changes with every call: the part up to the first ">" is looked up on its own.
    # When it is the whole "[display name] <URI>", it is what _FAST_SIP_NAME_ADDR_RE
    # would read there (neither a token nor the URI has a ">", and a quoted name with
    # one makes the part end inside the quotes, where it does not match).
    gt = text.find(">") + 1
    if gt:
        addr = _ADDR_PARTS.get(text[:gt]) or _addr_parts(text[:gt])
        if addr is not None and text.startswith(";tag=", gt):
            # The usual parameters, a tag alone: what _FAST_HEADER_PARAMS_RE reads
            # when the value has no ";", white space or quote (isprintable() is False
            # for every white space character but " ").
            tag = text[gt + 5 :]
            if tag.isprintable() and ";" not in tag and " " not in tag and '"' not in tag:
                return (*addr, {"tag": tag})
        fast = _FAST_HEADER_PARAMS_RE.fullmatch(text, gt)
        if addr is not None and fast is not None:
            header_params = fast.group(1)
            return (*addr, split_simple_params(header_params) if header_params else {})
    fast = _FAST_SIP_NAME_ADDR_RE.fullmatch(text)
    if fast is None:
        return None
    tokens, quoted, scheme, user, host, port_text, uri_params, header_params = fast.groups()
    port = int(port_text) if port_text else None
    if port is not None and port > 65535:
        return None
    return (
        tokens if quoted is None else quoted,
        scheme,
        user,
        host,
        port,
        split_simple_params(uri_params) if uri_params else {},
        split_simple_params(header_params) if header_params else {},
    )


# display name, scheme, user, host, port, URI params
_AddrParts = tuple[str | None, str, str | None, str, int | None, dict[str, str | None]]
_ADDR_PARTS: dict[str, _AddrParts] = {}


def _addr_parts(text: str) -> _AddrParts | None:
    """``[display name] <sip URI>`` read by _FAST_SIP_ADDR_RE, memoised, else None."""
    fast = _FAST_SIP_ADDR_RE.fullmatch(text)
    if fast is None:
        return None
    tokens, quoted, scheme, user, host, port_text, uri_params = fast.groups()
    port = int(port_text) if port_text else None
    if port is not None and port > 65535:
        return None
    parts = (
        tokens if quoted is None else quoted,
        scheme,
        user,
        host,
        port,
        split_simple_params(uri_params) if uri_params else {},
    )
    _memo_put(_ADDR_PARTS, text, parts)
    return parts


def name_addr_from_parts(parts: NameAddrParts) -> NameAddr:
    """The NameAddr ``parse_name_addr`` returns for a value with these parts."""
    display, scheme, user, host, port, uri_params, params = parts
    # NameAddr(uri, display, ...), its __init__ inlined (_new_object: see there); the
    # parts are shared (memoised): the objects get copies of their dicts.
    addr = _new_object(NameAddr)
    addr.uri = _sip_uri(scheme, user, host, port, uri_params)
    addr.display_name = display
    addr.params = params.copy() if params else {}
    addr.wildcard = False
    return addr


def parse_name_addr(value: str) -> NameAddr:
    parts = _NAME_ADDR_PARTS.get(value) or name_addr_parts(value)
    if parts is not None:
        return name_addr_from_parts(parts)
    text = value.strip()
    if not text.startswith(("sip:", "sips:")):
        fast = _FAST_NAME_ADDR_RE.fullmatch(text)
        if fast is not None:
            tokens, quoted, uri_text, params_text = fast.groups()
            display = tokens if quoted is None else quoted
            return NameAddr(parse_uri(uri_text), display, parse_params(params_text or ""))
    return _parse_name_addr_general(value)


def _parse_name_addr_general(value: str) -> NameAddr:
    text = value.strip()
    if text == "*":
        return NameAddr(AbsoluteUri("*", "*"), wildcard=True)
    display: str | None = None
    if text.startswith('"'):
        end = 1
        while True:
            end = text.find('"', end)
            if end == -1:
                raise RemoteProtocolError(
                    f"unterminated display name in {value!r}", reason="Bad Header"
                )
            backslashes = 0
            j = end - 1
            while text[j] == "\\":
                backslashes += 1
                j -= 1
            if backslashes % 2 == 0:
                break
            end += 1
        display = unquote(text[: end + 1])
        text = text[end + 1 :].lstrip()
        if not text.startswith("<"):
            raise RemoteProtocolError(
                f"display name without <uri> in {value!r}", reason="Bad Header"
            )
    lt = text.find("<")
    if lt != -1:
        gt = text.find(">", lt)
        if gt == -1:
            raise RemoteProtocolError(f"unterminated <uri> in {value!r}", reason="Bad Header")
        if display is None:
            token_name = text[:lt].strip()
            if token_name and not _DISPLAY_TOKENS_RE.fullmatch(token_name):
                # RFC 4475 §3.1.2.15: an unquoted display name must be tokens.
                raise RemoteProtocolError(
                    f"display name must be quoted in {value!r}", reason="Bad Header"
                )
            display = token_name or None
        # No stripping: LWS inside <> is not allowed (RFC 4475 §3.1.2.14).
        uri = parse_uri(text[lt + 1 : gt])
        params_text = text[gt + 1 :].strip()
        if params_text and not params_text.startswith(";"):
            raise RemoteProtocolError(f"garbage after <uri> in {value!r}", reason="Bad Header")
        return NameAddr(uri, display, parse_params(params_text))
    # addr-spec form: parameters after the URI belong to the header (RFC 3261 §20.10).
    uri_text, semi, params_text = text.partition(";")
    if "?" in uri_text or "," in uri_text:
        raise RemoteProtocolError(f"addr-spec needs <> around {value!r}", reason="Bad Header")
    return NameAddr(parse_uri(uri_text.strip()), None, parse_params(params_text) if semi else {})


@dataclass(slots=True)
class Via:
    """One Via header value (RFC 3261 §20.42, RFC 3581 rport)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        value = self.params.get("rport")
        if value and value.isascii() and value.isdigit() and len(value) <= 5:
            return int(value)
        return None

    @property
    def wants_rport(self) -> bool:
        return "rport" in self.params

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def __str__(self) -> str:
        hostport = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"SIP/2.0/{self.transport} {hostport}{format_params(self.params)}"


_VIA_RE = re.compile(
    r"^\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+([^;\s]+)\s*(.*)$",
    re.IGNORECASE | re.DOTALL,
)


# SIP/2.0/transport host[:port][;params], in upper case, one space, no comment, no
# quoting and no white space among the parameters. Read in two pieces: the sent-by
# part, up to the first ";" (none of its characters is one), and the parameters.
_FAST_SENT_BY_RE = re.compile(rf"SIP/2\.0/([A-Za-z0-9\-.!%*_+`'~]+) {_HOSTPORT}")
_FAST_VIA_PARAMS_RE = re.compile(
    r'(?:;[^;=\s"(]+(?:=[^;\s"(]*)?)*'  # SIMPLE_PARAM without "(", which starts a comment
)
# Sent-by text -> (transport, host, port): the same few peers send every request,
# while the branch changes with each. Bounded as the other memos (_MAX_MEMO_ENTRIES).
_SENT_BY: dict[str, tuple[str, str, int | None]] = {}


def _sent_by(text: str) -> tuple[str, str, int | None] | None:
    fast = _FAST_SENT_BY_RE.fullmatch(text)
    if fast is None:
        return None
    transport, host, port_text = fast.groups()
    port = int(port_text) if port_text else None
    if port is not None and port > 65535:
        return None
    sent_by = (transport.upper(), host, port)
    _memo_put(_SENT_BY, text, sent_by)
    return sent_by


# Via text with the value of its branch parameter left out ("SIP/2.0/UDP h:5061;branch=")
# -> what parse_via's fast path reads there (transport, host, port, parameters with
# an empty branch), or _NO_TEMPLATE when it reads nothing: a peer's Vias differ only
# in the branch, new in every transaction. Bounded as the other memos
# (_MAX_MEMO_ENTRIES).
_ViaTemplate = tuple[str, str, int | None, dict[str, str | None]]
_VIA_TEMPLATES: dict[str, _ViaTemplate] = {}
_NO_TEMPLATE: _ViaTemplate = ("", "", None, {})


def parse_via(value: str) -> Via:
    at = value.find(";branch=")
    if at != -1:
        start = at + 8
        end = value.find(";", start)
        if end == -1:
            key, branch = value[:start], value[start:]
        else:
            key, branch = value[:start] + value[end:], value[start:end]
        template = _VIA_TEMPLATES.get(key) or _via_template(key)
        # The fast path reads a branch value with no ";" (it ends at the next), no
        # white space, quote or "(" (_FAST_VIA_PARAMS_RE) as it reads any other: only
        # that value differs from the template's. isprintable() is False for every
        # white space character but " ".
        if (
            template is not _NO_TEMPLATE
            and branch.isprintable()
            and " " not in branch
            and '"' not in branch
            and "(" not in branch
        ):
            params = template[3]
            if len(params) == 1:  # the branch alone: a new dict is cheaper than a copy
                params = {"branch": branch}
            else:
                params = params.copy()
                params["branch"] = branch
            # Via(transport, host, port, params), inlined (_new_object).
            via = _new_object(Via)
            via.transport, via.host, via.port, _ = template
            via.params = params
            return via
    return _parse_via_fast(value) or _parse_via_general(value)


def _via_template(key: str) -> _ViaTemplate:
    """What ``_VIA_TEMPLATES`` keeps for ``key``, a Via text with an empty branch."""
    via = _parse_via_fast(key)
    template = _NO_TEMPLATE
    # Only with one branch parameter, the one found: with another ("...;BRANCH=x") the
    # last value would win, wherever the first is.
    if via is not None and via.params.get("branch") == "" and len(via.params) == key.count(";"):
        template = (via.transport, via.host, via.port, via.params)
    _memo_put(_VIA_TEMPLATES, key, template)
    return template


def _parse_via_fast(value: str) -> Via | None:
    """``parse_via`` by its regular expressions, or None: the general parser decides."""
    semi = value.find(";")
    if semi == -1:
        sent_by = _SENT_BY.get(value) or _sent_by(value)
        if sent_by is not None:
            return Via(*sent_by, {})
    else:
        sent_by = _SENT_BY.get(value[:semi]) or _sent_by(value[:semi])
        if sent_by is not None and _FAST_VIA_PARAMS_RE.fullmatch(value, semi):
            return Via(*sent_by, split_simple_params(value[semi:]))
    return None


def _parse_via_general(value: str) -> Via:
    match = _VIA_RE.match(value)
    if match is None:
        raise RemoteProtocolError(f"bad Via {value!r}", reason="Bad Via")
    transport, hostport, params_text = match.groups()
    # Strip a trailing comment "(...)" (RFC 3261 §20.42 allows one).
    if params_text and "(" in params_text:
        params_text = params_text[: params_text.find("(")]
    params_text = params_text.strip()
    if params_text and not params_text.startswith(";"):
        raise RemoteProtocolError(f"bad Via parameters {value!r}", reason="Bad Via")
    try:
        host, port = parse_host(hostport, value)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(str(exc), reason="Bad Via") from None
    return Via(transport.upper(), host, port, parse_params(params_text))
