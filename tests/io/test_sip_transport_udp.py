"""UdpTransport.datagram_received: keep-alives versus messages."""

from __future__ import annotations

from siphon.errors import RemoteProtocolError
from siphon.io.sip_transport import Address, SipTransport, UdpTransport
from siphon.sip.message import Request, Response

OPTIONS = (
    b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-k-1\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\n"
    b"To: <sip:x@127.0.0.1>\r\n"
    b"Call-ID: k-1\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Max-Forwards: 70\r\n"
    b"Content-Length: 0\r\n\r\n"
)


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def message_received(
        self, message: Request | Response, source: Address, transport: SipTransport
    ) -> None:
        self.events.append(("message", message))

    def bad_input(
        self, error: RemoteProtocolError, data: bytes, source: Address, transport: SipTransport
    ) -> None:
        self.events.append(("bad", data))

    def keepalive_received(self, source: Address, transport: SipTransport) -> None:
        self.events.append(("keepalive", source))


def _kinds(*datagrams: bytes) -> list[str]:
    sink = Sink()
    udp = UdpTransport(sink)
    for data in datagrams:
        udp.datagram_received(data, ("127.0.0.1", 5061))
    return [kind for kind, _ in sink.events]


def test_blank_datagrams_are_keepalives() -> None:
    # RFC 5626 §3.5.1 CRLF keep-alives, and empty or padding-only datagrams.
    blanks = (b"", b"\r\n\r\n", b"\r\n", b"\x00", b" ", b"\n \x00\r")
    assert _kinds(*blanks) == ["keepalive"] * len(blanks)


def test_messages_are_parsed_even_after_leading_blank_lines() -> None:
    # RFC 3261 §7.5: CRLFs before the start line are ignored.
    assert _kinds(OPTIONS, b"\r\n" + OPTIONS) == ["message", "message"]


def test_garbage_is_bad_input_not_a_keepalive() -> None:
    assert _kinds(b"\r\n garbage", b"x") == ["bad", "bad"]
