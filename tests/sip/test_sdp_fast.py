"""The fast paths of siphon.sip.sdp give exactly what the general code gives.

``parse_sdp`` tries ``_parse_common`` (one pass, common shapes only) before
``_parse_full``; ``SdpSession.answer`` reuses what ``negotiate_answer`` decided for
an offer of the same shape (``_ANSWER_PLANS``) and fills in the per-call values.
Every test here runs the same input through both and compares results and errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import FrozenInstanceError, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from siphon.errors import LocalProtocolError, RemoteProtocolError
from siphon.sip import sdp as sdp_module
from siphon.sip.sdp import (
    DEFAULT_CODECS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    AnswerResult,
    Codec,
    Connection,
    Direction,
    SdpSession,
    negotiate_answer,
    parse_sdp,
)

from .test_sdp import FIXTURES, GOOD_HEAD, MALFORMED, crlf, mutated_sdp

SIPP = crlf("""
    v=0
    o=user1 53655765 2353687637 IN IP4 127.0.0.1
    s=-
    c=IN IP4 127.0.0.1
    t=0 0
    m=audio 6000 RTP/AVP 0
    a=rtpmap:0 PCMU/8000
""")
RTCP_ELSEWHERE = crlf("""
    v=0
    o=- 5 5 IN IP4 192.0.2.50
    s=-
    c=IN IP4 192.0.2.50
    t=0 0
    m=audio 65535 RTP/AVP 0 101
    a=rtpmap:101 telephone-event/8000
    a=rtcp:5005
    a=sendrecv
    m=audio 7000 RTP/AVP 0
    a=rtcp:7101 IN IP4 192.0.2.51
""")
OFFERS: dict[str, bytes] = {"sipp": SIPP, "rtcp_elsewhere": RTCP_ELSEWHERE, **FIXTURES}

OPUS = Codec(96, "opus", 48000, 2)
TE48 = Codec(97, "telephone-event", 48000, fmtp="0-16")
CODEC_SETS: list[Sequence[Codec]] = [
    DEFAULT_CODECS,
    (PCMA, PCMU, TELEPHONE_EVENT),
    [PCMU, PCMA],  # a list, as callers may assign
    (OPUS, TE48, PCMU),
    (Codec(8, "pcma", 8000), Codec(120, "telephone-event", 8000)),  # no fmtp of ours
]


@pytest.fixture(autouse=True)
def _empty_caches() -> Iterator[None]:
    sdp_module._ANSWER_PLANS.clear()
    sdp_module._CONNECTIONS.clear()
    yield
    sdp_module._ANSWER_PLANS.clear()
    sdp_module._CONNECTIONS.clear()


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """A call's result, or its error as (type, status, reason, text)."""
    try:
        return ("ok", call())
    except (RemoteProtocolError, LocalProtocolError) as exc:
        status = getattr(exc, "status_hint", None)
        return ("error", (type(exc), status, getattr(exc, "reason", None), str(exc)))


# ------------------------------------------------------------------------ parse


def _parse_both(data: bytes | str) -> None:
    fast = _outcome(lambda: parse_sdp(data))
    try:
        text = sdp_module._decode(data)
    except RemoteProtocolError:
        assert fast[0] == "error"
        return
    full = _outcome(lambda: sdp_module._parse_full(text))
    assert fast == full
    common = sdp_module._parse_common(text)
    if common is not None:  # a result only where _parse_full gives the same one
        assert full == ("ok", common)


LF_AND_ODD = [
    SIPP.replace(b"\r\n", b"\n"),
    SIPP + b"\r\n",  # a blank line at the end
    SIPP.replace(b"s=-\r\n", b"s=-\r\n\r\n"),
    SIPP.replace(b"s=-\r\n", b"s=-\n"),  # one bare LF
    SIPP.replace(b"s=-\r\n", b"s=-\r"),
    SIPP[:-2],  # no final CRLF
    SIPP.replace(b"v=0", b"v= 0"),
    SIPP.replace(b"t=0 0", b"t=3034423619 3042462419\r\nr=604800 3600 0"),
    SIPP.replace(b"t=0 0", b"t=0 0\r\nt=1 2"),
    SIPP.replace(b"s=-", b"s=-\r\ni=info\r\nu=http://x\r\ne=a@b\r\np=+1\r\nz=0 0\r\nk=clear:x"),
    SIPP + b"c=IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.5\r\n",  # layered media c=
    SIPP + b"c=IN IP4 224.2.1.1/127/3\r\n",
    SIPP + b"b=AS:64\r\nb=TIAS:64000\r\ni=media\r\nk=prompt\r\nx=unknown\r\n",
    SIPP + b"m=video 0 RTP/AVP 96\r\nb=AS:1\r\n",
    SIPP.replace(b"m=audio 6000 RTP/AVP 0", b"m=audio 6000/2 RTP/AVP 0"),
    SIPP.replace(b"m=audio 6000 RTP/AVP 0", b"m=audio 06000 RTP/AVP 0"),
    SIPP.replace(b"m=audio 6000 RTP/AVP 0", b"m=audio 065535 RTP/AVP 0"),
    SIPP.replace(b"m=audio 6000 RTP/AVP 0", b"m=audio 65536 RTP/AVP 0"),
    SIPP.replace(b"m=audio 6000 RTP/AVP 0", b"m=audio \xd9\xa1 RTP/AVP 0"),
    SIPP.replace(b"m=audio 6000 RTP/AVP 0", b"m=audio  6000  RTP/AVP  0 "),
    SIPP.replace(b"a=rtpmap:0 PCMU/8000", b"a=\r\na=:\r\na=x:\r\na=:y\r\na=a:b:c"),
    SIPP.replace(b"o=user1", b"o=user1 extra"),
    SIPP.replace(b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n", b""),
    SIPP.replace(b"s=-\r\n", b"") + b"s=late\r\n",  # s= after m=
    SIPP + b"o=- 1 1 IN IP4 a\r\n",
    SIPP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 127.0.0.1\r\nc=IN IP4 127.0.0.2"),
    SIPP.replace(b"s=-", b"s=-\r\ns=again"),
    SIPP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4"),
    SIPP.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP6 ::1/5/6"),
    SIPP.replace(b"s=-", b"s=caf\xe9"),
    SIPP.replace(b"s=-", b"s=\x00"),
    b"v=0\r\n",
    b"v=0\r\no=- 1 1 IN IP4 a\r\n",
    (GOOD_HEAD + "m=audio 5000 RTP/AVP 0\r\n" * 65).encode(),
    (GOOD_HEAD + "m=audio 5000 RTP/AVP" + " 0" * 128 + "\r\n").encode(),
    (GOOD_HEAD + "a=x\r\n" * 2043).encode(),  # MAX_LINES exactly
    (GOOD_HEAD + "a=x\r\n" * 2044).encode(),
    (GOOD_HEAD + "a=" + "x" * 4000 + "\r\n").encode(),  # the body is over 4096
    GOOD_HEAD,  # str input
    "v=0\r\no=- 1 1 IN IP4 a\r\ns=\ud800\r\n",
]


@pytest.mark.parametrize(
    "data",
    [
        *OFFERS.values(),
        *(d for _, d, _ in MALFORMED),
        *LF_AND_ODD,
        *(v.replace(b"\r\n", b"\n") for v in FIXTURES.values()),
    ],
)
def test_parse_fast_path_equals_full_parser(data: bytes | str) -> None:
    _parse_both(data)


def test_parse_fast_path_takes_real_offers() -> None:
    for name, data in OFFERS.items():
        assert sdp_module._parse_common(data.decode()) is not None, name


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_sdp())
def test_parse_fast_path_equals_full_parser_on_mutations(data: bytes) -> None:
    _parse_both(data)


def test_connection_memo_is_bounded_and_shared_only_when_equal() -> None:
    limit = sdp_module._MAX_CONNECTIONS
    for i in range(limit * 2 + 3):
        address = f"10.{i // 256}.{i % 256}.1"
        body = SIPP.replace(b"127.0.0.1", address.encode())
        assert parse_sdp(body).connection == Connection("IN", "IP4", address)
        assert len(sdp_module._CONNECTIONS) <= limit
    long_name = "h" * 80
    conn = parse_sdp(SIPP.replace(b"127.0.0.1", long_name.encode())).connection
    assert conn is not None and conn.address == long_name
    assert all(len(value) <= sdp_module._MAX_CONNECTION_CHARS for value in sdp_module._CONNECTIONS)


# ----------------------------------------------------------------------- answer


def _variant(data: bytes, n: int) -> bytes:
    """The same offer as a later call from the same device: other o= numbers, media
    port, c= addresses and a=rtcp port (unspecified addresses stay so)."""
    text = data.decode("utf-8", "surrogateescape")

    def origin(match: re.Match[str]) -> str:
        return f"o={match[1]} {1000 + n} {2000 + n} "

    def port(match: re.Match[str]) -> str:
        value = int(match[2])
        return f"m={match[1]} {value + 2 * n if value else 0}"

    def address(match: re.Match[str]) -> str:
        if match[2] in ("0.0.0.0", "::"):
            return match[0]
        return f"c=IN {match[1]} " + (f"2001:db8::{n + 7}" if match[1] == "IP6" else f"10.9.8.{n}")

    text = re.sub(r"o=(\S+) \d+ \d+ ", origin, text)
    text = re.sub(r"m=(\S+) (\d+)", port, text)
    text = re.sub(r"c=IN (IP[46]) (\S+)", address, text)
    text = re.sub(r"a=rtcp:(\d+)", lambda mt: f"a=rtcp:{int(mt[1]) + 2 * n}", text)
    return text.encode("utf-8", "surrogateescape")


def _run(
    steps: Sequence[tuple[bytes, Direction, Sequence[Codec], str, int]], *, fast: bool
) -> list[tuple[str, Any]]:
    """Answer each (offer, direction, codecs, our address, our port) in one session;
    with fast=False no step may use a plan."""
    saved = sdp_module._answer_key
    if not fast:
        sdp_module._answer_key = lambda *args: None
    try:
        session = SdpSession(address="192.0.2.1", port=4000, session_id=700, session_version=7)
        out: list[tuple[str, Any]] = []
        for body, direction, codecs, address, port in steps:
            session.codecs = codecs  # type: ignore[assignment]
            session.address, session.port = address, port
            outcome = _outcome(
                lambda b=body, d=direction: session.answer(parse_sdp(b), direction=d)
            )
            if outcome[0] == "ok":
                result = outcome[1]
                assert isinstance(result, AnswerResult)
                outcome = (
                    "ok",
                    (
                        result.answer.to_bytes(),
                        result.answer,
                        result.media,
                        session.last_sent,
                        session.origin,
                        session.negotiated,
                    ),
                )
                assert result.answer.to_bytes() == session.last_sent
            out.append(outcome)
        return out
    finally:
        sdp_module._answer_key = saved


def _both(steps: Sequence[tuple[bytes, Direction, Sequence[Codec], str, int]]) -> None:
    slow = _run(steps, fast=False)
    assert not sdp_module._ANSWER_PLANS
    cold = _run(steps, fast=True)  # plans made along the way
    warm = _run(steps, fast=True)  # every usable shape now has a plan
    assert cold == slow
    assert warm == slow


@pytest.mark.parametrize("name", sorted(OFFERS))
@pytest.mark.parametrize("codecs", CODEC_SETS, ids=range(len(CODEC_SETS)))
def test_answer_from_plan_equals_negotiate_answer(name: str, codecs: Sequence[Codec]) -> None:
    body = OFFERS[name]
    steps = []
    for n, direction in enumerate(Direction):
        for variant in (body, _variant(body, n + 1), _variant(body, n + 40)):
            steps.append((variant, direction, codecs, "192.0.2.1", 4000 + 2 * n))
    steps.append((body, Direction.SENDRECV, codecs, "2001:db8::5", 4000))  # our address moved
    _both(steps)


def _neighbours(body: bytes) -> Iterator[bytes]:
    """Offers that differ from ``body`` in one input of the answer's shape."""
    text = body.decode()
    for match in re.finditer(r"^m=\S+ (\d+)", text, re.MULTILINE):
        port = "0" if match[1] != "0" else "9"
        yield (text[: match.start(1)] + port + text[match.end(1) :]).encode()
    for match in re.finditer(r"^c=IN IP4 (\S+)\r\n", text, re.MULTILINE):
        yield (text[: match.start(1)] + "0.0.0.0" + text[match.end(1) :]).encode()
        yield (text[: match.start()] + text[match.end() :]).encode()
    yield text.replace("t=0 0\r\n", "t=0 0\r\na=inactive\r\n", 1).encode()  # session level
    for old, new in (("sendrecv", "recvonly"), ("RTP/AVP", "RTP/SAVP"), ("audio", "video")):
        if old in text:
            yield text.replace(old, new, 1).encode()


@pytest.mark.parametrize("name", sorted(OFFERS))
def test_neighbouring_shapes_are_not_confused(name: str) -> None:
    steps = [(OFFERS[name], Direction.SENDRECV, DEFAULT_CODECS, "192.0.2.1", 4000)]
    for neighbour in _neighbours(OFFERS[name]):
        steps.append((neighbour, Direction.SENDRECV, DEFAULT_CODECS, "192.0.2.1", 4000))
        steps.append(steps[0])
    assert len(steps) > 3
    _both(steps)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_sdp())
def test_answer_fast_path_equals_slow_path_on_mutations(data: bytes) -> None:
    sdp_module._ANSWER_PLANS.clear()
    steps = [
        (body, direction, DEFAULT_CODECS, "192.0.2.1", 4000)
        for direction in (Direction.SENDRECV, Direction.SENDONLY)
        for body in (data, _variant(data, 3))
    ]
    _both(steps)


def test_reinvite_sequences_equal_slow_path() -> None:
    steps = [
        (FIXTURES[name], direction, DEFAULT_CODECS, "192.0.2.1", port)
        for name, direction, port in [
            ("twilio", Direction.SENDRECV, 4000),
            ("twilio", Direction.SENDRECV, 4000),  # refresh: same bytes, same version
            ("hold_sendonly", Direction.SENDRECV, 4000),
            ("hold_inactive", Direction.SENDRECV, 4000),
            ("hold_c0", Direction.SENDRECV, 4000),
            ("twilio", Direction.SENDRECV, 4000),  # resume
            ("twilio", Direction.SENDONLY, 4000),  # we hold
            ("twilio", Direction.SENDONLY, 4002),  # our port moved
            ("g729_only", Direction.SENDRECV, 4002),  # 488 leaves the session as it was
            ("twilio", Direction.SENDONLY, 4002),
            ("video_audio", Direction.SENDRECV, 4002),
            ("hold_session_sendonly", Direction.SENDRECV, 4002),
        ]
    ]
    _both(steps)
    session = SdpSession(address="192.0.2.1", port=4000, session_id=1, session_version=1)
    versions = [
        session.answer(parse_sdp(_variant(FIXTURES["twilio"], n))).answer.origin.sess_version
        for n in range(3)
    ]
    assert versions == ["1", "1", "1"]  # the peer's per-call fields do not change ours


def test_plans_are_used_and_keyed_by_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = sdp_module.negotiate_answer

    def counting(*args: Any, **kwargs: Any) -> AnswerResult:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(sdp_module, "negotiate_answer", counting)
    for n in range(5):
        SdpSession(address="192.0.2.1", port=4000 + 2 * n).answer(
            parse_sdp(_variant(FIXTURES["twilio"], n))
        )
    assert len(calls) == 1 and len(sdp_module._ANSWER_PLANS) == 1
    # A change of shape is a new plan: the codecs, a direction, ptime, our codecs.
    session = SdpSession(address="192.0.2.1", port=4000)
    twilio = FIXTURES["twilio"]
    for body in (
        twilio.replace(b"a=sendrecv", b"a=sendonly"),
        twilio.replace(b"a=ptime:20", b"a=ptime:30"),
        twilio.replace(b"RTP/AVP 0 8 101", b"RTP/AVP 8 0 101"),
        twilio.replace(b"a=fmtp:101 0-16", b"a=fmtp:101 0-15"),
        twilio.replace(b"c=IN IP4 54.172.60.1", b"c=IN IP4 0.0.0.0"),
    ):
        session.answer(parse_sdp(body))
    session.answer(parse_sdp(twilio), direction=Direction.INACTIVE)
    session.codecs = (PCMA, PCMU)
    session.answer(parse_sdp(twilio))
    assert len(calls) == 8 and len(sdp_module._ANSWER_PLANS) == 8
    # Lines negotiation never reads are not part of the shape.
    session.answer(parse_sdp(twilio.replace(b"a=maxptime:150", b"a=maxptime:40\r\na=x:1")))
    assert len(calls) == 8


def test_offer_changed_after_parsing_is_answered_as_changed() -> None:
    session = SdpSession(address="192.0.2.1", port=4000)
    session.answer(parse_sdp(FIXTURES["twilio"]))  # makes the plan
    offer = parse_sdp(FIXTURES["twilio"])
    offer.media[0].set_direction(Direction.RECVONLY)
    offer.media[0].formats = ["8", "101"]
    result = session.answer(offer)
    assert result.media.direction is Direction.SENDONLY
    assert result.media.codec.name == "PCMA"
    reference = negotiate_answer(offer, address="192.0.2.1", port=4000, origin=session.origin)
    assert result.answer == reference.answer and result.media == reference.media


@pytest.mark.parametrize(
    "body",
    [
        FIXTURES["g729_only"],
        FIXTURES["webrtc"],
        (GOOD_HEAD + "m=audio 0 RTP/AVP 0\r\n").encode(),
        b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",  # no c=
    ],
)
def test_failed_offers_are_never_kept(body: bytes) -> None:
    errors = set()
    for _ in range(3):
        with pytest.raises(RemoteProtocolError) as info:
            SdpSession(address="192.0.2.1", port=4000).answer(parse_sdp(body))
        errors.add((info.value.status_hint, info.value.reason, str(info.value)))
    assert len(errors) == 1 and not sdp_module._ANSWER_PLANS


def test_no_c_line_after_a_plan_with_one_is_still_400() -> None:
    with_c = (GOOD_HEAD + "m=audio 5000 RTP/AVP 0\r\n").encode()
    SdpSession(address="192.0.2.1", port=4000).answer(parse_sdp(with_c))
    offer = parse_sdp(with_c)
    offer.connection = None
    with pytest.raises(RemoteProtocolError) as info:
        SdpSession(address="192.0.2.1", port=4000).answer(offer)
    assert info.value.status_hint == 400


def test_bad_local_arguments_raise_with_a_plan_too() -> None:
    SdpSession(address="192.0.2.1", port=4000).answer(parse_sdp(SIPP))
    for address, port in (("a b", 4000), ("", 4000), ("192.0.2.1", 0), ("192.0.2.1", 70000)):
        session = SdpSession(address="192.0.2.1", port=4000)
        session.address, session.port = address, port
        with pytest.raises(LocalProtocolError):
            session.answer(parse_sdp(SIPP))
    session = SdpSession(address="192.0.2.1", port=4000)
    session.codecs = (TELEPHONE_EVENT,)
    with pytest.raises(LocalProtocolError):
        session.answer(parse_sdp(SIPP))


def test_answer_plans_are_bounded_fifo() -> None:
    limit = sdp_module._MAX_ANSWER_PLANS
    session = SdpSession(address="192.0.2.1", port=4000)

    def shaped(ptime: int) -> bytes:
        return SIPP + f"a=ptime:{ptime}\r\n".encode()

    for ptime in range(1, limit + 11):
        session.answer(parse_sdp(shaped(ptime)))
        assert len(sdp_module._ANSWER_PLANS) <= limit
    assert len(sdp_module._ANSWER_PLANS) == limit
    kept = {plan.ptime for plan in sdp_module._ANSWER_PLANS.values()}
    assert kept == set(range(11, limit + 11))  # the oldest ten went first
    result = session.answer(parse_sdp(shaped(1)))  # evicted: worked out again
    assert result.media.ptime == 1


def test_large_or_many_media_offers_are_answered_but_not_kept() -> None:
    session = SdpSession(address="192.0.2.1", port=4000)
    many = SIPP + b"m=video 0 RTP/AVP 96\r\n" * sdp_module._MAX_SHAPE_MEDIA
    big = SIPP + b"".join(
        f"a=fmtp:0 {'x' * 200}{i}\r\n".encode() for i in range(sdp_module._MAX_SHAPE_CHARS // 200)
    )
    for body in (many, big):
        reference = negotiate_answer(parse_sdp(body), address="192.0.2.1", port=4000)
        assert session.answer(parse_sdp(body)).media == reference.media
    assert not sdp_module._ANSWER_PLANS


def test_unhashable_codecs_take_the_slow_path() -> None:
    class Odd(Codec):
        __hash__ = None  # type: ignore[assignment]

    session = SdpSession(address="192.0.2.1", port=4000)
    session.codecs = (Odd(0, "PCMU", 8000),)
    assert session.answer(parse_sdp(SIPP)).media.codec.name == "PCMU"
    assert not sdp_module._ANSWER_PLANS


# ------------------------------------------------------------------ AnswerResult


def test_deferred_answer_is_built_once_and_equals_eager() -> None:
    session = SdpSession(address="192.0.2.1", port=4000, session_id=5, session_version=5)
    session.answer(parse_sdp(FIXTURES["video_audio"]))
    deferred = session.answer(parse_sdp(_variant(FIXTURES["video_audio"], 3)))
    session.port = 4010  # later changes of the session do not reach the answer
    eager = AnswerResult(deferred.answer, deferred.media)
    assert deferred.answer is deferred.answer
    assert deferred == eager and repr(deferred) == repr(eager)
    assert deferred.answer.media[1].port == 4000
    assert deferred.answer.to_bytes() == session.last_sent
    assert deferred != AnswerResult(deferred.answer, replace(deferred.media, ptime=30))


def test_answer_result_is_immutable_and_unhashable() -> None:
    result = negotiate_answer(parse_sdp(SIPP), address="192.0.2.1", port=4000)
    with pytest.raises(FrozenInstanceError):
        result.media = result.media  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del result.media  # type: ignore[misc]
    with pytest.raises(AttributeError):
        result.answer = result.answer  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(result)
    assert result != (result.answer, result.media)
    match result:
        case AnswerResult(answer, media):
            assert answer is result.answer and media is result.media


@pytest.mark.parametrize("name", sorted(OFFERS))
def test_planned_bytes_are_the_planned_answer_serialized(name: str) -> None:
    try:
        result = negotiate_answer(parse_sdp(OFFERS[name]), address="192.0.2.1", port=4000)
    except RemoteProtocolError:
        return
    plan = sdp_module._answer_plan(result)
    for args in (("siphon", 9, 10, "192.0.2.1", 4000), ("bot", 1, 1, "2001:db8::9", 65535)):
        expected = sdp_module._planned_answer(plan, *args)
        assert sdp_module._planned_bytes(plan, *args) == expected.to_bytes()
    assert sdp_module._planned_answer(plan, "siphon", 1, 1, "192.0.2.1", 4000).media == (
        negotiate_answer(parse_sdp(OFFERS[name]), address="192.0.2.1", port=4000).answer.media
    )


# -------------------------------------------------------------------- SdpSession


def test_session_origin_numbers_unchanged() -> None:
    session = SdpSession(address="192.0.2.1", port=4000)
    assert 0 < int(session.origin.sess_id) <= 2**30
    assert session.origin.sess_id == session.origin.sess_version
    fixed = SdpSession(address="192.0.2.1", port=4000, session_id=0, session_version=3)
    assert (fixed.origin.sess_id, fixed.origin.sess_version) == ("0", "3")
    for username in ("", "a b", "a\tb"):
        with pytest.raises(LocalProtocolError):
            SdpSession(address="192.0.2.1", port=4000, username=username)
    with pytest.raises(LocalProtocolError):
        SdpSession(address="192.0.2.1", port=4000, session_id=-1)
    assert SdpSession(address="192.0.2.1", port=4000, username="bot").origin.username == "bot"
