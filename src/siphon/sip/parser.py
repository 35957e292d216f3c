"""Bytes -> ``Request`` / ``Response``: datagram parsing and stream framing (RFC 3261 §7, §18.3).

On any input these functions return messages or raise ``RemoteProtocolError``; a
fuzz test holds them to that. When the start line of a request could be read, the
error carries the partial ``Request`` (``exc.partial``) with every well-formed header
line of the message, so a server can still answer with ``exc.status_hint`` and
``exc.reason`` and the right Via, From, To, Call-ID and CSeq.
"""

from __future__ import annotations

import re
from operator import itemgetter

from siphon.errors import RemoteProtocolError
from siphon.sip.message import (
    _CSEQS,
    SIP_VERSION,
    Message,
    Request,
    Response,
    header_names,
    parse_cseq,
)
from siphon.sip.uri import (
    _NAME_ADDR_PARTS,
    _URI_PARTS,
    SipUri,
    name_addr_parts,
    parse_via,
    sip_uri_parts,
)

# --- limits -------------------------------------------------------------------------
# A UDP datagram cannot carry more than 65,507 bytes of payload over IPv4; we accept
# up to 64 KiB and reject bigger messages with 513 (RFC 3261 §18.1.1, §21.5.14).
MAX_DATAGRAM_SIZE = 65_536
# Streams (TCP/TLS) have no natural bound, so we impose the same one: a peer must not
# make us buffer without end before a message is complete.
MAX_STREAM_MESSAGE_SIZE = 65_536
# Real messages carry 10-40 header fields; thousands mean an attack on our CPU.
MAX_HEADER_COUNT = 256
# The longest real lines are Identity/Authorization headers (a few KiB); 16 KiB
# leaves room and still bounds the work per line.
MAX_LINE_LENGTH = 16_384
# A longer Request-URI is answered with 414 Request-URI Too Long (RFC 3261 §21.4.12).
MAX_URI_LENGTH = 8_192

_WSP = " \t"
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_STATUS_RE = re.compile(r"[1-6][0-9][0-9]")
_VERSION_RE = re.compile(r"SIP/[0-9]{1,3}\.[0-9]{1,3}", re.IGNORECASE)
# Control characters other than HTAB are not allowed in a Reason-Phrase (RFC 3261 §25.1).
_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# A NUL is allowed in a header only as a quoted-pair inside a quoted string (RFC 3261
# §25.1, RFC 4475 §3.1.1.2); anywhere else it is refused.
_BARE_NUL_RE = re.compile(r"(?<!\\)\x00")
# Method names every UA sends: known tokens, so the common request line skips the
# token check (RFC 3261 §7.1, RFC 3262, 3265, 3311, 3428, 3515, 3903, 6086).
_COMMON_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    }
)
# Headers a message must carry exactly once (RFC 3261 §8.1.1, §20).
_SINGLE_HEADERS = ("call-id", "cseq", "from", "to")
_MANDATORY = (
    ("via", "Via"),
    ("call-id", "Call-ID"),
    ("from", "From"),
    ("to", "To"),
    ("cseq", "CSeq"),
)
_MANDATORY_KEYS = frozenset(key for key, _ in _MANDATORY)
# Headers that may be absent, but not repeated (RFC 3261 §20.14, §20.22).
_OPTIONAL_SINGLE = ("max-forwards", "content-length")


def _find_head_end(
    data: bytes | bytearray, start: int = 0, end: int | None = None
) -> tuple[int, int]:
    """Index where the header block ends and where the body starts, or (-1, -1)."""
    if end is None:
        end = len(data)
    idx = data.find(b"\r\n\r\n", start, end)
    # Tolerate bare-LF line endings; only a "\n\n" *before* the first CRLFCRLF counts.
    lf = data.find(b"\n\n", start, end if idx == -1 else idx + 1)
    if lf != -1:
        return lf, lf + 2
    if idx != -1:
        return idx, idx + 4
    return -1, -1


def _partial(message: Message) -> Request | None:
    return message if isinstance(message, Request) else None


class _BareLineFeed(Exception):
    """The head was cut at a CRLFCRLF, but holds a bare LF: it may end earlier."""


def _parse_head(head: bytes, crlf_cut: bool = False) -> Message:
    """Parse the start line and header fields (no body, no cross-header checks).

    A malformed header line does not stop the parse at once: the remaining lines are
    still read into the message, so the ``partial`` request carried by the error has
    every well-formed header a response needs.

    ``crlf_cut``: ``head`` ends at the first CRLFCRLF of a datagram, and nobody has
    looked for an earlier "\n\n" (_find_head_end). With no bare LF in it there is
    none; otherwise ``_BareLineFeed`` is raised, before any other error.
    """
    text = head.decode("utf-8", "surrogateescape")
    lines = text.split("\r\n")
    if len(lines) > 1:
        # Any CR or LF not part of a CRLF, or any NUL, sends us down the careful path.
        # The lines hold no CRLF: any CR or LF left in them is one (one search each in
        # the lines joined, cheaper than counting in the text).
        rest = "".join(lines)
        bare_lf = "\n" in rest
        suspicious = bare_lf or "\r" in rest or "\x00" in rest
    else:
        lines = text.split("\n")
        bare_lf = len(lines) > 1
        suspicious = "\r" in text or "\x00" in text
    if bare_lf and crlf_cut:
        raise _BareLineFeed
    start = lines[0]
    request_line = _REQUEST_LINES.get(start)
    error = None
    if request_line is not None:
        message: Message = Request(request_line[0], request_line[1])
    else:
        parts = start.split(" ")
        if (
            len(parts) == 3
            and parts[0] in _COMMON_METHODS
            and parts[2] == SIP_VERSION
            and parts[1]
            and len(parts[1]) <= MAX_URI_LENGTH
            and len(start) <= MAX_LINE_LENGTH
        ):
            # The usual request line (_parse_start_line's first case, without the call).
            message = Request(parts[0], parts[1])
            if len(start) <= _MAX_MEMO_LINE:
                if len(_REQUEST_LINES) >= _MAX_MEMO_LINES:
                    _REQUEST_LINES.clear()
                _REQUEST_LINES[start] = (parts[0], parts[1])
        else:
            message, error = _parse_start_line(start)
    header_lines = lines[1:]
    if len(header_lines) > MAX_HEADER_COUNT:
        if error is None:
            error = RemoteProtocolError(
                f"more than {MAX_HEADER_COUNT} header lines", reason="Too Many Headers"
            )
        del header_lines[MAX_HEADER_COUNT:]
    if not suspicious and len(text) <= MAX_LINE_LENGTH:
        # The common case: no stray CR/LF/NUL, no value that can be too long, and
        # only header names seen before (_KNOWN_NAMES), so every line is well formed.
        # At the first line that is not, the general path below starts over; a folded
        # line is one (a name is never known with white space before it).
        known = _KNOWN_NAMES
        memo = _HEADER_LINES
        headers = message._headers
        for line in header_lines:
            header = memo.get(line)
            if header is None:
                raw_name, colon, value = line.partition(":")
                names = known.get(raw_name)
                if names is None or not colon:
                    headers.clear()
                    break
                header = (names[0], names[1], value.strip(_WSP))
                if names[0] != "via" and len(line) <= _MAX_MEMO_LINE:
                    if len(memo) >= _MAX_MEMO_LINES:
                        memo.clear()
                    memo[line] = header
            headers.append(header)
        else:
            if error is not None:
                error.partial = _partial(message)
                raise error
            return message
    current: str | None = None
    for line in header_lines:
        if line[:1] in (" ", "\t"):
            # RFC 3261 §7.3.1: a line starting with white space continues the previous
            # one, and the fold counts as a single SP. Unfolding before splitting off the
            # name also tolerates a fold between the name and its colon.
            if current is None:
                if error is None:
                    error = RemoteProtocolError(
                        "continuation line before any header", reason="Bad Header Folding"
                    )
                continue
            current = current + " " + line.strip(_WSP)
            continue
        if current is not None:
            problem = _add_header(message, current, suspicious)
            if error is None:
                error = problem
        current = line
    if current is not None:
        problem = _add_header(message, current, suspicious)
        if error is None:
            error = problem
    if error is not None:
        error.partial = _partial(message)
        raise error
    return message


# Header name exactly as written before the colon -> (lookup key, canonical name), for
# names already seen to be valid tokens: the same few dozen recur in every message, so
# the common case skips the white-space strip, the token check and the name lookup.
# Bounded because names come from the network.
_KNOWN_NAMES: dict[str, tuple[str, str]] = {}
_MAX_KNOWN_NAMES = 2048
# Whole header line -> its (key, canonical name, value) entry, for lines the common
# case read: most lines of a message recur in the next ones (Max-Forwards, Contact,
# CSeq, Content-Type...; From, To and Call-ID within a call), and the entries are
# immutable, so messages share them. Via lines are left out: the branch is new in
# every transaction. Bounded because lines come from the network: emptied when
# full, and long lines (rare) are not kept, so it holds at most ~0.5 MiB.
_HEADER_LINES: dict[str, tuple[str, str, str]] = {}
# Request line -> (method, Request-URI), for the usual request lines: the same few
# recur (the number called; in-dialog requests to the same Contact). Bounded as
# _HEADER_LINES.
_REQUEST_LINES: dict[str, tuple[str, str]] = {}
_MAX_MEMO_LINES = 2048
_MAX_MEMO_LINE = 256


def _add_header(message: Message, line: str, suspicious: bool) -> RemoteProtocolError | None:
    """Add one unfolded header line; return the problem instead of raising it."""
    if suspicious and ("\r" in line or "\n" in line or _BARE_NUL_RE.search(line)):
        return RemoteProtocolError("stray CR, LF or NUL in a header line", reason="Bad Header Line")
    raw_name, colon, value = line.partition(":")
    names = _KNOWN_NAMES.get(raw_name) if colon else None
    if names is None:
        name = raw_name.rstrip(_WSP)
        if not colon or not _TOKEN_RE.fullmatch(name):
            return RemoteProtocolError(
                f"malformed header line {line[:40]!r}", reason="Malformed Header Line"
            )
        names = header_names(name)
        if len(_KNOWN_NAMES) < _MAX_KNOWN_NAMES:
            _KNOWN_NAMES[raw_name] = names
    value = value.strip(_WSP)
    if len(value) > MAX_LINE_LENGTH:
        name = raw_name.rstrip(_WSP)
        return RemoteProtocolError(f"{name} header too long", reason="Header Too Long")
    message._headers.append((names[0], names[1], value))
    return None


def _parse_start_line(line: str) -> tuple[Message, RemoteProtocolError | None]:
    """The message the start line begins, and an error to raise once the headers are read.

    A start line that cannot be read at all raises at once (there is nothing to
    answer); a request line whose method and version can be read gives a partial
    request, so its error is returned for ``_parse_head`` to raise with the headers.
    """
    parts = line.split(" ")
    if len(parts) == 3:
        # The usual request line, checked as the general path below would.
        method, uri, version = parts
        if (
            method in _COMMON_METHODS
            and version == SIP_VERSION
            and uri
            and len(uri) <= MAX_URI_LENGTH
            and len(line) <= MAX_LINE_LENGTH
        ):
            return Request(method, uri), None
    if line.startswith("SIP/") or line[:4].upper() == "SIP/":  # the version is case-insensitive
        status = line.split(" ", 2)
        if (
            len(status) < 2
            or status[0].upper() != SIP_VERSION
            or not _STATUS_RE.fullmatch(status[1])
        ):
            raise RemoteProtocolError(f"bad status line {line[:60]!r}", reason="Bad Status Line")
        reason = status[2] if len(status) == 3 else ""
        if _CTL_RE.search(reason):
            raise RemoteProtocolError(
                "control character in the reason phrase", reason="Bad Status Line"
            )
        if len(line) > MAX_LINE_LENGTH:
            raise RemoteProtocolError("status line too long", reason="Start Line Too Long")
        return Response(int(status[1]), reason), None
    if len(parts) == 3:
        method, uri, version = parts
        if (
            (method in _COMMON_METHODS or _TOKEN_RE.fullmatch(method))
            and uri
            and (version == SIP_VERSION or version.upper() == SIP_VERSION)
        ):
            request = Request(method, uri)
            if len(uri) > MAX_URI_LENGTH:
                return request, RemoteProtocolError(
                    f"Request-URI of {len(uri)} characters", status_hint=414
                )
            if len(line) > MAX_LINE_LENGTH:
                return request, RemoteProtocolError(
                    "request line too long", reason="Start Line Too Long"
                )
            return request, None
    # The slow path: say what is wrong, with a partial request when we can.
    words = line.split(" ")
    words = [word for word in words if word]
    method = words[0] if words else ""
    version = words[-1] if len(words) >= 3 else ""
    if not _TOKEN_RE.fullmatch(method) or not _VERSION_RE.fullmatch(version):
        raise RemoteProtocolError(f"bad request line {line[:60]!r}", reason="Bad Request Line")
    request = Request(method, " ".join(words[1:-1]))
    if version.upper() != SIP_VERSION:
        return request, RemoteProtocolError(
            f"unsupported SIP version {version[:20]!r}", status_hint=505
        )
    # RFC 3261 §7.1: exactly one SP between the elements; an unescaped space inside the
    # Request-URI is a malformed request (RFC 4475 §3.1.2.8, §3.1.2.9).
    return request, RemoteProtocolError(
        f"bad request line {line[:60]!r}: spaces in or around the Request-URI",
        reason="Bad Request Line",
    )


# Max-Forwards values as UAs write them, known good without a closer look.
_PLAIN_MAX_FORWARDS = frozenset(str(hops) for hops in range(256))


def _max_forwards_ok(value: str) -> bool:
    """RFC 3261 §20.22: 1*DIGIT, 0-255 (§8.1.1.6); leading zeros allowed (RFC 4475 §3.1.1.1)."""
    value = value.strip()
    if not value.isascii() or not value.isdigit():
        return False
    digits = value.lstrip("0")
    return len(digits) <= 3 and int(digits or "0") <= 255


def _first_values(message: Message) -> dict[str, str]:
    """The first value of each header, by key (what ``Message._first`` returns)."""
    # Built backwards, so the first occurrence of a repeated header wins.
    return {key: value for key, _, value in reversed(message._headers)}


def _validate(message: Message, first: dict[str, str]) -> None:
    """Cross-header checks every message must pass (RFC 3261 §8.1.1, §8.2).

    ``first`` is ``_first_values(message)``. The presence and repetition checks, then
    those of ``_check``.
    """
    partial = message if isinstance(message, Request) else None
    if not first.keys() >= _MANDATORY_KEYS:
        for key, name in _MANDATORY:
            if key not in first:
                raise RemoteProtocolError(
                    f"missing {name} header", reason=f"Missing {name}", partial=partial
                )
    # Most messages repeat no header at all; the counts are only needed when one does.
    repeats = len(first) != len(message._headers)
    keys = [header[0] for header in message._headers] if repeats else []
    if repeats:
        for key in _SINGLE_HEADERS:
            if keys.count(key) > 1:
                raise RemoteProtocolError(
                    f"more than one {key} header", reason="Duplicate Header", partial=partial
                )
        if keys.count("content-length") > 1:
            raise RemoteProtocolError(
                "more than one Content-Length", reason="Duplicate Header", partial=partial
            )
    _check(
        message,
        first["call-id"],
        first["cseq"],
        first["via"],
        not repeats,
        first["from"],
        first["to"],
        first.get("max-forwards"),
        repeats and keys.count("max-forwards") > 1,
    )


def _check(
    message: Message,
    call_id: str,
    cseq_text: str,
    via: str,
    one_via_line: bool,
    from_value: str,
    to_value: str,
    max_forwards: str | None,
    max_forwards_repeated: bool,
) -> None:
    """The checks of the mandatory values (RFC 3261 §8.1.1, §8.2), each the first of its
    header; ``one_via_line``: Via is on no other line.

    The values checked here are parsed once: Call-ID, CSeq and the Vias are kept as
    the message's views; From, To and the Request-URI in their usual forms only
    matched (``name_addr_parts``, ``sip_uri_parts``), their objects built when read.
    """
    cache = message._cache
    try:
        call_id = call_id.strip()
        if not call_id:
            raise RemoteProtocolError("empty Call-ID", reason="Bad Call-ID")
        cache["call-id"] = call_id
        cseq = cache["cseq"] = _CSEQS.get(cseq_text) or parse_cseq(cseq_text)
        via = via.strip() if one_via_line and "," not in via else ""
        if via:
            # One Via value (what Message.vias would read, without the search).
            cache["via"] = [parse_via(via)]
        else:
            message.top_via  # noqa: B018 - parse every Via for validation
        # From and To in the usual forms are only split into parts (name_addr_parts):
        # their NameAddr is built if they are read. Others are parsed in full.
        parts = _NAME_ADDR_PARTS.get(from_value) or name_addr_parts(from_value)
        if parts is None:
            message.from_addr  # noqa: B018 - the general parser decides
        else:
            cache["from"] = parts
        parts = _NAME_ADDR_PARTS.get(to_value) or name_addr_parts(to_value)
        if parts is None:
            message.to_addr  # noqa: B018
        else:
            cache["to"] = parts
        if isinstance(message, Request):
            if cseq.method != message.method:
                raise RemoteProtocolError(
                    f"CSeq method {cseq.method} does not match {message.method}",
                    reason="CSeq Method Mismatch",
                )
            if max_forwards_repeated:
                raise RemoteProtocolError("more than one Max-Forwards", reason="Duplicate Header")
            if (
                max_forwards is not None
                and max_forwards not in _PLAIN_MAX_FORWARDS
                and not _max_forwards_ok(max_forwards)
            ):
                raise RemoteProtocolError(
                    f"bad Max-Forwards {max_forwards[:20]!r}", reason="Bad Max-Forwards"
                )
            uri = message.uri
            if (_URI_PARTS.get(uri) or sip_uri_parts(uri)) is None:
                # Not a SIP URI in the usual form (those have no headers).
                ruri = message.request_uri
                if ruri.scheme not in ("sip", "sips", "tel"):
                    raise RemoteProtocolError(
                        f"unsupported URI scheme {ruri.scheme[:20]!r}", status_hint=416
                    )
                if isinstance(ruri, SipUri) and ruri.headers:
                    # RFC 3261 §19.1.1 table 1: headers are not allowed in a Request-URI
                    # (RFC 4475 §3.1.2.11).
                    raise RemoteProtocolError(
                        "header fields in the Request-URI", reason="Bad Request-URI"
                    )
    except RemoteProtocolError as exc:
        exc.partial = message if isinstance(message, Request) else None
        raise


# The keys of a message's header lines, in order -> where the values _check reads are
# (the index of the first line of Via, Call-ID, CSeq, From, To, Max-Forwards and
# Content-Length, -1 for the last two when absent) and whether Via is on one line,
# for the shapes where the presence and repetition checks of _validate pass; or
# _NO_SHAPE, for the others (_validate decides). Each UA sends the same few shapes,
# and the tuple of keys is cheaper to build and look up than the first values.
# Bounded because shapes come from the network: emptied when full.
_Shape = tuple[int, int, int, int, int, int, int, bool]
_SHAPES: dict[tuple[str, ...], _Shape] = {}
_MAX_SHAPES = 512
_NO_SHAPE: _Shape = (-1, -1, -1, -1, -1, -1, -1, False)
_key_of = itemgetter(0)


def _shape(keys: tuple[str, ...]) -> _Shape:
    """What ``_SHAPES`` keeps for ``keys``."""
    shape = _NO_SHAPE
    # Each mandatory header present, and those that must not repeat (Content-Length
    # and Max-Forwards may be absent) each on one line: the checks _validate makes
    # pass. (A response may repeat Max-Forwards: rare enough to leave to _validate.)
    if (
        all(key in keys for key in _MANDATORY_KEYS)
        and all(keys.count(key) == 1 for key in _SINGLE_HEADERS)
        and all(keys.count(key) <= 1 for key in _OPTIONAL_SINGLE)
    ):
        index = keys.index
        shape = (
            index("via"),
            index("call-id"),
            index("cseq"),
            index("from"),
            index("to"),
            index("max-forwards") if "max-forwards" in keys else -1,
            index("content-length") if "content-length" in keys else -1,
            keys.count("via") == 1,
        )
    if len(_SHAPES) >= _MAX_SHAPES:
        _SHAPES.clear()
    _SHAPES[keys] = shape
    return shape


def _content_length(message: Message, value: str | None) -> int | None:
    """The body length ``value`` (the first Content-Length) announces."""
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


def parse_datagram(data: bytes) -> Request | Response:
    """Parse one SIP message carried in a UDP datagram (RFC 3261 §18.3)."""
    if len(data) > MAX_DATAGRAM_SIZE:
        raise RemoteProtocolError(
            f"datagram of {len(data)} bytes exceeds {MAX_DATAGRAM_SIZE}", status_hint=513
        )
    # RFC 3261 §7.5: ignore CRLFs before the start line.
    offset = len(data) - len(data.lstrip(b"\r\n")) if data[:1] in (b"\r", b"\n") else 0
    if offset >= len(data):
        raise RemoteProtocolError("empty message")
    message: Message | None = None
    # The head ends at the first CRLFCRLF, unless a "\n\n" comes before it (bare-LF
    # line endings, _find_head_end): _parse_head finds out without a second search.
    head_end = data.find(b"\r\n\r\n", offset)
    if head_end != -1:
        try:
            message = _parse_head(data[offset:head_end], crlf_cut=True)
            body_start = head_end + 4
        except _BareLineFeed:
            pass
    if message is None:
        head_end, body_start = _find_head_end(data, offset)
        if head_end == -1:
            message = _parse_head(data[offset:].rstrip(b"\r\n"))
            raise RemoteProtocolError(
                "no empty line after the headers",
                reason="Missing Header End",
                partial=_partial(message),
            )
        message = _parse_head(data[offset:head_end])
    headers = message._headers
    keys = message._keys = tuple(map(_key_of, headers))
    shape = _SHAPES.get(keys) or _shape(keys)
    if shape is not _NO_SHAPE:
        value = headers[shape[6]][2] if shape[6] >= 0 else None
    else:
        # The first value of each header (what Message._first returns): built
        # backwards, so the first occurrence of a repeated header wins.
        first = {key: value for key, _, value in reversed(headers)}
        value = first.get("content-length")
    if value is not None and value.isdigit() and len(value) < 10 and value.isascii():
        length: int | None = int(value)  # _content_length's common case
    else:
        length = _content_length(message, value)
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
        # RFC 3261 §18.3: bytes beyond Content-Length in a datagram are discarded.
        message.body = data[body_start : body_start + length]
    if shape is _NO_SHAPE:
        _validate(message, first)
    else:
        # What _validate checks after the presence and repetition checks, which pass
        # for this shape.
        _check(
            message,
            headers[shape[1]][2],
            headers[shape[2]][2],
            headers[shape[0]][2],
            shape[7],
            headers[shape[3]][2],
            headers[shape[4]][2],
            headers[shape[5]][2] if shape[5] >= 0 else None,
            False,
        )
    return message  # type: ignore[return-value]


class StreamParser:
    """Frames SIP messages on a byte stream (TCP/TLS) by Content-Length (RFC 3261 §18.3).

    ``feed()`` takes any chunk and returns the messages it completes: several
    messages in one chunk and one message split over many chunks both work. After a
    ``RemoteProtocolError`` framing is lost and the connection should be closed.
    Keep-alive pings (a CRLFCRLF outside a message, RFC 5626 §4.4.1) are counted in
    ``pings``, also when a ping is split over several reads; the transport answers
    each with a single CRLF pong.
    """

    __slots__ = ("_buffer", "_crlf_tail", "_pending", "_scanned", "pings")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending: tuple[Message, int] | None = None  # head parsed, waiting for body
        self._scanned = 0  # bytes of the buffer already searched for the header end
        self._crlf_tail = b""  # CR/LF bytes after the last ping, not yet a ping
        self.pings = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Request | Response]:
        self._buffer += data
        out: list[Request | Response] = []
        while True:
            message = self._next()
            if message is None:
                break
            out.append(message)
        return out

    def _skip_crlf(self, buf: bytearray) -> None:
        """Drop CR/LF bytes between messages, counting the CRLFCRLF pings among them."""
        skip = 0
        n = len(buf)
        while skip < n and buf[skip] in (13, 10):
            skip += 1
        if not skip:
            self._crlf_tail = b""
            return
        run = self._crlf_tail + bytes(buf[:skip])
        del buf[:skip]
        end = 0  # just past the last ping, counting pings left to right without overlap
        while (found := run.find(b"\r\n\r\n", end)) != -1:
            self.pings += 1
            end = found + 4
        self._crlf_tail = run[end:][-3:]
        if buf:
            self._crlf_tail = b""  # a message starts: what was left is no ping

    def _next(self) -> Request | Response | None:
        buf = self._buffer
        if self._pending is None:
            if self._scanned == 0:
                self._skip_crlf(buf)
            if not buf:
                return None
            start = max(0, self._scanned - 3)
            head_end, body_start = _find_head_end(buf, start, MAX_STREAM_MESSAGE_SIZE + 4)
            if head_end == -1:
                self._scanned = len(buf)
                if len(buf) > MAX_STREAM_MESSAGE_SIZE:
                    raise RemoteProtocolError(
                        "header block exceeds the size limit", status_hint=513
                    )
                return None
            self._scanned = 0
            message = _parse_head(bytes(buf[:head_end]))
            length = _content_length(message, message._first("content-length"))
            if length is None:
                raise RemoteProtocolError(
                    "Content-Length is mandatory on stream transports",
                    reason="Missing Content-Length",
                    partial=_partial(message),
                )
            if body_start + length > MAX_STREAM_MESSAGE_SIZE:
                raise RemoteProtocolError(
                    "message exceeds the size limit",
                    status_hint=513,
                    partial=_partial(message),
                )
            del buf[:body_start]
            self._pending = (message, length)
        message, length = self._pending
        if len(buf) < length:
            return None
        message.body = bytes(buf[:length])
        del buf[:length]
        self._pending = None
        _validate(message, _first_values(message))
        return message  # type: ignore[return-value]
