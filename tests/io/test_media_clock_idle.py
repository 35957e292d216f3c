"""The media clock with calls coming and going one at a time (call-setup rates)."""

from __future__ import annotations

import asyncio

from siphon.io.media_clock import MediaClock


class Recorder:
    def __init__(self) -> None:
        self.ticks: list[int] = []

    def on_tick(self, tick: int, now: float) -> None:
        self.ticks.append(tick)


async def test_the_last_listener_leaving_stops_the_clock_at_its_next_wakeup() -> None:
    clock = MediaClock()
    listener = Recorder()
    clock.add(listener)
    await asyncio.sleep(0.05)
    clock.remove(listener)
    ticks, lateness = clock.ticks, clock.max_lateness
    assert clock._handle is not None  # not cancelled now: one empty wake-up to come
    await asyncio.sleep(0.06)
    assert clock._handle is None  # ...after which it sleeps for good
    # The empty wake-up is not a tick: the statistics did not move.
    assert (clock.ticks, clock.max_lateness, clock.skipped_ticks) == (ticks, lateness, 0)
    assert len(listener.ticks) == ticks


async def test_a_call_arriving_before_that_wakeup_keeps_the_running_grid() -> None:
    clock = MediaClock()
    first, second = Recorder(), Recorder()
    clock.add(first)
    await asyncio.sleep(0.05)
    start = clock._start
    clock.remove(first)
    handle = clock._handle
    clock.add(second)  # the next call, before the timer fired
    assert clock._handle is handle and clock._start == start  # not re-armed
    await asyncio.sleep(0.05)
    clock.close()
    assert second.ticks and second.ticks[0] > first.ticks[-1]  # numbering goes on
    assert clock.errors == 0


async def test_an_idle_clock_restarts_on_a_fresh_grid() -> None:
    clock = MediaClock()
    listener = Recorder()
    clock.add(listener)
    await asyncio.sleep(0.05)
    clock.remove(listener)
    await asyncio.sleep(0.05)
    assert clock._handle is None
    again = Recorder()
    clock.add(again)
    await asyncio.sleep(0.05)
    clock.close()
    assert again.ticks[0] == 1  # counted from the new start
