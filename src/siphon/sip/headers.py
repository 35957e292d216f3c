"""Header names and the small grammars shared by many SIP headers (RFC 3261 §7.3, §25.1).

One table of names serves both reading (compact and odd-case forms in) and writing
(canonical long forms out). Values are kept as text; typed views (Via, CSeq,
name-addr) are parsed on demand by the accessors in ``message.py``.
"""

from __future__ import annotations

import re

from siphon.errors import RemoteProtocolError

# RFC 3261 §7.3.3 and later RFCs: compact form -> long form.
COMPACT_FORMS: dict[str, str] = {
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
    "o": "Event",  # RFC 6665
    "u": "Allow-Events",  # RFC 6665
    "r": "Refer-To",  # RFC 3515
    "b": "Referred-By",  # RFC 3892
    "x": "Session-Expires",  # RFC 4028
    "y": "Identity",  # RFC 8224
}

_CANONICAL_NAMES = [
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "In-Reply-To",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "MIME-Version",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reply-To",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
    "Diversion",
    "Remote-Party-ID",
    "X-Twilio-CallSid",
]

# lower-case name (long or compact) -> canonical long name
_NAME_TABLE: dict[str, str] = {name.lower(): name for name in _CANONICAL_NAMES}
_NAME_TABLE.update(COMPACT_FORMS)

# Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1): these may be
# split into several values. Others (WWW-Authenticate, Date, Subject…) contain commas
# that are not separators, so they are never split.
LIST_HEADERS = frozenset(
    {
        "via",
        "route",
        "record-route",
        "contact",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "allow-events",
        "content-encoding",
        "content-language",
        "path",
        "service-route",
        "p-asserted-identity",
        "p-preferred-identity",
        "privacy",
        "reason",
        "warning",
        "in-reply-to",
        "alert-info",
        "call-info",
        "error-info",
    }
)

# RFC 3261 §25.1 token characters.
TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name; unknown names are returned as sent."""
    return _NAME_TABLE.get(name.lower(), name)


_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")  # TOKEN_CHARS, one or more


def is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value; commas in quotes or <...> are not separators."""
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    parts: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if in_quotes:
            if ch == "\\":
                i += 1  # skip the escaped character (RFC 3261 quoted-pair)
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == "," and not in_angle:
            part = value[start:i].strip()
            if part:
                parts.append(part)
            start = i + 1
        i += 1
    if in_quotes:
        raise RemoteProtocolError(f"unterminated quoted string in {value!r}", reason="Bad Header")
    last = value[start:].strip()
    if last:
        parts.append(last)
    return parts


# One ";name=value" or ";flag" item with no quotes and no white space (the usual tag,
# branch, lr...). A run of them has nothing to strip or unquote: split_simple_params
# reads it. The fast paths of uri.py embed this pattern in theirs.
SIMPLE_PARAM = r'(?:;[^;=\s"]+(?:=[^;\s"]*)?)'
_SIMPLE_PARAMS_RE = re.compile(SIMPLE_PARAM + "+")


def split_simple_params(text: str) -> dict[str, str | None]:
    """``parse_params`` of a text already matched by one or more ``SIMPLE_PARAM``."""
    params: dict[str, str | None] = {}
    for item in text[1:].split(";"):
        name, eq, val = item.partition("=")
        params[name.lower()] = val if eq else None
    return params


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` parameters (leading ``;`` optional).

    Names are lower-cased (parameter names are case-insensitive, RFC 3261 §7.3.1);
    values keep their case, quoted values keep their quotes removed.
    """
    if not text:
        return {}
    if _SIMPLE_PARAMS_RE.fullmatch(text):
        return split_simple_params(text)
    return _parse_params_general(text)


def _parse_params_general(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    if not text:
        return params
    for raw in text.split(";") if '"' not in text else _split_semicolons(text):
        name, eq, val = raw.partition("=")
        name = name.strip().lower()
        if not name:
            if not eq and not val.strip():
                continue  # an empty item (";;", or the leading ";")
            raise RemoteProtocolError(f"empty parameter name in {text!r}", reason="Bad Header")
        if eq:
            val = val.strip()
            if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
                val = unquote(val)
            params[name] = val
        else:
            params[name] = None
    return params


def _split_semicolons(text: str) -> list[str]:
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    start = 0
    in_quotes = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_quotes:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == ";":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quotes:
        raise RemoteProtocolError(f"unterminated quoted string in {text!r}", reason="Bad Header")
    parts.append(text[start:])
    return parts


def format_params(params: dict[str, str | None]) -> str:
    out = []
    for name, value in params.items():
        if value is None:
            out.append(f";{name}")
        elif value == "" or not is_token(value.replace(":", "").replace("[", "").replace("]", "")):
            out.append(f";{name}={quote(value)}")
        else:
            out.append(f";{name}={value}")
    return "".join(out)


def unquote(text: str) -> str:
    """Remove surrounding quotes and resolve quoted-pairs (RFC 3261 §25.1)."""
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out = []
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\" and i + 1 < len(inner):
            i += 1
            ch = inner[i]
        out.append(ch)
        i += 1
    return "".join(out)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
