"""Offline voice activity detectors: webrtcvad (the default) and silero (ONNX, optional).

Both implement ``siphon.plugins.base.VAD``: a shared, immutable detector whose
``stream()`` gives each call its own state. Thresholds and durations are not
here but in ``siphon.voice.vad.VoiceActivity``, which turns these per-window
probabilities into speech segments.

Measured per window (AMD EPYC, CPython 3.11, one stream, the Python call
included; the model's own windows, not the caller's 20 ms frames):

    WebRtcVAD  8 kHz, 20 ms windows     1.5 µs   probability 0.0 or 1.0
    WebRtcVAD 16 kHz, 20 ms windows     1.9 µs
    SileroVAD 16 kHz, 32 ms windows      80 µs   silero 6.2.3 (v5 layout), onnxruntime 1.31,
    SileroVAD  8 kHz, 32 ms windows      64 µs   one thread, input buffer reused
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

# webrtcvad-wheels ships no type information.
import webrtcvad  # type: ignore[import-untyped]

from siphon.errors import ConfigError
from siphon.plugins import require
from siphon.plugins.base import PcmArray

__all__ = ["OnnxSession", "SileroVAD", "WebRtcVAD"]


# -- webrtcvad ------------------------------------------------------------------------
class WebRtcVAD:
    """Google's WebRTC VAD (GMM, no model file): cheap enough to run on every frame.

    ``mode`` 0-3 trades misses for false alarms (3 is the most eager to say
    "not speech"); 2 suits telephone audio with some line noise.

    A fresh webrtcvad calls any steady noise speech until its noise model has
    adapted: measured on white noise from -80 to -40 dBFS, in every mode, for up
    to 110/140/180 ms with 10/20/30 ms frames. So each stream reports 0.0 for its
    first ``warmup_ms`` (still feeding the detector), or every call would begin
    with a phantom speech onset; speech that starts within it is found late,
    its onset kept by the prefix padding of ``VoiceActivity``.
    """

    RATES: Final = (8000, 16000, 32000, 48000)

    def __init__(
        self, mode: int = 2, sample_rate: int = 8000, frame_ms: int = 20, warmup_ms: int = 200
    ) -> None:
        if mode not in (0, 1, 2, 3):
            raise ConfigError(f"WebRtcVAD mode must be 0, 1, 2 or 3, not {mode!r}")
        if sample_rate not in self.RATES:
            raise ConfigError(f"WebRtcVAD sample_rate must be one of {self.RATES}")
        if frame_ms not in (10, 20, 30):
            raise ConfigError(f"WebRtcVAD frame_ms must be 10, 20 or 30, not {frame_ms!r}")
        if warmup_ms < 0:
            raise ConfigError(f"WebRtcVAD warmup_ms must be >= 0, not {warmup_ms!r}")
        self.mode = mode
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.warmup_ms = warmup_ms
        self._warmup_windows = -(-warmup_ms // frame_ms)

    def __repr__(self) -> str:
        ms = self.frame_samples * 1000 // self.sample_rate
        return f"WebRtcVAD(mode={self.mode}, sample_rate={self.sample_rate}, frame_ms={ms})"

    def stream(self) -> _WebRtcStream:
        vad = webrtcvad.Vad(self.mode)
        return _WebRtcStream(vad, self.sample_rate, self.frame_samples, self._warmup_windows)


class _WebRtcStream:
    __slots__ = ("_rate", "_samples", "_vad", "_warmup")

    def __init__(self, vad: Any, rate: int, samples: int, warmup: int) -> None:
        self._vad = vad  # stateful: it adapts its noise estimate, so one per call
        self._rate = rate
        self._samples = samples
        self._warmup = warmup  # windows still to score as 0.0

    def probability(self, frame: PcmArray) -> float:
        if len(frame) != self._samples:
            raise ConfigError(f"WebRtcVAD needs {self._samples} samples, got {len(frame)}")
        speech = self._vad.is_speech(frame.tobytes(), self._rate)
        if self._warmup:
            self._warmup -= 1
            return 0.0
        return 1.0 if speech else 0.0


# -- silero (ONNX) --------------------------------------------------------------------
class _NodeArg(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> Sequence[int | str | None]: ...
    @property
    def type(self) -> str: ...


class OnnxSession(Protocol):
    """The part of ``onnxruntime.InferenceSession`` SileroVAD uses (tests pass fakes)."""

    def get_inputs(self) -> Sequence[_NodeArg]: ...

    def run(
        self, output_names: Sequence[str] | None, input_feed: dict[str, Any]
    ) -> Sequence[npt.NDArray[Any]]: ...


_DTYPES: Final[dict[str, type[np.floating[Any]]]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
}
MODEL_HELP: Final = (
    "install the model file with `pip install --no-deps silero-vad` (the package "
    "itself wants torch; SIPHON only reads its silero_vad.onnx) or pass "
    "SileroVAD(model_path=...) pointing at silero_vad.onnx from "
    "https://github.com/snakers4/silero-vad"
)

_sessions: dict[Path, OnnxSession] = {}
_sessions_lock = threading.Lock()


def find_silero_model() -> Path:
    """``silero_vad.onnx`` from an installed ``silero_vad`` package, without importing it
    (``import silero_vad`` imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "data" / "silero_vad.onnx"
        if path.is_file():
            return path
    raise ConfigError(f"silero_vad.onnx not found: {MODEL_HELP}")


def _load_session(path: Path) -> OnnxSession:
    """One session per model file per process: it is read-only and thread-safe."""
    with _sessions_lock:
        session = _sessions.get(path)
        if session is None:
            ort = require("onnxruntime", "silero")
            opts = ort.SessionOptions()
            # Hundreds of calls share the process: one thread per window is the
            # fastest overall (the model is tiny) and never oversubscribes the cores.
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
            _sessions[path] = session
        return session


class SileroVAD:
    """Silero VAD through onnxruntime (no torch): more robust to noise than webrtcvad,
    ~50x its CPU cost. Windows of 512 samples at 16 kHz (256 at 8 kHz).

    Adapts to the model's inputs at load: silero v5/v6 (``input``, ``state``,
    ``sr``, with 64/32 samples of the previous window prepended) and v4 (``h``,
    ``c``, no context). ``session`` takes an already loaded session (or any
    object with ``get_inputs()``/``run()``) instead of ``model_path``.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        sample_rate: int = 16000,
        *,
        session: OnnxSession | None = None,
    ) -> None:
        if sample_rate not in (8000, 16000):
            raise ConfigError(f"SileroVAD sample_rate must be 8000 or 16000, not {sample_rate!r}")
        self.sample_rate = sample_rate
        self.frame_samples = 512 if sample_rate == 16000 else 256
        if session is None:
            path = Path(model_path) if model_path is not None else find_silero_model()
            if not path.is_file():
                raise ConfigError(f"silero model {str(path)!r} does not exist: {MODEL_HELP}")
            session = _load_session(path.resolve())
        self._session = session
        self._layout = _Layout.of(session, sample_rate, self.frame_samples)

    def __repr__(self) -> str:
        return f"SileroVAD(sample_rate={self.sample_rate})"

    def stream(self) -> _SileroStream:
        return _SileroStream(self._session, self._layout, self.frame_samples)


class _Layout:
    """How to feed one model: input names, state shapes, context length, dtype."""

    __slots__ = ("context", "dtype", "input", "sr", "states")

    def __init__(
        self,
        input: str,
        states: list[tuple[str, tuple[int, ...], type[np.floating[Any]]]],
        sr: npt.NDArray[np.int64] | None,
        context: int,
        dtype: type[np.floating[Any]],
    ) -> None:
        self.input = input
        self.states = states
        self.sr = sr
        self.context = context
        self.dtype = dtype

    @classmethod
    def of(cls, session: OnnxSession, rate: int, window: int) -> _Layout:
        args = {arg.name: arg for arg in session.get_inputs()}
        if "input" not in args:
            raise ConfigError(f"not a silero VAD model: inputs {sorted(args)}")
        if "state" in args:
            names = ["state"]  # v5 and later
        elif "h" in args and "c" in args:
            names = ["h", "c"]  # v4
        else:
            raise ConfigError(f"unknown silero model layout: inputs {sorted(args)}")
        if "sr" not in args and rate != 16000:
            raise ConfigError("this silero model takes 16 kHz only: use sample_rate=16000")
        # Dynamic dimensions (None or a name such as "batch") are the batch: 1.
        states = [
            (
                n,
                tuple(d if isinstance(d, int) else 1 for d in args[n].shape),
                _DTYPES.get(args[n].type, np.float32),
            )
            for n in names
        ]
        last = args["input"].shape[-1]
        if isinstance(last, int):
            context = last - window  # fixed-width exports bake the context in
        else:
            context = (64 if rate == 16000 else 32) if "state" in args else 0
        sr = np.array(rate, dtype=np.int64) if "sr" in args else None
        dtype = _DTYPES.get(args["input"].type, np.float32)
        return cls("input", states, sr, context, dtype)


class _SileroStream:
    """One call's recurrent state and audio context; windows must arrive in order."""

    __slots__ = ("_buf", "_feed", "_layout", "_session", "_window")

    def __init__(self, session: OnnxSession, layout: _Layout, window: int) -> None:
        self._session = session
        self._layout = layout
        self._window = window
        # [1, context + window], reused: the context is the previous window's tail.
        self._buf = np.zeros((1, layout.context + window), dtype=layout.dtype)
        self._feed: dict[str, Any] = {layout.input: self._buf}
        for name, shape, dtype in layout.states:
            self._feed[name] = np.zeros(shape, dtype=dtype)
        if layout.sr is not None:
            self._feed["sr"] = layout.sr

    def probability(self, frame: PcmArray) -> float:
        if len(frame) != self._window:
            raise ConfigError(f"SileroVAD needs {self._window} samples, got {len(frame)}")
        ctx = self._layout.context
        buf = self._buf
        np.multiply(frame, 1 / 32768, out=buf[0, ctx:], casting="unsafe")
        outputs = self._session.run(None, self._feed)
        for (name, _, _), state in zip(self._layout.states, outputs[1:], strict=False):
            self._feed[name] = state
        if ctx:
            buf[0, :ctx] = buf[0, -ctx:]
        return float(np.asarray(outputs[0]).reshape(-1)[0])
