"""TimerQueue: one heap of deadlines behind one event-loop handle."""

from __future__ import annotations

import asyncio

from siphon.io.timer_queue import TimerLane, TimerQueue


async def test_timers_fire_in_deadline_order_with_their_arguments() -> None:
    queue = TimerQueue(asyncio.get_running_loop())
    fired: list[tuple[str, int]] = []
    done = asyncio.Event()
    queue.call_later(0.03, lambda *args: (fired.append(args), done.set()), "c", 3)
    queue.call_later(0.01, lambda *args: fired.append(args), "a", 1)
    queue.call_later(0.02, lambda *args: fired.append(args), "b", 2)
    cancelled = queue.call_later(0.015, lambda *args: fired.append(args), "x", 0)
    cancelled.cancel()
    await asyncio.wait_for(done.wait(), 2)
    assert fired == [("a", 1), ("b", 2), ("c", 3)]
    queue.close()


async def test_cancelled_timers_do_not_pile_up_in_the_heap() -> None:
    queue = TimerQueue(asyncio.get_running_loop())
    handles = [queue.call_later(3600 + i, lambda: None) for i in range(1000)]
    for handle in handles[:900]:
        handle.cancel()
    # Rebuilt without the cancelled ones once they were more than half the heap.
    assert len(queue) < 600
    assert {entry[2] for entry in queue._heap} >= set(handles[900:])
    queue.close()


async def test_cancelling_a_timer_that_already_fired_counts_nothing() -> None:
    queue = TimerQueue(asyncio.get_running_loop())
    done = asyncio.Event()
    early = [queue.call_later(0.001, lambda: None) for _ in range(300)]
    queue.call_later(0.01, done.set)
    await asyncio.wait_for(done.wait(), 2)
    late = [queue.call_later(3600, lambda: None) for _ in range(150)]
    for handle in early:
        handle.cancel()  # out of the heap already
    assert queue._cancelled == 0
    assert len(queue) == len(late)
    queue.close()


async def test_lane_fires_in_order_behind_one_queue_timer() -> None:
    queue = TimerQueue(asyncio.get_running_loop())
    fired: list[tuple[int, str]] = []
    done = asyncio.Event()

    def fire(item: int, arg: str) -> None:
        fired.append((item, arg))
        if item == 99:
            done.set()

    lane: TimerLane[int] = TimerLane(queue, fire, "J")
    start = queue.now()
    for i in range(100):
        assert lane.add(start + 0.01 + i * 0.0001, i)
    assert len(lane) == 100
    assert len(queue) == 1  # one wake-up for the whole lane, not one per timer
    await asyncio.wait_for(done.wait(), 2)
    assert fired == [(i, "J") for i in range(100)]
    assert len(lane) == 0
    queue.close()


async def test_lane_refuses_a_deadline_before_its_last() -> None:
    queue = TimerQueue(asyncio.get_running_loop())
    lane: TimerLane[str] = TimerLane(queue, lambda item, arg: None)
    now = queue.now()
    assert lane.add(now + 10, "a")
    assert lane.add(now + 10, "b")  # equal deadlines keep their order
    assert not lane.add(now + 9, "c")  # the caller schedules it some other way
    assert len(lane) == 2
    lane.clear()
    assert len(lane) == 0
    queue.close()


async def test_lane_callbacks_may_add_and_fail_without_stopping_the_others() -> None:
    queue = TimerQueue(asyncio.get_running_loop())
    fired: list[str] = []
    done = asyncio.Event()

    def fire(item: str, arg: None) -> None:
        fired.append(item)
        if item == "a":
            raise RuntimeError("a bug in one callback")
        if item == "b":
            assert lane.add(queue.now() + 0.005, "again")  # re-armed from inside a fire
        if item == "again":
            done.set()

    lane: TimerLane[str] = TimerLane(queue, fire)
    now = queue.now()
    lane.add(now + 0.001, "a")
    lane.add(now + 0.001, "b")
    await asyncio.wait_for(done.wait(), 2)
    assert fired == ["a", "b", "again"]
    queue.close()
