"""Adaptive jitter buffer: RTP packets in, fixed 20 ms PCM frames out (sans-IO).

One ``JitterBuffer`` serves one received audio stream. The network side calls
``push`` for every RTP packet; the media clock calls ``pop`` once per 20 ms tick and
always gets exactly ``frame_samples`` int16 samples back, tagged with a ``FrameKind``.
Nothing here reads a clock: both calls take ``now`` (seconds, monotonic).

Design
------
*Decoded domain.* Payloads are decoded on arrival (the ``decode`` callable given to
the constructor) and the PCM is stored in a ring of samples addressed by the
*extended* (unwrapped, 64-bit) RTP timestamp, with a parallel validity mask. Packets
of any duration (10, 20, 30 ms, or odd sizes) therefore land in the right place and
are sliced or merged into 20 ms output frames for free. The RTP timestamp unit must
be one sample (true for G.711 and every 8 kHz narrowband codec).

*Playout point.* While playing, ``_play`` is the extended timestamp of the next
output frame and advances by one frame per ``pop``. A packet whose samples all lie
before it is *late* and dropped; one that straddles it is trimmed.

*Delay.* The delay of the buffer is the audio buffered beyond the frame being played
(``end - play - frame``; ``end`` is the end of the newest buffered packet), which for
a jitter-free stream is exactly how long each packet waits between ``push`` and the
``pop`` that plays it. Playout starts (and restarts after an underrun, a resync or a
talkspurt) once that reaches the target, or once the first packet has waited the
target delay (so a talkspurt shorter than the target still plays). The target
follows an RFC 3550 A.8 interarrival-jitter estimate, ``target = packet duration +
jitter_factor * J`` kept within ``[min_delay_ms, max_delay_ms]``: it rises at once
and decays exponentially (``shrink_time_constant_s``). The buffer's delay follows it

- upwards only when audio is missing anyway: a missing frame is *held* (concealed
  without advancing the playout point, for at most the target's worth of frames in
  a row) instead of being declared lost while the delay is a frame or more below
  target, and an empty buffer re-buffers to the target;
- downwards by dropping one frame when the smallest delay seen over the last second
  exceeds the target by a frame or more, and at a talkspurt start (marker bit on a
  drained buffer) by re-buffering to the current target.

*Loss.* A missing frame with later audio already buffered is lost: it is concealed
by repeating the last frame at -6 dB per repetition (or by zeros with
``concealment="silence"``) for ``max_concealed_frames``, then silence. A frame that
is only partly covered plays with the holes zeroed.

*Resync.* A new SSRC, or a timestamp (sequence number) jump beyond
``resync_threshold_ms`` (``resync_seq_threshold``) resets the buffer to the new
stream. Stray packets of the previous SSRC arriving within 0.5 s of a switch are
dropped as late rather than switching back.

The figures are exact when, within one tick, the caller pushes what has arrived
before popping; popping first makes every delay one frame longer than measured.

*Memory.* Never more than ``max_delay_ms`` plus one frame of audio is buffered;
a newer packet that would exceed it drops the oldest frames (``overflow``). The ring
(int16 samples and a bool mask, 6 KiB at the defaults) and the duplicate filter are
allocated once; per packet and per frame the work is a few slice operations.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from siphon.rtp.seq import seq_diff, ts_diff

__all__ = ["FrameKind", "JitterBuffer", "JitterFrame", "JitterStats", "Pcm"]

Pcm = npt.NDArray[np.int16]

_SEEN_SIZE = 256  # sequence numbers remembered for duplicate detection (power of 2)
_SEEN_MASK = _SEEN_SIZE - 1
_NEVER = -(1 << 62)  # matches no extended sequence number
_OLD_SSRC_GUARD_S = 0.5
_SHRINK_WINDOW = 50  # pops (1 s at 20 ms) over which the minimum delay is observed


class FrameKind(enum.Enum):
    AUDIO = "audio"
    """Received audio (possibly with zeroed holes where part of the frame is missing)."""
    CONCEALED = "concealed"
    """Stand-in for missing audio: the last frame repeated and faded, or zeros."""
    SILENCE = "silence"
    """Zeros: no stream yet, still buffering, or a loss longer than concealment covers."""


class JitterFrame(NamedTuple):
    pcm: Pcm
    """Exactly ``frame_samples`` int16 samples, owned by the caller."""
    kind: FrameKind
    timestamp: int | None
    """RTP timestamp of the frame's first sample; None for frames that cover no media
    time (before playout starts, and the frames inserted while the delay grows)."""


@dataclass(frozen=True, slots=True)
class JitterStats:
    received: int
    """Every ``push`` call, including the packets then dropped."""
    played: int
    """Frames popped as AUDIO."""
    lost: int
    """Frames of media time skipped because their audio never arrived in time."""
    late: int
    """Packets dropped because their playout time had passed."""
    duplicates: int
    reordered: int
    """Packets accepted although a higher sequence number had already arrived."""
    concealed: int
    """Frames popped as CONCEALED."""
    silence: int
    """Frames popped as SILENCE (``played + concealed + silence`` == pops)."""
    overflow: int
    """Frames of buffered audio dropped to stay within ``max_delay_ms``."""
    skipped: int
    """Frames dropped to shrink the delay towards the target."""
    resyncs: int
    target_delay_ms: float
    depth_ms: float
    """Audio buffered ahead of the playout point."""
    jitter_ms: float
    """RFC 3550 interarrival jitter estimate."""


class JitterBuffer:
    """Reorders, de-jitters and conceals one RTP audio stream; see the module doc."""

    # Per-stream state, (re)set by ``_clear_stream``; all positions are extended
    # (unwrapped) RTP timestamps.
    _playing: bool
    _play: int  # next frame's first sample (while playing)
    _head: int | None  # earliest buffered sample (while buffering)
    _floor: int | None  # samples before this are late (while re-buffering)
    _end: int  # end of the newest buffered packet
    _mark_seq: int | None  # highest sequence number seen when re-buffering began
    _buf_seq_lo: int  # lowest sequence number buffered since
    _buf_since: float  # arrival of the first packet buffered since
    _prev_transit: float | None
    _prev_seq: int
    _prev_ts: int
    _win_n: int
    _win_min: int
    _hold_run: int  # consecutive frames held back to grow the delay
    _seq_hi: int  # highest extended sequence number
    _ts_ref_raw: int  # highest timestamp, as sent and extended
    _ts_ref_ext: int

    def __init__(
        self,
        decode: Callable[[bytes], Pcm],
        *,
        clock_rate: int = 8000,
        frame_ms: int = 20,
        target_delay_ms: float = 40.0,
        min_delay_ms: float = 20.0,
        max_delay_ms: float = 200.0,
        adaptive: bool = True,
        concealment: Literal["repeat", "silence"] = "repeat",
        max_concealed_frames: int = 3,
        jitter_factor: float = 3.0,
        shrink_time_constant_s: float = 5.0,
        resync_threshold_ms: float = 1000.0,
        resync_seq_threshold: int = 100,
    ) -> None:
        frame = clock_rate * frame_ms // 1000
        if clock_rate <= 0 or frame <= 0 or frame * 1000 != clock_rate * frame_ms:
            raise ValueError("frame_ms must be a whole, positive number of samples")
        if not 0 <= min_delay_ms <= max_delay_ms:
            raise ValueError("need 0 <= min_delay_ms <= max_delay_ms")
        if concealment not in ("repeat", "silence"):
            raise ValueError("concealment must be 'repeat' or 'silence'")
        if max_concealed_frames < 0 or jitter_factor < 0 or shrink_time_constant_s <= 0:
            raise ValueError("invalid adaptation parameter")
        self._decode = decode
        self._rate = clock_rate
        self._frame = frame
        self._ms_per_sample = 1000.0 / clock_rate
        self._sec_per_sample = 1.0 / clock_rate
        self._min = min_delay_ms * clock_rate / 1000.0
        self._max = max_delay_ms * clock_rate / 1000.0
        self._initial_target = min(max(target_delay_ms * clock_rate / 1000.0, self._min), self._max)
        self._limit = math.ceil(self._max) + frame  # most samples ever buffered
        self._cap = 1 << (self._limit + frame - 1).bit_length()  # ring size, power of 2
        self._mask = self._cap - 1
        self._adaptive = adaptive
        self._repeat = concealment == "repeat"
        self._max_conceal = max_concealed_frames
        self._jitter_factor = jitter_factor
        self._alpha = frame_ms / 1000.0 / shrink_time_constant_s
        self._resync_ts = resync_threshold_ms * clock_rate / 1000.0
        self._resync_seq = resync_seq_threshold

        self._pcm: Pcm = np.zeros(self._cap, dtype=np.int16)
        self._valid = np.zeros(self._cap, dtype=np.bool_)
        self._last: Pcm = np.zeros(frame, dtype=np.int16)
        self._seen = [_NEVER] * _SEEN_SIZE
        # reset() minus clearing the arrays just made: one buffer is made per call.
        self._reset_state()

    # -- public API ------------------------------------------------------------------

    @property
    def frame_samples(self) -> int:
        return self._frame

    def reset(self) -> None:
        """Forget the stream, the statistics and the adapted delay."""
        self._valid[:] = False
        self._seen[:] = [_NEVER] * _SEEN_SIZE
        self._reset_state()

    def count_silence(self, frames: int) -> None:
        """Account for ``frames`` pops answered with silence before this buffer was made.

        An owner may make the buffer on the first packet rather than at the first
        tick (a call may end before any arrives): until a packet is pushed ``pop``
        only counts a SILENCE frame, which this does for the frames it answered.
        """
        self._silence += frames
        self._conceal_run += frames

    def _reset_state(self) -> None:
        self._received = self._played = self._lost = self._late = 0
        self._duplicates = self._reordered = self._concealed = self._silence = 0
        self._overflow = self._skipped = self._resyncs = 0
        self._target = self._initial_target
        self._desired = self._initial_target
        self._jitter = 0.0  # RFC 3550 J, in timestamp units
        self._pkt = self._frame  # packet duration estimate, in samples
        self._ssrc: int | None = None
        self._prev_ssrc: int | None = None
        self._switch_at = 0.0
        self._conceal_run = self._max_conceal  # nothing to repeat yet: start silent
        self._clear_stream()

    def push(
        self,
        seq: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        now: float,
        *,
        marker: bool = False,
    ) -> None:
        """Accept one RTP packet (its payload is one or more codec frames)."""
        self._received += 1
        seq &= 0xFFFF
        timestamp &= 0xFFFFFFFF
        ssrc &= 0xFFFFFFFF
        if ssrc != self._ssrc:
            if self._ssrc is not None:
                if ssrc == self._prev_ssrc and now - self._switch_at < _OLD_SSRC_GUARD_S:
                    self._late += 1
                    return
                self._prev_ssrc = self._ssrc
                self._switch_at = now
            self._new_stream(ssrc, seq, timestamp)
            dts = dseq = 0
        else:
            dts = ts_diff(timestamp, self._ts_ref_raw)
            dseq = seq_diff(seq, self._seq_hi & 0xFFFF)
            if abs(dts) > self._resync_ts or abs(dseq) > self._resync_seq:
                self._new_stream(ssrc, seq, timestamp)
                dts = dseq = 0

        ext_seq = self._seq_hi + dseq
        ts = self._ts_ref_ext + dts
        slot = ext_seq & _SEEN_MASK
        if self._seen[slot] == ext_seq:
            self._duplicates += 1
            return
        self._seen[slot] = ext_seq

        # RFC 3550 A.8 interarrival jitter, over every new packet in arrival order.
        transit = now * self._rate - ts
        if self._prev_transit is not None:
            self._jitter += (abs(transit - self._prev_transit) - self._jitter) / 16.0
        self._prev_transit = transit
        if ext_seq == self._prev_seq + 1 and 0 < ts - self._prev_ts <= self._limit:
            self._pkt = ts - self._prev_ts
        self._prev_seq = ext_seq
        self._prev_ts = ts
        if self._adaptive:
            desired = self._pkt + self._jitter_factor * self._jitter
            desired = min(max(desired, self._min), self._max)
            self._desired = desired
            if desired > self._target:
                self._target = desired

        pcm: Pcm = np.asarray(self._decode(payload)).reshape(-1)
        if pcm.shape[0]:
            if self._playing:
                accepted = self._place_playing(ts, pcm, ext_seq, now, marker)
            else:
                accepted = self._place_buffering(ts, pcm, ext_seq, now)
            if accepted and ext_seq < self._seq_hi:
                self._reordered += 1
        if ext_seq > self._seq_hi:
            self._seq_hi = ext_seq
        if ts > self._ts_ref_ext:
            self._ts_ref_ext = ts
            self._ts_ref_raw = timestamp

    def pop(self, now: float, *, out: Pcm | None = None) -> JitterFrame:
        """The next ``frame_samples`` of audio; call once per frame tick.

        ``now`` lets a buffered talkspurt start once its first packet has waited the
        target delay even if less audio than that has arrived.

        The samples go into ``out`` when given (a C-contiguous int16 array of
        ``frame_samples``, reused by the caller to avoid an allocation per frame),
        otherwise into a new array.
        """
        frame = self._frame
        buf: Pcm = np.empty(frame, dtype=np.int16) if out is None else out
        if self._adaptive and self._target > self._desired:
            self._target -= (self._target - self._desired) * self._alpha
            if self._target - self._desired < 1.0:
                self._target = self._desired
        if not self._playing:
            head = self._head
            if head is None or (
                self._end - head - frame < self._target
                and now - self._buf_since < self._target * self._sec_per_sample - 1e-6
            ):
                return self._conceal(buf, None)
            self._start_playout(head)

        play = self._play
        delay = self._end - play - frame
        if delay < self._win_min:
            self._win_min = delay
        self._win_n += 1
        if self._win_n >= _SHRINK_WINDOW:
            if self._win_min - self._target > frame - 1:  # (1: float noise)
                self._invalidate(play, play + frame)
                play += frame
                delay -= frame
                self._play = play
                self._skipped += 1
            self._win_n = 0
            self._win_min = self._limit

        if self._read(play, buf):
            self._play = play + frame
            self._played += 1
            self._conceal_run = 0
            self._hold_run = 0
            self._last[:] = buf
            return JitterFrame(buf, FrameKind.AUDIO, play & 0xFFFFFFFF)
        if self._end <= play:
            # Underrun: nothing buffered at all. Hold the playout point and re-buffer.
            self._to_buffering()
            return self._conceal(buf, None)
        if self._target - delay >= frame and self._hold_run * frame < self._target:
            # Later audio is here but the delay is short of target: grow by holding
            # (for at most the target's worth of frames in a row).
            self._hold_run += 1
            return self._conceal(buf, None)
        self._hold_run = 0
        self._lost += 1
        self._play = play + frame
        return self._conceal(buf, play & 0xFFFFFFFF)

    @property
    def stats(self) -> JitterStats:
        if self._playing:
            depth = max(0, self._end - self._play)
        elif self._head is not None:
            depth = self._end - self._head
        else:
            depth = 0
        ms = self._ms_per_sample
        return JitterStats(
            received=self._received,
            played=self._played,
            lost=self._lost,
            late=self._late,
            duplicates=self._duplicates,
            reordered=self._reordered,
            concealed=self._concealed,
            silence=self._silence,
            overflow=self._overflow,
            skipped=self._skipped,
            resyncs=self._resyncs,
            target_delay_ms=self._target * ms,
            depth_ms=depth * ms,
            jitter_ms=self._jitter * ms,
        )

    def loss_counts(self) -> tuple[int, int, int]:
        """``(lost, late, concealed)`` of ``stats``, without building all of it."""
        return self._lost, self._late, self._concealed

    # -- stream state ----------------------------------------------------------------

    def _clear_stream(self) -> None:
        self._playing = False
        self._play = 0
        self._head = None
        self._floor = None
        self._end = 0
        self._mark_seq = None
        self._buf_seq_lo = 0
        self._buf_since = 0.0
        self._prev_transit = None
        self._prev_seq = _NEVER
        self._prev_ts = 0
        self._win_n = 0
        self._win_min = self._limit
        self._hold_run = 0
        self._seq_hi = 0
        self._ts_ref_raw = 0
        self._ts_ref_ext = 0

    def _new_stream(self, ssrc: int, seq: int, timestamp: int) -> None:
        if self._ssrc is not None:
            self._resyncs += 1
            if self._playing or self._head is not None:
                self._valid[:] = False
            self._seen[:] = [_NEVER] * _SEEN_SIZE
        self._ssrc = ssrc
        self._clear_stream()
        self._seq_hi = seq
        self._ts_ref_raw = self._ts_ref_ext = timestamp

    def _start_playout(self, head: int) -> None:
        floor = self._floor
        if floor is not None and self._mark_seq is not None and head > floor:
            missing = self._buf_seq_lo - self._mark_seq - 1  # packets that never came
            if missing > 0:
                frames = min((head - floor) // self._frame, -(-missing * self._pkt // self._frame))
                self._lost += frames
        self._playing = True
        self._play = head
        self._head = None
        self._floor = None
        self._mark_seq = None
        self._win_n = 0
        self._win_min = self._limit
        self._hold_run = 0

    def _to_buffering(self) -> None:
        self._playing = False
        self._floor = self._play
        self._head = None
        self._mark_seq = self._seq_hi

    # -- placing packets -------------------------------------------------------------

    def _place_playing(self, ts: int, pcm: Pcm, ext_seq: int, now: float, marker: bool) -> bool:
        play = self._play
        end = ts + pcm.shape[0]
        if end <= play:
            self._late += 1
            return False
        old_end = self._end
        if marker and old_end <= play:
            # A talkspurt starts on a drained buffer: re-buffer it at the current target.
            self._to_buffering()
            return self._place_buffering(ts, pcm, ext_seq, now)
        if ts >= play + self._limit:
            # The stream jumped past the whole window: flush, and re-buffer from here.
            if old_end > play:
                self._overflow += -(-(old_end - play) // self._frame)
                self._invalidate(play, old_end)
            self._to_buffering()
            return self._place_buffering(ts, pcm, ext_seq, now)
        return self._write_playing(ts, pcm, play, end)

    def _write_playing(self, ts: int, pcm: Pcm, play: int, end: int) -> bool:
        new_end = max(self._end, end)
        if new_end - play > self._limit:
            frames = -(-(new_end - play - self._limit) // self._frame)
            new_play = play + frames * self._frame
            self._invalidate(play, new_play)
            self._overflow += frames
            self._play = play = new_play
            if end <= play:
                self._late += 1
                return False
        start = max(ts, play)
        self._write(start, pcm[start - ts :])
        self._end = new_end
        return True

    def _place_buffering(self, ts: int, pcm: Pcm, ext_seq: int, now: float) -> bool:
        end = ts + pcm.shape[0]
        start = ts
        floor = self._floor
        if floor is not None and start < floor:
            if end <= floor:
                self._late += 1
                return False
            start = floor
        head = self._head
        if head is None:
            start = max(start, end - self._limit)
            self._head = start
            self._end = end
            self._buf_seq_lo = ext_seq
            self._buf_since = now
        else:
            new_end = max(self._end, end)
            low = new_end - self._limit
            if end <= low:
                self._late += 1
                return False
            if start < low:
                start = low
            if head < low:
                self._overflow += -(-(low - head) // self._frame)
                self._invalidate(head, low)
                head = low
            self._head = min(head, start)
            self._end = new_end
            if ext_seq < self._buf_seq_lo:
                self._buf_seq_lo = ext_seq
        self._write(start, pcm[start - ts :])
        return True

    # -- ring access -----------------------------------------------------------------

    def _write(self, start: int, pcm: Pcm) -> None:
        n = pcm.shape[0]
        i = start & self._mask
        j = i + n
        if j <= self._cap:
            self._pcm[i:j] = pcm
            self._valid[i:j] = True
        else:
            k = self._cap - i
            self._pcm[i:] = pcm[:k]
            self._pcm[: n - k] = pcm[k:]
            self._valid[i:] = True
            self._valid[: n - k] = True

    def _invalidate(self, start: int, end: int) -> None:
        n = end - start
        if n <= 0:
            return
        if n >= self._cap:
            self._valid[:] = False
            return
        i = start & self._mask
        j = i + n
        if j <= self._cap:
            self._valid[i:j] = False
        else:
            self._valid[i:] = False
            self._valid[: j - self._cap] = False

    def _read(self, start: int, buf: Pcm) -> bool:
        """Move the frame at ``start`` into ``buf``; False (buf untouched) if it is empty."""
        frame = self._frame
        i = start & self._mask
        j = i + frame
        valid = self._valid
        if j <= self._cap:
            v = valid[i:j]
            count = int(np.count_nonzero(v))
            if not count:
                return False
            buf[:] = self._pcm[i:j]
            if count < frame:
                buf[~v] = 0
            v[:] = False
            return True
        k = self._cap - i
        v1 = valid[i:]
        v2 = valid[: j - self._cap]
        count = int(np.count_nonzero(v1)) + int(np.count_nonzero(v2))
        if not count:
            return False
        buf[:k] = self._pcm[i:]
        buf[k:] = self._pcm[: j - self._cap]
        if count < frame:
            buf[:k][~v1] = 0
            buf[k:][~v2] = 0
        v1[:] = False
        v2[:] = False
        return True

    def _conceal(self, buf: Pcm, timestamp: int | None) -> JitterFrame:
        self._conceal_run += 1
        run = self._conceal_run
        if run <= self._max_conceal:
            if self._repeat:
                np.right_shift(self._last, run, out=buf)  # -6.02 dB per repetition
            else:
                buf.fill(0)
            self._concealed += 1
            return JitterFrame(buf, FrameKind.CONCEALED, timestamp)
        buf.fill(0)
        self._silence += 1
        return JitterFrame(buf, FrameKind.SILENCE, timestamp)
