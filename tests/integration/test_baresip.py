"""Interop with a real softphone: baresip calls examples/echo.py and hears its own voice back.

baresip uses a generated WAV as its microphone (module aufile) and records what it hears
(module sndfile, ``...-dec.wav``). Its recording must correlate with the WAV it sent (the
echo, 0.5 s later), and our recording's caller channel must correlate with it too.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import free_port, start_server, stop_server
from tests.integration.test_media_sipp import best_alignment, read_stereo

pytestmark = pytest.mark.baresip

RATE = 8000
SIGNAL_SECONDS = 3.0
SILENCE_SECONDS = 2.5  # aufile hangs up when the WAV ends: stay long enough to hear the echo
CONFIG_TEMPLATE = Path(__file__).with_name("baresip") / "config"


def require_baresip() -> str:
    path = shutil.which("baresip")
    if path is None or not Path("/usr/lib/baresip/modules/aufile.so").exists():
        pytest.fail(
            "baresip is not installed: run 'make test' (it installs the Debian packages "
            "baresip and baresip-core) or 'apt-get install baresip baresip-core'"
        )
    return path


def speech_like(seed: int = 7) -> np.ndarray:
    """Band-limited noise bursts of varying length, level and band: no periodicity."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(SIGNAL_SECONDS * RATE), dtype=np.float64)
    pos = int(0.1 * RATE)
    while pos < len(out):
        length = int(rng.uniform(0.12, 0.35) * RATE)
        noise = rng.standard_normal(length)
        spectrum = np.fft.rfft(noise)
        freqs = np.fft.rfftfreq(length, 1 / RATE)
        low = rng.uniform(200, 900)
        high = low + rng.uniform(600, 2200)
        spectrum[(freqs < low) | (freqs > min(high, 3400))] = 0
        burst = np.fft.irfft(spectrum, length)
        burst *= np.hanning(length) * rng.uniform(0.4, 1.0) / (np.abs(burst).max() + 1e-9)
        end = min(pos + length, len(out))
        out[pos:end] = burst[: end - pos]
        pos = end + int(rng.uniform(0.04, 0.15) * RATE)
    return (out * 12000).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.astype("<i2").tobytes())


def read_mono(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        assert (width, rate) == (2, RATE), (path, channels, width, rate)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return samples[0::channels].astype(np.float64)


def baresip_config(tmp_path: Path, microphone: Path) -> tuple[Path, Path, int]:
    """A config directory for one baresip instance: (config dir, recordings dir, cons port)."""
    conf = tmp_path / "baresip"
    rec = tmp_path / "baresip-rec"
    conf.mkdir()
    rec.mkdir()
    sip_port = free_port()
    rtp_port = free_port(pair=True)
    cons_port = free_port()
    values = {
        "SIP_PORT": str(sip_port),
        "RTP_LOW": str(rtp_port),
        "RTP_HIGH": str(rtp_port + 1),
        "MICROPHONE": str(microphone),
        "REC_DIR": str(rec),
        "CTRL_PORT": str(free_port()),
        "CONS_PORT": str(cons_port),
    }
    text = CONFIG_TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    (conf / "config").write_text(text)
    (conf / "accounts").write_text(f"<sip:caller@127.0.0.1:{sip_port}>;regint=0\n")
    (conf / "contacts").write_text("")
    return conf, rec, cons_port


def run_baresip(cmd: list[str], cons_port: int, limit: float) -> str:
    """Run baresip until its call ends (then ask it to quit) or ``limit`` seconds pass."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    stdout = proc.stdout
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(stdout.readline, b"")))
    reader.start()
    try:
        deadline = time.monotonic() + limit
        while proc.poll() is None and time.monotonic() < deadline:
            if b"terminated" in b"".join(chunks):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as cons:
                    cons.sendto(b"/quit\n", ("127.0.0.1", cons_port))
                proc.wait(5)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join(5)
    return b"".join(chunks).decode(errors="replace")


def test_baresip_hears_its_own_voice_echoed(tmp_path: Path) -> None:
    baresip = require_baresip()
    sent = speech_like()
    padded = np.concatenate([sent, np.zeros(int(SILENCE_SECONDS * RATE), dtype=np.int16)])
    microphone = tmp_path / "microphone.wav"
    write_wav(microphone, padded)
    conf, rec, cons_port = baresip_config(tmp_path, microphone)

    server = start_server("examples/echo.py", tmp_path)
    try:
        cmd = [
            baresip,
            "-n",
            "127.0.0.1",
            "-f",
            str(conf),
            "-t",
            "20",  # a backstop: baresip hangs up itself when its microphone WAV ends
            "-e",
            f"/dial sip:echo@127.0.0.1:{server.port}",
        ]
        output = run_baresip(cmd, cons_port, limit=25)
    finally:
        stop_server(server)
    log = server.log()
    assert "Traceback" not in log, log
    details = f"baresip:\n{output[-3000:]}\nsiphon:\n{log[-3000:]}"
    assert "Call established" in output, details
    # Hung up by baresip when its microphone WAV ended (not by the -t timer).
    assert re.search(r"call \S+ ended: remote hangup", log), details

    heard = sorted(rec.glob("*-dec.wav"))
    assert len(heard) == 1, (heard, details)
    received = read_mono(heard[0])
    echo_score, echo_lag = best_alignment(sent.astype(np.float64), received)

    recordings = sorted((tmp_path / "recordings").glob("*.wav"))
    assert len(recordings) == 1, (recordings, details)
    caller, agent = read_stereo(recordings[0])
    caller_score, caller_lag = best_alignment(sent.astype(np.float64), caller)
    agent_score, agent_lag = best_alignment(sent.astype(np.float64), agent)
    print(
        f"baresip heard: {echo_score:.4f} at {echo_lag / RATE:.3f} s; "
        f"our caller channel: {caller_score:.4f} at {caller_lag / RATE:.3f} s; "
        f"our agent channel: {agent_score:.4f} at {agent_lag / RATE:.3f} s"
    )
    assert echo_score >= 0.9, f"baresip's recording vs its microphone: {echo_score:.3f}"
    assert caller_score >= 0.9, f"our caller channel vs baresip's microphone: {caller_score:.3f}"
    assert agent_score >= 0.9, f"our agent channel vs baresip's microphone: {agent_score:.3f}"
    # The echo is 0.5 s behind what we heard, in our recording...
    assert 0.45 <= (agent_lag - caller_lag) / RATE <= 0.6, (caller_lag, agent_lag)
    # ...and baresip hears it at least 0.5 s after it started talking.
    assert 0.45 <= echo_lag / RATE <= 1.5, echo_lag
