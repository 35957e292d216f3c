"""Tests for siphon.sip.sdp: parser, serializer, RFC 3264 offer/answer.

The fixtures imitate what real products send (field layout, attribute order,
codec lists); addresses and ids are made up.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siphon.errors import LocalProtocolError, RemoteProtocolError
from siphon.sip.sdp import (
    DEFAULT_CODECS,
    MAX_LINE_LENGTH,
    MAX_MEDIA,
    MAX_SDP_BYTES,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Bandwidth,
    Codec,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SdpSession,
    SessionDescription,
    Timing,
    build_offer,
    negotiate_answer,
    parse_answer,
    parse_sdp,
    serialize,
)


def crlf(text: str) -> bytes:
    """Fixture text (one SDP line per source line) as a CRLF body."""
    lines = [line.strip() for line in text.strip().splitlines()]
    return ("\r\n".join(lines) + "\r\n").encode()


FIXTURES: dict[str, bytes] = {
    # Twilio Elastic SIP Trunking origination: PCMU then PCMA, RFC 2833 at 101.
    "twilio": crlf("""
        v=0
        o=root 1185929337 1185929337 IN IP4 54.172.60.1
        s=Twilio Media Gateway
        c=IN IP4 54.172.60.1
        t=0 0
        m=audio 13802 RTP/AVP 0 8 101
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=ptime:20
        a=maxptime:150
        a=sendrecv
    """),
    # Telnyx-style: codec order of a connection set to G722,PCMU,PCMA,G729.
    "telnyx": crlf("""
        v=0
        o=- 1710488469 1710488470 IN IP4 192.76.120.10
        s=-
        c=IN IP4 192.76.120.10
        t=0 0
        m=audio 26344 RTP/AVP 9 0 8 18 101
        a=rtpmap:9 G722/8000
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=rtpmap:18 G729/8000
        a=fmtp:18 annexb=no
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=ptime:20
        a=sendrecv
    """),
    # Asterisk chan_pjsip (FreePBX), PCMA first, G726 on a dynamic PT.
    "asterisk": crlf("""
        v=0
        o=- 1429284841 1429284841 IN IP4 10.17.4.21
        s=Asterisk
        c=IN IP4 10.17.4.21
        t=0 0
        m=audio 12752 RTP/AVP 8 0 111 9 3 101
        a=rtpmap:8 PCMA/8000
        a=rtpmap:0 PCMU/8000
        a=rtpmap:111 G726-32/8000
        a=rtpmap:9 G722/8000
        a=rtpmap:3 GSM/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=ptime:20
        a=maxptime:150
        a=sendrecv
    """),
    # FreeSWITCH mod_sofia: opus and G722 before G.711, CN, rtcp attribute.
    "freeswitch": crlf("""
        v=0
        o=FreeSWITCH 1439391053 1439391054 IN IP4 10.0.1.90
        s=FreeSWITCH
        c=IN IP4 10.0.1.90
        t=0 0
        m=audio 30316 RTP/AVP 102 9 0 8 3 101 13
        a=rtpmap:102 opus/48000/2
        a=fmtp:102 useinbandfec=1; usedtx=1; maxaveragebitrate=30000
        a=rtpmap:9 G722/8000
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=rtpmap:3 GSM/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=rtpmap:13 CN/8000
        a=ptime:20
        a=sendrecv
        a=rtcp:30317 IN IP4 10.0.1.90
    """),
    # baresip: a=tool at session level, 0-15 events, ssrc/label/rtcp-rsize.
    "baresip": crlf("""
        v=0
        o=- 1140145081 1649997976 IN IP4 10.0.2.15
        s=-
        c=IN IP4 10.0.2.15
        t=0 0
        a=tool:baresip 3.12.0
        m=audio 16906 RTP/AVP 0 8 101
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-15
        a=sendrecv
        a=label:1
        a=rtcp-rsize
        a=ssrc:1613256890 cname:sip:alice@example.com
        a=ptime:20
    """),
    # linphone: b=AS, session rtcp-xr, three telephone-events, audio + video.
    "linphone": crlf("""
        v=0
        o=1003 3357 3332 IN IP4 192.168.3.117
        s=Talk
        c=IN IP4 192.168.3.117
        b=AS:380
        t=0 0
        a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
        m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
        a=rtpmap:96 opus/48000/2
        a=fmtp:96 useinbandfec=1
        a=rtpmap:97 speex/16000
        a=fmtp:97 vbr=on
        a=rtpmap:98 speex/8000
        a=fmtp:98 vbr=on
        a=fmtp:18 annexb=yes
        a=rtpmap:101 telephone-event/48000
        a=rtpmap:99 telephone-event/16000
        a=rtpmap:100 telephone-event/8000
        a=rtcp-fb:* trr-int 1000
        a=rtcp-fb:* ccm tmmbr
        m=video 9078 RTP/AVP 96 97
        a=rtpmap:96 VP8/90000
        a=rtpmap:97 H264/90000
        a=fmtp:97 profile-level-id=42801F
        a=rtcp-fb:* trr-int 1000
        a=rtcp-fb:* ccm tmmbr
        a=rtcp-fb:96 nack pli
        a=rtcp-fb:97 nack pli
    """),
    # pjsua/pjmedia: media-level c= differs from session c=; a=rtcp; X-nat.
    "pjsip": crlf("""
        v=0
        o=- 3937460446 3937460448 IN IP4 192.168.88.121
        s=pjmedia
        c=IN IP4 192.168.88.121
        b=AS:285
        t=0 0
        a=X-nat:0
        m=audio 4000 RTP/AVP 0 101
        c=IN IP4 203.0.113.50
        b=TIAS:256000
        a=rtcp:4001 IN IP4 203.0.113.50
        a=sendrecv
        a=rtpmap:0 PCMU/8000
        a=ssrc:2705443 cname:39b32d12074d4dc8
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
    """),
    # A browser (Chrome-style) offer: DTLS-SRTP, ICE, BUNDLE, rtcp-mux.
    "webrtc": crlf("""
        v=0
        o=- 428298087865616055 2 IN IP4 127.0.0.1
        s=-
        t=0 0
        a=group:BUNDLE 0
        a=extmap-allow-mixed
        a=msid-semantic: WMS i9liBKbRpeVN3WlJt5pWfpMm8SEC8kilXV9a
        m=audio 63902 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
        c=IN IP4 198.51.100.7
        a=rtcp:9 IN IP4 0.0.0.0
        a=candidate:1467250027 1 udp 2122260223 192.168.0.196 63902 typ host generation 0
        a=candidate:3010406542 1 udp 1686052607 198.51.100.7 63902 typ srflx raddr 192.168.0.196 rport 63902 generation 0
        a=ice-ufrag:3Cb/
        a=ice-pwd:aKaIthD7Yf4dqYDQuk+QHUZD
        a=ice-options:trickle
        a=fingerprint:sha-256 1B:2A:29:E5:B2:F1:C4:B6:A7:0C:D7:F7:25:08:DC:C0:A6:3F:DE:B6:C9:62:E4:0A:55:96:E4:6C:27:6E:7B:4D
        a=setup:actpass
        a=mid:0
        a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
        a=sendrecv
        a=msid:i9liBKbRpeVN3WlJt5pWfpMm8SEC8kilXV9a 2f7d3c6e-6c2b-4d1e-9f2e-0a7d1f0e3b55
        a=rtcp-mux
        a=rtpmap:111 opus/48000/2
        a=rtcp-fb:111 transport-cc
        a=fmtp:111 minptime=10;useinbandfec=1
        a=rtpmap:63 red/48000/2
        a=fmtp:63 111/111
        a=rtpmap:9 G722/8000
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=rtpmap:13 CN/8000
        a=rtpmap:110 telephone-event/48000
        a=rtpmap:126 telephone-event/8000
        a=ssrc:2750404754 cname:ywjN9cZ1+s834YgQ
    """),  # noqa: E501 (real ICE/fingerprint lines are long)
    # An SBC forking a WebRTC leg: SRTP audio first, then a plain RTP/AVP audio.
    "webrtc_plus_avp": crlf("""
        v=0
        o=- 4611731400430051336 2 IN IP4 127.0.0.1
        s=-
        c=IN IP4 198.51.100.7
        t=0 0
        m=audio 63902 UDP/TLS/RTP/SAVPF 111 0 8 126
        a=rtpmap:111 opus/48000/2
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=rtpmap:126 telephone-event/8000
        a=setup:actpass
        a=rtcp-mux
        m=audio 40376 RTP/AVP 8 0 126
        a=rtpmap:8 PCMA/8000
        a=rtpmap:0 PCMU/8000
        a=rtpmap:126 telephone-event/8000
        a=fmtp:126 0-15
        a=ptime:30
    """),
    # Video first, then audio (softphone video call).
    "video_audio": crlf("""
        v=0
        o=bob 2890844526 2890844526 IN IP4 192.0.2.10
        s=-
        c=IN IP4 192.0.2.10
        t=0 0
        m=video 51372 RTP/AVP 99
        a=rtpmap:99 H264/90000
        a=fmtp:99 profile-level-id=42e01f;packetization-mode=1
        m=audio 49170 RTP/AVP 0 8 96
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=rtpmap:96 telephone-event/8000
        a=fmtp:96 0-15
    """),
    # A disabled audio stream (port 0) before a usable one.
    "audio_port0_then_audio": crlf("""
        v=0
        o=alice 2890844526 2890844527 IN IP4 192.0.2.20
        s=-
        c=IN IP4 192.0.2.20
        t=0 0
        m=audio 0 RTP/AVP 0
        m=audio 49174 RTP/AVP 8 101
        a=rtpmap:8 PCMA/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=ptime:20
        a=sendrecv
    """),
    # Mobicents-style lower-case encoding names, two telephone-events.
    "lowercase": crlf("""
        v=0
        o=- 1448892712200 1 IN IP4 192.16.1.1
        s=Mobicents Media Server
        c=IN IP4 192.168.1.1
        t=0 0
        m=audio 37402 RTP/AVP 18 0 8 126 101
        c=IN IP4 192.168.1.1
        a=sendrecv
        a=rtcp:37403 IN IP4 192.168.1.1
        a=ptime:20
        a=rtpmap:18 g729/8000
        a=rtpmap:0 pcmu/8000
        a=rtpmap:8 pcma/8000
        a=rtpmap:126 telephone-event/8000
        a=rtpmap:101 telephone-event/8000
    """),
    # Static payload types only, no rtpmap (RFC 3551 allows it).
    "static_no_rtpmap": crlf("""
        v=0
        o=click-to-dial 0 0 IN IP4 192.0.2.30
        s=session
        c=IN IP4 192.0.2.30
        b=CT:1000
        t=0 0
        m=audio 9000 RTP/AVP 0
    """),
    # pjsip with SDES-SRTP only (RTP/SAVP): we have no SRTP.
    "savp_only": crlf("""
        v=0
        o=- 3741926614 3741926619 IN IP4 192.168.1.131
        s=pjmedia
        b=AS:84
        t=0 0
        a=X-nat:0
        m=audio 4010 RTP/SAVP 0 8 96
        c=IN IP4 192.168.1.131
        b=TIAS:64000
        a=rtcp:4011 IN IP4 192.168.1.131
        a=sendrecv
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=rtpmap:96 telephone-event/8000
        a=fmtp:96 0-16
        a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
    """),
    "g729_only": crlf("""
        v=0
        o=- 20518 0 IN IP4 203.0.113.60
        s=SDP Data
        c=IN IP4 203.0.113.60
        t=0 0
        m=audio 16384 RTP/AVP 18 101
        a=rtpmap:18 G729/8000
        a=fmtp:18 annexb=no
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-15
        a=ptime:20
        a=sendrecv
    """),
    "opus_only": crlf("""
        v=0
        o=- 7345 7345 IN IP4 203.0.113.61
        s=-
        c=IN IP4 203.0.113.61
        t=0 0
        m=audio 5004 RTP/AVP 111 110
        a=rtpmap:111 opus/48000/2
        a=fmtp:111 minptime=10;useinbandfec=1
        a=rtpmap:110 telephone-event/48000
        a=fmtp:110 0-15
        a=ptime:20
    """),
    # IPv6, RTP/AVPF profile.
    "ipv6_avpf": crlf("""
        v=0
        o=- 1 1 IN IP6 2001:db8::1
        s=-
        c=IN IP6 2001:db8::1
        t=0 0
        m=audio 30000 RTP/AVPF 8 0 101
        a=rtpmap:8 PCMA/8000
        a=rtpmap:0 PCMU/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=rtcp-fb:* nack
        a=ptime:40
        a=rtcp-mux
    """),
    # Hold re-offers (RFC 3264 §8.4), Asterisk- and FreeSWITCH-style.
    "hold_sendonly": crlf("""
        v=0
        o=- 1429284841 1429284842 IN IP4 10.17.4.21
        s=Asterisk
        c=IN IP4 10.17.4.21
        t=0 0
        m=audio 12752 RTP/AVP 0 101
        a=rtpmap:0 PCMU/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=ptime:20
        a=maxptime:150
        a=sendonly
    """),
    "hold_inactive": crlf("""
        v=0
        o=FreeSWITCH 1439391053 1439391055 IN IP4 10.0.1.90
        s=FreeSWITCH
        c=IN IP4 10.0.1.90
        t=0 0
        m=audio 30316 RTP/AVP 0 101
        a=rtpmap:0 PCMU/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=ptime:20
        a=inactive
    """),
    "hold_c0": crlf("""
        v=0
        o=UserA 2890844526 2890844527 IN IP4 host.example.com
        s=Session SDP
        c=IN IP4 0.0.0.0
        t=0 0
        m=audio 49170 RTP/AVP 0 101
        a=rtpmap:0 PCMU/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
    """),
    "hold_session_sendonly": crlf("""
        v=0
        o=- 42 43 IN IP4 192.0.2.40
        s=-
        c=IN IP4 192.0.2.40
        t=0 0
        a=sendonly
        m=audio 6000 RTP/AVP 8 101
        a=rtpmap:8 PCMA/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
    """),
}


@dataclass(frozen=True)
class Expect:
    codec: str
    pt: int
    te_pt: int | None
    address: str
    port: int
    direction: Direction = Direction.SENDRECV
    ptime: int = 20
    index: int = 0
    rtcp_port: int | None = None


EXPECTED: dict[str, Expect] = {
    "twilio": Expect("PCMU", 0, 101, "54.172.60.1", 13802),
    "telnyx": Expect("PCMU", 0, 101, "192.76.120.10", 26344),
    "asterisk": Expect("PCMA", 8, 101, "10.17.4.21", 12752),
    "freeswitch": Expect("PCMU", 0, 101, "10.0.1.90", 30316, rtcp_port=30317),
    "baresip": Expect("PCMU", 0, 101, "10.0.2.15", 16906),
    "linphone": Expect("PCMU", 0, 100, "192.168.3.117", 7078),
    "pjsip": Expect("PCMU", 0, 101, "203.0.113.50", 4000, rtcp_port=4001),
    "webrtc_plus_avp": Expect("PCMA", 8, 126, "198.51.100.7", 40376, ptime=30, index=1),
    "video_audio": Expect("PCMU", 0, 96, "192.0.2.10", 49170, index=1),
    "audio_port0_then_audio": Expect("PCMA", 8, 101, "192.0.2.20", 49174, index=1),
    "lowercase": Expect("PCMU", 0, 126, "192.168.1.1", 37402, rtcp_port=37403),
    "static_no_rtpmap": Expect("PCMU", 0, None, "192.0.2.30", 9000),
    "ipv6_avpf": Expect("PCMA", 8, 101, "2001:db8::1", 30000, ptime=40),
    "hold_sendonly": Expect("PCMU", 0, 101, "10.17.4.21", 12752, Direction.RECVONLY),
    "hold_inactive": Expect("PCMU", 0, 101, "10.0.1.90", 30316, Direction.INACTIVE),
    "hold_c0": Expect("PCMU", 0, 101, "0.0.0.0", 49170, Direction.RECVONLY),
    "hold_session_sendonly": Expect("PCMA", 8, 101, "192.0.2.40", 6000, Direction.RECVONLY),
}
REJECTED = ["webrtc", "savp_only", "g729_only", "opus_only"]


def test_every_fixture_has_an_expectation() -> None:
    assert set(FIXTURES) == set(EXPECTED) | set(REJECTED)


# ------------------------------------------------------------------ parse / round trip


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_round_trip_is_byte_identical(name: str) -> None:
    data = FIXTURES[name]
    sdp = parse_sdp(data)
    assert sdp.to_bytes() == data
    assert serialize(sdp) == data
    assert bytes(sdp) == data
    assert parse_sdp(data.decode()) == sdp  # str input


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_lf_and_trailing_blank_lines_tolerated(name: str) -> None:
    data = FIXTURES[name]
    lf = data.replace(b"\r\n", b"\n") + b"\n\n"
    sdp = parse_sdp(lf)
    assert sdp == parse_sdp(data)
    assert sdp.to_bytes() == data  # always written back with CRLF


def test_parse_model_fields() -> None:
    sdp = parse_sdp(FIXTURES["linphone"])
    assert sdp.version == 0
    assert sdp.origin == Origin("1003", "3357", "3332", "IN", "IP4", "192.168.3.117")
    assert sdp.session_name == "Talk"
    assert sdp.connection == Connection("IN", "IP4", "192.168.3.117")
    assert sdp.bandwidths == [Bandwidth("AS", 380)]
    assert sdp.timings == [Timing(0, 0)]
    assert (
        sdp.attribute(
            "rtcp-xr",
        )
        is not None
    )
    assert [m.media for m in sdp.media] == ["audio", "video"]
    audio = sdp.media[0]
    assert audio.port == 7078 and audio.proto == "RTP/AVP"
    assert audio.formats == ["96", "97", "98", "0", "8", "18", "101", "99", "100"]
    assert audio.rtpmaps[96] == Codec(96, "opus", 48000, 2, "useinbandfec=1")
    assert audio.fmtp(18) == "annexb=yes"
    assert audio.codec(18) == Codec(18, "G729", 8000, fmtp="annexb=yes")  # static, no rtpmap
    assert audio.codec(0) == Codec(0, "PCMU", 8000)
    assert [c.rtpmap for c in audio.codecs][:3] == ["opus/48000/2", "speex/16000", "speex/8000"]
    assert audio.attribute_values("rtcp-fb") == ["* trr-int 1000", "* ccm tmmbr"]
    assert audio.direction is None
    assert sdp.direction_of(audio) is Direction.SENDRECV
    assert audio.ptime is None and audio.rtcp is None and not audio.rtcp_mux


def test_media_accessors() -> None:
    twilio = parse_sdp(FIXTURES["twilio"]).media[0]
    assert twilio.ptime == 20 and twilio.maxptime == 150
    assert twilio.direction is Direction.SENDRECV
    assert twilio.fmtp(101) == "0-16" and twilio.fmtp(0) is None
    pj = parse_sdp(FIXTURES["pjsip"])
    rtcp = pj.media[0].rtcp
    assert rtcp is not None and (rtcp.port, rtcp.address) == (4001, "203.0.113.50")
    assert pj.connection_for(pj.media[0]) == Connection("IN", "IP4", "203.0.113.50")
    assert pj.media[0].bandwidths == [Bandwidth("TIAS", 256000)]
    web = parse_sdp(FIXTURES["webrtc"])
    assert web.connection is None
    assert web.media[0].rtcp_mux
    assert web.attribute("group") == "BUNDLE 0"
    assert web.attribute("extmap-allow-mixed") is None and web.has_attribute("extmap-allow-mixed")
    held = parse_sdp(FIXTURES["hold_session_sendonly"])
    assert held.direction is Direction.SENDONLY
    assert held.direction_of(held.media[0]) is Direction.SENDONLY


def test_unknown_lines_and_attributes_kept() -> None:
    data = crlf("""
        v=0
        o=- 1 1 IN IP4 192.0.2.1
        s=-
        c=IN IP4 192.0.2.1
        t=0 0
        a=x-vendor:thing
        x=session-extension
        m=audio 5000 RTP/AVP 0
        a=weird
        a=empty:
        y=media-extension
    """)
    sdp = parse_sdp(data)
    assert sdp.unknown_lines == ["x=session-extension"]
    assert sdp.media[0].unknown_lines == ["y=media-extension"]
    assert sdp.media[0].attributes == [("weird", None), ("empty", "")]
    assert sdp.to_bytes() == data


def test_all_line_types_round_trip() -> None:
    data = crlf("""
        v=0
        o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5
        s=SDP Seminar
        i=A Seminar on the session description protocol
        u=http://www.example.com/seminars/sdp.pdf
        e=j.doe@example.com (Jane Doe)
        p=+1 617 555-6011
        c=IN IP4 224.2.17.12/127
        b=CT:128
        t=2873397496 2873404696
        r=7d 1h 0 25h
        t=0 0
        z=2882844526 -1h 2898848070 0
        k=prompt
        a=recvonly
        m=audio 49170/2 RTP/AVP 0
        i=voice
        c=IN IP4 224.2.17.12/127/2
        c=IN IP4 224.2.17.14/127
        b=AS:64
        k=clear:secret
        a=ptime:20
        m=video 51372 RTP/AVP 99
        c=IN IP6 ff15::101/3
        a=rtpmap:99 h263-1998/90000
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel
    """)
    sdp = parse_sdp(data)
    assert sdp.to_bytes() == data
    assert sdp.timings[0].repeats == ("7d 1h 0 25h",)
    assert sdp.connection == Connection("IN", "IP4", "224.2.17.12", ttl=127)
    audio, video, app = sdp.media
    assert audio.port_count == 2 and audio.information == "voice" and audio.key == "clear:secret"
    assert audio.connection == Connection("IN", "IP4", "224.2.17.12", 127, 2)
    assert audio.extra_connections == [Connection("IN", "IP4", "224.2.17.14", 127)]
    assert video.connection == Connection("IN", "IP6", "ff15::101", None, 3)
    assert app.formats == ["webrtc-datachannel"] and app.codecs == []
    assert sdp.direction is Direction.RECVONLY


def test_serializer_uses_rfc_order() -> None:
    sdp = SessionDescription(
        origin=Origin("u", "1", "2", "IN", "IP4", "192.0.2.1"),
        attributes=[("recvonly", None)],
        time_zones="0 0",
        key="prompt",
        timings=[Timing(0, 0, ("1d 1h 0",))],
        bandwidths=[Bandwidth("AS", 64)],
        connection=Connection("IN", "IP4", "192.0.2.1"),
        phones=["+1 555"],
        emails=["a@example.com"],
        uri="http://example.com",
        information="info",
        session_name="name",
        unknown_lines=["x=1"],
        media=[
            MediaDescription(
                media="audio",
                port=5000,
                proto="RTP/AVP",
                formats=["0"],
                attributes=[("sendonly", None)],
                key="prompt",
                bandwidths=[Bandwidth("TIAS", 64000)],
                connection=Connection("IN", "IP4", "192.0.2.2"),
                information="mi",
            )
        ],
    )
    kinds = [line[:1] for line in sdp.to_bytes().decode().split("\r\n") if line]
    assert kinds == list("vosiuepcbtrzkax") + list("micbka")


def test_empty_timings_still_write_t_line() -> None:
    sdp = SessionDescription(origin=Origin("-", "1", "1", "IN", "IP4", "1.2.3.4"), timings=[])
    assert b"\r\nt=0 0\r\n" in sdp.to_bytes()


def test_missing_s_and_t_are_tolerated() -> None:
    sdp = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\n")
    assert sdp.session_name == "-" and sdp.timings == [Timing(0, 0)]
    assert sdp.connection is None


def test_non_utf8_text_round_trips() -> None:
    data = b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=caf\xe9\r\nt=0 0\r\n"
    assert parse_sdp(data).to_bytes() == data


def _line(text: str) -> bytes:
    return text.encode()


GOOD_HEAD = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"

MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "Bad SDP: empty body"),
    ("blank", b"\r\n\r\n", "Bad SDP: empty body"),
    ("no v", b"o=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n", "Bad SDP: missing v= line"),
    ("v=1", b"v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\n", "Bad SDP: unsupported version"),
    ("no o", b"v=0\r\ns=-\r\nt=0 0\r\n", "Bad SDP: missing o= line"),
    ("short o", b"v=0\r\no=- 1 1 IN IP4\r\n", "Bad SDP: malformed o= line"),
    ("two o", b"v=0\r\no=- 1 1 IN IP4 a\r\no=- 1 1 IN IP4 a\r\n", "Bad SDP: duplicate o= line"),
    ("two v", b"v=0\r\nv=0\r\no=- 1 1 IN IP4 a\r\n", "Bad SDP: duplicate v= line"),
    ("two c", _line(GOOD_HEAD + "c=IN IP4 1.2.3.5\r\n"), "Bad SDP: duplicate c= line"),
    ("no =", _line(GOOD_HEAD + "a\r\n"), "Bad SDP: malformed line"),
    ("space =", _line(GOOD_HEAD + "a = rtpmap:0 PCMU/8000\r\n"), "Bad SDP: malformed line"),
    ("upper", _line(GOOD_HEAD + "A=sendrecv\r\n"), "Bad SDP: malformed line"),
    ("digit type", _line(GOOD_HEAD + "1=x\r\n"), "Bad SDP: malformed line"),
    ("stray CR", _line(GOOD_HEAD + "a=x\ry\r\n"), "Bad SDP: bad character"),
    ("NUL", _line(GOOD_HEAD + "a=x\x00\r\n"), "Bad SDP: bad character"),
    ("bad c", _line("v=0\r\no=- 1 1 IN IP4 a\r\nc=IN IP4\r\n"), "Bad SDP: malformed c= line"),
    (
        "bad c ttl",
        _line("v=0\r\no=- 1 1 IN IP4 a\r\nc=IN IP4 a/x\r\n"),
        "Bad SDP: malformed c= line",
    ),
    (
        "c ip6 2",
        _line("v=0\r\no=- 1 1 IN IP6 a\r\nc=IN IP6 a/1/2\r\n"),
        "Bad SDP: malformed c= line",
    ),
    (
        "c 3 slash",
        _line("v=0\r\no=- 1 1 IN IP4 a\r\nc=IN IP4 a/1/2/3\r\n"),
        "Bad SDP: malformed c= line",
    ),
    ("bad b", _line(GOOD_HEAD + "b=AS\r\n"), "Bad SDP: malformed b= line"),
    ("bad b num", _line(GOOD_HEAD + "b=AS:12k\r\n"), "Bad SDP: malformed b= line"),
    ("bad t", b"v=0\r\no=- 1 1 IN IP4 a\r\nt=0\r\n", "Bad SDP: malformed t= line"),
    ("t digits", b"v=0\r\no=- 1 1 IN IP4 a\r\nt=\xd9\xa1 0\r\n", "Bad SDP: malformed t= line"),
    ("r first", b"v=0\r\no=- 1 1 IN IP4 a\r\nr=1d 1h 0\r\n", "Bad SDP: r= line without t="),
    ("m short", _line(GOOD_HEAD + "m=audio 4000\r\n"), "Bad SDP: malformed m= line"),
    ("m port", _line(GOOD_HEAD + "m=audio 70000 RTP/AVP 0\r\n"), "Bad SDP: malformed m= line"),
    ("m port x", _line(GOOD_HEAD + "m=audio 4k RTP/AVP 0\r\n"), "Bad SDP: malformed m= line"),
    ("m count", _line(GOOD_HEAD + "m=audio 4000/0 RTP/AVP 0\r\n"), "Bad SDP: malformed m= line"),
    (
        "m formats",
        _line(GOOD_HEAD + "m=audio 4000 RTP/AVP" + " 0" * 129 + "\r\n"),
        "Bad SDP: too many formats",
    ),
    (
        "t in media",
        _line(GOOD_HEAD + "m=audio 4000 RTP/AVP 0\r\nt=0 0\r\n"),
        "Bad SDP: session line in media section",
    ),
    (
        "second sdp",
        _line(GOOD_HEAD + "m=audio 4000 RTP/AVP 0\r\n" + GOOD_HEAD),
        "Bad SDP: session line in media section",
    ),
    (
        "media dup i",
        _line(GOOD_HEAD + "m=audio 4000 RTP/AVP 0\r\ni=a\r\ni=b\r\n"),
        "Bad SDP: duplicate i= line",
    ),
    (
        "too many m",
        _line(GOOD_HEAD + "m=audio 4000 RTP/AVP 0\r\n" * (MAX_MEDIA + 1)),
        "Bad SDP: too many m= lines",
    ),
    (
        "long line",
        _line(GOOD_HEAD + "a=" + "x" * MAX_LINE_LENGTH + "\r\n"),
        "Bad SDP: line too long",
    ),
    ("too many lines", _line(GOOD_HEAD + "a=x\r\n" * 2100), "Bad SDP: too many lines"),
    ("too large", b"v=0\r\n" + b"a=" + b"x" * MAX_SDP_BYTES, "Bad SDP: body too large"),
]


@pytest.mark.parametrize(
    ("data", "reason"), [(d, r) for _, d, r in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_input_is_400(data: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_sdp(data)
    assert info.value.status_hint == 400
    assert info.value.reason == reason
    assert "\r" not in info.value.reason and "\n" not in info.value.reason


def test_str_with_lone_surrogate_is_400() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_sdp("v=0\r\no=- 1 1 IN IP4 a\r\ns=\ud800\r\n")


def test_non_text_argument_is_type_error() -> None:
    with pytest.raises(TypeError):
        parse_sdp(42)  # type: ignore[arg-type]


def test_garbage_attribute_values_never_raise() -> None:
    sdp = parse_sdp(
        _line(
            GOOD_HEAD
            + "m=audio 4000 RTP/AVP 0 96 x 200 -1\r\n"
            + "a=rtpmap:96\r\na=rtpmap:97 foo\r\na=rtpmap:96 x/\r\na=rtpmap:999 a/1\r\n"
            + "a=rtpmap:96 opus/0\r\na=rtpmap:96 opus/48000/0\r\n"
            + "a=fmtp:\r\na=fmtp:x y\r\na=ptime:0\r\na=maxptime:abc\r\na=rtcp:x\r\n"
            + "a=rtcp:5 IN IP4\r\n"
        )
    )
    m = sdp.media[0]
    assert m.rtpmaps == {}
    assert [c.payload_type for c in m.codecs] == [0]
    assert m.ptime is None and m.maxptime is None and m.rtcp is None
    assert m.fmtp(96) is None


# ------------------------------------------------------------------- offer/answer


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_negotiate_real_offers(name: str) -> None:
    exp = EXPECTED[name]
    offer = parse_sdp(FIXTURES[name])
    result = negotiate_answer(offer, address="198.51.100.1", port=40000)
    media = result.media
    assert media.codec.name == exp.codec
    assert media.codec.payload_type == exp.pt
    assert media.telephone_event_pt == exp.te_pt
    assert (media.remote_address, media.remote_port) == (exp.address, exp.port)
    assert media.remote_rtcp_port == (exp.rtcp_port or exp.port + 1)
    assert media.direction is exp.direction
    assert media.ptime == exp.ptime
    assert media.media_index == exp.index

    answer = result.answer
    # RFC 3264 §6: same number of m= lines in the same order
    assert len(answer.media) == len(offer.media)
    for i, (om, am) in enumerate(zip(offer.media, answer.media, strict=True)):
        assert am.media == om.media and am.proto == om.proto
        if i == exp.index:
            assert am.port == 40000
            expected_formats = [str(exp.pt)] + ([str(exp.te_pt)] if exp.te_pt is not None else [])
            assert am.formats == expected_formats
            assert answer.direction_of(am) is exp.direction
            assert am.ptime == exp.ptime
            assert am.rtpmaps[exp.pt].name == exp.codec
        else:
            assert am.port == 0
            assert am.formats == om.formats[:1] and len(am.formats) >= 1
            assert am.attributes == []
    assert answer.connection == Connection("IN", "IP4", "198.51.100.1")
    assert answer.origin.address == "198.51.100.1"
    # the answer is itself valid SDP that round-trips
    assert parse_sdp(answer.to_bytes()) == answer


@pytest.mark.parametrize("name", REJECTED)
def test_unusable_offers_get_488(name: str) -> None:
    offer = parse_sdp(FIXTURES[name])
    with pytest.raises(RemoteProtocolError) as info:
        negotiate_answer(offer, address="198.51.100.1", port=40000)
    assert info.value.status_hint == 488
    assert info.value.reason == "Not Acceptable Here"
    text = str(info.value)
    assert offer.media[0].proto in text and "PCMU/8000" in text


def test_488_message_names_offered_codecs() -> None:
    with pytest.raises(RemoteProtocolError, match=r"G729/8000.*we support.*PCMU/8000"):
        negotiate_answer(parse_sdp(FIXTURES["g729_only"]), address="192.0.2.1", port=4000)
    with pytest.raises(RemoteProtocolError, match=r"opus/48000/2"):
        negotiate_answer(parse_sdp(FIXTURES["opus_only"]), address="192.0.2.1", port=4000)


def test_no_media_and_only_port0_give_488() -> None:
    for body in (
        GOOD_HEAD,
        GOOD_HEAD + "m=audio 0 RTP/AVP 0\r\n",
        GOOD_HEAD + "m=video 5000 RTP/AVP 96\r\n",
    ):
        with pytest.raises(RemoteProtocolError) as info:
            negotiate_answer(parse_sdp(body), address="192.0.2.1", port=4000)
        assert info.value.status_hint == 488


def test_opus_offer_accepted_when_we_support_opus() -> None:
    opus = Codec(96, "opus", 48000, 2)
    te48 = Codec(97, "telephone-event", 48000, fmtp="0-16")
    result = negotiate_answer(
        parse_sdp(FIXTURES["opus_only"]), address="192.0.2.1", port=4000, supported=[opus, te48]
    )
    assert result.media.codec.payload_type == 111  # the offerer's number
    assert result.media.codec.name == "opus"
    assert result.media.codec.fmtp == "minptime=10;useinbandfec=1"
    assert result.media.telephone_event_pt == 110


@pytest.mark.parametrize("te_pt", [96, 101, 126])
@pytest.mark.parametrize(("order", "expected"), [("0 8", ("PCMU", 0)), ("8 0", ("PCMA", 8))])
def test_telephone_event_pt_and_codec_order(
    te_pt: int, order: str, expected: tuple[str, int]
) -> None:
    offer = parse_sdp(
        GOOD_HEAD
        + f"m=audio 5000 RTP/AVP {order} {te_pt}\r\n"
        + f"a=rtpmap:{te_pt} telephone-event/8000\r\na=fmtp:{te_pt} 0-15\r\n"
    )
    result = negotiate_answer(offer, address="192.0.2.1", port=4000)
    assert (result.media.codec.name, result.media.codec.payload_type) == expected
    assert result.media.telephone_event_pt == te_pt
    audio = result.answer.media[0]
    assert audio.formats == [str(expected[1]), str(te_pt)]
    assert audio.attribute_values("rtpmap") == [
        f"{expected[1]} {expected[0]}/8000",
        f"{te_pt} telephone-event/8000",
    ]
    assert audio.fmtp(te_pt) == "0-16"  # what we can receive (RFC 4733 §7.1.1)


def test_our_preference_does_not_override_offerer_order() -> None:
    offer = parse_sdp(FIXTURES["asterisk"])  # PCMA first
    result = negotiate_answer(offer, address="192.0.2.1", port=4000, supported=[PCMU, PCMA])
    assert result.media.codec.name == "PCMA"
    assert result.media.telephone_event_pt is None  # we did not list telephone-event
    assert result.answer.media[0].formats == ["8"]


def test_no_telephone_event_offered() -> None:
    result = negotiate_answer(parse_sdp(FIXTURES["static_no_rtpmap"]), address="::1", port=4000)
    assert result.media.telephone_event_pt is None
    assert result.answer.connection == Connection("IN", "IP6", "::1")
    assert result.answer.origin.addrtype == "IP6"


@pytest.mark.parametrize(
    ("offer_dir", "wanted", "expected"),
    [
        ("sendrecv", Direction.SENDRECV, Direction.SENDRECV),
        ("sendonly", Direction.SENDRECV, Direction.RECVONLY),
        ("recvonly", Direction.SENDRECV, Direction.SENDONLY),
        ("inactive", Direction.SENDRECV, Direction.INACTIVE),
        ("sendrecv", Direction.SENDONLY, Direction.SENDONLY),  # we hold
        ("sendrecv", Direction.RECVONLY, Direction.RECVONLY),
        ("sendrecv", Direction.INACTIVE, Direction.INACTIVE),
        ("sendonly", Direction.SENDONLY, Direction.INACTIVE),  # both hold
        ("recvonly", Direction.RECVONLY, Direction.INACTIVE),
        ("", Direction.SENDRECV, Direction.SENDRECV),  # default is sendrecv
    ],
)
def test_direction_matrix(offer_dir: str, wanted: Direction, expected: Direction) -> None:
    attr = f"a={offer_dir}\r\n" if offer_dir else ""
    offer = parse_sdp(GOOD_HEAD + "m=audio 5000 RTP/AVP 0\r\n" + attr)
    result = negotiate_answer(offer, address="192.0.2.1", port=4000, direction=wanted)
    assert result.media.direction is expected
    assert result.answer.media[0].direction is expected


@pytest.mark.parametrize(
    ("offer_dir", "expected"),
    [
        ("sendrecv", Direction.RECVONLY),
        ("sendonly", Direction.RECVONLY),
        ("recvonly", Direction.INACTIVE),
        ("inactive", Direction.INACTIVE),
    ],
)
def test_c_zero_hold(offer_dir: str, expected: Direction) -> None:
    # RFC 3264 §8.4: c=0.0.0.0 gives us nowhere to send, so we never send.
    for conn in ("c=IN IP4 0.0.0.0", "c=IN IP6 ::"):
        body = GOOD_HEAD.replace("c=IN IP4 1.2.3.4", conn)
        offer = parse_sdp(body + f"m=audio 5000 RTP/AVP 0\r\na={offer_dir}\r\n")
        assert negotiate_answer(offer, address="192.0.2.1", port=4000).media.direction is expected


def test_media_c_zero_overrides_session_c() -> None:
    offer = parse_sdp(GOOD_HEAD + "m=audio 5000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n")
    media = negotiate_answer(offer, address="192.0.2.1", port=4000).media
    assert media.remote_address == "0.0.0.0" and media.direction is Direction.RECVONLY


def test_usable_stream_without_c_line_is_400() -> None:
    offer = parse_sdp("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        negotiate_answer(offer, address="192.0.2.1", port=4000)
    assert info.value.status_hint == 400


def test_answer_uses_given_origin() -> None:
    origin = Origin("me", "77", "78", "IN", "IP4", "192.0.2.1")
    offer = parse_sdp(FIXTURES["twilio"])
    answer = negotiate_answer(offer, address="192.0.2.1", port=4000, origin=origin).answer
    assert answer.origin == origin
    assert answer.to_bytes() == crlf("""
        v=0
        o=me 77 78 IN IP4 192.0.2.1
        s=-
        c=IN IP4 192.0.2.1
        t=0 0
        m=audio 4000 RTP/AVP 0 101
        a=rtpmap:0 PCMU/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=ptime:20
        a=sendrecv
    """)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"address": "", "port": 4000},
        {"address": "a b", "port": 4000},
        {"address": "1.2.3.4", "port": 0},
        {"address": "1.2.3.4", "port": 70000},
        {"address": "1.2.3.4", "port": 4000, "supported": []},
        {"address": "1.2.3.4", "port": 4000, "supported": [TELEPHONE_EVENT]},
        {"address": "1.2.3.4", "port": 4000, "supported": [PCMU, Codec(0, "PCMA", 8000)]},
        {"address": "1.2.3.4", "port": 4000, "supported": [Codec(200, "X", 8000)]},
        {"address": "1.2.3.4", "port": 4000, "supported": [Codec(96, "a b", 8000)]},
        {"address": "1.2.3.4", "port": 4000, "supported": [Codec(96, "X", 0)]},
        {"address": "1.2.3.4", "port": 4000, "supported": [Codec(96, "X", 8000, fmtp="a\r\n")]},
    ],
)
def test_bad_local_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        negotiate_answer(parse_sdp(FIXTURES["twilio"]), **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------- build_offer


def test_build_offer_defaults() -> None:
    offer = build_offer(address="192.0.2.5", port=10000, session_id=123, session_version=456)
    assert offer.to_bytes() == crlf("""
        v=0
        o=siphon 123 456 IN IP4 192.0.2.5
        s=-
        c=IN IP4 192.0.2.5
        t=0 0
        m=audio 10000 RTP/AVP 0 8 101
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=ptime:20
        a=sendrecv
    """)
    assert parse_sdp(offer.to_bytes()) == offer


def test_build_offer_options() -> None:
    opus = Codec(111, "opus", 48000, 2, "useinbandfec=1")
    offer = build_offer(
        address="2001:db8::5",
        port=10002,
        codecs=[opus, PCMA],
        ptime=30,
        direction=Direction.SENDONLY,
        username="bot",
    )
    assert offer.origin.username == "bot" and offer.origin.addrtype == "IP6"
    assert offer.origin.sess_id == offer.origin.sess_version
    assert int(offer.origin.sess_id) > 0
    m = offer.media[0]
    assert m.formats == ["111", "8"]
    assert m.rtpmaps[111] == opus
    assert m.ptime == 30 and m.direction is Direction.SENDONLY


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ptime": 0},
        {"username": "a b"},
        {"session_id": -1},
        {"codecs": []},
    ],
)
def test_build_offer_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        build_offer(address="192.0.2.5", port=10000, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------- parse_answer


def _offer() -> SessionDescription:
    return build_offer(address="192.0.2.5", port=10000, session_id=1)


def test_parse_answer_happy() -> None:
    answer = parse_sdp(
        crlf("""
        v=0
        o=- 99 99 IN IP4 203.0.113.9
        s=-
        c=IN IP4 203.0.113.9
        t=0 0
        m=audio 30000 RTP/AVP 8 96
        a=rtpmap:8 PCMA/8000
        a=rtpmap:96 telephone-event/8000
        a=fmtp:96 0-15
        a=ptime:30
        a=rtcp:30009
    """)
    )
    media = parse_answer(_offer(), answer)
    assert media.codec == Codec(8, "PCMA", 8000)
    assert media.telephone_event_pt == 96  # the answerer's number is what we send
    assert (media.remote_address, media.remote_port, media.remote_rtcp_port) == (
        "203.0.113.9",
        30000,
        30009,
    )
    assert media.ptime == 30 and media.direction is Direction.SENDRECV and media.media_index == 0


@pytest.mark.parametrize(
    ("answer_dir", "our_dir", "expected"),
    [
        ("recvonly", Direction.SENDRECV, Direction.SENDONLY),
        ("sendonly", Direction.SENDRECV, Direction.RECVONLY),
        ("inactive", Direction.SENDRECV, Direction.INACTIVE),
        ("recvonly", Direction.SENDONLY, Direction.SENDONLY),
        ("sendrecv", Direction.SENDONLY, Direction.SENDONLY),  # peer over-answered
    ],
)
def test_parse_answer_direction(answer_dir: str, our_dir: Direction, expected: Direction) -> None:
    offer = build_offer(address="192.0.2.5", port=10000, direction=our_dir)
    answer = parse_sdp(GOOD_HEAD + f"m=audio 5000 RTP/AVP 0\r\na={answer_dir}\r\n")
    assert parse_answer(offer, answer).direction is expected


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (GOOD_HEAD + "m=audio 5000 RTP/AVP 18\r\n", 488),  # codec we never offered
        (GOOD_HEAD + "m=audio 5000 RTP/AVP 101\r\na=rtpmap:101 telephone-event/8000\r\n", 488),
        (GOOD_HEAD + "m=audio 0 RTP/AVP 0\r\n", 488),  # stream rejected
        (GOOD_HEAD, 400),  # m= count mismatch
        (GOOD_HEAD + "m=audio 5000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\n", 400),
        (GOOD_HEAD + "m=video 5000 RTP/AVP 0\r\n", 400),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n", 400),
    ],
)
def test_parse_answer_errors(body: str, status: int) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_answer(_offer(), parse_sdp(body))
    assert info.value.status_hint == status


def test_parse_answer_with_remapped_dynamic_pt() -> None:
    offer = build_offer(address="192.0.2.5", port=10000, codecs=[Codec(96, "opus", 48000, 2)])
    answer = parse_sdp(GOOD_HEAD + "m=audio 5000 RTP/AVP 120\r\na=rtpmap:120 OPUS/48000/2\r\n")
    media = parse_answer(offer, answer)
    assert media.codec.payload_type == 120 and media.codec.name == "opus"


def test_parse_answer_needs_audio_in_our_offer() -> None:
    offer = parse_sdp(GOOD_HEAD + "m=video 5000 RTP/AVP 96\r\n")
    with pytest.raises(LocalProtocolError):
        parse_answer(offer, offer)


def test_our_offer_answered_by_our_answerer() -> None:
    offer = build_offer(address="192.0.2.5", port=10000, codecs=[PCMA, PCMU, TELEPHONE_EVENT])
    reparsed = parse_sdp(offer.to_bytes())
    result = negotiate_answer(reparsed, address="203.0.113.9", port=20000)
    media = parse_answer(offer, parse_sdp(result.answer.to_bytes()))
    assert media.codec.name == "PCMA" and result.media.codec.name == "PCMA"
    assert (media.remote_address, media.remote_port) == ("203.0.113.9", 20000)
    assert (result.media.remote_address, result.media.remote_port) == ("192.0.2.5", 10000)
    assert media.telephone_event_pt == result.media.telephone_event_pt == 101


# ----------------------------------------------------------------------- SdpSession


def _version(sdp: SessionDescription) -> int:
    return int(sdp.origin.sess_version)


def test_session_answer_versions_on_reinvite() -> None:
    session = SdpSession(address="192.0.2.1", port=4000, session_id=500, session_version=7)
    first = session.answer(parse_sdp(FIXTURES["twilio"]))
    assert first.answer.origin.sess_id == "500" and _version(first.answer) == 7
    assert session.negotiated == first.media

    # session refresh re-INVITE with the same offer: identical answer, same version
    again = session.answer(parse_sdp(FIXTURES["twilio"]))
    assert again.answer.to_bytes() == first.answer.to_bytes()

    hold = session.answer(parse_sdp(FIXTURES["hold_sendonly"]))
    assert _version(hold.answer) == 8 and hold.answer.origin.sess_id == "500"
    assert hold.media.direction is Direction.RECVONLY
    assert hold.answer.media[0].direction is Direction.RECVONLY

    inactive = session.answer(parse_sdp(FIXTURES["hold_inactive"]))
    assert _version(inactive.answer) == 9 and inactive.media.direction is Direction.INACTIVE

    c0 = session.answer(parse_sdp(FIXTURES["hold_c0"]))
    assert _version(c0.answer) == 10 and c0.media.direction is Direction.RECVONLY

    resume = session.answer(parse_sdp(FIXTURES["twilio"]))
    assert _version(resume.answer) == 11
    assert resume.media.direction is Direction.SENDRECV
    assert resume.answer.media[0].direction is Direction.SENDRECV
    assert session.origin.sess_version == "11"


def test_session_we_hold_and_port_change() -> None:
    session = SdpSession(address="192.0.2.1", port=4000, session_id=9, session_version=9)
    offer = parse_sdp(FIXTURES["baresip"])
    assert session.answer(offer).media.direction is Direction.SENDRECV
    held = session.answer(offer, direction=Direction.SENDONLY)
    assert held.media.direction is Direction.SENDONLY and _version(held.answer) == 10
    session.port = 4002
    moved = session.answer(offer, direction=Direction.SENDONLY)
    assert moved.answer.media[0].port == 4002 and _version(moved.answer) == 11


def test_session_uac_offer_answer_and_hold() -> None:
    session = SdpSession(address="192.0.2.1", port=4000, session_id=1000)
    offer = session.create_offer()
    assert session.pending_offer is offer
    assert offer.origin.sess_id == "1000" and _version(offer) == 1000

    peer = SdpSession(address="203.0.113.7", port=6000, codecs=[PCMA, PCMU, TELEPHONE_EVENT])
    reply = peer.answer(parse_sdp(offer.to_bytes()))
    media = session.accept_answer(parse_sdp(reply.answer.to_bytes()))
    assert media.codec.name == "PCMU"  # offerer's order wins
    assert session.pending_offer is None and session.negotiated == media

    same = session.create_offer()  # unchanged re-offer keeps the version
    assert _version(same) == 1000
    session.accept_answer(parse_sdp(reply.answer.to_bytes()))

    hold = session.create_offer(direction=Direction.SENDONLY)
    assert _version(hold) == 1001 and hold.media[0].direction is Direction.SENDONLY
    held_reply = peer.answer(parse_sdp(hold.to_bytes()))
    assert held_reply.media.direction is Direction.RECVONLY
    assert _version(held_reply.answer) == int(reply.answer.origin.sess_version) + 1
    assert session.accept_answer(held_reply.answer).direction is Direction.SENDONLY

    resume = session.create_offer()
    assert _version(resume) == 1002
    assert peer.answer(resume).media.direction is Direction.SENDRECV


def test_session_accept_answer_without_offer() -> None:
    session = SdpSession(address="192.0.2.1", port=4000)
    with pytest.raises(LocalProtocolError):
        session.accept_answer(parse_sdp(FIXTURES["twilio"]))


def test_session_rejects_bad_arguments() -> None:
    with pytest.raises(LocalProtocolError):
        SdpSession(address="192.0.2.1", port=4000, ptime=0)
    with pytest.raises(LocalProtocolError):
        SdpSession(address="192.0.2.1", port=4000, codecs=[TELEPHONE_EVENT])


def test_direction_helpers() -> None:
    assert Direction.SENDONLY.reversed() is Direction.RECVONLY
    assert Direction.INACTIVE.reversed() is Direction.INACTIVE
    assert Direction.SENDRECV.intersect(Direction.RECVONLY) is Direction.RECVONLY
    m = MediaDescription(
        media="audio", port=1, proto="RTP/AVP", attributes=[("a", "1"), ("sendrecv", None)]
    )
    m.set_direction(Direction.INACTIVE)
    assert m.attributes == [("a", "1"), ("inactive", None)]
    m.attributes.append(("recvonly", None))
    m.set_direction(Direction.SENDONLY)
    assert m.attributes == [("a", "1"), ("sendonly", None)]
    bare = MediaDescription(media="audio", port=1, proto="RTP/AVP")
    bare.set_direction(Direction.RECVONLY)
    assert bare.attributes == [("recvonly", None)]


def test_default_codecs() -> None:
    assert DEFAULT_CODECS == (PCMU, PCMA, TELEPHONE_EVENT)
    assert TELEPHONE_EVENT.payload_type == 101 and TELEPHONE_EVENT.fmtp == "0-16"


# -------------------------------------------------------------- hostile input (fuzz)


def _exercise(data: bytes | str) -> None:
    """Parse, and if that works, use everything: only RemoteProtocolError may escape."""
    try:
        sdp = parse_sdp(data)
    except RemoteProtocolError as exc:
        assert exc.status_hint == 400
        return
    out = sdp.to_bytes()
    assert parse_sdp(out) == sdp  # serialize/parse is a fixed point
    assert parse_sdp(out).to_bytes() == out
    for m in sdp.media:
        _ = (m.codecs, m.rtpmaps, m.ptime, m.maxptime, m.rtcp, m.rtcp_mux, m.direction)
        _ = (sdp.direction_of(m), sdp.connection_for(m))
    try:
        result = negotiate_answer(sdp, address="192.0.2.1", port=4000)
    except RemoteProtocolError as exc:
        assert exc.status_hint in (400, 488)
    else:
        assert len(result.answer.media) == len(sdp.media)
        parse_sdp(result.answer.to_bytes())
    with contextlib.suppress(RemoteProtocolError):
        parse_answer(_offer(), sdp)


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    _exercise(data)


@FUZZ
@given(st.text(max_size=1024))
def test_random_text_only_raises_remote_protocol_error(data: str) -> None:
    _exercise(data)


_TOKENS = st.sampled_from(
    [
        b"",
        b" ",
        b"\r",
        b"\n",
        b"\r\n",
        b"=",
        b":",
        b"/",
        b"0",
        b"65536",
        b"-1",
        b"99999999999999999999999",
        b"\xff",
        b"\x00",
        b"m=audio 0 RTP/AVP 0\r\n",
        b"m=audio 1 RTP/AVP\r\n",
        b"c=IN IP4 0.0.0.0\r\n",
        b"c=IN IP6 ::/3\r\n",
        b"a=rtpmap:0 PCMA/8000\r\n",
        b"a=rtpmap:101 telephone-event/8000\r\n",
        b"a=sendonly\r\n",
        b"a=rtcp:1 IN IP4 x\r\n",
        b"t=0 0\r\n",
        b"r=1\r\n",
        b"x=y\r\n",
    ]
)


@st.composite
def mutated_sdp(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(sorted(FIXTURES.values()))))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 5))
        pos = draw(st.integers(0, len(data)))
        if op == 0:  # delete a span
            end = draw(st.integers(pos, min(len(data), pos + 40)))
            del data[pos:end]
        elif op == 1:  # insert a token
            data[pos:pos] = draw(_TOKENS)
        elif op == 2:  # insert random bytes
            data[pos:pos] = draw(st.binary(max_size=12))
        elif op == 3 and pos < len(data):  # flip a byte
            data[pos] = draw(st.integers(0, 255))
        elif op == 4:  # duplicate or drop a whole line
            lines = bytes(data).split(b"\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            if draw(st.booleans()):
                lines.insert(i, lines[i])
            else:
                del lines[i]
            data = bytearray(b"\r\n".join(lines))
        else:  # swap two lines
            lines = bytes(data).split(b"\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_sdp())
def test_mutated_real_sdp_only_raises_remote_protocol_error(data: bytes) -> None:
    _exercise(data)
