"""siphon.rtp.seq: wrap-aware arithmetic and the RFC 3550 A.1/A.3 sequence tracker."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from siphon.errors import ConfigError
from siphon.rtp.seq import (
    MAX_DROPOUT,
    MAX_MISORDER,
    SEQ_MOD,
    TS_MOD,
    SequenceTracker,
    extend_seq,
    extend_ts,
    seq_add,
    seq_diff,
    seq_newer,
    ts_add,
    ts_diff,
    ts_newer,
)

# --- arithmetic ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "diff"),
    [
        (0, 0, 0),
        (1, 0, 1),
        (0, 1, -1),
        (0, 65535, 1),  # wrap forwards
        (65535, 0, -1),  # wrap backwards
        (1, 65535, 2),
        (65534, 2, -4),
        (100, 50, 50),
        (50, 100, -50),
        (32767, 0, 32767),  # largest forward distance
        (0, 32767, -32767),
        (32768, 0, -32768),  # half-way: ambiguous, most negative both ways
        (0, 32768, -32768),
        (65535, 32768, 32767),
        (32767, 32768, -1),
        (32768, 32767, 1),
    ],
)
def test_seq_diff(a: int, b: int, diff: int) -> None:
    assert seq_diff(a, b) == diff
    assert seq_newer(a, b) is (diff > 0)


@pytest.mark.parametrize(
    ("a", "b", "diff"),
    [
        (0, 0, 0),
        (0, TS_MOD - 1, 1),
        (TS_MOD - 1, 0, -1),
        (160, TS_MOD - 160, 320),
        (TS_MOD - 160, 160, -320),
        ((1 << 31) - 1, 0, (1 << 31) - 1),
        (1 << 31, 0, -(1 << 31)),
        (0, 1 << 31, -(1 << 31)),
        (1 << 31, (1 << 31) - 1, 1),
        ((1 << 31) - 1, 1 << 31, -1),
        (8000, 0, 8000),
    ],
)
def test_ts_diff(a: int, b: int, diff: int) -> None:
    assert ts_diff(a, b) == diff
    assert ts_newer(a, b) is (diff > 0)


def test_half_way_is_newer_neither_way() -> None:
    assert not seq_newer(0, 32768) and not seq_newer(32768, 0)
    assert not ts_newer(0, 1 << 31) and not ts_newer(1 << 31, 0)


@pytest.mark.parametrize(
    ("seq", "n", "result"),
    [(65535, 1, 0), (0, -1, 65535), (65000, 1000, 464), (5, 0, 5), (0, SEQ_MOD, 0)],
)
def test_seq_add(seq: int, n: int, result: int) -> None:
    assert seq_add(seq, n) == result


@pytest.mark.parametrize(
    ("ts", "n", "result"),
    [(TS_MOD - 1, 1, 0), (0, -160, TS_MOD - 160), (TS_MOD - 80, 160, 80)],
)
def test_ts_add(ts: int, n: int, result: int) -> None:
    assert ts_add(ts, n) == result


@pytest.mark.parametrize(
    ("seq", "reference", "extended"),
    [
        (10, 10, 10),
        (0, 65535, 65536),  # crossed into the next cycle
        (65535, 65536, 65535),  # a late packet from the previous cycle
        (5, 3 * SEQ_MOD + 65530, 4 * SEQ_MOD + 5),
        (65530, 4 * SEQ_MOD + 5, 3 * SEQ_MOD + 65530),
        (100, 2 * SEQ_MOD + 90, 2 * SEQ_MOD + 100),
    ],
)
def test_extend_seq(seq: int, reference: int, extended: int) -> None:
    assert extend_seq(seq, reference) == extended


def test_extend_ts() -> None:
    assert extend_ts(80, TS_MOD - 80) == TS_MOD + 80
    assert extend_ts(TS_MOD - 80, TS_MOD + 80) == TS_MOD - 80


@given(st.integers(0, SEQ_MOD - 1), st.integers(-(SEQ_MOD // 2), SEQ_MOD // 2 - 1))
def test_seq_diff_inverts_seq_add(a: int, d: int) -> None:
    assert seq_diff(seq_add(a, d), a) == d
    assert seq_diff(a, seq_add(a, d)) == (-d if d != -(SEQ_MOD // 2) else d)


@given(st.integers(0, TS_MOD - 1), st.integers(-(TS_MOD // 2) + 1, TS_MOD // 2 - 1))
def test_ts_diff_inverts_ts_add(a: int, d: int) -> None:
    assert ts_diff(ts_add(a, d), a) == d
    assert ts_diff(a, ts_add(a, d)) == -d


# --- SequenceTracker: RFC 3550 A.1 ----------------------------------------------


def feed(tracker: SequenceTracker, seqs: list[int]) -> list[bool]:
    return [tracker.update(s) for s in seqs]


def valid_tracker(start: int = 1000, count: int = 2) -> SequenceTracker:
    """A tracker that passed probation at ``start + 1`` and has seen up to ``start + count - 1``."""
    t = SequenceTracker()
    assert feed(t, [seq_add(start, i) for i in range(count)]) == [False] + [True] * (count - 1)
    return t


@pytest.mark.parametrize(
    ("seqs", "results", "received", "base"),
    [
        # MIN_SEQUENTIAL = 2: the first packet starts probation and is not counted.
        ([10, 11], [False, True], 1, 11),
        ([10, 11, 12], [False, True, True], 2, 11),
        # Out of sequence during probation restarts it.
        ([10, 12, 13], [False, False, True], 1, 13),
        ([10, 10, 11], [False, False, True], 1, 11),
        ([10, 9, 10], [False, False, True], 1, 10),
        # Probation across the 16-bit wrap (the RFC's C would restart here).
        ([65535, 0, 1], [False, True, True], 2, 0),
    ],
)
def test_probation(seqs: list[int], results: list[bool], received: int, base: int) -> None:
    t = SequenceTracker()
    assert feed(t, seqs) == results
    assert t.valid
    assert t.received == received
    assert t.base_seq == base
    assert t.lost == 0


def test_probation_counts_rejections() -> None:
    t = SequenceTracker()
    assert not t.valid
    assert t.expected == 0 and t.lost == 0
    feed(t, [10, 20, 30])
    assert not t.valid and t.rejected == 3 and t.received == 0


@pytest.mark.parametrize("min_sequential", [1, 3, 5])
def test_min_sequential(min_sequential: int) -> None:
    t = SequenceTracker(min_sequential)
    results = feed(t, list(range(100, 100 + min_sequential + 1)))
    assert results == [False] * (min_sequential - 1) + [True, True]
    assert t.base_seq == 100 + min_sequential - 1
    assert t.received == 2


def test_min_sequential_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        SequenceTracker(0)


@pytest.mark.parametrize("start", [65530, 65534, 65535, 0, 32767, 32768])
def test_wrap_counts_cycle(start: int) -> None:
    t = SequenceTracker()
    seqs = [seq_add(start, i) for i in range(20)]
    assert feed(t, seqs) == [False] + [True] * 19
    base = seq_add(start, 1)
    assert t.base_seq == base
    wrapped = base + 18 >= SEQ_MOD
    assert t.cycles == (SEQ_MOD if wrapped else 0)
    assert t.extended_max == base + 18
    assert t.max_seq == seq_add(start, 19)
    assert t.expected == 19 == t.received
    assert t.lost == 0


def test_many_cycles() -> None:
    t = valid_tracker(0)
    seq = 1
    for _ in range(3 * SEQ_MOD):
        seq = seq_add(seq, 1)
        assert t.update(seq)
    assert t.cycles == 3 * SEQ_MOD
    assert t.extended_max == 3 * SEQ_MOD + 1
    assert t.expected == t.received == 3 * SEQ_MOD + 1


@pytest.mark.parametrize("gap", [2, 10, MAX_DROPOUT - 1])
def test_gap_within_dropout_is_loss(gap: int) -> None:
    t = valid_tracker(65000, 3)  # base 65001, max 65002
    assert t.update(seq_add(65002, gap))
    assert t.extended_max == 65002 + gap
    assert t.expected == 2 + gap
    assert t.received == 3
    assert t.lost == gap - 1


@pytest.mark.parametrize("jump", [MAX_DROPOUT, 10_000, SEQ_MOD - MAX_MISORDER])
def test_large_jump_is_dropped_unless_followed(jump: int) -> None:
    t = valid_tracker(1000, 5)  # max 1004
    far = seq_add(1004, jump)
    assert not t.update(far)
    assert t.bad_seq == seq_add(far, 1)
    assert t.max_seq == 1004 and t.rejected == 2  # 1 from probation + this one
    # The old stream carries on undisturbed.
    assert t.update(1005)
    assert t.max_seq == 1005 and t.restarts == 0
    assert t.lost == 0


def test_restart_after_two_sequential_jumps() -> None:
    t = valid_tracker(1000, 10)
    assert not t.update(40000)
    assert t.update(40001)  # bad_seq matched: the sender restarted
    assert t.restarts == 1
    assert t.base_seq == t.max_seq == 40001
    assert t.received == 1 and t.cycles == 0 and t.lost == 0
    assert t.update(40002)
    assert t.expected == t.received == 2


def test_restart_needs_exactly_the_next_number() -> None:
    t = valid_tracker(1000, 10)
    assert not t.update(40000)
    assert not t.update(40005)  # not 40001: still a jump, bad_seq moves on
    assert t.bad_seq == 40006
    assert t.update(40006)
    assert t.restarts == 1 and t.base_seq == 40006


@pytest.mark.parametrize("behind", [1, 2, 50, MAX_MISORDER - 1])
def test_misordered_packet_counts(behind: int) -> None:
    t = valid_tracker(2000, 2)  # base 2001, max 2001
    top = 2001 + MAX_MISORDER + 10
    for s in range(2002, top + 1):
        if s != top - behind:
            assert t.update(s)
    assert t.lost == 1
    assert t.update(top - behind)  # the late one
    assert t.reordered == 1 and t.duplicates == 0
    assert t.lost == 0
    assert t.max_seq == top


def test_too_late_is_a_jump() -> None:
    t = valid_tracker(2000, 300)  # max 2299
    assert not t.update(2299 - MAX_MISORDER)  # udelta == SEQ_MOD - MAX_MISORDER
    assert t.reordered == 0 and t.rejected == 2


@pytest.mark.parametrize(
    ("seqs", "reordered", "duplicates", "received", "lost"),
    [
        ([5, 5], 0, 1, 3, -1),  # duplicate of the highest
        ([5, 4], 0, 1, 3, -1),  # duplicate of an older one
        ([6, 5], 1, 0, 3, 0),  # 5 was missing, then arrives late
        ([6, 4, 5], 1, 1, 4, -1),
        ([6, 5, 5, 5], 1, 2, 5, -2),
        ([7, 5, 6, 5, 6], 2, 2, 6, -2),
    ],
)
def test_reordered_and_duplicates(
    seqs: list[int], reordered: int, duplicates: int, received: int, lost: int
) -> None:
    t = SequenceTracker()
    feed(t, [3, 4])  # base 4
    feed(t, seqs)
    assert t.reordered == reordered
    assert t.duplicates == duplicates
    assert t.received == received
    assert t.lost == lost  # negative per RFC 3550 when duplicates arrive


def test_reorder_and_duplicate_across_wrap() -> None:
    t = valid_tracker(65533, 2)  # base 65534
    assert t.update(0)
    assert t.update(1)  # 65535 missing
    assert t.cycles == SEQ_MOD and t.lost == 1
    assert t.update(65535)
    assert t.reordered == 1 and t.lost == 0
    assert t.cycles == SEQ_MOD  # a late packet does not undo the cycle
    assert t.update(65535)
    assert t.duplicates == 1 and t.lost == -1


# --- SequenceTracker: RFC 3550 A.3 fraction lost ----------------------------------


def test_fraction_lost_intervals() -> None:
    t = valid_tracker(100, 2)  # base 101
    for s in range(102, 111):
        if s != 105:
            t.update(s)
    # Interval 1: expected 10 (101..110), received 9.
    assert t.expected == 10 and t.received == 9 and t.lost == 1
    assert t.fraction_lost == 25  # (1 << 8) // 10
    assert t.fraction_lost == 25  # the property does not reset
    assert t.take_fraction_lost() == 25
    assert t.fraction_lost == 0  # nothing new since the report
    assert t.take_fraction_lost() == 0
    # Interval 2: no loss.
    for s in range(111, 121):
        t.update(s)
    assert t.take_fraction_lost() == 0
    # Interval 3: 4 of 10 lost.
    for s in range(121, 131):
        if s not in (122, 124, 126, 128):
            t.update(s)
    assert t.take_fraction_lost() == (4 << 8) // 10 == 102
    assert t.lost == 5
    # Interval 4: duplicates only: more received than expected -> 0, not negative.
    t.update(130)
    t.update(129)
    assert t.take_fraction_lost() == 0


def test_fraction_lost_all_but_one_lost() -> None:
    t = valid_tracker(0, 2)  # base 1
    t.take_fraction_lost()
    t.update(101)  # 2..100 lost
    assert t.take_fraction_lost() == (99 << 8) // 100 == 253


def test_restart_resets_interval() -> None:
    t = valid_tracker(0, 2)
    t.update(5)
    t.take_fraction_lost()
    t.update(30000)
    t.update(30001)
    assert t.restarts == 1
    assert t.fraction_lost == 0
    assert t.expected == 1 and t.received == 1
