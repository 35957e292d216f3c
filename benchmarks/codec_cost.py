"""CPU cost of the media path's sample work: G.711 and resampling.

Every figure is CPU time per second of audio for one stream (one direction of one
call), the best of several repeats, with a baseline measured in the same run on
the same buffers: a numpy ``copy()`` of each chunk, the least any per-chunk numpy
work costs. The ratio says how many such copies the operation is worth.

G.711 is measured two ways: per 20 ms packet (50 calls a second, what the RTP
path does) and in one call on a whole second (the tables' raw speed).

For the resampler (``siphon.rtp.resample``, soxr) it also prints, per quality and
rate pair, the streaming timing fed 20 ms chunks: "first out", the input fed
before the first non-empty output (chunk included), and "delay", the worst-case
extra buffering a real-time consumer needs (``Resampler.delay_ms``).

    python benchmarks/codec_cost.py [--seconds 5] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import numpy.typing as npt

from siphon.rtp.codecs import PCMA, PCMU, G711Codec
from siphon.rtp.resample import QUALITIES, Resampler, measure_delay

PAIRS = [(8000, 16000), (16000, 8000), (8000, 24000), (24000, 8000), (8000, 48000), (48000, 8000)]


def best_us_per_audio_second(fn: Callable[[], object], audio_seconds: float, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time_ns()
        fn()
        best = min(best, (time.process_time_ns() - start) / 1000 / audio_seconds)
    return best


def speech_like(rate: int, seconds: float) -> npt.NDArray[np.int16]:
    """Noise shaped like speech levels (not silence, not full scale)."""
    rng = np.random.default_rng(1)
    return (rng.standard_normal(int(rate * seconds)) * 3000).clip(-32768, 32767).astype(np.int16)


def chunks_of(pcm: npt.NDArray[np.int16], size: int) -> list[npt.NDArray[np.int16]]:
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


def copy_all(chunks: Sequence[npt.NDArray[np.int16]]) -> Callable[[], object]:
    def run() -> None:
        for c in chunks:
            c.copy()

    return run


def row(label: str, us: float, base: float) -> str:
    return f"  {label:<34} {us:8.1f} µs/s   baseline {base:6.1f} µs/s   x{us / base:5.1f}"


def bench_g711(seconds: float, repeat: int) -> None:
    print(f"G.711, {seconds:g} s of 8 kHz audio (baseline: numpy copy of the same buffers)")
    pcm = speech_like(8000, seconds)
    frames = chunks_of(pcm, 160)
    base_frames = best_us_per_audio_second(copy_all(frames), seconds, repeat)
    base_bulk = best_us_per_audio_second(pcm.copy, seconds, repeat)
    for codec in (PCMU, PCMA):
        payloads = [codec.encode(f) for f in frames]
        whole = codec.encode(pcm)

        def enc_frames(codec: G711Codec = codec) -> None:
            for f in frames:
                codec.encode(f)

        def dec_frames(codec: G711Codec = codec, payloads: list[bytes] = payloads) -> None:
            for p in payloads:
                codec.decode(p)

        per = best_us_per_audio_second(enc_frames, seconds, repeat)
        print(row(f"{codec.name} encode, 20 ms packets", per, base_frames))
        per = best_us_per_audio_second(dec_frames, seconds, repeat)
        print(row(f"{codec.name} decode, 20 ms packets", per, base_frames))
        bulk = best_us_per_audio_second(partial(codec.encode, pcm), seconds, repeat)
        print(row(f"{codec.name} encode, one call", bulk, base_bulk))
        bulk = best_us_per_audio_second(partial(codec.decode, whole), seconds, repeat)
        print(row(f"{codec.name} decode, one call", bulk, base_bulk))


def bench_resample(seconds: float, repeat: int) -> None:
    print()
    print("Resampler (soxr), 20 ms chunks, per stream (baseline: numpy copy of each input chunk)")
    head = ("quality", "pair", "first out", "delay", "cost", "baseline", "ratio")
    print("  {:<8}{:<14}{:>10}{:>10}{:>12}{:>12}{:>8}".format(*head))
    for quality in QUALITIES:
        for in_rate, out_rate in PAIRS:
            chunks = chunks_of(speech_like(in_rate, seconds), in_rate // 50)
            base = best_us_per_audio_second(copy_all(chunks), seconds, repeat)

            def run(
                in_rate: int = in_rate,
                out_rate: int = out_rate,
                q: str = quality,
                chunks: list[npt.NDArray[np.int16]] = chunks,
            ) -> None:
                r = Resampler(in_rate, out_rate, q)
                for c in chunks:
                    r.process(c)

            cost = best_us_per_audio_second(run, seconds, repeat)
            first, delay = measure_delay(in_rate, out_rate, quality)
            pair = f"{in_rate // 1000}k->{out_rate // 1000}k"
            print(
                f"  {quality:<8}{pair:<14}{first:>7.0f} ms{delay:>7.1f} ms"
                f"{cost:>7.1f} µs/s{base:>7.1f} µs/s{cost / base:>7.1f}x"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="audio per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="keep the best of N runs")
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, numpy {np.__version__}")
    bench_g711(args.seconds, args.repeat)
    bench_resample(args.seconds, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
