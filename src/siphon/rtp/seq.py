"""Sequence-number and timestamp arithmetic, and the RFC 3550 A.1 sequence tracker.

Every comparison of RTP sequence numbers (16 bits) or timestamps (32 bits) in
SIPHON goes through this module, so wrap-around is handled in exactly one place.
Plain ``<`` on two sequence numbers is a bug: 65535 is *older* than 0.

The half-way point is ambiguous: two values exactly half the space apart (32768
sequence numbers, 2**31 timestamp ticks) give the most negative distance both
ways, so neither is "newer" than the other.
"""

from __future__ import annotations

from siphon.errors import ConfigError

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
_SEQ_MASK = SEQ_MOD - 1
_SEQ_HALF = SEQ_MOD >> 1
_TS_MASK = TS_MOD - 1
_TS_HALF = TS_MOD >> 1


def seq_diff(a: int, b: int) -> int:
    """The signed distance ``a - b`` between two 16-bit sequence numbers, wrap-aware.

    In ``[-32768, 32767]``: ``seq_diff(0, 65535) == 1``, ``seq_diff(65535, 0) == -1``.
    """
    return ((a - b + _SEQ_HALF) & _SEQ_MASK) - _SEQ_HALF


def seq_newer(a: int, b: int) -> bool:
    """Whether sequence number ``a`` comes after ``b`` (wrap-aware)."""
    return seq_diff(a, b) > 0


def seq_add(seq: int, n: int) -> int:
    """``seq + n`` modulo 2**16 (``n`` may be negative)."""
    return (seq + n) & _SEQ_MASK


def ts_diff(a: int, b: int) -> int:
    """The signed distance ``a - b`` between two 32-bit RTP timestamps, wrap-aware."""
    return ((a - b + _TS_HALF) & _TS_MASK) - _TS_HALF


def ts_newer(a: int, b: int) -> bool:
    """Whether timestamp ``a`` comes after ``b`` (wrap-aware)."""
    return ts_diff(a, b) > 0


def ts_add(ts: int, n: int) -> int:
    """``ts + n`` modulo 2**32 (``n`` may be negative)."""
    return (ts + n) & _TS_MASK


def extend_seq(seq: int, reference: int) -> int:
    """The extended (unwrapped) sequence number for ``seq`` nearest to ``reference``.

    ``reference`` is an already-extended sequence number (e.g. the highest seen).
    The result may be below zero when ``seq`` lies just before the very first
    cycle; callers that need non-negative values keep their reference away from 0.
    """
    return reference + seq_diff(seq, reference & _SEQ_MASK)


def extend_ts(ts: int, reference: int) -> int:
    """The extended (unwrapped) timestamp for ``ts`` nearest to extended ``reference``."""
    return reference + ts_diff(ts, reference & _TS_MASK)


# RFC 3550 Appendix A.1 parameters.
MIN_SEQUENTIAL = 2
MAX_DROPOUT = 3000
MAX_MISORDER = 100
# How many sequence numbers behind the highest we remember, to tell a late
# (reordered) packet from a duplicate. Must cover MAX_MISORDER.
_HISTORY = 128
_HISTORY_MASK = (1 << _HISTORY) - 1


class SequenceTracker:
    """Per-source sequence state: RFC 3550 Appendix A.1 ``update_seq`` and A.3.

    Feed every RTP packet of one SSRC to :meth:`update`; it returns whether the
    packet counts (the source is valid and the number is plausible). A new source
    is on *probation* until ``min_sequential`` packets arrive in sequence; as in
    the RFC the first packet of a probation run is not counted in ``received``
    and ``base_seq`` is the packet that ended probation. A jump of more than
    ``MAX_DROPOUT`` ahead (or more than ``MAX_MISORDER`` behind) is dropped,
    unless the very next packet follows it, in which case the sender is assumed
    to have restarted and the state re-syncs (``restarts`` counts these; the
    cumulative counters start over, as ``init_seq`` does in the RFC).

    Deviation from the RFC's C code: the in-sequence test during probation is
    done modulo 2**16 (the C compares ``seq == max_seq + 1`` after integer
    promotion, so a probation run across 65535 -> 0 restarts needlessly).

    ``reordered`` and ``duplicates`` are extra counters (not in the RFC): a packet
    up to ``MAX_MISORDER`` behind the highest is a duplicate if that number was
    already seen, reordered otherwise. Duplicates still count in ``received``, as
    in the RFC, which is why ``lost`` can go negative.
    """

    __slots__ = (
        "_expected_prior",
        "_history",
        "_min_sequential",
        "_received_prior",
        "_started",
        "bad_seq",
        "base_seq",
        "cycles",
        "duplicates",
        "max_seq",
        "probation",
        "received",
        "rejected",
        "reordered",
        "restarts",
    )

    def __init__(self, min_sequential: int = MIN_SEQUENTIAL) -> None:
        if min_sequential < 1:
            raise ConfigError("min_sequential must be at least 1")
        self._min_sequential = min_sequential
        self._started = False
        self.base_seq = 0
        self.max_seq = 0
        self.bad_seq = SEQ_MOD + 1  # never equal to a 16-bit number
        self.cycles = 0  # shifted count: a multiple of SEQ_MOD
        self.probation = min_sequential
        self.received = 0
        self._received_prior = 0
        self._expected_prior = 0
        # Bit i set: extended sequence number (highest - i) has been seen.
        self._history = 0
        self.reordered = 0
        self.duplicates = 0
        self.restarts = 0
        # Packets update() refused (probation runs, large jumps): not in the RFC.
        self.rejected = 0

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self._received_prior = 0
        self._expected_prior = 0
        self._history = 1

    @property
    def valid(self) -> bool:
        """Whether the source has passed probation."""
        return self._started and self.probation == 0

    def update(self, seq: int) -> bool:
        """Account for a packet with sequence number ``seq``; True if it counts."""
        seq &= _SEQ_MASK
        if not self._started:
            # A new source (RFC 3550 A.1): init_seq, max_seq = seq - 1, probation.
            self._started = True
            self._init_seq(seq)
            self.max_seq = (seq - 1) & _SEQ_MASK
            self.probation = self._min_sequential
        udelta = (seq - self.max_seq) & _SEQ_MASK
        if self.probation:
            if udelta == 1:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = self._min_sequential - 1
                self.max_seq = seq
            self.rejected += 1
            return False
        if udelta < MAX_DROPOUT:
            # In order, with a permissible gap.
            if udelta == 0:
                self.duplicates += 1
            else:
                if seq < self.max_seq:
                    self.cycles += SEQ_MOD  # wrapped: another 64K cycle
                self.max_seq = seq
                self._history = ((self._history << udelta) | 1) & _HISTORY_MASK
        elif udelta <= SEQ_MOD - MAX_MISORDER:
            # A very large jump: two in a row means the sender restarted.
            if seq == self.bad_seq:
                self._init_seq(seq)
                self.restarts += 1
            else:
                self.bad_seq = (seq + 1) & _SEQ_MASK
                self.rejected += 1
                return False
        else:
            # Duplicate or reordered (at most MAX_MISORDER behind).
            bit = 1 << (SEQ_MOD - udelta)
            if self._history & bit:
                self.duplicates += 1
            else:
                self._history |= bit
                self.reordered += 1
        self.received += 1
        return True

    @property
    def extended_max(self) -> int:
        """The extended highest sequence number received (cycles + max_seq)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected since the base (A.3); 0 before the source is valid."""
        if not self.valid:
            return 0
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3): expected - received; negative with duplicates."""
        return self.expected - self.received

    def _interval(self) -> tuple[int, int]:
        expected = self.expected
        return expected - self._expected_prior, self.received - self._received_prior

    @property
    def fraction_lost(self) -> int:
        """Fraction lost since the last report, in 1/256 units (A.3); does not reset."""
        expected_interval, received_interval = self._interval()
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            return 0
        return min((lost_interval << 8) // expected_interval, 255)

    def take_fraction_lost(self) -> int:
        """:attr:`fraction_lost`, then start a new reporting interval (call once per report)."""
        fraction = self.fraction_lost
        self._expected_prior = self.expected
        self._received_prior = self.received
        return fraction
