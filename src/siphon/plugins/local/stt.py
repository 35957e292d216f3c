"""Offline streaming speech recognition with pocketsphinx (CMU Sphinx), no network.

``STT(phrases)`` builds a small trigram language model from the sentences the
agent expects callers to say, so recognition is constrained to that vocabulary;
``STT()`` uses the 72k-word US English model the pocketsphinx wheel ships.
Constrained is the mode to use on the phone: the general model gets about 60%
of the words of telephone speech right, a phrase model all of them in our tests
(see below). Words outside the phrases come out as the nearest phrase words.

    stt = STT([
        "i would like to book an appointment",
        "what time do you open on saturday",
        "yes please", "no thank you", ...
    ])

Phrases are lower-cased and stripped of punctuation; write numbers as words
("ten thirty", not "10:30"). Words missing from the pronunciation dictionary are
left out of the model, with one warning naming them.

How it runs: the configuration, pruned dictionary and language model are
built once per process and configuration; the ``NGramModel`` is shared by all
decoders (the general one is 33 MB). pocketsphinx 5 has no way to share the
rest of a ``Decoder`` (acoustic model, dictionary, search) between decoders,
except that it memory-maps the senone tables, so those pages are shared. Each
stream borrows a decoder from a pool on its first audio and gives it back on
``aclose`` with the cepstral mean reset, so nothing carries from one call to the
next and decoders are created only when more calls talk at once than before.

The binding holds the GIL for the whole of every pocketsphinx call
(``_pocketsphinx.pyx`` has no ``nogil``): threads give no parallelism (two
threads decoding two streams took as long as one thread doing both), and a long
call freezes the event loop whatever thread makes it. So all decoding runs on
one shared worker thread (which also serialises use of the shared language
models), audio is handed over once per ``BATCH_SECONDS`` of speech, and the
worker feeds the decoder ``SLICE_SECONDS`` at a time so the loop gets the GIL
back between calls. The second decoding pass (``fwdflat``) is off: it held the
GIL for 90 ms (phrases) to 320 ms (general model) at the end of an utterance
and changed no word of the test sentences. ``bestpath`` stays on: it costs
~1 ms with phrases and gives the word posteriors used as the confidence.

Measured here (AMD EPYC, 2 cores, CPython 3.11, pocketsphinx 5.1.1, the tests'
Piper sentences; "phrases" are the tests' 20 sentences, 56 words):

    start-up, phrases        0.05-0.1 s: dictionary scan 0.04-0.1 s, LM build 2 ms,
                             first decoder 10 ms
    start-up, general        0.26-0.48 s: its LM 0.04 s, first decoder 0.25 s
    memory, per process      +9 MB with phrases (library, LM, first decoder);
                             +91 MB with the general model (its LM alone is 33 MB)
    memory, per stream       3 MB with phrases (PSS; 50 streams: +150 MB);
                             56 MB with the general model (a 152k-channel search tree)
    CPU per audio second     0.03 s with phrases, 0.11 s with the general model
    flush() -> FINAL         1-6 ms for a 2 s utterance with phrases, ~30 ms general
    event-loop lag           max 7-13 ms with three streams decoding at once (5 ms of it
                             is the GIL's switch interval). General model: calls up to
                             20 ms, and a new decoder (only when the pool is empty)
                             holds the GIL for 0.1-0.15 s, twice
    word accuracy            phrases: 100% on the four test sentences, at 16 kHz and
                             through 8 kHz G.711. General: 86-100% at 16 kHz, 0-100%
                             (61% mean) through G.711

So one process decodes some 30 talking callers per core with phrases, sharing
that core (the GIL) with its SIP/RTP loop: beyond that, run more processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import tempfile
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from siphon.errors import ConfigError
from siphon.plugins import require
from siphon.plugins.base import PcmArray, SpeechEvent, SpeechEventType

__all__ = ["STT"]

log = logging.getLogger("siphon.plugins.local.stt")

BATCH_SECONDS: Final = 0.16  # audio per hop to the worker thread (8 frames of 20 ms)
SLICE_SECONDS: Final = 0.02  # audio per pocketsphinx call: bounds each GIL hold (1-8 ms)
MODEL_RATE: Final = 16000  # the bundled en-US acoustic model's rate
_FILLER_PREFIXES: Final = ("<", "[", "+")  # <s>, <sil>, [NOISE], ++NOISE++: not words
_WORD = re.compile(r"[\w']+")

# One thread for every stream of the process: more would not decode faster (the
# GIL), and one thread means the shared language models are never used concurrently.
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _worker() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="siphon-stt")
        return _executor


# -- the shared model ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Key:
    hmm: str | None
    dictionary: str | None
    lm: str | None
    phrases: tuple[str, ...]
    sample_rate: int


def normalize_phrase(text: str) -> list[str]:
    """The words of a phrase as the dictionary spells them: lower case, no punctuation."""
    return [w.strip("'") for w in _WORD.findall(text.lower()) if w.strip("'")]


def _read_dictionary(path: str, words: set[str]) -> tuple[list[str], set[str]]:
    """The dictionary lines of ``words`` (alternative pronunciations included) and the
    words found. A scan is ~0.1 s for CMUdict and avoids loading all 135k words into
    each decoder: with the full dictionary a small LM takes 7 s to attach."""
    lines: list[str] = []
    found: set[str] = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            word = parts[0].lower()
            base = word.split("(", 1)[0]  # "an(2)" is the second pronunciation of "an"
            if base in words:
                phones = []
                for p in parts[1:]:
                    if p.startswith("#"):  # some dictionaries annotate after the phones
                        break
                    phones.append(p)
                lines.append(f"{word} {' '.join(phones)}\n")
                found.add(base)
    return lines, found


def _arpa_vocabulary(path: str) -> set[str] | None:
    """The unigrams of an ARPA-format LM, or None for a binary one."""
    try:
        with open(path, encoding="utf-8") as f:
            words: set[str] = set()
            section = ""
            for line in f:
                line = line.strip()
                if line.startswith("\\"):
                    section = line
                    if line == "\\end\\":
                        break
                elif section == "\\1-grams:" and line:
                    parts = line.split()
                    if len(parts) >= 2:
                        words.add(parts[1].lower())
            return words or None
    except UnicodeDecodeError:
        return None


class _Model:
    """Everything loaded once per configuration: paths, the shared LM, idle decoders."""

    def __init__(self, key: _Key) -> None:
        ps = require("pocketsphinx", "local")
        self.key = key
        self.sample_rate = key.sample_rate
        self._ps = ps
        self._dir = tempfile.TemporaryDirectory(prefix="siphon-stt-")  # lives with the model
        self._lock = threading.Lock()
        self._idle: list[Any] = []  # decoders between streams
        general_dict = ps.get_model_path("en-us/cmudict-en-us.dict")
        general_lm = ps.get_model_path("en-us/en-us.lm.bin")
        dictionary = key.dictionary or general_dict
        lm_path = key.lm or general_lm
        if key.phrases:
            built = self._phrase_model(key.phrases, dictionary)
            if built is not None:
                lm_path, dictionary = built
        elif key.lm is not None and (vocabulary := _arpa_vocabulary(key.lm)) is not None:
            lines, _ = _read_dictionary(dictionary, vocabulary)
            dictionary = self._write("vocabulary.dict", "".join(lines))
        self._config: dict[str, Any] = {
            "hmm": key.hmm or ps.get_model_path("en-us/en-us"),
            "dict": dictionary,
            "lm": None,  # attached per decoder from the one shared NGramModel
            "samprate": key.sample_rate,
            "fwdflat": False,  # see the module docstring
            "bestpath": True,  # word posteriors: the confidence
            "loglevel": "ERROR",
        }
        first = self._new_decoder()
        self._cmn = first.get_cmn()  # the model's initial cepstral mean, restored on release
        try:
            self._lm = ps.NGramModel(first.config, first.logmath, lm_path)
            self._attach(first)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"pocketsphinx could not load the language model {lm_path!r}: {exc}"
            ) from exc
        self._idle.append(first)

    def _write(self, name: str, text: str) -> str:
        path = Path(self._dir.name) / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    def _phrase_model(self, phrases: tuple[str, ...], dictionary: str) -> tuple[str, str] | None:
        """(ARPA LM, pruned dictionary) files for the phrases; None if no word is known."""
        sentences = [normalize_phrase(p) for p in phrases]
        wanted = {w for s in sentences for w in s}
        lines, found = _read_dictionary(dictionary, wanted)
        if missing := sorted(wanted - found):
            log.warning(
                "pocketsphinx: %d phrase word(s) not in the dictionary %s, left out of "
                "the language model: %s",
                len(missing),
                dictionary,
                ", ".join(missing),
            )
        if not found:
            # ArpaBoLM exits the process on an empty corpus, and a model of nothing
            # would hear nothing: better the general model.
            log.warning("pocketsphinx: no phrase word is in the dictionary: general model")
            return None
        from pocketsphinx.lm import ArpaBoLM  # type: ignore[import-untyped]

        corpus = "\n".join(" ".join(w for w in s if w in found) for s in sentences)
        builder = ArpaBoLM(text=corpus, add_start=True)  # <s> ... </s> around each phrase
        builder.compute()
        arpa = Path(self._dir.name) / "phrases.arpa"
        with arpa.open("w", encoding="utf-8") as f:
            builder.write(f)
        return str(arpa), self._write("phrases.dict", "".join(lines))

    def _new_decoder(self) -> Any:
        try:
            return self._ps.Decoder(**self._config)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"pocketsphinx could not load the model {self._config['hmm']!r} with "
                f"{self._config['dict']!r} at {self.sample_rate} Hz: {exc}"
            ) from exc

    def _attach(self, decoder: Any) -> None:
        decoder.add_lm("siphon", self._lm)
        decoder.activate_search("siphon")

    def acquire(self) -> Any:
        """An idle decoder, or a new one (worker thread only: creating one is CPU work)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        decoder = self._new_decoder()
        self._attach(decoder)
        return decoder

    def release(self, decoder: Any) -> None:
        decoder.set_cmn(self._cmn)  # the next caller starts from the model's mean, not ours
        with self._lock:
            self._idle.append(decoder)


_models: dict[_Key, _Model] = {}
_models_lock = threading.Lock()


def _load_model(key: _Key) -> _Model:
    with _models_lock:
        model = _models.get(key)
        if model is None:
            model = _models[key] = _Model(key)
        return model


# -- the provider -------------------------------------------------------------------------
class STT:
    """pocketsphinx behind ``siphon.plugins.base.STT``; see the module docstring.

    ``phrases``: sentences the caller is expected to say (a language model is built
    from them); or ``lm``: a language model file of your own (ARPA or pocketsphinx
    binary); neither: the bundled general US English model. ``model`` and
    ``dictionary`` replace the bundled acoustic model directory and pronunciation
    dictionary (for another language or accent; ``language`` then says which).
    ``partial_interval``: seconds of audio between INTERIM hypotheses (0: none).
    """

    provides_end_of_turn = False  # FINALs come on flush(): the VAD decides the turn

    def __init__(
        self,
        phrases: Sequence[str] = (),
        *,
        sample_rate: int = MODEL_RATE,
        language: str = "en-US",
        model: str | None = None,
        dictionary: str | None = None,
        lm: str | None = None,
        partial_interval: float = 0.3,
    ) -> None:
        if isinstance(phrases, str):
            raise ConfigError("STT phrases must be a list of sentences, not one string")
        if phrases and lm is not None:
            raise ConfigError("STT takes phrases or lm, not both")
        if model is None and sample_rate != MODEL_RATE:
            raise ConfigError(
                f"the bundled pocketsphinx model is {MODEL_RATE} Hz, not {sample_rate}: "
                "leave sample_rate alone (the runtime resamples the caller's audio)"
            )
        if model is None and not language.lower().startswith("en"):
            raise ConfigError(
                f"the bundled pocketsphinx model is US English; for {language!r} pass "
                "model= and dictionary= (and phrases= or lm=) for that language"
            )
        if partial_interval < 0:
            raise ConfigError(f"partial_interval must be >= 0, not {partial_interval!r}")
        for path in (model, dictionary, lm):
            if path is not None and not Path(path).exists():
                raise ConfigError(f"pocketsphinx file {path!r} does not exist")
        self.sample_rate = sample_rate
        self.language = language
        self.partial_interval = partial_interval
        self._warned_language = False
        key = _Key(model, dictionary, lm, tuple(p.strip() for p in phrases), sample_rate)
        self._model = _load_model(key)

    def __repr__(self) -> str:
        what = f"{len(self._model.key.phrases)} phrases" if self._model.key.phrases else "general"
        return f"STT(pocketsphinx, {what}, {self.language})"

    def stream(self, *, language: str | None = None) -> _Stream:
        # One model, one language: a different request is reported (once), not obeyed.
        if (
            language
            and language.split("-")[0].lower() != self.language.split("-")[0].lower()
            and not self._warned_language
        ):
            self._warned_language = True
            log.warning("pocketsphinx model is %s; %s was asked for", self.language, language)
        return _Stream(self._model, self.language, self.partial_interval)


# -- one call's stream --------------------------------------------------------------------
_FLUSH: Final = None  # in the stream's to-do queue: end the utterance here
_END: Final = object()  # in the event queue: iteration is over


class _Stream:
    """Audio in from the event loop, decoded on the worker thread, events out in order.

    The loop side (``push``/``flush``/``aclose``/iteration) and the worker side
    (``_decode``, on the executor) share only the hand-over: a task per stream
    takes what was pushed, runs one executor job at a time with it, and queues
    the job's events. So events come out in audio order, and the decoder's
    state (``_decoder`` onwards) is only ever touched by one job at a time.
    """

    def __init__(self, model: _Model, language: str, partial_interval: float) -> None:
        rate = model.sample_rate
        self._model = model
        self._language = language
        self._rate = rate
        self._batch = int(BATCH_SECONDS * rate)
        self._slice = int(SLICE_SECONDS * rate)
        self._partial = int(partial_interval * rate)
        # loop side
        self._todo: deque[PcmArray | None] = deque()
        self._todo_samples = 0
        self._wake = asyncio.Event()
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._open = False  # audio pushed since the last flush
        self._closed = False
        self._ended = False
        # worker side
        self._decoder: Any = None
        self._in_utt = False
        self._decoded = 0  # samples decoded since the stream began: the event times
        self._utt_start = 0
        self._last_partial_at = 0
        self._last_text = ""

    # -- loop side ------------------------------------------------------------------------
    def push(self, pcm: PcmArray) -> None:
        if self._closed or not len(pcm):
            return
        self._todo.append(np.array(pcm, dtype=np.int16))  # a copy: callers reuse buffers
        self._todo_samples += len(pcm)
        self._open = True
        if self._todo_samples >= self._batch:
            self._start().set()

    def flush(self) -> None:
        if self._closed or not self._open:
            return  # nothing said since the last flush: no utterance, no FINAL
        self._open = False
        self._todo.append(_FLUSH)
        self._start().set()

    def _start(self) -> asyncio.Event:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="siphon-stt-stream"
            )
        return self._wake

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._closed:
                await self._wake.wait()
                self._wake.clear()
                if self._closed:
                    break
                work = self._take()
                if work:
                    for event in await loop.run_in_executor(_worker(), self._decode, work):
                        self._events.put_nowait(event)
        except Exception as exc:  # the iterator raises it; the decoder is not reused
            self._events.put_nowait(exc)
            self._decoder = None
            self._closed = True
        finally:
            if self._decoder is not None:
                # Even when cancelled mid-job: the worker is one thread, so this runs
                # after that job, and the decoder goes back only once nothing uses it.
                with contextlib.suppress(Exception):
                    await asyncio.shield(loop.run_in_executor(_worker(), self._release))
            self._events.put_nowait(_END)

    def _take(self) -> list[tuple[PcmArray, bool]]:
        """What was pushed, as (audio, then flush?) pieces split at each flush."""
        work: list[tuple[PcmArray, bool]] = []
        chunks: list[PcmArray] = []
        while self._todo:
            item = self._todo.popleft()
            if item is _FLUSH:
                work.append((_join(chunks), True))
                chunks = []
            else:
                chunks.append(item)
        if chunks:
            work.append((_join(chunks), False))
        self._todo_samples = 0
        return work

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> SpeechEvent:
        if self._ended:
            raise StopAsyncIteration
        item = await self._events.get()
        if item is _END:
            self._ended = True
            raise StopAsyncIteration
        if isinstance(item, Exception):
            self._ended = True
            raise item
        event: SpeechEvent = item
        return event

    async def aclose(self) -> None:
        """Stop: audio not yet decoded is dropped, the decoder goes back to the pool,
        and iteration ends after the events already produced. Idempotent."""
        if not self._closed:
            self._closed = True
            self._todo.clear()
            if self._task is None:
                self._events.put_nowait(_END)
            else:
                self._wake.set()
        if self._task is not None:
            await asyncio.shield(self._task)  # a cancelled aclose still lets it finish

    # -- worker side (the executor thread) ------------------------------------------------
    def _decode(self, work: list[tuple[PcmArray, bool]]) -> list[SpeechEvent]:
        events: list[SpeechEvent] = []
        for audio, flush in work:
            if len(audio):
                if self._decoder is None:
                    self._decoder = self._model.acquire()
                self._feed(audio, events)
            if flush and self._in_utt:
                events.append(self._final())
        return events

    def _feed(self, audio: PcmArray, events: list[SpeechEvent]) -> None:
        decoder = self._decoder
        if not self._in_utt:
            decoder.start_utt()
            self._in_utt = True
            self._utt_start = self._last_partial_at = self._decoded
            self._last_text = ""
        for i in range(0, len(audio), self._slice):
            piece = audio[i : i + self._slice]
            decoder.process_raw(piece.tobytes(), False, False)
            self._decoded += len(piece)
            if self._partial and self._decoded - self._last_partial_at >= self._partial:
                self._last_partial_at = self._decoded
                hyp = decoder.hyp()
                text = hyp.hypstr if hyp is not None else ""
                if text and text != self._last_text:
                    self._last_text = text
                    events.append(self._event(SpeechEventType.INTERIM, text, None))

    def _final(self) -> SpeechEvent:
        decoder = self._decoder
        decoder.end_utt()
        self._in_utt = False
        hyp = decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
        # Empty text is still a FINAL: the turn detector learns the STT has caught
        # up and heard nothing (a cough), and discards the turn.
        return self._event(SpeechEventType.FINAL, text, self._confidence() if text else None)

    def _confidence(self) -> float | None:
        """Mean posterior probability of the words (the lattice's, from ``bestpath``).

        The hypothesis' own posterior shrinks with its length (0.05 for a correct
        14-word sentence), so the words' mean is the more comparable figure.
        """
        probs = [
            seg.prob for seg in self._decoder.seg() if not seg.word.startswith(_FILLER_PREFIXES)
        ]
        return float(np.mean(probs)) if probs else None

    def _event(self, kind: SpeechEventType, text: str, confidence: float | None) -> SpeechEvent:
        return SpeechEvent(
            type=kind,
            text=text,
            start_time=self._utt_start / self._rate,
            end_time=self._decoded / self._rate,
            language=self._language,
            confidence=confidence,
        )

    def _release(self) -> None:
        decoder, self._decoder = self._decoder, None
        if self._in_utt:
            decoder.end_utt()  # a decoder goes back idle, between utterances
            self._in_utt = False
        self._model.release(decoder)


def _join(chunks: list[PcmArray]) -> PcmArray:
    if not chunks:
        return np.zeros(0, dtype=np.int16)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
