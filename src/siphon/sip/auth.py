"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

Sans-IO: everything works on header *values* (the text after ``Authorization:``,
``WWW-Authenticate:`` and their ``Proxy-`` twins) and on times passed in by the
caller; nothing here reads a clock or a socket.

* ``parse_challenge`` / ``parse_credentials`` read the header values and raise only
  ``RemoteProtocolError`` (status_hint 400, reason ``"Bad <header> header"``). A scheme
  other than Digest raises ``UnsupportedSchemeError``, a ``RemoteProtocolError``
  subclass carrying the ``scheme``, so callers can tell "Basic" from garbage.
* ``answer_challenge`` and ``DigestClient`` compute credentials (UAC side).
* ``DigestServer`` issues stateless, HMAC-signed nonces and verifies credentials
  (UAS / registrar side), with nonce-count replay protection.

Algorithms: MD5, MD5-sess, SHA-256 and SHA-256-sess (RFC 8760 §2.3); qop ``auth``,
``auth-int`` and none (RFC 2069 compatibility, RFC 3261 §22.4).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from siphon.errors import ConfigError, LocalProtocolError, RemoteProtocolError

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "AuthResult",
    "AuthStatus",
    "DigestChallenge",
    "DigestClient",
    "DigestCredentials",
    "DigestServer",
    "UnsupportedSchemeError",
    "answer_challenge",
    "digest_response",
    "parse_challenge",
    "parse_credentials",
    "select_challenges",
    "verify_response",
]

# RFC 7616 §3.2 / RFC 8760 §2.3: the algorithms we can compute, canonical spelling.
SUPPORTED_ALGORITHMS: tuple[str, ...] = ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess")
_CANONICAL_ALGORITHMS = {name.lower(): name for name in SUPPORTED_ALGORITHMS}
_HASH_NAMES = {"MD5": "md5", "SHA-256": "sha256"}
_QOPS = ("auth", "auth-int")

# RFC 7230 §3.2.6 tchar, a superset of RFC 3261 §25.1 token characters.
_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
)
_WS = " \t\r\n"  # LWS, folding included (RFC 3261 §7.3.1)
# Printable ASCII allowed in an unquoted value: tolerant of nonces and URIs sent bare.
_BARE_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - set('",\\')
_MAX_VALUE_LEN = 8192  # far above any real header; bounds the work on hostile input
_HEX = frozenset("0123456789abcdefABCDEF")
# RFC 8187 attr-char, for username* (RFC 7616 §3.4.4)
_ATTR_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&+-.^_`|~"
)


class UnsupportedSchemeError(RemoteProtocolError):
    """The header value uses an auth scheme other than Digest (e.g. ``Basic``)."""

    def __init__(self, scheme: str, header: str) -> None:
        super().__init__(
            f"{header}: unsupported auth scheme {scheme!r} (only Digest is supported)",
            status_hint=400,
            reason=f"Bad {header} header",
        )
        self.scheme = scheme


# --------------------------------------------------------------------------- parsing


def _bad(header: str, why: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"{header}: {why}", status_hint=400, reason=f"Bad {header} header")


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _is_ctl(c: str) -> bool:
    o = ord(c)
    return (o < 0x20 and c != "\t") or o == 0x7F


def _is_surrogate(c: str) -> bool:
    return 0xD800 <= ord(c) <= 0xDFFF  # not encodable as UTF-8, so unhashable


def _read_quoted(text: str, i: int, header: str) -> tuple[str, int]:
    """Read the quoted-string opening at ``text[i]``; return (unescaped, index after)."""
    out: list[str] = []
    n = len(text)
    j = i + 1
    while j < n:
        c = text[j]
        if c == '"':
            return "".join(out), j + 1
        if c == "\\":  # quoted-pair (RFC 3261 §25.1): any char but CR/LF
            if j + 1 >= n or text[j + 1] in "\r\n":
                raise _bad(header, "dangling backslash in quoted string")
            c = text[j + 1]
            j += 2
        elif c in "\r\n":  # folded line inside the string: LWS, kept as one space
            k = j + 2 if text.startswith("\r\n", j) else j + 1
            if k >= n or text[k] not in " \t":
                raise _bad(header, "line break in quoted string")
            j = k
            while j < n and text[j] in " \t":
                j += 1
            c = " "
        else:
            j += 1
        if (_is_ctl(c) and c != " ") or _is_surrogate(c):
            raise _bad(header, f"invalid character {c!r} in quoted string")
        out.append(c)
    raise _bad(header, "unterminated quoted string")


@dataclass(frozen=True, slots=True)
class _Param:
    name: str  # as written
    value: str  # unquoted, unescaped
    quoted: bool


def _split_auth(value: str, header: str) -> list[_Param]:
    """Split ``Digest a=b, c="d"`` into params (RFC 7235 §2.1 / RFC 3261 §25.1)."""
    if len(value) > _MAX_VALUE_LEN:
        raise _bad(header, f"value longer than {_MAX_VALUE_LEN} characters")
    n = len(value)
    i = _skip_ws(value, 0)
    start = i
    while i < n and value[i] in _TOKEN_CHARS:
        i += 1
    scheme = value[start:i]
    if not scheme or (i < n and value[i] not in _WS):
        raise _bad(header, "expected an auth scheme followed by whitespace")
    if scheme.lower() != "digest":
        raise UnsupportedSchemeError(scheme, header)

    params: list[_Param] = []
    while True:
        i = _skip_ws(value, i)
        if i >= n:
            return params
        if value[i] == ",":  # empty list elements are allowed (RFC 7230 §7)
            i += 1
            continue
        start = i
        while i < n and value[i] in _TOKEN_CHARS:
            i += 1
        name = value[start:i]
        if not name:
            raise _bad(header, f"unexpected {value[i]!r} at offset {i}")
        i = _skip_ws(value, i)
        if i >= n or value[i] == ",":
            # A bare token: tolerated only as the tail of an unquoted qop list,
            # as in the common mistake ``qop=auth,auth-int``.
            last = params[-1] if params else None
            if last is not None and last.name.lower() == "qop" and not last.quoted:
                params[-1] = _Param(last.name, f"{last.value},{name}", False)
                continue
            raise _bad(header, f"parameter {name!r} has no value")
        if value[i] != "=":
            raise _bad(header, f"expected '=' after {name!r}")
        i = _skip_ws(value, i + 1)
        if i < n and value[i] == '"':
            text, i = _read_quoted(value, i, header)
            quoted = True
        else:
            start = i
            while i < n and value[i] in _BARE_CHARS:
                i += 1
            text = value[start:i]
            quoted = False
            if not text:
                raise _bad(header, f"parameter {name!r} has an empty value")
        params.append(_Param(name, text, quoted))
        i = _skip_ws(value, i)
        if i < n and value[i] != ",":
            raise _bad(header, f"expected ',' after parameter {name!r}")


def _collect(
    params: list[_Param], known: frozenset[str], header: str
) -> tuple[dict[str, _Param], tuple[tuple[str, str], ...]]:
    """Known params by lower-case name, and the rest in order; duplicates are errors."""
    seen: set[str] = set()
    found: dict[str, _Param] = {}
    extra: list[tuple[str, str]] = []
    for p in params:
        key = p.name.lower()
        if key in seen:  # RFC 7235 §2.2: each parameter at most once
            raise _bad(header, f"duplicate parameter {p.name!r}")
        seen.add(key)
        if key in known:
            found[key] = p
        else:
            extra.append((p.name, p.value))
    return found, tuple(extra)


def _canonical_algorithm(text: str) -> str:
    return _CANONICAL_ALGORITHMS.get(text.lower(), text)


def _parse_bool(p: _Param | None, header: str, *, lenient: bool) -> bool:
    if p is None:
        return False
    word = p.value.lower()
    if word == "true":
        return True
    if word == "false" or lenient:  # RFC 2617 §3.2.1: stale is true only if "true"
        return False
    raise _bad(header, f"{p.name} must be true or false")


def _decode_ext_value(text: str, header: str) -> str:
    """Decode an RFC 8187 ext-value such as ``UTF-8''J%C3%A4s%C3%B8n``."""
    parts = text.split("'")
    if len(parts) != 3:
        raise _bad(header, "malformed username*")
    charset, _language, encoded = parts
    codec = {"utf-8": "utf-8", "iso-8859-1": "latin-1"}.get(charset.lower())
    if codec is None:
        raise _bad(header, f"unsupported username* charset {charset!r}")
    raw = bytearray()
    i = 0
    while i < len(encoded):
        c = encoded[i]
        if c == "%":
            pair = encoded[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise _bad(header, "bad percent-escape in username*")
            raw.append(int(pair, 16))
            i += 3
        elif c in _ATTR_CHARS:
            raw.append(ord(c))
            i += 1
        else:
            raise _bad(header, f"invalid character {c!r} in username*")
    try:
        decoded = raw.decode(codec)
    except UnicodeDecodeError:
        raise _bad(header, "username* is not valid in its charset") from None
    if any(_is_ctl(c) for c in decoded):
        raise _bad(header, "control character in username*")
    return decoded


# ------------------------------------------------------------------------- serialising


def _quote(name: str, value: str) -> str:
    if any(_is_ctl(c) or _is_surrogate(c) for c in value):
        raise LocalProtocolError(f"{name} contains a character that cannot be sent: {value!r}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{name}="{escaped}"'


def _bare(name: str, value: str) -> str:
    if not value or not set(value) <= _TOKEN_CHARS:
        raise LocalProtocolError(f"{name} must be a token, not {value!r}")
    return f"{name}={value}"


def _extras(extra: tuple[tuple[str, str], ...]) -> list[str]:
    out = []
    for name, value in extra:
        if not name or not set(name) <= _TOKEN_CHARS:
            raise LocalProtocolError(f"parameter name must be a token, not {name!r}")
        out.append(
            _bare(name, value) if value and set(value) <= _TOKEN_CHARS else _quote(name, value)
        )
    return out


# ---------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class DigestChallenge:
    """A Digest challenge: the value of WWW-Authenticate or Proxy-Authenticate.

    ``qop`` is the tuple of offered qop values (lower case); empty means the server
    asked for RFC 2069 style credentials. ``algorithm`` is canonical when we know it
    (``"md5"`` reads as ``"MD5"``), else as written. ``extra`` keeps unknown params.
    """

    realm: str
    nonce: str
    opaque: str | None = None
    stale: bool = False
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    domain: str | None = None
    userhash: bool = False
    extra: tuple[tuple[str, str], ...] = ()

    def to_header_value(self) -> str:
        """Serialise, quoting what RFC 7616 §3.3 quotes (algorithm and stale bare)."""
        parts = [_quote("realm", self.realm)]
        if self.domain is not None:
            parts.append(_quote("domain", self.domain))
        parts.append(_quote("nonce", self.nonce))
        if self.opaque is not None:
            parts.append(_quote("opaque", self.opaque))
        if self.stale:
            parts.append("stale=true")
        parts.append(_bare("algorithm", self.algorithm))
        if self.qop:
            for q in self.qop:
                _bare("qop", q)
            parts.append(f'qop="{",".join(self.qop)}"')
        if self.userhash:
            parts.append("userhash=true")
        parts.extend(_extras(self.extra))
        return "Digest " + ", ".join(parts)


_CHALLENGE_PARAMS = frozenset(
    {"realm", "nonce", "opaque", "stale", "algorithm", "qop", "domain", "userhash"}
)


def parse_challenge(value: str, *, header: str = "WWW-Authenticate") -> DigestChallenge:
    """Parse a WWW-Authenticate / Proxy-Authenticate value (RFC 7616 §3.3).

    One challenge per value, as SIP sends them (RFC 3261 §7.3.1: these headers are
    never comma-combined). ``header`` only names the header in error messages.

    Raises ``RemoteProtocolError`` (``UnsupportedSchemeError`` for non-Digest schemes).
    """
    found, extra = _collect(_split_auth(value, header), _CHALLENGE_PARAMS, header)
    for required in ("realm", "nonce"):
        if required not in found:
            raise _bad(header, f"missing {required}")
    qop: tuple[str, ...] = ()
    if "qop" in found:
        words = [w.strip(_WS).lower() for w in found["qop"].value.split(",")]
        if any(w and not set(w) <= _TOKEN_CHARS for w in words):
            raise _bad(header, "qop must be a list of tokens")
        qop = tuple(w for w in words if w)
    algorithm = found.get("algorithm")
    opaque = found.get("opaque")
    domain = found.get("domain")
    return DigestChallenge(
        realm=found["realm"].value,
        nonce=found["nonce"].value,
        opaque=opaque.value if opaque else None,
        stale=_parse_bool(found.get("stale"), header, lenient=True),
        algorithm=_canonical_algorithm(algorithm.value) if algorithm else "MD5",
        qop=qop,
        domain=domain.value if domain else None,
        userhash=_parse_bool(found.get("userhash"), header, lenient=True),
        extra=extra,
    )


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """Digest credentials: the value of Authorization or Proxy-Authorization.

    ``nc`` is kept as sent (8 hex digits) because it is hashed verbatim;
    ``nonce_count`` gives it as an int. ``qop`` is lower case or None (RFC 2069).
    With ``userhash`` true, ``username`` is H(username ":" realm) (RFC 7616 §3.4.4).
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None
    userhash: bool = False
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def nonce_count(self) -> int | None:
        return int(self.nc, 16) if self.nc is not None else None

    def to_header_value(self) -> str:
        """Serialise; qop, nc and algorithm go unquoted (RFC 7616 §3.4, RFC 3261 §25.1)."""
        parts = [
            _quote("username", self.username),
            _quote("realm", self.realm),
            _quote("nonce", self.nonce),
            _quote("uri", self.uri),
            _quote("response", self.response),
            _bare("algorithm", self.algorithm),
        ]
        if self.cnonce is not None:
            parts.append(_quote("cnonce", self.cnonce))
        if self.opaque is not None:
            parts.append(_quote("opaque", self.opaque))
        if self.qop is not None:
            parts.append(_bare("qop", self.qop))
        if self.nc is not None:
            if len(self.nc) != 8 or not set(self.nc) <= _HEX:
                raise LocalProtocolError(f"nc must be 8 hex digits, not {self.nc!r}")
            parts.append(f"nc={self.nc}")
        if self.userhash:
            parts.append("userhash=true")
        parts.extend(_extras(self.extra))
        return "Digest " + ", ".join(parts)


_CREDENTIAL_PARAMS = frozenset(
    {
        "username",
        "username*",
        "realm",
        "nonce",
        "uri",
        "response",
        "algorithm",
        "cnonce",
        "opaque",
        "qop",
        "nc",
        "userhash",
    }
)


def parse_credentials(value: str, *, header: str = "Authorization") -> DigestCredentials:
    """Parse an Authorization / Proxy-Authorization value (RFC 7616 §3.4).

    Accepts a quoted qop and nc (RFC 3261 §25.1 says bare), ``username*``
    (RFC 7616 §3.4.4) and ``userhash``; requires cnonce and nc when qop is present.

    Raises ``RemoteProtocolError`` (``UnsupportedSchemeError`` for non-Digest schemes).
    """
    found, extra = _collect(_split_auth(value, header), _CREDENTIAL_PARAMS, header)
    if "username" in found and "username*" in found:
        raise _bad(header, "both username and username*")
    if "username*" in found:
        username = _decode_ext_value(found["username*"].value, header)
    elif "username" in found:
        username = found["username"].value
    else:
        raise _bad(header, "missing username")
    for required in ("realm", "nonce", "uri", "response"):
        if required not in found:
            raise _bad(header, f"missing {required}")

    qop: str | None = None
    if "qop" in found:
        qop = found["qop"].value.strip(_WS).lower()
        if not qop or not set(qop) <= _TOKEN_CHARS:
            raise _bad(header, "qop must be a single token")
    nc: str | None = None
    if "nc" in found:
        nc = found["nc"].value
        if len(nc) != 8 or not set(nc) <= _HEX:
            raise _bad(header, "nc must be 8 hex digits")
    cnonce = found.get("cnonce")
    if qop is not None and (cnonce is None or nc is None):
        raise _bad(header, "qop without cnonce and nc")  # RFC 2617 §3.2.2
    algorithm = found.get("algorithm")
    opaque = found.get("opaque")
    return DigestCredentials(
        username=username,
        realm=found["realm"].value,
        nonce=found["nonce"].value,
        uri=found["uri"].value,
        response=found["response"].value,
        algorithm=_canonical_algorithm(algorithm.value) if algorithm else "MD5",
        cnonce=cnonce.value if cnonce else None,
        opaque=opaque.value if opaque else None,
        qop=qop,
        nc=nc,
        userhash=_parse_bool(found.get("userhash"), header, lenient=False),
        extra=extra,
    )


# ---------------------------------------------------------------------------- hashing


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise LocalProtocolError("text cannot be encoded as UTF-8") from None


def _hasher(algorithm: str) -> Callable[[bytes], str]:
    base = algorithm.removesuffix("-sess")
    name = _HASH_NAMES.get(base) if algorithm in SUPPORTED_ALGORITHMS else None
    if name is None:
        raise LocalProtocolError(
            f"unsupported digest algorithm {algorithm!r}; "
            f"supported: {', '.join(SUPPORTED_ALGORITHMS)}"
        )

    def h(data: bytes) -> str:
        return hashlib.new(name, data).hexdigest()

    return h


def digest_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value, lower-case hex (RFC 7616 §3.4.1-§3.4.3, RFC 2617 §3.2.2).

    ``username`` is the real (unhashed) name even with userhash. ``qop=None`` gives
    the RFC 2069 form H(HA1:nonce:HA2). Raises ``LocalProtocolError`` for an unknown
    algorithm or qop, or when a -sess algorithm or a qop lacks cnonce / nc.
    """
    algorithm = _canonical_algorithm(algorithm)
    h = _hasher(algorithm)
    ha1 = h(_utf8(f"{username}:{realm}:{password}"))
    if algorithm.endswith("-sess"):  # RFC 7616 §3.4.2
        if cnonce is None:
            raise LocalProtocolError(f"{algorithm} needs a cnonce")
        ha1 = h(_utf8(f"{ha1}:{nonce}:{cnonce}"))
    if qop == "auth-int":  # RFC 7616 §3.4.3
        ha2 = h(_utf8(f"{method}:{uri}:") + h(body).encode("ascii"))
    elif qop in (None, "auth"):
        ha2 = h(_utf8(f"{method}:{uri}"))
    else:
        raise LocalProtocolError(f"unsupported qop {qop!r}; supported: auth, auth-int")
    if qop is None:  # RFC 2069 §2.1.2
        return h(_utf8(f"{ha1}:{nonce}:{ha2}"))
    if cnonce is None or nc is None:
        raise LocalProtocolError(f"qop={qop} needs a cnonce and an nc")
    return h(_utf8(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))


def verify_response(
    credentials: DigestCredentials, password: str, *, method: str, body: bytes = b""
) -> bool:
    """Whether ``credentials.response`` is right for ``password``, in constant time.

    Only the digest: realm, nonce freshness, replay and URI checks are the caller's
    (``DigestServer.verify`` does them). False for anything we cannot compute,
    including userhash credentials (the real username is unknown here).
    """
    if credentials.userhash:
        return False
    try:
        expected = digest_response(
            algorithm=credentials.algorithm,
            username=credentials.username,
            realm=credentials.realm,
            password=password,
            nonce=credentials.nonce,
            method=method,
            uri=credentials.uri,
            qop=credentials.qop,
            nc=credentials.nc,
            cnonce=credentials.cnonce,
            body=body,
        )
        given = _utf8(credentials.response.lower())
    except LocalProtocolError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), given)


# ----------------------------------------------------------------------------- client


def _choose_qop(offered: tuple[str, ...]) -> str | None:
    if not offered:
        return None  # RFC 2069 compatibility (RFC 3261 §22.4)
    if "auth" in offered:
        return "auth"
    if "auth-int" in offered:
        return "auth-int"
    raise LocalProtocolError(f"no supported qop in {offered!r}; supported: auth, auth-int")


def answer_challenge(
    challenge: DigestChallenge | str,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    body: bytes = b"",
    cnonce: str | None = None,
    nonce_count: int = 1,
) -> DigestCredentials:
    """Credentials answering ``challenge`` (RFC 3261 §22.2-§22.3, RFC 7616 §3.4).

    ``uri`` is the Request-URI of the request being sent (RFC 3261 §22.4) and
    ``body`` its body (hashed only for qop=auth-int). Prefers qop=auth, uses auth-int
    when only that is offered, and answers RFC 2069 style when no qop is offered.
    A ``str`` challenge is parsed first (which may raise ``RemoteProtocolError``).

    Raises ``LocalProtocolError`` for an algorithm or qop we do not support.
    """
    if isinstance(challenge, str):
        challenge = parse_challenge(challenge)
    algorithm = challenge.algorithm
    _hasher(algorithm)  # rejects unsupported algorithms, naming the supported ones
    qop = _choose_qop(challenge.qop)
    if not 1 <= nonce_count <= 0xFFFFFFFF:
        raise LocalProtocolError(f"nonce_count out of range: {nonce_count}")
    if algorithm.endswith("-sess") and qop is None:
        raise LocalProtocolError(f"{algorithm} challenge without qop: no cnonce to send")
    nc: str | None = None
    if qop is not None:
        cnonce = cnonce if cnonce is not None else secrets.token_hex(16)
        nc = f"{nonce_count:08x}"
    else:
        cnonce = None
    response = digest_response(
        algorithm=algorithm,
        username=username,
        realm=challenge.realm,
        password=password,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        body=body,
    )
    sent_username = username
    if challenge.userhash:  # RFC 7616 §3.4.4
        sent_username = _hasher(algorithm)(_utf8(f"{username}:{challenge.realm}"))
    return DigestCredentials(
        username=sent_username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=algorithm,
        cnonce=cnonce,
        opaque=challenge.opaque,
        qop=qop,
        nc=nc,
        userhash=challenge.userhash,
    )


def _usable(challenge: DigestChallenge) -> bool:
    if challenge.algorithm not in SUPPORTED_ALGORITHMS:
        return False
    if challenge.qop and not set(challenge.qop) & set(_QOPS):
        return False
    return not (challenge.algorithm.endswith("-sess") and not challenge.qop)


def select_challenges(
    values: Iterable[DigestChallenge | str], *, header: str = "WWW-Authenticate"
) -> list[DigestChallenge]:
    """The challenges to answer: per realm, the topmost one we support.

    RFC 8760 §2.4: a UAC uses the first challenge with an algorithm it supports;
    RFC 3261 §22.3: each realm (e.g. each forking proxy) gets its own answer.
    Unparseable values and other schemes are skipped.
    """
    chosen: dict[str, DigestChallenge] = {}
    for value in values:
        try:
            c = parse_challenge(value, header=header) if isinstance(value, str) else value
        except RemoteProtocolError:
            continue
        if c.realm not in chosen and _usable(c):
            chosen[c.realm] = c
    return list(chosen.values())


class DigestClient:
    """UAC helper keeping the nonce count per (realm, nonce).

    Answering the same nonce again increments nc (RFC 7616 §3.4: nc counts the
    requests sent with a nonce); a new nonce for a realm resets it to 1. Only the
    latest nonce per realm is remembered, so memory is bounded by the realms seen.
    """

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self._latest: dict[str, tuple[DigestChallenge, int]] = {}

    def answer(
        self,
        challenge: DigestChallenge | str,
        *,
        method: str,
        uri: str,
        body: bytes = b"",
        cnonce: str | None = None,
    ) -> DigestCredentials:
        """Credentials for ``challenge``; see ``answer_challenge``."""
        if isinstance(challenge, str):
            challenge = parse_challenge(challenge)
        previous = self._latest.get(challenge.realm)
        nc = previous[1] + 1 if previous and previous[0].nonce == challenge.nonce else 1
        credentials = answer_challenge(
            challenge,
            method=method,
            uri=uri,
            username=self.username,
            password=self.password,
            body=body,
            cnonce=cnonce,
            nonce_count=nc,
        )
        self._latest[challenge.realm] = (challenge, nc)
        return credentials

    def answer_all(
        self,
        values: Iterable[DigestChallenge | str],
        *,
        method: str,
        uri: str,
        body: bytes = b"",
        header: str = "WWW-Authenticate",
    ) -> list[DigestCredentials]:
        """One set of credentials per realm (see ``select_challenges``); [] if none fit."""
        return [
            self.answer(c, method=method, uri=uri, body=body)
            for c in select_challenges(values, header=header)
        ]

    def preemptive(
        self, realm: str, *, method: str, uri: str, body: bytes = b""
    ) -> DigestCredentials | None:
        """Credentials for a new request reusing the realm's last nonce with nc+1.

        None when nothing is cached for ``realm`` or its challenge had no qop (an
        RFC 2069 answer cannot be made fresh without a new nonce).
        """
        previous = self._latest.get(realm)
        if previous is None or not previous[0].qop:
            return None
        return self.answer(previous[0], method=method, uri=uri, body=body)

    def forget(self, realm: str | None = None) -> None:
        """Drop the cached nonce for ``realm`` (all realms if None)."""
        if realm is None:
            self._latest.clear()
        else:
            self._latest.pop(realm, None)


# ----------------------------------------------------------------------------- server


class AuthStatus(Enum):
    OK = "ok"  # authenticated: ``AuthResult.username`` is trustworthy
    STALE = "stale"  # right password, old or reused nonce: re-challenge with stale=true
    FAILED = "failed"  # re-challenge (401/407) without stale
    MALFORMED = "malformed"  # answer 400 (RemoteProtocolError's reason in ``reason``)


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of ``DigestServer.verify``.

    ``username`` is the name the peer claimed (None if unparseable); it is
    authenticated only when ``status`` is OK. ``reason`` is for logs, not for the
    peer (it tells unknown users from wrong passwords).
    """

    status: AuthStatus
    username: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status is AuthStatus.OK


_NONCE_TS_LEN = 8  # signed big-endian milliseconds since the Unix epoch
_NONCE_SALT_LEN = 8  # random: two challenges in the same millisecond differ
_NONCE_MAC_LEN = 16  # truncated HMAC-SHA256
_NONCE_LEN = _NONCE_TS_LEN + _NONCE_SALT_LEN + _NONCE_MAC_LEN
_CLOCK_SKEW = 60.0  # seconds a nonce may come from the future (another process's clock)


class _NonceCounts:
    """Highest nonce-count seen per nonce, for replay protection (RFC 2617 §4.5).

    Bounded LRU: nonces are stateless, so without a bound a flood of fresh nonces
    would grow memory forever. When a nonce is evicted we remember the newest issue
    time evicted so far; a nonce at or before that mark that is not in the table may
    be one we forgot, so it is refused (the peer gets a fresh nonce) rather than
    letting an old request be replayed. Entries are added only for valid digests.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()  # nonce -> (nc, ts)
        self._forgotten_up_to: int | None = None

    def accept(self, nonce: str, issued_ms: int, nc: int) -> bool:
        entry = self._seen.get(nonce)
        if entry is None:
            if self._forgotten_up_to is not None and issued_ms <= self._forgotten_up_to:
                return False
        elif nc <= entry[0]:
            return False
        self._seen[nonce] = (nc, issued_ms)
        self._seen.move_to_end(nonce)
        while len(self._seen) > self._capacity:
            _, (_, ts) = self._seen.popitem(last=False)
            if self._forgotten_up_to is None or ts > self._forgotten_up_to:
                self._forgotten_up_to = ts
        return True


class DigestServer:
    """UAS / registrar side of Digest (RFC 3261 §22.1, §22.4; RFC 7616 §3.3, §5).

    Nonces are stateless and self-verifying: base64url(timestamp ‖ salt ‖
    HMAC-SHA256(secret, realm ‖ timestamp ‖ salt)), so every process sharing
    ``secret`` (e.g. several workers behind Kamailio) accepts the others' nonces.
    With the default random secret, nonces die with the process: pass a shared,
    persistent secret of at least 16 bytes for multi-process or restart-proof setups.

    ``lookup`` maps a username to its password (None if unknown). ``algorithm`` is
    one name or several; several give one challenge each, SHA-256 family first
    (RFC 8760 §2.4), all with the same nonce. ``now`` is Unix time in seconds
    (``time.time()``) so processes agree on nonce age.

    Replay protection is per process: each remembers, for its ``max_tracked_nonces``
    most recent nonces, the highest nc seen, and refuses counts that do not increase.
    """

    def __init__(
        self,
        realm: str,
        lookup: Callable[[str], str | None],
        *,
        algorithm: str | Sequence[str] = "MD5",
        secret: bytes | None = None,
        nonce_ttl: float = 300.0,
        max_tracked_nonces: int = 10_000,
    ) -> None:
        names = [algorithm] if isinstance(algorithm, str) else list(algorithm)
        if not names:
            raise ConfigError("DigestServer needs at least one algorithm")
        canonical = [_canonical_algorithm(a) for a in names]
        for a in canonical:
            if a not in SUPPORTED_ALGORITHMS:
                raise ConfigError(
                    f"unsupported digest algorithm {a!r}; use one of "
                    f"{', '.join(SUPPORTED_ALGORITHMS)}"
                )
        if secret is not None and len(secret) < 16:
            raise ConfigError("DigestServer secret must be at least 16 bytes")
        if not nonce_ttl > 0:
            raise ConfigError("nonce_ttl must be positive")
        if max_tracked_nonces < 1:
            raise ConfigError("max_tracked_nonces must be at least 1")
        if not realm:
            raise ConfigError("DigestServer realm must not be empty")
        try:
            _quote("realm", realm)  # rejects CR/LF and the like before any challenge
        except LocalProtocolError as exc:
            raise ConfigError(str(exc)) from None
        self.realm = realm
        self._lookup = lookup
        # Stable sort: SHA-256 family first (RFC 8760 §2.4), caller's order otherwise.
        self.algorithms: tuple[str, ...] = tuple(
            sorted(dict.fromkeys(canonical), key=lambda a: not a.startswith("SHA-256"))
        )
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self.nonce_ttl = nonce_ttl
        self._realm_bytes = _utf8(realm)
        # Static per (secret, realm), so every process sends the same opaque.
        self.opaque = self._mac(b"opaque").hex()
        self._counts = _NonceCounts(max_tracked_nonces)
        self._dummy_password = secrets.token_hex(16)  # unknown users cost the same time

    def _mac(self, data: bytes) -> bytes:
        message = b"siphon-digest\x00" + self._realm_bytes + b"\x00" + data
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:_NONCE_MAC_LEN]

    def make_nonce(self, now: float) -> str:
        """A fresh signed nonce for time ``now``."""
        ts = int(now * 1000).to_bytes(_NONCE_TS_LEN, "big", signed=True)
        payload = ts + secrets.token_bytes(_NONCE_SALT_LEN)
        raw = payload + self._mac(payload)
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def _nonce_time_ms(self, nonce: str) -> int | None:
        """The nonce's issue time in ms if we signed it, else None."""
        if len(nonce) != 43 or not nonce.isascii():  # 32 bytes in unpadded base64url
            return None
        try:
            raw = base64.b64decode(nonce + "=", altchars=b"-_", validate=True)
        except ValueError:
            return None
        if len(raw) != _NONCE_LEN:
            return None
        payload, mac = raw[:-_NONCE_MAC_LEN], raw[-_NONCE_MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        return int.from_bytes(payload[:_NONCE_TS_LEN], "big", signed=True)

    def challenges(self, now: float, *, stale: bool = False) -> list[DigestChallenge]:
        """The challenges for a 401 / 407, one per algorithm, sharing one nonce."""
        nonce = self.make_nonce(now)
        return [
            DigestChallenge(
                realm=self.realm,
                nonce=nonce,
                opaque=self.opaque,
                stale=stale,
                algorithm=a,
                qop=("auth",),
            )
            for a in self.algorithms
        ]

    def challenge(self, now: float, stale: bool = False) -> list[str]:
        """Header values for WWW-Authenticate (401) or Proxy-Authenticate (407)."""
        return [c.to_header_value() for c in self.challenges(now, stale=stale)]

    def verify(
        self,
        credentials: str | DigestCredentials,
        *,
        method: str,
        uri: str | None,
        now: float,
        body: bytes = b"",
    ) -> AuthResult:
        """Check an Authorization / Proxy-Authorization value for a request.

        ``uri`` is the request's Request-URI, compared exactly with the credentials'
        uri (RFC 2617 §3.2.2.5, RFC 3261 §22.4); pass None to skip only if a proxy may
        have rewritten it and you check it yourself. ``body`` matters for auth-int.

        Never raises for peer input: MALFORMED carries the parse error's reason.
        A correct digest with an expired, future or replayed nonce gives STALE, so
        an honest client retries with a fresh nonce without asking its user again.
        """
        if isinstance(credentials, str):
            try:
                credentials = parse_credentials(credentials)
            except UnsupportedSchemeError as exc:
                return AuthResult(AuthStatus.FAILED, None, f"unsupported scheme {exc.scheme}")
            except RemoteProtocolError as exc:
                return AuthResult(AuthStatus.MALFORMED, None, str(exc))
        c = credentials
        user = c.username

        def failed(reason: str) -> AuthResult:
            return AuthResult(AuthStatus.FAILED, user, reason)

        if c.userhash:
            return failed("userhash is not supported")
        if c.realm != self.realm:
            return failed(f"realm mismatch: {c.realm!r}")
        if c.algorithm not in self.algorithms:
            return failed(f"algorithm {c.algorithm!r} was not offered")
        if c.qop is not None and c.qop not in _QOPS:
            return failed(f"unsupported qop {c.qop!r}")
        if uri is not None and c.uri != uri:
            return failed("uri does not match the Request-URI")
        if c.opaque is not None and c.opaque != self.opaque:  # not secret: plain compare
            return failed("opaque mismatch")
        issued_ms = self._nonce_time_ms(c.nonce)
        if issued_ms is None:
            return failed("nonce not issued by us (bad signature)")

        password = self._lookup(user)
        right = verify_response(
            c, password if password is not None else self._dummy_password, method=method, body=body
        )
        if password is None:
            return failed("unknown user")
        if not right:
            return failed("wrong response")

        age = now - issued_ms / 1000
        if age > self.nonce_ttl or age < -_CLOCK_SKEW:
            return AuthResult(AuthStatus.STALE, user, "nonce expired (or from the future)")
        # RFC 2069 answers carry no nc: such a nonce is good for one request only.
        count = c.nonce_count if c.qop is not None else None
        if not self._counts.accept(c.nonce, issued_ms, count or 0):
            return AuthResult(AuthStatus.STALE, user, "nonce count not increasing (replay?)")
        return AuthResult(AuthStatus.OK, user, "ok")
