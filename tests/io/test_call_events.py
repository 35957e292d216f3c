"""SipCall's event queue and waits: bounded, ordered, made only when first needed."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from siphon.events import CallEnded, DtmfReceived
from siphon.io.call import MAX_QUEUED_EVENTS, CallFailed, CallState, SipCall
from siphon.sip.parser import parse_datagram

INVITE = (
    b"INVITE sip:service@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:service@127.0.0.1>\r\n"
    b"Call-ID: events-1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5061>\r\n"
    b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


class ClosingMedia:
    closed = 0

    def close(self) -> None:
        self.closed += 1


def new_call() -> tuple[SipCall, ClosingMedia]:
    media = ClosingMedia()
    call = SipCall(
        cast(Any, None),
        direction="inbound",
        call_id="events-1",
        local_tag="t",
        invite=cast(Any, parse_datagram(INVITE)),
        media=cast(Any, media),
    )
    return call, media


def dtmf(n: int) -> DtmfReceived:
    return DtmfReceived(digit=str(n % 10), duration_ms=100)


async def test_events_emitted_before_the_queue_is_read_arrive_in_order() -> None:
    call, _ = new_call()
    call.emit(dtmf(1))
    call.emit(dtmf(2))
    assert call._events is None  # nothing asked for the queue yet
    call.emit(dtmf(3))
    assert [call.events.get_nowait().digit for _ in range(3)] == ["1", "2", "3"]
    call.emit(dtmf(4))  # and after it exists, straight into it
    assert call.events.get_nowait().digit == "4"


async def test_the_queue_is_bounded_before_and_after_it_is_read() -> None:
    call, _ = new_call()
    for n in range(MAX_QUEUED_EVENTS + 5):
        call.emit(dtmf(n))
    assert call.events_dropped == 5
    assert call.events.qsize() == MAX_QUEUED_EVENTS
    call.emit(dtmf(0))
    assert call.events_dropped == 6
    assert call.events.qsize() == MAX_QUEUED_EVENTS


async def test_call_ended_gets_through_a_full_queue_whether_read_or_not() -> None:
    for read_first in (False, True):
        call, media = new_call()
        if read_first:
            call.events  # noqa: B018 - make the queue before it fills
        for n in range(MAX_QUEUED_EVENTS):
            call.emit(dtmf(n))
        assert call._mark_ended("remote hangup", 200)
        assert not call._mark_ended("again")  # once only
        assert media.closed == 1
        events = [call.events.get_nowait() for _ in range(call.events.qsize())]
        assert len(events) == MAX_QUEUED_EVENTS
        assert events[-1] == CallEnded("remote hangup", 200)
        assert call.state is CallState.ENDED


async def test_iter_events_ends_with_call_ended() -> None:
    call, _ = new_call()
    call.emit(dtmf(7))
    call._mark_ended("remote hangup")
    seen = [event async for event in call.iter_events()]
    assert seen == [dtmf(7), CallEnded("remote hangup", None)]


async def test_wait_ended_wakes_every_waiter_and_returns_at_once_after_the_end() -> None:
    call, _ = new_call()
    waiters = [asyncio.create_task(call.wait_ended()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    call._mark_ended("local hangup")
    assert await asyncio.gather(*waiters) == ["local hangup"] * 3
    assert await asyncio.wait_for(call.wait_ended(), 1) == "local hangup"


async def test_answer_waits_for_the_ack_or_the_end() -> None:
    class AnsweringUa:
        def answer(self, call: SipCall) -> None:
            call.state = CallState.ANSWERED

    call, _ = new_call()
    call._ua = cast(Any, AnsweringUa())
    answering = asyncio.create_task(call.answer())
    await asyncio.sleep(0)
    assert not answering.done()
    call._mark_acked()
    await asyncio.wait_for(answering, 1)
    assert call.acked

    ended_first, _ = new_call()
    ended_first._ua = cast(Any, AnsweringUa())
    answering = asyncio.create_task(ended_first.answer())
    await asyncio.sleep(0)
    ended_first._mark_ended("remote hangup", 487)
    with pytest.raises(CallFailed) as failed:
        await asyncio.wait_for(answering, 1)
    assert failed.value.status == 487
