"""A new jitter buffer is in exactly the state ``reset()`` leaves; loss counts match stats."""

from __future__ import annotations

import numpy as np

from siphon.rtp.codecs import codec_for
from siphon.rtp.jitter import JitterBuffer

# Sample memory that neither path clears: unread while ``_valid`` is all False and
# concealment starts silent (``_conceal_run`` at its maximum).
_SAMPLES = {"_decode", "_pcm", "_last"}


def _state(buffer: JitterBuffer) -> dict[str, object]:
    return {
        name: value.tolist() if isinstance(value, np.ndarray) else value
        for name, value in vars(buffer).items()
        if name not in _SAMPLES
    }


def test_a_new_buffer_equals_a_used_buffer_after_reset() -> None:
    decode = codec_for("PCMU").decode
    used = JitterBuffer(decode)
    for seq in range(30):
        if seq % 7 != 3:  # some loss
            used.push(seq, seq * 160, 1234, b"\x10" * 160, seq * 0.02)
        used.pop(seq * 0.02 + 0.001)
    used.push(5000, 900_000, 99, b"\x20" * 160, 1.0)  # another stream: a resync
    assert _state(used) != _state(JitterBuffer(decode))
    used.reset()
    assert _state(used) == _state(JitterBuffer(decode))


def test_loss_counts_are_the_stats_fields() -> None:
    buffer = JitterBuffer(codec_for("PCMA").decode)
    assert buffer.loss_counts() == (0, 0, 0)
    now = 0.0
    for seq in range(60):
        if seq % 5 != 2:
            buffer.push(seq, seq * 160, 7, b"\xd5" * 160, now)
        if seq == 40:
            buffer.push(12, 12 * 160, 7, b"\xd5" * 160, now)  # lost, then far too late
        buffer.pop(now)
        now += 0.02
    stats = buffer.stats
    assert buffer.loss_counts() == (stats.lost, stats.late, stats.concealed)
    assert stats.lost > 0 and stats.late > 0 and stats.concealed > 0


def test_a_buffer_made_late_with_counted_silence_equals_one_popped_from_the_start() -> None:
    """An owner may make the buffer on the first packet, answering earlier ticks itself."""
    decode = codec_for("PCMU").decode
    early = JitterBuffer(decode)
    silent = [early.pop(0.02 * tick) for tick in range(7)]
    assert all(not frame.pcm.any() and frame.timestamp is None for frame in silent)
    late = JitterBuffer(decode)
    late.count_silence(7)
    assert _state(late) == _state(early)
    for seq in range(40):
        now = 0.14 + 0.02 * seq
        if seq % 9 != 4:  # some loss, so concealment runs too
            for buffer in (early, late):
                buffer.push(seq, seq * 160, 77, bytes([seq]) * 160, now)
        a, b = early.pop(now + 0.001), late.pop(now + 0.001)
        assert np.array_equal(a.pcm, b.pcm) and (a.kind, a.timestamp) == (b.kind, b.timestamp)
    assert early.stats == late.stats and early.stats.silence >= 7
