"""The process-wide media clock: absolute deadlines, batching, skipping, isolation."""

from __future__ import annotations

import asyncio

from siphon.io.media_clock import MediaClock


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.ticks: list[tuple[int, float]] = []
        self.fail = fail

    def on_tick(self, tick: int, now: float) -> None:
        self.ticks.append((tick, now))
        if self.fail:
            raise RuntimeError("broken session")


async def test_ticks_follow_absolute_deadlines_and_batch_all_listeners() -> None:
    clock = MediaClock()
    a, b, broken = Recorder(), Recorder(), Recorder(fail=True)
    for listener in (a, b, broken):
        clock.add(listener)
    await asyncio.sleep(0.5)
    clock.close()
    assert len(a.ticks) >= 20
    assert [t for t, _ in a.ticks] == [t for t, _ in b.ticks]  # same batch
    start = a.ticks[0][1] - a.ticks[0][0] * 0.020
    # Lateness does not accumulate: tick n fires near start + n * 20 ms.
    drift = a.ticks[-1][1] - (start + a.ticks[-1][0] * 0.020)
    assert drift < 0.015
    assert clock.errors == len(broken.ticks) > 0  # counted, and the others kept ticking


async def test_falling_far_behind_skips_ticks_instead_of_bursting() -> None:
    clock = MediaClock()
    listener = Recorder()
    clock.add(listener)
    await asyncio.sleep(0.05)
    import time

    time.sleep(0.2)  # noqa: ASYNC251 - blocking the loop on purpose: 10 ticks missed
    await asyncio.sleep(0.05)
    clock.close()
    ticks = [t for t, _ in listener.ticks]
    assert clock.skipped_ticks >= 5
    assert len(ticks) < ticks[-1]  # numbering jumped rather than replaying every tick


async def test_idle_clock_stops_waking_up() -> None:
    clock = MediaClock()
    listener = Recorder()
    clock.add(listener)
    await asyncio.sleep(0.05)
    clock.remove(listener)
    ticks = clock.ticks
    await asyncio.sleep(0.1)
    assert clock.ticks == ticks
