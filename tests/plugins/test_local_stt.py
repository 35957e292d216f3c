"""The offline recogniser (pocketsphinx) on real speech: Piper sentences and SIPp's call.

The fixtures are described in ``fixtures/README.md``. Accuracy is word accuracy
(1 - word edit distance / reference words) against what the TTS was asked to say.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import logging
import threading
import time
import wave
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from siphon.errors import ConfigError
from siphon.plugins import base
from siphon.plugins.base import SpeechEvent, SpeechEventType
from siphon.plugins.local import STT
from siphon.plugins.local import stt as local_stt
from siphon.rtp.codecs import codec_for
from siphon.rtp.resample import Resampler
from siphon.voice.turns import SilenceEndpointing
from tests.voice import speech_8k

Pcm = npt.NDArray[np.int16]
FIXTURES = Path(__file__).parent / "fixtures"
FINAL, INTERIM = SpeechEventType.FINAL, SpeechEventType.INTERIM

# What a dental receptionist agent expects to hear (the fixture sentences are in it,
# or made of its words: "from tuesday morning to thursday afternoon please").
PHRASES = [
    "i would like to book an appointment",
    "i need to change my appointment",
    "can i cancel my appointment",
    "what time do you open",
    "what time do you close on saturday",
    "yes please",
    "no thank you",
    "that is right",
    "tuesday morning",
    "thursday afternoon",
    "next monday at ten",
    "my name is john smith",
    "i want to speak to a person",
    "is there parking near the clinic",
    "how much does a cleaning cost",
    "goodbye",
    "thank you very much",
    "can you repeat that",
    "from tuesday to thursday",
    "on saturday please",
]
SENTENCES = {
    "book_appointment": "i would like to book an appointment",
    "open_saturday": "what time do you open on saturday",
    "yes_please": "yes please",
    "change_appointment": (
        "i need to change my appointment from tuesday morning to thursday afternoon please"
    ),
}


@pytest.fixture(autouse=True)
def _need_pocketsphinx() -> None:
    # Not a skip: `make test` installs it, so its absence is a broken environment.
    if importlib.util.find_spec("pocketsphinx") is None:
        pytest.fail(
            "pocketsphinx is not installed: pip install 'siphon[local]' (make test does)",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def stt() -> STT:
    return STT(PHRASES)


def load(name: str) -> tuple[int, Pcm]:
    with wave.open(str(FIXTURES / f"{name}.wav")) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        rate = wav.getframerate()
        return rate, np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)


def upsample(pcm: Pcm, rate: int = 8000) -> Pcm:
    """As the runtime does it: 20 ms frames through a streaming Resampler to 16 kHz."""
    resampler = Resampler(rate, 16000)
    frame = rate // 50
    out = [resampler.process(pcm[i : i + frame]) for i in range(0, len(pcm), frame)]
    return np.concatenate([*out, resampler.flush()])


def speech_16k(name: str) -> Pcm:
    rate, pcm = load(name)
    return pcm if rate == 16000 else upsample(pcm, rate)


def telephone(name: str) -> Pcm:
    """A fixture as a caller's phone sends it: 8 kHz G.711 μ-law, then back to 16 kHz."""
    rate, pcm = load(name)
    if rate != 8000:
        down = Resampler(rate, 8000)
        pcm = np.concatenate([down.process(pcm), down.flush()])
    codec = codec_for("PCMU")
    return upsample(codec.decode(codec.encode(pcm)).astype(np.int16))


def frames(pcm: Pcm, n: int = 320) -> Iterator[Pcm]:
    for i in range(0, len(pcm), n):
        yield pcm[i : i + n]


def word_accuracy(reference: str, hypothesis: str) -> float:
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return 1 - row[-1] / len(ref)


async def transcribe(stream: base.STTStream, utterances: Sequence[Pcm]) -> list[SpeechEvent]:
    """Push each utterance in 20 ms frames then flush, as the session does; all events."""
    events: list[SpeechEvent] = []

    async def read() -> None:
        async for event in stream:
            events.append(event)
            if sum(e.type is FINAL for e in events) == len(utterances):
                return

    reader = asyncio.create_task(read())
    for pcm in utterances:
        for frame in frames(pcm):
            stream.push(frame)
            await asyncio.sleep(0)
        stream.flush()
    async with asyncio.timeout(30):
        await reader
    await stream.aclose()
    return events


def finals(events: Sequence[SpeechEvent]) -> list[str]:
    return [e.text for e in events if e.type is FINAL]


# -- recognition ----------------------------------------------------------------------------
def test_is_an_stt_provider(stt: STT) -> None:
    assert isinstance(stt, base.STT)
    assert stt.sample_rate == 16000
    assert "20 phrases" in repr(stt)


@pytest.mark.parametrize("name", sorted(SENTENCES))
async def test_phrases_recognise_the_sentences(stt: STT, name: str) -> None:
    events = await transcribe(stt.stream(), [speech_16k(name)])
    [text] = finals(events)
    assert word_accuracy(SENTENCES[name], text) >= 0.9, text
    final = events[-1]
    assert final.language == "en-US"
    assert final.confidence is not None and 0.5 < final.confidence <= 1.0


@pytest.mark.parametrize("name", sorted(SENTENCES))
async def test_phrases_recognise_telephone_audio(stt: STT, name: str) -> None:
    [text] = finals(await transcribe(stt.stream(), [telephone(name)]))
    assert word_accuracy(SENTENCES[name], text) >= 0.9, text


async def test_general_model_hears_some_words() -> None:
    general = STT()
    assert "general" in repr(general)
    [text] = finals(await transcribe(general.stream(), [speech_16k("book_appointment")]))
    heard = set(text.split()) & set(SENTENCES["book_appointment"].split())
    assert len(heard) >= 3, text


async def test_general_model_on_a_real_phone_call() -> None:
    pcm = upsample(speech_8k())
    events = await transcribe(STT().stream(), [pcm])
    assert len(finals(events)[0].split()) >= 3, events
    assert events[-1].end_time == pytest.approx(len(pcm) / 16000)


async def test_an_arpa_lm_of_your_own(tmp_path: Path) -> None:
    from pocketsphinx.lm import ArpaBoLM  # type: ignore[import-untyped]

    builder = ArpaBoLM(text="\n".join(PHRASES), add_start=True)
    builder.compute()
    path = tmp_path / "agent.arpa"
    with path.open("w") as f:
        builder.write(f)
    started = time.perf_counter()
    own = STT(lm=str(path))
    assert time.perf_counter() - started < 3  # the dictionary is cut to the LM's words
    [text] = finals(await transcribe(own.stream(), [speech_16k("open_saturday")]))
    assert word_accuracy(SENTENCES["open_saturday"], text) >= 0.9, text


# -- streaming behaviour --------------------------------------------------------------------
async def test_interims_come_before_the_final_of_a_long_utterance(stt: STT) -> None:
    pcm = speech_16k("change_appointment")  # 4.3 s
    events = await transcribe(stt.stream(), [pcm])
    *interims, final = events
    assert final.type is FINAL and len(interims) >= 5
    assert all(e.type is INTERIM and e.text and e.confidence is None for e in interims)
    texts = [e.text for e in interims]
    assert all(a != b for a, b in itertools.pairwise(texts))  # only changes
    ends = [e.end_time or 0.0 for e in events]
    assert ends == sorted(ends)
    gaps = np.diff([0.0, *ends[:-1]])
    assert min(gaps) >= 0.3 - 1e-9  # partial_interval of audio between interims
    assert all(e.start_time == 0.0 for e in events)
    assert final.end_time == pytest.approx(len(pcm) / 16000)


async def test_partial_interval_zero_gives_finals_only() -> None:
    quiet = STT(PHRASES, partial_interval=0)
    events = await transcribe(quiet.stream(), [speech_16k("change_appointment")])
    assert [e.type for e in events] == [FINAL]


async def test_utterances_keep_audio_order_and_times(stt: STT) -> None:
    a, b = speech_16k("book_appointment"), speech_16k("yes_please")
    events = await transcribe(stt.stream(), [a, b])
    assert finals(events) == [SENTENCES["book_appointment"], "yes please"]
    first = events.index(next(e for e in events if e.type is FINAL))
    second_utterance = events[first + 1 :]
    assert all(e.start_time == pytest.approx(len(a) / 16000) for e in second_utterance)
    assert events[-1].end_time == pytest.approx((len(a) + len(b)) / 16000)


async def test_flush_without_audio_gives_no_event(stt: STT) -> None:
    stream = stt.stream()
    stream.flush()
    stream.flush()
    await asyncio.sleep(0.05)
    await stream.aclose()
    assert [e async for e in stream] == []
    # and a flush right after a FINAL does not make a second, empty one
    events = await transcribe(stream := stt.stream(), [speech_16k("yes_please")])
    stream.flush()
    assert finals(events) == ["yes please"]


async def test_silence_gives_an_empty_final_that_the_turn_detector_discards(stt: STT) -> None:
    noise = np.random.default_rng(7).normal(0, 30, 16000).astype(np.int16)  # 1 s of hiss
    events = await transcribe(stt.stream(), [noise])
    assert [(e.type, e.text, e.confidence) for e in events] == [(FINAL, "", None)]
    endpointing = SilenceEndpointing()
    endpointing.on_speech_start(0.0)
    endpointing.on_speech_end(1.0)
    endpointing.on_transcript(events[0], 1.1)
    assert endpointing.poll(2.0) is None
    assert endpointing.discarded_turns == 1


async def test_aclose_is_idempotent_and_ends_iteration(stt: STT) -> None:
    stream = stt.stream()
    seen: list[SpeechEvent] = []

    async def read() -> None:
        async for event in stream:
            seen.append(event)

    reader = asyncio.create_task(read())
    for frame in frames(speech_16k("change_appointment")[:32000]):  # 2 s, no flush
        stream.push(frame)
        await asyncio.sleep(0)
    await stream.aclose()
    await stream.aclose()
    async with asyncio.timeout(5):
        await reader  # the iteration ended
    assert all(e.type is INTERIM for e in seen)  # the open utterance is dropped, not finalised
    stream.push(speech_16k("yes_please"))  # ignored after close
    stream.flush()
    assert [e async for e in stream] == []
    assert asyncio.all_tasks() == {asyncio.current_task()}
    workers = [t for t in threading.enumerate() if t.name.startswith("siphon-stt")]
    assert len(workers) == 1  # the one shared decoding thread, not one per stream

    never_used = stt.stream()
    await never_used.aclose()
    await never_used.aclose()
    assert [e async for e in never_used] == []


async def test_decoders_are_pooled_and_reset_between_streams(stt: STT) -> None:
    pcm = speech_16k("open_saturday")
    first = await transcribe(stt.stream(), [speech_16k("change_appointment"), pcm])
    model = local_stt._load_model(stt._model.key)
    idle = len(model._idle)
    again = await transcribe(stt.stream(), [pcm])
    assert len(model._idle) == idle  # borrowed and given back, none created
    fresh = await transcribe(STT(PHRASES).stream(), [pcm])
    assert STT(PHRASES)._model is stt._model  # loaded once per configuration
    # Each stream starts from the model's cepstral mean, not the last caller's.
    assert finals(again) == finals(fresh)
    assert again[-1].confidence == fresh[-1].confidence
    assert finals(first)[1] == finals(again)[0]


async def test_a_decoding_failure_ends_the_iteration_with_the_error(
    stt: STT, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = stt.stream()

    def broken(work: object) -> list[SpeechEvent]:
        raise RuntimeError("Failed to process audio")

    monkeypatch.setattr(stream, "_decode", broken)
    stream.push(speech_16k("yes_please"))
    with pytest.raises(RuntimeError, match="Failed to process"):
        async with asyncio.timeout(5):
            async for _ in stream:
                pass
    await stream.aclose()


async def test_decoding_never_blocks_the_event_loop(stt: STT) -> None:
    """Three callers talking at once, pushed faster than real time, while a probe
    measures how late the loop wakes it.

    The best of three runs counts: the OS may preempt the whole process on a busy
    machine (that is not the decoder's doing), while a pocketsphinx call holding
    the GIL too long would show in every run.
    """
    loop = asyncio.get_running_loop()
    pcm = speech_16k("change_appointment")
    # Creating decoders is not decoding (10 ms each here, 0.25 s for the general
    # model; the pool makes it rare): have three before the clock starts.
    await asyncio.gather(*(transcribe(stt.stream(), [pcm[:8000]]) for _ in range(3)))

    async def run() -> tuple[float, float]:
        lags: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:
            while not done.is_set():
                before = loop.time()
                await asyncio.sleep(0.005)
                lags.append(loop.time() - before - 0.005)

        probing = asyncio.create_task(probe())
        started = time.process_time()
        calls = await asyncio.gather(*(transcribe(stt.stream(), [pcm, pcm]) for _ in range(3)))
        cpu = time.process_time() - started
        done.set()
        await probing
        for events in calls:
            assert finals(events) == [SENTENCES["change_appointment"]] * 2
        assert len(lags) > 50
        return max(lags), cpu / (6 * len(pcm) / 16000)

    runs = []
    for _ in range(3):
        runs.append(await run())
        if runs[-1][0] < 0.025:
            break
    worst_lag, cpu_per_second = min(runs)
    assert worst_lag < 0.025, f"loop lag max {[f'{lag * 1000:.1f} ms' for lag, _ in runs]}"
    assert cpu_per_second < 0.15  # CPU seconds per audio second, the pushing included


async def test_flush_to_final_latency(stt: STT) -> None:
    stream = stt.stream()
    pcm = speech_16k("open_saturday")  # ~2 s
    for frame in frames(pcm):
        stream.push(frame)
    await asyncio.sleep(0.5)  # the decoder has caught up, as it does during speech
    flushed = time.perf_counter()
    stream.flush()
    async for event in stream:
        if event.type is FINAL:
            break
    latency = time.perf_counter() - flushed
    await stream.aclose()
    assert event.text == SENTENCES["open_saturday"]
    assert latency < 0.1, f"flush -> FINAL {latency * 1000:.1f} ms"


# -- configuration --------------------------------------------------------------------------
async def test_unknown_phrase_words_are_left_out_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="siphon.plugins.local.stt"):
        odd = STT([*PHRASES, "call me at 10 xyzzy", "", "!!!"])
        STT([*PHRASES, "call me at 10 xyzzy", "", "!!!"])  # cached: no second warning
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "10, xyzzy" in warnings[0]
    [text] = finals(await transcribe(odd.stream(), [speech_16k("book_appointment")]))
    assert text == SENTENCES["book_appointment"]


async def test_phrases_with_no_known_word_fall_back_to_the_general_model(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="siphon.plugins.local.stt"):
        odd = STT(["xyzzy plugh", "42"])
    assert "general model" in caplog.text
    [text] = finals(await transcribe(odd.stream(), [speech_16k("yes_please")]))
    assert "yes" in text.split()


def test_phrases_are_normalised() -> None:
    assert local_stt.normalize_phrase("I'd like 'two' tickets, please!") == [
        "i'd",
        "like",
        "two",
        "tickets",
        "please",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"phrases": "yes please"}, "list of sentences"),
        ({"phrases": ["yes"], "lm": "/tmp/x.arpa"}, "not both"),
        ({"sample_rate": 8000}, "16000 Hz"),
        ({"language": "de-DE"}, "US English"),
        ({"partial_interval": -1}, "partial_interval"),
        ({"dictionary": "/nonexistent.dict"}, "does not exist"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        STT(**kwargs)  # type: ignore[arg-type]


def test_an_unreadable_lm_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.arpa"
    bad.write_text("not a language model\n")
    with pytest.raises(ConfigError, match="could not load the language model"):
        STT(lm=str(bad))
