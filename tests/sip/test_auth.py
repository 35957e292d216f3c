"""Tests for siphon.sip.auth: Digest authentication (RFC 2617, RFC 7616, RFC 8760)."""

from __future__ import annotations

import ast
import base64
import dataclasses
import hashlib
import inspect
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siphon.errors import ConfigError, LocalProtocolError, RemoteProtocolError
from siphon.sip import auth
from siphon.sip.auth import (
    SUPPORTED_ALGORITHMS,
    AuthResult,
    AuthStatus,
    DigestChallenge,
    DigestClient,
    DigestCredentials,
    DigestServer,
    UnsupportedSchemeError,
    answer_challenge,
    digest_response,
    parse_challenge,
    parse_credentials,
    select_challenges,
    verify_response,
)

# --------------------------------------------------------------------- RFC test vectors

# RFC 7616 §3.9.1 (password "Circle of Life", lower-case "of": erratum 4495).
RFC7616_CHALLENGE_SHA256 = """Digest
       realm="http-auth@example.org",
       qop="auth, auth-int",
       algorithm=SHA-256,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""""
RFC7616_CHALLENGE_MD5 = RFC7616_CHALLENGE_SHA256.replace("SHA-256", "MD5")
RFC7616_AUTHORIZATION_MD5 = """Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm=MD5,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="8ca523f5e9506fed4657c9700eebdbec",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""""
RFC7616_AUTHORIZATION_SHA256 = RFC7616_AUTHORIZATION_MD5.replace(
    "algorithm=MD5", "algorithm=SHA-256"
).replace(
    "8ca523f5e9506fed4657c9700eebdbec",
    "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
)
RFC7616_EXPECTED = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"

# RFC 2617 §3.5 (password "Circle Of Life", capital O).
RFC2617_CHALLENGE = """Digest
                 realm="testrealm@host.com",
                 qop="auth,auth-int",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41\""""
RFC2617_AUTHORIZATION = """Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41\""""


@pytest.mark.parametrize(
    ("text", "algorithm"), [(RFC7616_CHALLENGE_MD5, "MD5"), (RFC7616_CHALLENGE_SHA256, "SHA-256")]
)
def test_rfc7616_client(text: str, algorithm: str) -> None:
    challenge = parse_challenge(text)
    assert challenge.algorithm == algorithm
    assert challenge.qop == ("auth", "auth-int")
    creds = answer_challenge(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce=RFC7616_CNONCE,
    )
    assert creds.response == RFC7616_EXPECTED[algorithm]
    assert (creds.qop, creds.nc, creds.cnonce) == ("auth", "00000001", RFC7616_CNONCE)
    assert creds.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    # The same credentials as the RFC's own Authorization header, field by field.
    rfc = RFC7616_AUTHORIZATION_MD5 if algorithm == "MD5" else RFC7616_AUTHORIZATION_SHA256
    assert creds == parse_credentials(rfc)


@pytest.mark.parametrize(
    ("text", "algorithm"),
    [(RFC7616_AUTHORIZATION_MD5, "MD5"), (RFC7616_AUTHORIZATION_SHA256, "SHA-256")],
)
def test_rfc7616_server_compute_path(text: str, algorithm: str) -> None:
    creds = parse_credentials(text)
    assert creds.algorithm == algorithm
    assert creds.response == RFC7616_EXPECTED[algorithm]
    assert verify_response(creds, "Circle of Life", method="GET")
    assert not verify_response(creds, "Circle Of Life", method="GET")
    assert not verify_response(creds, "Circle of Life", method="POST")


def test_rfc2617_example() -> None:
    challenge = parse_challenge(RFC2617_CHALLENGE)
    assert challenge.algorithm == "MD5"  # the default when absent
    creds = answer_challenge(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        cnonce="0a4f113b",
    )
    assert creds.response == "6629fae49393a05397450978507c4ef1"
    parsed = parse_credentials(RFC2617_AUTHORIZATION)
    assert parsed == creds
    assert verify_response(parsed, "Circle Of Life", method="GET")
    assert not verify_response(parsed, "Circle of Life", method="GET")


def test_digest_response_directly() -> None:
    common: dict[str, Any] = {
        "username": "Mufasa",
        "realm": "http-auth@example.org",
        "password": "Circle of Life",
        "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        "method": "GET",
        "uri": "/dir/index.html",
        "qop": "auth",
        "nc": "00000001",
        "cnonce": RFC7616_CNONCE,
    }
    for algorithm, expected in RFC7616_EXPECTED.items():
        assert digest_response(algorithm=algorithm, **common) == expected
        assert digest_response(algorithm=algorithm.lower(), **common) == expected


def test_sess_algorithms_match_the_rfc_formula() -> None:
    # RFC 7616 §3.4.2: HA1 = H(H(user:realm:pass):nonce:cnonce).
    for algorithm, name in (("MD5-sess", "md5"), ("SHA-256-sess", "sha256")):

        def h(s: str, name: str = name) -> str:
            return hashlib.new(name, s.encode()).hexdigest()

        ha1 = h(f"{h('bob:biloxi.com:zanzibar')}:n0nce:c0nce")
        expected = h(f"{ha1}:n0nce:00000002:c0nce:auth:{h('INVITE:sip:bob@biloxi.com')}")
        got = digest_response(
            algorithm=algorithm,
            username="bob",
            realm="biloxi.com",
            password="zanzibar",
            nonce="n0nce",
            method="INVITE",
            uri="sip:bob@biloxi.com",
            qop="auth",
            nc="00000002",
            cnonce="c0nce",
        )
        assert got == expected


# ------------------------------------------------------------- SIP-style, real formats

# SIPp's own unit-test vectors (src/auth.cpp): its header format, no spaces, RFC 2069
# style (no qop), user "testuser" password "secret", REGISTER.
SIPP_NO_QOP_MD5 = (
    'Digest username="testuser",realm="testrealm@host.com",uri="sip:sip:example.com",'
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",response="db94e01e92f2b09a52a234eeca8b90f7",'
    'algorithm=MD5,opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
SIPP_NO_QOP_SHA256 = (
    'Digest username="testuser",realm="testrealm@host.com",uri="sip:sip:example.com",'
    'nonce="ZaGxV2WhsCtREI2EsiD1LR0RYd",'
    'response="91b58523b983191b52d14455a2599631990110c974ed2e4b4b49bc6053af04ce",'
    "algorithm=SHA-256"
)


@pytest.mark.parametrize("text", [SIPP_NO_QOP_MD5, SIPP_NO_QOP_SHA256])
def test_sipp_rfc2069_vectors(text: str) -> None:
    creds = parse_credentials(text)
    assert creds.qop is None and creds.nc is None and creds.cnonce is None
    assert verify_response(creds, "secret", method="REGISTER", body=b"hello world")
    assert not verify_response(creds, "Secret", method="REGISTER")
    # and our client computes the same response from the matching challenge
    challenge = DigestChallenge(realm=creds.realm, nonce=creds.nonce, algorithm=creds.algorithm)
    mine = answer_challenge(
        challenge, method="REGISTER", uri=creds.uri, username="testuser", password="secret"
    )
    assert mine.response == creds.response


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "3dbb0971468cf612bdccd7dff696c5e6"),
        ("SHA-256", "21468b02aafd4fe0a3d84bfddaf3618cc087adff4bb3c92d0a5f99c3035fcb9a"),
    ],
)
def test_auth_int_vectors(algorithm: str, expected: str) -> None:
    # The auth-int cross-check vectors of SIPp's unit tests: an INVITE with a body.
    challenge = parse_challenge(
        RFC7616_CHALLENGE_SHA256.replace("SHA-256", algorithm).replace(
            'qop="auth, auth-int"', 'qop="auth-int"'
        )
    )
    creds = answer_challenge(
        challenge,
        method="INVITE",
        uri="sip:bob@example.org",
        username="Mufasa",
        password="Circle of Life",
        body=b"v=0\r\n",
        cnonce=RFC7616_CNONCE,
        nonce_count=2,
    )
    assert (creds.qop, creds.nc, creds.response) == ("auth-int", "00000002", expected)
    assert verify_response(creds, "Circle of Life", method="INVITE", body=b"v=0\r\n")
    assert not verify_response(creds, "Circle of Life", method="INVITE", body=b"v=1\r\n")


def test_parse_real_world_authorization_lines() -> None:
    # chan_sip-era Asterisk UA, no qop (RFC 2069 style)
    c = parse_credentials(
        'Digest username="103", realm="asterisk", nonce="51d89e6e", '
        'uri="sip:102@192.168.50.26", algorithm=MD5, response="e9754418dd7dbea9ba740001f8d62598"'
    )
    assert (c.username, c.realm, c.uri, c.qop) == ("103", "asterisk", "sip:102@192.168.50.26", None)
    # a UA answering Kamailio's www_challenge
    c = parse_credentials(
        'Digest username="10", realm="192.168.1.15", algorithm=MD5, uri="sip:192.168.1.15", '
        'nonce="462791f06aa9b37a34fd11b1adc58c5a9df7c95b", '
        'response="be9e8d46b8dcd522f22301e1f2b3287c"'
    )
    assert c.nonce == "462791f06aa9b37a34fd11b1adc58c5a9df7c95b"


def test_parse_real_world_challenges() -> None:
    # RFC 3261 §20.44's example: empty opaque and upper-case stale=FALSE
    c = parse_challenge(
        'Digest realm="atlanta.com", domain="sip:boxesbybob.com", qop="auth", '
        'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5'
    )
    assert (c.realm, c.domain, c.opaque, c.stale, c.qop) == (
        "atlanta.com",
        "sip:boxesbybob.com",
        "",
        False,
        ("auth",),
    )
    # Asterisk (PJSIP) style: no spaces, lower-case algorithm, timestamp/hash nonce
    c = parse_challenge(
        'Digest realm="asterisk",nonce="1589295893/1b1c4d6f7b8ad6ca9dd8e5e5e5b3c6b0",'
        'opaque="1d2bb4ee6e2e3f0b",algorithm=md5,qop="auth"'
    )
    assert (c.algorithm, c.nonce) == ("MD5", "1589295893/1b1c4d6f7b8ad6ca9dd8e5e5e5b3c6b0")
    # Kamailio www_challenge without qop
    c = parse_challenge(
        'Digest realm="192.168.1.15", nonce="462791f06aa9b37a34fd11b1adc58c5a9df7c95b"'
    )
    assert c.qop == () and c.algorithm == "MD5"


def _server(**kwargs: object) -> DigestServer:
    users = {"bob": "zanzibar", "alice": "wonderland"}
    return DigestServer("biloxi.com", users.get, secret=b"k" * 32, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("style", ["sipp", "pjsip"])
def test_sip_lines_in_sipp_and_pjsip_formats_verify(style: str) -> None:
    server = _server()
    challenge = parse_challenge(server.challenge(1000.0)[0])
    uri = "sip:bob@biloxi.com"
    cnonce = "6b8b4567327b23c6"
    response = digest_response(
        algorithm="MD5",
        username="bob",
        realm="biloxi.com",
        password="zanzibar",
        nonce=challenge.nonce,
        method="INVITE",
        uri=uri,
        qop="auth",
        nc="00000001",
        cnonce=cnonce,
    )
    if style == "sipp":  # SIPp: comma-joined, cnonce/nc/qop before uri, algorithm near the end
        line = (
            f'Digest username="bob",realm="biloxi.com",cnonce="{cnonce}",nc=00000001,qop=auth,'
            f'uri="{uri}",nonce="{challenge.nonce}",response="{response}",algorithm=MD5,'
            f'opaque="{challenge.opaque}"'
        )
    else:  # PJSIP (Asterisk chan_pjsip): ", " separators, qop and nc after cnonce
        line = (
            f'Digest username="bob", realm="biloxi.com", nonce="{challenge.nonce}", '
            f'uri="{uri}", response="{response}", algorithm=MD5, cnonce="{cnonce}", '
            f'opaque="{challenge.opaque}", qop=auth, nc=00000001'
        )
    result = server.verify(line, method="INVITE", uri=uri, now=1001.0)
    assert result == AuthResult(AuthStatus.OK, "bob", "ok")


# ------------------------------------------------------------------- server round trips


@pytest.mark.parametrize("algorithm", SUPPORTED_ALGORITHMS)
def test_round_trip_each_algorithm(algorithm: str) -> None:
    server = _server(algorithm=algorithm)
    [value] = server.challenge(1000.0)
    assert f"algorithm={algorithm}," in value and 'qop="auth"' in value
    client = DigestClient("bob", "zanzibar")
    creds = client.answer(value, method="INVITE", uri="sip:bob@biloxi.com")
    assert creds.algorithm == algorithm
    result = server.verify(
        creds.to_header_value(), method="INVITE", uri="sip:bob@biloxi.com", now=1010.0
    )
    assert result.ok and result.username == "bob"
    # the parsed object works too
    again = client.preemptive("biloxi.com", method="BYE", uri="sip:bob@biloxi.com")
    assert again is not None and again.nc == "00000002"
    assert server.verify(again, method="BYE", uri="sip:bob@biloxi.com", now=1011.0).ok


def test_several_algorithms_sha256_first_same_nonce() -> None:
    server = _server(algorithm=["MD5", "SHA-256"])
    values = server.challenge(1000.0)
    challenges = [parse_challenge(v) for v in values]
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]  # RFC 8760 §2.4
    assert challenges[0].nonce == challenges[1].nonce
    [creds] = DigestClient("alice", "wonderland").answer_all(
        values, method="REGISTER", uri="sip:biloxi.com"
    )
    assert creds.algorithm == "SHA-256"
    assert server.verify(creds, method="REGISTER", uri="sip:biloxi.com", now=1001).ok
    # an MD5 answer is also fine, since MD5 was offered (same nonce, so the next nc)
    md5 = answer_challenge(
        challenges[1],
        method="REGISTER",
        uri="sip:biloxi.com",
        username="alice",
        password="wonderland",
        nonce_count=2,
    )
    assert server.verify(md5, method="REGISTER", uri="sip:biloxi.com", now=1001).ok


def test_auth_int_round_trip() -> None:
    server = _server()
    challenge = dataclasses.replace(server.challenges(1000.0)[0], qop=("auth-int",))
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    creds = answer_challenge(
        challenge,
        method="INVITE",
        uri="sip:bob@biloxi.com",
        username="bob",
        password="zanzibar",
        body=body,
    )
    assert creds.qop == "auth-int"
    ok = server.verify(creds, method="INVITE", uri="sip:bob@biloxi.com", now=1001, body=body)
    assert ok.ok
    creds2 = answer_challenge(
        challenge,
        method="INVITE",
        uri="sip:bob@biloxi.com",
        username="bob",
        password="zanzibar",
        body=body,
        nonce_count=2,
    )
    bad = server.verify(creds2, method="INVITE", uri="sip:bob@biloxi.com", now=1001, body=b"x")
    assert bad.status is AuthStatus.FAILED


def test_stale_nonce_flow() -> None:
    server = _server(nonce_ttl=300.0)
    client = DigestClient("bob", "zanzibar")
    uri = "sip:bob@biloxi.com"
    first = client.answer(server.challenge(1000.0)[0], method="INVITE", uri=uri)
    late = server.verify(first, method="INVITE", uri=uri, now=1000.0 + 301)
    assert late.status is AuthStatus.STALE and late.username == "bob"
    # the caller re-challenges with stale=true; the client answers without the user
    [value] = server.challenge(1301.0, stale=True)
    challenge = parse_challenge(value)
    assert challenge.stale and "stale=true" in value
    second = client.answer(challenge, method="INVITE", uri=uri)
    assert second.nc == "00000001"  # new nonce: count restarts
    assert server.verify(second, method="INVITE", uri=uri, now=1302.0).ok


def test_expired_nonce_with_wrong_password_is_failed_not_stale() -> None:
    # RFC 2617 §3.2.1: stale only when the digest itself is right.
    server = _server()
    creds = answer_challenge(
        server.challenge(0.0)[0],
        method="INVITE",
        uri="sip:b@biloxi.com",
        username="bob",
        password="nope",
    )
    assert server.verify(creds, method="INVITE", uri="sip:b@biloxi.com", now=1e6).status is (
        AuthStatus.FAILED
    )


def test_nonce_from_the_future() -> None:
    server = _server()
    creds = answer_challenge(
        server.challenge(5000.0)[0],
        method="INVITE",
        uri="sip:b",
        username="bob",
        password="zanzibar",
    )
    assert server.verify(creds, method="INVITE", uri="sip:b", now=4990.0).ok  # small skew
    creds = answer_challenge(
        server.challenge(5000.0)[0],
        method="INVITE",
        uri="sip:b",
        username="bob",
        password="zanzibar",
    )
    assert server.verify(creds, method="INVITE", uri="sip:b", now=4000.0).status is AuthStatus.STALE


def _answer(server: DigestServer, now: float = 1000.0, **kwargs: object) -> DigestCredentials:
    params: dict[str, object] = {
        "method": "INVITE",
        "uri": "sip:bob@biloxi.com",
        "username": "bob",
        "password": "zanzibar",
    }
    params.update(kwargs)
    return answer_challenge(server.challenges(now)[0], **params)  # type: ignore[arg-type]


def _verify(server: DigestServer, creds: DigestCredentials | str, **kwargs: object) -> AuthResult:
    params: dict[str, object] = {"method": "INVITE", "uri": "sip:bob@biloxi.com", "now": 1001.0}
    params.update(kwargs)
    return server.verify(creds, **params)  # type: ignore[arg-type]


def test_wrong_password_and_unknown_user() -> None:
    server = _server()
    wrong = _verify(server, _answer(server, password="guess"))
    assert wrong.status is AuthStatus.FAILED and wrong.reason == "wrong response"
    unknown = _verify(server, _answer(server, username="mallory"))
    assert unknown.status is AuthStatus.FAILED and unknown.username == "mallory"
    assert not unknown.ok


def test_wrong_method_fails() -> None:
    server = _server()
    assert _verify(server, _answer(server), method="BYE").status is AuthStatus.FAILED


def test_replayed_nonce_count() -> None:
    server = _server()
    client = DigestClient("bob", "zanzibar")
    value = server.challenge(1000.0)[0]
    first = client.answer(value, method="INVITE", uri="sip:bob@biloxi.com")
    assert _verify(server, first).ok
    replay = _verify(server, first)
    assert replay.status is AuthStatus.STALE and not replay.ok  # refused, fresh nonce due
    second = client.answer(value, method="INVITE", uri="sip:bob@biloxi.com")
    assert second.nc == "00000002"
    assert _verify(server, second).ok
    assert _verify(server, first).status is AuthStatus.STALE  # going back is a replay too
    # a skipped count is fine (requests may be lost or go to another process)
    third = client.answer(value, method="INVITE", uri="sip:bob@biloxi.com")
    fifth = client.answer(value, method="INVITE", uri="sip:bob@biloxi.com")
    assert _verify(server, fifth).ok
    assert _verify(server, third).status is AuthStatus.STALE


def test_replay_memory_is_bounded_and_safe_after_eviction() -> None:
    server = _server(max_tracked_nonces=2)
    old_unused = _answer(server, now=999.0)
    a, b, c = (_answer(server, now=t) for t in (1000.0, 1001.0, 1002.0))
    for creds in (a, b, c):
        assert _verify(server, creds, now=1003.0).ok
    assert len(server._counts._seen) == 2
    # a was evicted: its replay is refused, and so is an older never-seen nonce
    assert _verify(server, a, now=1003.0).status is AuthStatus.STALE
    assert _verify(server, old_unused, now=1003.0).status is AuthStatus.STALE
    # newer nonces are unaffected
    assert _verify(server, _answer(server, now=1003.0), now=1003.0).ok


def test_tampered_nonce() -> None:
    server = _server()
    creds = _answer(server)
    nonce = creds.nonce
    flipped = nonce[:10] + ("A" if nonce[10] != "A" else "B") + nonce[11:]
    # recompute the response so only the nonce's signature is wrong
    forged = answer_challenge(
        DigestChallenge(realm="biloxi.com", nonce=flipped, opaque=server.opaque, qop=("auth",)),
        method="INVITE",
        uri="sip:bob@biloxi.com",
        username="bob",
        password="zanzibar",
    )
    result = _verify(server, forged)
    assert result.status is AuthStatus.FAILED and "nonce" in result.reason
    for junk in ("", "abc", "!" * 43, nonce + "A", nonce[:-1] + "é"):
        forged = dataclasses.replace(creds, nonce=junk)
        assert _verify(server, forged).status is AuthStatus.FAILED


def test_nonce_timestamp_cannot_be_extended() -> None:
    server = _server()
    creds = _answer(server, now=0.0)
    raw = bytearray(base64.urlsafe_b64decode(creds.nonce + "="))
    raw[0:8] = (10**9).to_bytes(8, "big", signed=True)  # claim a recent timestamp
    forged_nonce = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    forged = answer_challenge(
        DigestChallenge(realm="biloxi.com", nonce=forged_nonce, qop=("auth",)),
        method="INVITE",
        uri="sip:bob@biloxi.com",
        username="bob",
        password="zanzibar",
    )
    assert _verify(server, forged, now=10**6).status is AuthStatus.FAILED


def test_shared_secret_across_processes() -> None:
    users = {"bob": "zanzibar"}.get
    one = DigestServer("biloxi.com", users, secret=b"s" * 32)
    two = DigestServer("biloxi.com", users, secret=b"s" * 32)
    other = DigestServer("biloxi.com", users, secret=b"t" * 32)
    assert one.opaque == two.opaque != other.opaque
    creds = _answer(one)
    assert _verify(two, creds).ok
    assert _verify(other, creds).status is AuthStatus.FAILED
    # default secrets are random per instance
    r1, r2 = DigestServer("biloxi.com", users), DigestServer("biloxi.com", users)
    assert _verify(r2, _answer(r1)).status is AuthStatus.FAILED


def test_realm_uri_opaque_and_algorithm_checks() -> None:
    server = _server()
    creds = _answer(server)
    realm = _verify(server, dataclasses.replace(creds, realm="atlanta.com"))
    assert realm.status is AuthStatus.FAILED and "realm" in realm.reason
    # the same nonce signed for another realm does not transfer either
    elsewhere = DigestServer("atlanta.com", {"bob": "zanzibar"}.get, secret=b"k" * 32)
    assert _verify(elsewhere, _answer(server)).status is AuthStatus.FAILED

    uri = _verify(server, creds, uri="sip:carol@biloxi.com")
    assert uri.status is AuthStatus.FAILED and "uri" in uri.reason
    assert _verify(server, creds, uri=None).ok  # explicitly skipped by the caller

    opaque = _verify(server, dataclasses.replace(creds, opaque="deadbeef"))
    assert opaque.status is AuthStatus.FAILED and "opaque" in opaque.reason
    no_opaque = _answer(server, nonce_count=1)
    assert _verify(server, dataclasses.replace(no_opaque, opaque=None)).ok  # tolerated

    sha = DigestServer("biloxi.com", {"bob": "zanzibar"}.get, algorithm="SHA-256", secret=b"k" * 32)
    md5_answer = answer_challenge(
        dataclasses.replace(sha.challenges(1000.0)[0], algorithm="MD5"),
        method="INVITE",
        uri="sip:bob@biloxi.com",
        username="bob",
        password="zanzibar",
    )
    downgrade = _verify(sha, md5_answer)
    assert downgrade.status is AuthStatus.FAILED and "algorithm" in downgrade.reason


def test_malformed_and_other_schemes() -> None:
    server = _server()
    bad = _verify(server, 'Digest username="bob", realm=')
    assert bad.status is AuthStatus.MALFORMED and bad.username is None and bad.reason
    basic = _verify(server, "Basic Ym9iOnphbnppYmFy")
    assert basic.status is AuthStatus.FAILED and "Basic" in basic.reason


def test_userhash_refused_politely() -> None:
    server = _server()
    creds = dataclasses.replace(_answer(server), userhash=True)
    result = _verify(server, creds.to_header_value())
    assert result.status is AuthStatus.FAILED and "userhash" in result.reason
    assert not verify_response(creds, "zanzibar", method="INVITE")


def test_rfc2069_client_accepted_once() -> None:
    server = _server()
    challenge = dataclasses.replace(server.challenges(1000.0)[0], qop=())
    creds = answer_challenge(
        challenge, method="REGISTER", uri="sip:biloxi.com", username="bob", password="zanzibar"
    )
    assert creds.qop is None and creds.nc is None and creds.cnonce is None
    assert "qop" not in creds.to_header_value()
    assert _verify(server, creds, method="REGISTER", uri="sip:biloxi.com").ok
    again = _verify(server, creds, method="REGISTER", uri="sip:biloxi.com")
    assert again.status is AuthStatus.STALE


def test_server_rejects_unknown_qop() -> None:
    server = _server()
    creds = dataclasses.replace(_answer(server), qop="auth-conf")
    assert _verify(server, creds).status is AuthStatus.FAILED


def test_server_config_errors() -> None:
    users = {"bob": "x"}.get
    with pytest.raises(ConfigError, match="SHA-256"):
        DigestServer("r", users, algorithm="SHA-512-256")
    with pytest.raises(ConfigError):
        DigestServer("r", users, algorithm=[])
    with pytest.raises(ConfigError):
        DigestServer("r", users, secret=b"short")
    with pytest.raises(ConfigError):
        DigestServer("r", users, nonce_ttl=0)
    with pytest.raises(ConfigError):
        DigestServer("", users)
    with pytest.raises(ConfigError):
        DigestServer("evil\r\nVia: x", users)
    with pytest.raises(ConfigError):
        DigestServer("r", users, max_tracked_nonces=0)
    assert DigestServer("r", users, algorithm="sha-256").algorithms == ("SHA-256",)


def test_challenge_nonces_are_unique_and_well_formed() -> None:
    server = _server()
    nonces = {parse_challenge(server.challenge(1000.0)[0]).nonce for _ in range(50)}
    assert len(nonces) == 50  # same millisecond, still distinct (random salt)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", n) for n in nonces)


# ----------------------------------------------------------------------------- client


def test_client_nonce_counts_per_realm_and_nonce() -> None:
    client = DigestClient("bob", "zanzibar")
    a = DigestChallenge(realm="biloxi.com", nonce="n1", qop=("auth",))
    b = DigestChallenge(realm="atlanta.com", nonce="m1", qop=("auth",))
    kw: dict[str, Any] = {"method": "INVITE", "uri": "sip:bob@biloxi.com"}
    assert client.answer(a, **kw).nc == "00000001"
    assert client.answer(a, **kw).nc == "00000002"
    assert client.answer(b, **kw).nc == "00000001"  # other realm, own count
    assert client.answer(a, **kw).nc == "00000003"
    assert client.answer(dataclasses.replace(a, nonce="n2"), **kw).nc == "00000001"
    assert client.answer(a, **kw).nc == "00000001"  # n1 again is "new" after n2
    pre = client.preemptive("biloxi.com", **kw)
    assert pre is not None and pre.nc == "00000002"
    assert client.preemptive("nowhere", **kw) is None
    client.forget("biloxi.com")
    assert client.preemptive("biloxi.com", **kw) is None
    client.forget()
    assert client.preemptive("atlanta.com", **kw) is None
    # no qop: nothing fresh to send without a new nonce
    client.answer(DigestChallenge(realm="x", nonce="y"), **kw)
    assert client.preemptive("x", **kw) is None


def test_cnonces_are_random() -> None:
    challenge = DigestChallenge(realm="r", nonce="n", qop=("auth",))
    kw: dict[str, Any] = {"method": "INVITE", "uri": "sip:a@b", "username": "u", "password": "p"}
    c1, c2 = answer_challenge(challenge, **kw), answer_challenge(challenge, **kw)
    assert c1.cnonce and c2.cnonce and c1.cnonce != c2.cnonce
    assert len(c1.cnonce) >= 16


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (("auth", "auth-int"), "auth"),
        (("auth-int", "auth"), "auth"),
        (("auth-int",), "auth-int"),
        (("auth-conf", "auth"), "auth"),
        ((), None),
    ],
)
def test_qop_choice(offered: tuple[str, ...], chosen: str | None) -> None:
    challenge = DigestChallenge(realm="r", nonce="n", qop=offered)
    creds = answer_challenge(challenge, method="INVITE", uri="sip:a@b", username="u", password="p")
    assert creds.qop == chosen


def test_client_local_errors() -> None:
    kw: dict[str, Any] = {"method": "INVITE", "uri": "sip:a@b", "username": "u", "password": "p"}
    with pytest.raises(LocalProtocolError) as info:
        answer_challenge(DigestChallenge(realm="r", nonce="n", algorithm="SHA-512-256"), **kw)
    for name in SUPPORTED_ALGORITHMS:
        assert name in str(info.value)
    with pytest.raises(LocalProtocolError, match="qop"):
        answer_challenge(DigestChallenge(realm="r", nonce="n", qop=("auth-conf",)), **kw)
    with pytest.raises(LocalProtocolError, match="MD5-sess"):
        answer_challenge(DigestChallenge(realm="r", nonce="n", algorithm="MD5-sess"), **kw)
    challenge = DigestChallenge(realm="r", nonce="n", qop=("auth",))
    for bad in (0, 2**32):
        with pytest.raises(LocalProtocolError):
            answer_challenge(challenge, nonce_count=bad, **kw)
    with pytest.raises(LocalProtocolError):
        digest_response(
            algorithm="MD5", username="u", realm="r", password="p", nonce="n",
            method="INVITE", uri="sip:a@b", qop="auth",
        )  # fmt: skip


def test_client_accepts_challenge_text_and_userhash() -> None:
    value = 'Digest realm="biloxi.com", nonce="abc", qop="auth", algorithm=SHA-256, userhash=true'
    creds = answer_challenge(value, method="INVITE", uri="sip:a@b", username="bob", password="p")
    assert creds.userhash
    assert creds.username == hashlib.sha256(b"bob:biloxi.com").hexdigest()  # RFC 7616 §3.4.4
    # the response itself is computed with the real username
    assert creds.response == digest_response(
        algorithm="SHA-256", username="bob", realm="biloxi.com", password="p", nonce="abc",
        method="INVITE", uri="sip:a@b", qop="auth", nc="00000001", cnonce=creds.cnonce,
    )  # fmt: skip
    assert "userhash=true" in creds.to_header_value()


def test_select_challenges() -> None:
    values = [
        'Basic realm="biloxi.com"',
        'Digest realm="biloxi.com", nonce="a", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="biloxi.com", nonce="b", algorithm=AKAv1-MD5, qop="auth"',
        "not a challenge at all",
        'Digest realm="biloxi.com", nonce="c", algorithm=SHA-256, qop="auth"',
        'Digest realm="biloxi.com", nonce="c", algorithm=MD5, qop="auth"',
        'Digest realm="atlanta.com", nonce="d", qop="auth-conf"',
        'Digest realm="atlanta.com", nonce="e", algorithm=MD5-sess',
        'Digest realm="atlanta.com", nonce="f"',
    ]
    chosen = select_challenges(values, header="Proxy-Authenticate")
    assert [(c.realm, c.nonce, c.algorithm) for c in chosen] == [
        ("biloxi.com", "c", "SHA-256"),
        ("atlanta.com", "f", "MD5"),
    ]
    answers = DigestClient("bob", "p").answer_all(values, method="INVITE", uri="sip:a@b")
    assert [a.realm for a in answers] == ["biloxi.com", "atlanta.com"]
    assert DigestClient("bob", "p").answer_all(values[:4], method="INVITE", uri="sip:a@b") == []


# ------------------------------------------------------------------ header parsing table


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # odd spacing, tabs, folding, spaces around '='
        (
            'Digest   realm = "r" ,\tnonce="n"  ,  qop = "auth"',
            DigestChallenge(realm="r", nonce="n", qop=("auth",)),
        ),
        ('  Digest\r\n realm="r",\r\n\tnonce="n"  ', DigestChallenge(realm="r", nonce="n")),
        # case-insensitive scheme, names, stale and algorithm
        (
            'DIGEST REALM="r", Nonce="n", STALE=TRUE, Algorithm=sha-256-SESS, QOP="AUTH"',
            DigestChallenge(
                realm="r", nonce="n", stale=True, algorithm="SHA-256-sess", qop=("auth",)
            ),
        ),
        ('digest realm="r", nonce="n", stale=False', DigestChallenge(realm="r", nonce="n")),
        ('Digest realm="r", nonce="n", stale=maybe', DigestChallenge(realm="r", nonce="n")),
        # escaped quotes and backslashes, commas and '=' inside quotes
        (
            r'Digest realm="a \"quoted\" \\ realm, with=commas", nonce="n,n"',
            DigestChallenge(realm='a "quoted" \\ realm, with=commas', nonce="n,n"),
        ),
        # tokens where quoted-strings belong (tolerated), quoted algorithm (tolerated)
        ("Digest realm=r, nonce=abc/def+==", DigestChallenge(realm="r", nonce="abc/def+==")),
        ('Digest realm="r", nonce="n", algorithm="MD5"', DigestChallenge(realm="r", nonce="n")),
        # unknown params kept in order; empty list elements skipped
        (
            'Digest realm="r",, nonce="n", charset=UTF-8, x-note="hello world",',
            DigestChallenge(
                realm="r", nonce="n", extra=(("charset", "UTF-8"), ("x-note", "hello world"))
            ),
        ),
        # unknown algorithm kept as written
        (
            'Digest realm="r", nonce="n", algorithm=AKAv1-MD5',
            DigestChallenge("r", "n", algorithm="AKAv1-MD5"),
        ),
        # qop list: spaces, and the common unquoted mistake
        (
            'Digest realm="r", nonce="n", qop=" auth ,auth-int "',
            DigestChallenge("r", "n", qop=("auth", "auth-int")),
        ),
        (
            'Digest realm="r", qop=auth,auth-int, nonce="n"',
            DigestChallenge("r", "n", qop=("auth", "auth-int")),
        ),
        # params in any order, domain, userhash, empty opaque, UTF-8 realm
        (
            'Digest opaque="", domain="sip:a sip:b", userhash=TRUE, nonce="n", realm="réalm"',
            DigestChallenge("réalm", "n", opaque="", domain="sip:a sip:b", userhash=True),
        ),
    ],
)
def test_parse_challenge_table(value: str, expected: DigestChallenge) -> None:
    assert parse_challenge(value) == expected
    assert parse_challenge(expected.to_header_value()) == expected


@pytest.mark.parametrize(
    ("value", "fields"),
    [
        # quoted qop and nc accepted (bare per RFC 3261 §25.1)
        (
            'Digest username="bob", realm="r", nonce="n", uri="sip:a@b", response="ab", '
            'qop="auth", nc="0000000A", cnonce="c"',
            {"qop": "auth", "nc": "0000000A", "nonce_count": 10, "cnonce": "c"},
        ),
        (
            'digest USERNAME="bob",REALM="r",NONCE="n",URI="sip:a@b",RESPONSE="ab",QOP=Auth,'
            "NC=00000001,CNONCE=c,ALGORITHM=md5-sess",
            {"qop": "auth", "algorithm": "MD5-sess", "nonce_count": 1},
        ),
        (
            'Digest username="a\\"b\\\\c", realm="r", nonce="n", uri="sip:x;a=\\"1,2\\"", '
            'response="ab", userhash=false, x-foo=bar',
            {"username": 'a"b\\c', "uri": 'sip:x;a="1,2"', "extra": (("x-foo", "bar"),)},
        ),
        # RFC 7616 §3.4.4 extended username
        (
            'Digest username*=UTF-8\'\'J%C3%A4s%C3%B8n%20Doe, realm="r", nonce="n", '
            'uri="/", response="ab"',
            {"username": "Jäsøn Doe"},
        ),
        (
            'Digest username*=iso-8859-1\'en\'%E9, realm="r", nonce="n", uri="/", response="ab"',
            {"username": "é"},
        ),
    ],
)
def test_parse_credentials_table(value: str, fields: dict[str, object]) -> None:
    creds = parse_credentials(value)
    for name, expected in fields.items():
        assert getattr(creds, name) == expected
    assert parse_credentials(creds.to_header_value()) == creds


BAD_CHALLENGES = [
    "",
    "   ",
    "Digest",
    'Digest realm="r"',  # no nonce
    'Digest nonce="n"',  # no realm
    'Digest realm="r", nonce="n", realm="s"',  # duplicate
    'Digest realm="r", NONCE="n", nonce="m"',  # duplicate, case-insensitively
    'Digest realm="r, nonce="n"',  # unterminated quote
    'Digest realm="r", nonce="n\\',
    'Digest realm="r", nonce=',
    'Digest realm="r", nonce',
    'Digest realm="r" nonce="n"',  # missing comma
    'Digest realm=r"x", nonce="n"',
    'Digest realm="r", nonce="n", =x',
    'Digest, realm="r", nonce="n"',
    'Digest realm="r\r\nVia: x", nonce="n"',  # header injection attempt
    'Digest realm="r\x00", nonce="n"',
    'Digest realm="r", nonce="n", qop="auth, a/b"',
    'Digest réalm="r", nonce="n"',
    "=Digest realm=r",
    'Digest realm="r", nonce="n", stray',
    'Digest realm="r", nonce="' + "x" * 9000 + '"',
]


@pytest.mark.parametrize("value", BAD_CHALLENGES)
def test_bad_challenges(value: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_challenge(value, header="Proxy-Authenticate")
    assert info.value.status_hint == 400
    assert info.value.reason == "Bad Proxy-Authenticate header"


GOOD_CREDS = 'Digest username="bob", realm="r", nonce="n", uri="sip:a@b", response="ab"'
BAD_CREDENTIALS = [
    GOOD_CREDS.replace('username="bob", ', ""),
    GOOD_CREDS.replace('realm="r", ', ""),
    GOOD_CREDS.replace('nonce="n", ', ""),
    GOOD_CREDS.replace('uri="sip:a@b", ', ""),
    GOOD_CREDS.replace(', response="ab"', ""),
    GOOD_CREDS + ", qop=auth",  # qop without cnonce / nc
    GOOD_CREDS + ', qop=auth, cnonce="c"',
    GOOD_CREDS + ', qop=auth, nc=00000001, cnonce="c", nc=00000002',
    GOOD_CREDS + ', qop=auth, nc=1, cnonce="c"',  # nc is 8 hex digits
    GOOD_CREDS + ', qop=auth, nc=0000000g, cnonce="c"',
    GOOD_CREDS + ', qop="auth,auth-int", nc=00000001, cnonce="c"',
    GOOD_CREDS + ", userhash=perhaps",
    GOOD_CREDS + ", username*=UTF-8''bob",  # both forms
    GOOD_CREDS.replace('username="bob"', "username*=UTF-8''%ZZ"),
    GOOD_CREDS.replace('username="bob"', "username*=UTF-8''%C3"),  # invalid UTF-8
    GOOD_CREDS.replace('username="bob"', "username*=KOI8-R''x"),
    GOOD_CREDS.replace('username="bob"', "username*=bob"),
    GOOD_CREDS.replace('username="bob"', "username*=UTF-8''%0D%0A"),
    'Digest username="bob" realm="r"',
    GOOD_CREDS.replace('"bob"', '"bo\nb"'),
]


@pytest.mark.parametrize("value", BAD_CREDENTIALS)
def test_bad_credentials(value: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_credentials(value)
    assert info.value.status_hint == 400
    assert info.value.reason == "Bad Authorization header"


def test_other_schemes_raise_a_marked_remote_error() -> None:
    for value in ("Basic Ym9iOnNlY3JldA==", "Bearer abc.def", "Basic", "NTLM"):
        with pytest.raises(UnsupportedSchemeError) as info:
            parse_credentials(value)
        assert info.value.scheme == value.split()[0]
        assert isinstance(info.value, RemoteProtocolError)
        with pytest.raises(UnsupportedSchemeError):
            parse_challenge(value)


def test_quoted_fold_becomes_one_space() -> None:
    c = parse_challenge('Digest realm="long\r\n   realm", nonce="n"')
    assert c.realm == "long realm"


# ----------------------------------------------------------------------- serialising


def test_credentials_serialisation_quoting() -> None:
    creds = DigestCredentials(
        username='a"b\\c',
        realm="r",
        nonce="n",
        uri="sip:bob@biloxi.com",
        response="ab",
        algorithm="SHA-256",
        cnonce="c",
        opaque="o",
        qop="auth",
        nc="00000001",
    )
    value = creds.to_header_value()
    assert value == (
        'Digest username="a\\"b\\\\c", realm="r", nonce="n", uri="sip:bob@biloxi.com", '
        'response="ab", algorithm=SHA-256, cnonce="c", opaque="o", qop=auth, nc=00000001'
    )
    assert parse_credentials(value) == creds


def test_challenge_serialisation() -> None:
    c = DigestChallenge(
        realm="biloxi.com",
        nonce="n",
        opaque="o",
        stale=True,
        algorithm="SHA-256",
        qop=("auth", "auth-int"),
    )
    assert c.to_header_value() == (
        'Digest realm="biloxi.com", nonce="n", opaque="o", stale=true, algorithm=SHA-256, '
        'qop="auth,auth-int"'
    )


@pytest.mark.parametrize(
    "bad",
    [
        DigestCredentials("u\r\nVia: x", "r", "n", "u", "ab"),
        DigestCredentials("u", "r", "n", "u", "ab", nc="1"),
        DigestCredentials("u", "r", "n", "u", "ab", qop="a b"),
        DigestCredentials("u", "r", "n", "u", "ab", algorithm=""),
        DigestCredentials("u", "r", "n", "u", "ab", extra=(("bad name", "x"),)),
        DigestCredentials("u", "r", "n\ud800", "u", "ab"),
    ],
)
def test_serialising_refuses_unsendable_values(bad: DigestCredentials) -> None:
    with pytest.raises(LocalProtocolError):
        bad.to_header_value()


def test_challenge_serialising_refuses_bad_qop() -> None:
    with pytest.raises(LocalProtocolError):
        DigestChallenge("r", "n", qop=('auth"',)).to_header_value()


def test_surrogates_in_secrets_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        digest_response(
            algorithm="MD5", username="u", realm="r", password="\udcff", nonce="n",
            method="INVITE", uri="sip:a@b",
        )  # fmt: skip


# ------------------------------------------------------------------------- properties

_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")),
    max_size=30,
)
_TOKEN = st.text(
    st.sampled_from(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
    ),
    min_size=1,
    max_size=12,
)
_LOWER_TOKEN = _TOKEN.map(str.lower)
_ALGORITHM = st.one_of(
    st.sampled_from(SUPPORTED_ALGORITHMS),
    _TOKEN.filter(lambda t: t.lower() not in {a.lower() for a in SUPPORTED_ALGORITHMS}),
)


def _extras(known: frozenset[str]) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    pairs = st.lists(
        st.tuples(_TOKEN.filter(lambda n: n.lower() not in known), _TEXT),
        max_size=3,
        unique_by=lambda p: p[0].lower(),
    )
    return pairs.map(tuple)


_challenges = st.builds(
    DigestChallenge,
    realm=_TEXT,
    nonce=_TEXT,
    opaque=st.none() | _TEXT,
    stale=st.booleans(),
    algorithm=_ALGORITHM,
    qop=st.lists(_LOWER_TOKEN, max_size=3).map(tuple),
    domain=st.none() | _TEXT,
    userhash=st.booleans(),
    extra=_extras(auth._CHALLENGE_PARAMS),
)


@st.composite
def _credentials(draw: st.DrawFn) -> DigestCredentials:
    qop = draw(st.none() | _LOWER_TOKEN)
    has_counts = qop is not None or draw(st.booleans())
    return DigestCredentials(
        username=draw(_TEXT),
        realm=draw(_TEXT),
        nonce=draw(_TEXT),
        uri=draw(_TEXT),
        response=draw(_TEXT),
        algorithm=draw(_ALGORITHM),
        cnonce=draw(_TEXT) if has_counts else None,
        opaque=draw(st.none() | _TEXT),
        qop=qop,
        nc=draw(st.text(st.sampled_from("0123456789abcdefABCDEF"), min_size=8, max_size=8))
        if has_counts
        else None,
        userhash=draw(st.booleans()),
        extra=draw(_extras(auth._CREDENTIAL_PARAMS)),
    )


@given(_challenges)
def test_challenge_round_trip_property(challenge: DigestChallenge) -> None:
    assert parse_challenge(challenge.to_header_value()) == challenge


@given(_credentials())
def test_credentials_round_trip_property(creds: DigestCredentials) -> None:
    assert parse_credentials(creds.to_header_value()) == creds


_SERVER = DigestServer("biloxi.com", {"bob": "zanzibar"}.get, secret=b"p" * 32)
_VALID_VALUES = [
    RFC7616_CHALLENGE_SHA256,
    RFC7616_AUTHORIZATION_MD5,
    RFC2617_AUTHORIZATION,
    SIPP_NO_QOP_MD5,
    r'Digest realm="a \"q\" , b", nonce="n", qop=auth,auth-int, x=y',
    'Digest username*=UTF-8\'\'J%C3%A4s, realm="r", nonce="n", uri="/", response="ab"',
    _SERVER.challenge(1000.0)[0],
    _answer(_SERVER).to_header_value(),
]


def _check_only_remote_errors(value: str) -> None:
    for parse in (parse_challenge, parse_credentials):
        try:
            parse(value)
        except RemoteProtocolError as exc:
            assert exc.status_hint == 400
    result = _SERVER.verify(value, method="INVITE", uri="sip:bob@biloxi.com", now=1001.0)
    assert isinstance(result, AuthResult)


@settings(max_examples=500)
@given(st.text(max_size=200))
def test_random_text_raises_only_remote_errors(value: str) -> None:
    _check_only_remote_errors(value)
    _check_only_remote_errors("Digest " + value)


@settings(max_examples=500)
@given(st.data())
def test_mutated_values_raise_only_remote_errors(data: st.DataObject) -> None:
    text = list(data.draw(st.sampled_from(_VALID_VALUES)))
    alphabet = st.sampled_from([*" \t\r\n\",=\\/'%*:;@é\x00\x7f\ud800", "a", "Z", "0"])
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        pos = data.draw(st.integers(0, max(len(text) - 1, 0)))
        if op == "insert":
            text.insert(pos, data.draw(alphabet))
        elif text and op == "delete":
            del text[pos]
        elif text and op == "replace":
            text[pos] = data.draw(alphabet)
        elif op == "truncate":
            del text[pos:]
    _check_only_remote_errors("".join(text))


def test_module_is_sans_io_and_stdlib_only() -> None:
    tree = ast.parse(inspect.getsource(auth))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "asyncio" not in imported and "time" not in imported
    assert imported <= {
        "__future__", "base64", "collections", "dataclasses", "enum", "hashlib", "hmac",
        "secrets", "siphon",
    }  # fmt: skip
    assert set(auth.__all__) <= set(dir(auth))
