"""Dialogs (RFC 3261 §12): creation on both sides, route sets, CSeq rules, in-dialog requests."""

from __future__ import annotations

import pytest

from siphon.errors import LocalProtocolError, RemoteProtocolError
from siphon.sip.dialog import Dialog, DialogState, dialog_id_of_request, dialog_id_of_response
from siphon.sip.message import Request, Response
from siphon.sip.parser import parse_datagram
from siphon.sip.uri import SipUri

INVITE = (
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1\r\n"
    "Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101\r\n"
    "Record-Route: <sip:proxy2.example.com;lr>\r\n"
    "Record-Route: <sip:proxy1.example.com;lr>\r\n"
    "Max-Forwards: 69\r\n"
    'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    "CSeq: 31 INVITE\r\n"
    "Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
    "Content-Length: 0\r\n\r\n"
)


def _invite() -> Request:
    message = parse_datagram(INVITE.encode())
    assert isinstance(message, Request)
    return message


def _uas_dialog() -> Dialog:
    return Dialog.from_uas(_invite(), "314159", "<sip:bob@192.0.2.4>")


def test_uas_dialog_state_from_invite() -> None:
    dialog = _uas_dialog()
    assert dialog.id == ("3848276298220188511@atlanta.example.com", "314159", "9fxced76sl")
    assert dialog.remote_seq == 31
    assert str(dialog.remote_target) == "sip:alice@client.atlanta.example.com;transport=tcp"
    # §12.1.1: the UAS keeps Record-Route in order.
    assert dialog.route_set == ["<sip:proxy2.example.com;lr>", "<sip:proxy1.example.com;lr>"]
    assert not dialog.is_uac and dialog.state is DialogState.CONFIRMED


def test_uas_bye_goes_to_remote_target_via_loose_routes() -> None:
    dialog = _uas_dialog()
    first = dialog.local_seq
    bye = dialog.create_request("BYE")
    assert bye.uri == "sip:alice@client.atlanta.example.com;transport=tcp"
    assert bye.get_all("Route") == ["<sip:proxy2.example.com;lr>", "<sip:proxy1.example.com;lr>"]
    assert bye.from_tag == "314159" and bye.to_tag == "9fxced76sl"
    assert bye.cseq.seq == first + 1 and bye.cseq.method == "BYE"
    assert bye.call_id == dialog.call_id
    assert "Contact" not in bye  # BYE is not a target refresh
    # Each new request takes the next local CSeq.
    assert dialog.create_request("INFO").cseq.seq == first + 2


@pytest.mark.parametrize("method", ["INVITE", "REFER", "NOTIFY"])
def test_target_refresh_requests_carry_contact(method: str) -> None:
    request = _uas_dialog().create_request(method, body=b"v=0\r\n")
    assert request.get("Contact") == "<sip:bob@192.0.2.4>"
    assert request.get("Content-Type") == "application/sdp"


def test_uac_dialog_reverses_record_route_and_acks_with_invite_cseq() -> None:
    invite = Request("INVITE", "sip:bob@biloxi.example.com")
    invite.add("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKabc")
    invite.add("From", "<sip:alice@atlanta.example.com>;tag=a1")
    invite.add("To", "<sip:bob@biloxi.example.com>")
    invite.add("Call-ID", "c1")
    invite.add("CSeq", "7 INVITE")
    invite.add("Contact", "<sip:alice@192.0.2.1>")
    ok = invite.make_response(
        200,
        to_tag="b2",
        headers=[
            ("Record-Route", "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>"),
            ("Contact", "<sip:bob@192.0.2.4:5062>"),
        ],
    )
    dialog = Dialog.from_uac(invite, ok)
    assert dialog.id == ("c1", "a1", "b2")
    assert dialog.route_set == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    ack = dialog.create_ack(7)
    assert (ack.cseq.seq, ack.cseq.method) == (7, "ACK")
    assert ack.uri == "sip:bob@192.0.2.4:5062"
    assert dialog.create_request("BYE").cseq.seq == 8
    assert dialog_id_of_response(ok) == ("c1", "a1", "b2")


def test_strict_router_becomes_request_uri() -> None:
    dialog = _uas_dialog()
    dialog.route_set = ["<sip:strict.example.com>", "<sip:loose.example.com;lr>"]
    bye = dialog.create_request("BYE")
    assert bye.uri == "sip:strict.example.com"
    assert bye.get_all("Route") == [
        "<sip:loose.example.com;lr>",
        "<sip:alice@client.atlanta.example.com;transport=tcp>",
    ]


def test_remote_cseq_must_grow_and_refresh_updates_target() -> None:
    dialog = _uas_dialog()
    reinvite = _invite()
    reinvite.set("CSeq", "32 INVITE")
    reinvite.set("To", "Bob <sip:bob@biloxi.example.com>;tag=314159")
    reinvite.set("Contact", "<sip:alice@198.51.100.7:5070>")
    dialog.receive_request(reinvite)
    assert dialog.remote_seq == 32
    assert isinstance(dialog.remote_target, SipUri)
    assert dialog.remote_target.host == "198.51.100.7"
    with pytest.raises(RemoteProtocolError) as stale:
        dialog.receive_request(reinvite)  # same CSeq again
    assert stale.value.status_hint == 500
    assert dialog_id_of_request(reinvite) == dialog.id


def test_ack_and_cancel_need_the_invite_cseq_and_terminated_dialog_refuses() -> None:
    dialog = _uas_dialog()
    with pytest.raises(LocalProtocolError):
        dialog.create_request("ACK")
    dialog.terminate()
    with pytest.raises(LocalProtocolError):
        dialog.create_request("BYE")


def test_response_without_to_tag_cannot_create_a_dialog() -> None:
    invite = _invite()
    invite.set("From", "<sip:alice@atlanta.example.com>;tag=x")
    response = Response(200, headers=[(n, v) for n, v in invite.iter_headers()])
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uac(invite, response)
