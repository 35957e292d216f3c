"""SIP message model: ``Request`` and ``Response`` with ordered headers (RFC 3261 §7).

Headers are kept as an ordered list of ``(name, value)`` text pairs, so unknown
headers pass through verbatim. Typed views (``cseq``, ``vias``, ``from_addr``…) are
parsed on first use and cached until a header they are read from changes (or
``release_views()``), so each header value is parsed at most once per message however
often the stack reads it. Names are matched case-insensitively and compact forms are
expanded (``v`` is ``Via``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from siphon.errors import RemoteProtocolError
from siphon.sip.headers import LIST_HEADERS, canonical_name, is_token, split_list
from siphon.sip.uri import (
    NameAddr,
    NameAddrParts,
    Uri,
    Via,
    name_addr_from_parts,
    name_addr_parts,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from siphon.tokens import token_hex

SIP_VERSION = "SIP/2.0"
# RFC 3261 §8.1.1.7: branch IDs of RFC 3261 compliant elements start with this cookie.
BRANCH_MAGIC = "z9hG4bK"

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


# RFC 3261 §8.2.6.2: a response copies these from its request; a 100 Trying also
# copies Timestamp (§8.2.6.1).
_COPIED_INTO_RESPONSES = frozenset({"via", "from", "to", "call-id", "cseq"})
_COPIED_INTO_100 = _COPIED_INTO_RESPONSES | {"timestamp"}
# Where a request keeps, once picked out, the header lines its responses copy
# (_Copied). The key is no header's (a name has no space), so only _changed() drops it.
_RESPONSE_HEADERS = "response headers"
# Header lines as kept in a message, and their wire form (see _Copied).
_Lines = tuple[list[tuple[str, str, str]], str]


def reason_phrase(status: int) -> str:
    return REASON_PHRASES.get(status, "Unknown")


def new_branch() -> str:
    return BRANCH_MAGIC + token_hex(8)


def new_tag() -> str:
    return token_hex(6)


def new_call_id(host: str = "") -> str:
    token = token_hex(12)
    return f"{token}@{host}" if host else token


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


# CSeq text -> CSeq. A CSeq is immutable, so messages can share one, and the same
# few values ("1 INVITE", "1 ACK", "2 BYE"...) recur in every call. Bounded because
# the values come from the network: emptied when full.
_CSEQS: dict[str, CSeq] = {}
_MAX_MEMO_CSEQS = 1024


def parse_cseq(value: str) -> CSeq:
    cseq = _CSEQS.get(value)
    if cseq is None:
        cseq = _parse_cseq(value)
        if len(_CSEQS) >= _MAX_MEMO_CSEQS:
            _CSEQS.clear()
        _CSEQS[value] = cseq
    return cseq


def _parse_cseq(value: str) -> CSeq:
    # RFC 3261 §20.16: CSeq = 1*DIGIT LWS Method (any white space between them).
    parts = value.split()
    if len(parts) != 2:
        raise RemoteProtocolError(f"bad CSeq {value!r}", reason="Bad CSeq")
    number, method = parts
    # RFC 3261 §8.1.1.5: the sequence number is a 32-bit unsigned integer.
    if not number.isascii() or not number.isdigit() or len(number) > 10 or not is_token(method):
        raise RemoteProtocolError(f"bad CSeq {value!r}", reason="Bad CSeq")
    seq = int(number)
    if seq >= 2**32:
        raise RemoteProtocolError(f"CSeq number out of range in {value!r}", reason="Bad CSeq")
    return CSeq(seq, method)


# Max-Forwards values as UAs write them -> their value.
_PLAIN_MAX_FORWARDS = {str(hops): hops for hops in range(256)}

# Header name as written -> (lookup key, canonical name). Memoised because the same
# few dozen names recur in every message; bounded because names come from the network.
_NAMES: dict[str, tuple[str, str]] = {}
_MAX_MEMO_NAMES = 2048


def header_names(name: str) -> tuple[str, str]:
    """``(lookup key, canonical name)`` of a header name: ``"v"`` -> ``("via", "Via")``."""
    found = _NAMES.get(name)
    if found is None:
        canonical = canonical_name(name)
        found = (canonical.lower(), canonical)
        if len(_NAMES) < _MAX_MEMO_NAMES:
            _NAMES[name] = found
    return found


_names = header_names


def _key(name: str) -> str:
    return _names(name)[0]


# Makes a Response without its __init__ call (make_response sets every slot itself).
_new_object = object.__new__


class Message(ABC):
    """Common part of requests and responses."""

    __slots__ = ("_cache", "_headers", "_keys", "body")

    def __init__(self, headers: Iterable[tuple[str, str]] | None = None, body: bytes = b"") -> None:
        # Each entry: (lower-case key, canonical name, value). Immutable tuples, so a
        # response can share the entries it copies from its request, and the garbage
        # collector stops tracking them (they hold only strings).
        self._headers: list[tuple[str, str, str]] = []
        # Typed views, under the key of the header they are parsed from ("via",
        # "from"...; "ruri" for the Request-URI): every method that changes a header
        # drops that header's view, and only that one.
        self._cache: dict[str, Any] = {}
        # The keys of _headers in order, when the parser has them at hand (None when
        # not known, and after any change): a header a message does not carry is then
        # looked for with one search in C, not a loop over its lines.
        self._keys: tuple[str, ...] | None = None
        self.body = body
        if headers:
            for name, value in headers:
                self.add(name, value)

    # -- raw header access -------------------------------------------------------
    @property
    def headers(self) -> list[tuple[str, str]]:
        """All header lines in order, as ``(name, value)``."""
        return [(h[1], h[2]) for h in self._headers]

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._first(_key(name))
        return default if value is None else value

    def _first(self, key: str) -> str | None:
        """``get`` for a key already in lower-case long form (the typed views)."""
        keys = self._keys
        if keys is not None:
            return self._headers[keys.index(key)][2] if key in keys else None
        for h in self._headers:
            if h[0] == key:
                return h[2]
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, comma lists split for list headers (RFC 3261 §7.3.1)."""
        return self._values((_NAMES.get(name) or header_names(name))[0])

    def _values(self, key: str) -> list[str]:
        """``get_all`` for a key already in lower-case long form (the typed views)."""
        keys = self._keys
        if keys is not None:
            if key not in keys:
                return []
            if keys.count(key) == 1:
                value = self._headers[keys.index(key)][2]
                return split_list(value) if key in LIST_HEADERS else [value]
        if key not in LIST_HEADERS:
            return [h[2] for h in self._headers if h[0] == key]
        out: list[str] = []
        for h in self._headers:
            if h[0] == key:
                out += split_list(h[2])
        return out

    def count(self, name: str) -> int:
        key = _key(name)
        keys = self._keys
        if keys is not None:
            return keys.count(key)
        return sum(1 for h in self._headers if h[0] == key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def add(self, name: str, value: str) -> None:
        key, canonical = _names(name)
        self._headers.append((key, canonical, value))
        self._changed(key)

    def prepend(self, name: str, value: str) -> None:
        key, canonical = _names(name)
        self._headers.insert(0, (key, canonical, value))
        self._changed(key)

    def set(self, name: str, value: str) -> None:
        """Replace every occurrence of ``name`` by one value, kept at the first position."""
        key = _key(name)
        for i, h in enumerate(self._headers):
            if h[0] == key:
                self._headers[i + 1 :] = [x for x in self._headers[i + 1 :] if x[0] != key]
                self._headers[i] = (key, h[1], value)
                self._changed(key)
                return
        self.add(name, value)

    def remove(self, name: str) -> None:
        key = _key(name)
        self._headers = [h for h in self._headers if h[0] != key]
        self._changed(key)

    def replace_top_via(self, via: Via) -> None:
        """Rewrite the first Via value in place (received/rport, RFC 3261 §18.2.1)."""
        for i, h in enumerate(self._headers):
            if h[0] == "via":
                values = split_list(h[2])
                values[0] = str(via)
                self._headers[i] = ("via", h[1], ", ".join(values))
                self._changed("via")
                return
        self.prepend("Via", str(via))

    def _changed(self, key: str) -> None:
        """Drop what was read from header ``key``: its view, and what responses copy."""
        self._keys = None
        self._cache.pop(key, None)
        if key in _COPIED_INTO_100:
            self._cache.pop(_RESPONSE_HEADERS, None)

    def iter_headers(self) -> Iterator[tuple[str, str]]:
        for h in self._headers:
            yield h[1], h[2]

    def release_views(self) -> None:
        """Drop the cached typed views; they are parsed again if used again.

        For messages kept long after they were handled (a server transaction keeps
        its request for 64*T1 to absorb retransmissions): thousands of them would
        otherwise hold thousands of parsed objects for the garbage collector to scan.
        """
        self._cache = {}

    # -- typed views ---------------------------------------------------------------
    # Each is parsed on first use and kept in _cache under its header's key. The
    # annotated local takes the Any of the cache (mypy) without a run-time check.
    def _required(self, key: str, name: str) -> str:
        value = self._first(key)
        if value is None:
            raise RemoteProtocolError(f"missing {name} header", reason=f"Missing {name}")
        return value

    @property
    def call_id(self) -> str:
        cached: str | None = self._cache.get("call-id")
        if cached is None:
            cached = self._cache["call-id"] = self._required("call-id", "Call-ID").strip()
        return cached

    @property
    def cseq(self) -> CSeq:
        cached: CSeq | None = self._cache.get("cseq")
        if cached is None:
            cached = self._cache["cseq"] = parse_cseq(self._required("cseq", "CSeq"))
        return cached

    # From and To: in the usual forms, their parts (name_addr_parts) are what the
    # cache holds until the NameAddr is wanted, which is built from them then; the
    # tags, read from every request (transaction and dialog matching), come from
    # either.
    @property
    def from_addr(self) -> NameAddr:
        cached: NameAddr | NameAddrParts | None = self._cache.get("from")
        return cached if isinstance(cached, NameAddr) else self._name_addr("from", "From")

    @property
    def to_addr(self) -> NameAddr:
        cached: NameAddr | NameAddrParts | None = self._cache.get("to")
        return cached if isinstance(cached, NameAddr) else self._name_addr("to", "To")

    @property
    def from_tag(self) -> str | None:
        cached: NameAddr | NameAddrParts | None = self._cache.get("from")
        if type(cached) is tuple:  # the usual case, after validation
            return cached[6].get("tag")
        return self._tag("from", "From")

    @property
    def to_tag(self) -> str | None:
        cached: NameAddr | NameAddrParts | None = self._cache.get("to")
        if type(cached) is tuple:
            return cached[6].get("tag")
        return self._tag("to", "To")

    def _name_addr(self, key: str, name: str) -> NameAddr:
        parts: NameAddrParts | None = self._cache.get(key)
        addr = self._cache[key] = (
            parse_name_addr(self._required(key, name))
            if parts is None
            else name_addr_from_parts(parts)
        )
        return addr

    def _tag(self, key: str, name: str) -> str | None:
        cached: NameAddr | NameAddrParts | None = self._cache.get(key)
        if cached is None:
            value = self._required(key, name)
            cached = self._cache[key] = name_addr_parts(value) or parse_name_addr(value)
        if isinstance(cached, NameAddr):
            return cached.params.get("tag")
        return cached[6].get("tag")

    @property
    def vias(self) -> list[Via]:
        cached: list[Via] | None = self._cache.get("via")
        if cached is None:
            cached = self._cache["via"] = list(map(parse_via, self._values("via")))
        return cached

    @property
    def top_via(self) -> Via:
        vias: list[Via] | None = self._cache.get("via")  # read many times per request
        if vias is None:
            vias = self.vias
        if not vias:
            raise RemoteProtocolError("missing Via header", reason="Missing Via")
        return vias[0]

    @property
    def contacts(self) -> list[NameAddr]:
        cached: list[NameAddr] | None = self._cache.get("contact")
        if cached is None:
            cached = self._cache["contact"] = list(map(parse_name_addr, self._values("contact")))
        return cached

    @property
    def record_routes(self) -> list[NameAddr]:
        return list(map(parse_name_addr, self._values("record-route")))

    @property
    def routes(self) -> list[NameAddr]:
        return list(map(parse_name_addr, self._values("route")))

    @property
    def max_forwards(self) -> int | None:
        value = self._first("max-forwards")
        if value is None:
            return None
        hops = _PLAIN_MAX_FORWARDS.get(value)
        if hops is not None:
            return hops
        value = value.strip()
        # RFC 3261 §20.22: 1*DIGIT (leading zeros allowed, RFC 4475 wsinv); above 255
        # is not meaningful.
        digits = value.lstrip("0")
        if (
            not value.isascii()
            or not value.isdigit()
            or len(digits) > 3
            or int(digits or "0") > 255
        ):
            raise RemoteProtocolError(f"bad Max-Forwards {value!r}", reason="Bad Max-Forwards")
        return int(digits or "0")

    @property
    def content_type(self) -> str | None:
        value = self._first("content-type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip().lower()

    def option_tags(self, name: str) -> list[str]:
        """Option tags in Require / Supported / Proxy-Require / Unsupported (lower-cased)."""
        values = self.get_all(name)  # most often none: no list to make then
        return [v.strip().lower() for v in values if v.strip()] if values else []

    # -- serialization -----------------------------------------------------------------
    @abstractmethod
    def start_line(self) -> str:
        """The request line or status line, without CRLF."""

    def to_bytes(self) -> bytes:
        """Wire form, with Content-Length always set to the body's length."""
        body = self.body
        lines = [self.start_line()]
        for key, name, value in self._headers:
            if key == "content-length":
                break
            lines.append(f"{name}: {value}")
        else:
            # The usual case (make_response leaves Content-Length out): ours goes last.
            lines.append(f"Content-Length: {len(body)}\r\n\r\n")
            return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body
        lines = [self.start_line()]
        length_written = False
        body_length = str(len(self.body))
        for key, name, value in self._headers:
            if key == "content-length":
                if length_written:
                    continue
                value = body_length
                length_written = True
            lines.append(f"{name}: {value}")
        if not length_written:
            lines.append(f"Content-Length: {body_length}")
        lines.append("")
        lines.append("")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class Request(Message):
    __slots__ = ("method", "uri")

    def __init__(
        self,
        method: str,
        uri: str | Uri,
        headers: Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        # Message.__init__ inlined: a request is built for every one received.
        self._headers: list[tuple[str, str, str]] = []
        self._cache: dict[str, Any] = {}
        self._keys: tuple[str, ...] | None = None
        self.body = body
        self.method = method
        self.uri = uri if type(uri) is str else str(uri)
        if headers:
            for name, value in headers:
                self.add(name, value)

    @property
    def request_uri(self) -> Uri:
        # Cached with the text it was parsed from: ``uri`` is a plain attribute.
        uri: Uri | None = self._cache.get("ruri")
        if uri is None or self._cache["ruri-text"] != self.uri:
            uri = self._cache["ruri"] = parse_uri(self.uri)
            self._cache["ruri-text"] = self.uri
        return uri

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"

    def _has_to_tag(self) -> bool:
        """Whether To has a tag *parameter* (not ``;tag=`` inside a quoted name or URI)."""
        try:
            return self.to_tag is not None
        except RemoteProtocolError:  # a partial request with an unreadable To
            value = self.get("To") or ""
            return ";tag=" in value.replace(" ", "").lower()

    def make_response(
        self,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """Build a response per RFC 3261 §8.2.6.2: Via, From, To, Call-ID, CSeq copied.

        ``to_tag`` is added to To when it has none (not on 100 Trying, §8.2.6.2).
        Works on partial requests too (headers that are missing are not copied), so a
        server can answer a malformed request with 400.
        """
        # Response.__init__ inlined (without its call): one is built for every one sent.
        response: Response = _new_object(Response)
        response._cache = {}
        response._keys = None
        response.body = body
        response.status = status
        response.reason = reason or REASON_PHRASES.get(status, "Unknown")  # reason_phrase()
        # What responses copy is picked out once per request (a request gets several
        # responses), with its wire form: the header tuples are shared, not copied, as
        # they are immutable.
        copied: _Copied | None = self._cache.get(_RESPONSE_HEADERS)
        if copied is None:
            copied = self._cache[_RESPONSE_HEADERS] = _Copied(self._headers)
        if status == 100:  # never tagged (§8.2.6.2)
            lines = copied.lines_100
            text = copied.text_100
            if text is None:
                text = copied.text_100 = _wire_lines(lines)
        elif to_tag and to_tag == copied.tag:  # the 200 after the 180
            lines, text = copied.tagged
        else:
            lines, text = copied.lines_for(self, to_tag)
        out = response._headers = lines.copy()
        wire: str | None = text
        for name, value in headers:  # as add() does, the new response has no views yet
            added = _ADDED.get((name, value)) or _added(name, value)
            out.append(added[0])
            if wire is not None:
                # A Content-Length is written with the body's length (to_bytes): the
                # general path then.
                wire = None if added[0][0] == "content-length" else wire + added[1]
        response._text = wire
        return response


class _Copied:
    """The header lines the responses to one request copy (RFC 3261 §8.2.6.2).

    Picked out of the request once, in order, with their wire form: the 100 Trying,
    the 180 and the 200 of an INVITE copy the same lines, and only the To tag and the
    lines they add differ. Each form is made when first needed. Kept in the request's
    ``_cache`` (``_RESPONSE_HEADERS``), so a change to a copied header drops it.
    """

    __slots__ = ("lines_100", "plain", "tag", "tagged", "text_100", "untaggable")

    def __init__(self, headers: list[tuple[str, str, str]]) -> None:
        # §8.2.6.1: a 100 Trying also copies Timestamp.
        self.lines_100 = [h for h in headers if h[0] in _COPIED_INTO_100]
        self.text_100: str | None = None
        self.plain: _Lines | None = None  # without Timestamp, To as in the request
        # The lines with the To tag last given (a UAS gives the same to all its
        # responses to a request, §12.1.1), and that tag.
        self.tag: str | None = None
        self.tagged: _Lines = ([], "")
        self.untaggable = False  # the request's To has a tag already, or there is none

    def lines_for(self, request: Request, to_tag: str | None) -> _Lines:
        """The lines and their wire form for a response other than 100 Trying."""
        if to_tag and not self.untaggable:
            if to_tag == self.tag:
                return self.tagged
            tagged = self._plain_lines().copy()
            positions = [i for i, h in enumerate(tagged) if h[0] == "to"]
            if positions and not request._has_to_tag():
                for i in positions:
                    header = tagged[i]
                    tagged[i] = ("to", header[1], f"{header[2]};tag={to_tag}")
                self.tag = to_tag
                self.tagged = (tagged, _wire_lines(tagged))
                return self.tagged
            self.untaggable = True
        plain = self.plain
        if plain is None:
            lines = self._plain_lines()
            plain = self.plain = (lines, _wire_lines(lines))
        return plain

    def _plain_lines(self) -> list[tuple[str, str, str]]:
        if self.plain is not None:
            return self.plain[0]
        return [h for h in self.lines_100 if h[0] != "timestamp"]


# (name, value) of a header line a response adds -> its entry in _headers and its
# wire line: a server adds the same few to every response (Server, Contact, Allow...).
# Bounded because values may come from the network (a Record-Route copied): emptied
# when full, and long values are not kept.
_ADDED: dict[tuple[str, str], tuple[tuple[str, str, str], str]] = {}
_MAX_ADDED = 512
_MAX_ADDED_VALUE = 256


def _added(name: str, value: str) -> tuple[tuple[str, str, str], str]:
    key, canonical = header_names(name)
    added = ((key, canonical, value), f"{canonical}: {value}\r\n")
    if len(value) <= _MAX_ADDED_VALUE:
        if len(_ADDED) >= _MAX_ADDED:
            _ADDED.clear()
        _ADDED[name, value] = added
    return added


def _wire_lines(headers: list[tuple[str, str, str]]) -> str:
    """Header lines as ``to_bytes`` writes them, each ended by CRLF."""
    return "".join([f"{h[1]}: {h[2]}\r\n" for h in headers])


class Response(Message):
    # _text: the wire form of every header line (each ended by CRLF, no Content-Length
    # among them), when make_response built it; dropped by any header change.
    __slots__ = ("_text", "reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        # Message.__init__ inlined: a response is built for every one sent.
        self._text: str | None = None
        self._headers: list[tuple[str, str, str]] = []
        self._cache: dict[str, Any] = {}
        self._keys: tuple[str, ...] | None = None
        self.body = body
        self.status = status
        self.reason = reason if reason is not None else reason_phrase(status)
        if headers:
            for name, value in headers:
                self.add(name, value)

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    @property
    def is_final(self) -> bool:
        return self.status >= 200

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def _changed(self, key: str) -> None:
        self._text = None
        Message._changed(self, key)

    def to_bytes(self) -> bytes:
        text = self._text
        if text is None:
            return Message.to_bytes(self)
        body = self.body
        return (
            f"{self.start_line()}\r\n{text}Content-Length: {len(body)}\r\n\r\n".encode(
                "utf-8", "surrogateescape"
            )
            + body
        )

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


SipMessage = Request | Response
