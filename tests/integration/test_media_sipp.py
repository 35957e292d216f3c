"""Media against SIPp: speech in, echo out, the recording, RFC 4733 digits (examples/echo.py)."""

from __future__ import annotations

import re
import struct
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from siphon.rtp.codecs import codec_for
from tests.conftest import SIPP_DIR, run_sipp, start_server, stop_server

pytestmark = pytest.mark.sipp

PCAPS = Path("/usr/share/sip-tester")


def pcap_rtp(path: Path) -> list[bytes]:
    """RTP payload datagrams of a classic pcap (Ethernet / IPv4 / UDP)."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic == 0xA1B2C3D4 else ">"
    out = []
    offset = 24
    while offset + 16 <= len(data):
        _, _, included, _ = struct.unpack(order + "IIII", data[offset : offset + 16])
        frame = data[offset + 16 : offset + 16 + included]
        offset += 16 + included
        ihl = (frame[14] & 0x0F) * 4
        out.append(frame[14 + ihl + 8 :])
    return out


def pcap_audio(path: Path) -> np.ndarray:
    """The speech the pcap carries, decoded and laid out by RTP timestamp."""
    packets = sorted(pcap_rtp(path), key=lambda p: struct.unpack("!I", p[4:8])[0])
    codec = codec_for("PCMA")
    first_ts = struct.unpack("!I", packets[0][4:8])[0]
    end = struct.unpack("!I", packets[-1][4:8])[0] - first_ts + 400
    audio = np.zeros(end, dtype=np.float64)
    for packet in packets:
        ts = struct.unpack("!I", packet[4:8])[0] - first_ts
        pcm = codec.decode(packet[12:])
        audio[ts : ts + len(pcm)] = pcm
    return audio


def best_alignment(reference: np.ndarray, recorded: np.ndarray) -> tuple[float, int]:
    """Normalised cross-correlation at the best lag (``recorded`` lags ``reference``)."""
    n = len(reference) + len(recorded)
    size = 1 << (n - 1).bit_length()
    spectrum = np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(reference, size))
    xcorr = np.fft.irfft(spectrum, size)[: len(recorded)]
    lag = int(np.argmax(xcorr))
    overlap = min(len(reference), len(recorded) - lag)
    a = reference[:overlap]
    b = recorded[lag : lag + overlap]
    return float(np.corrcoef(a, b)[0, 1]), lag


def read_stereo(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return samples[0::2].astype(np.float64), samples[1::2].astype(np.float64)


def test_sipp_speech_is_recorded_and_echoed(tmp_path: Path) -> None:
    server = start_server("examples/echo.py", tmp_path)
    try:
        result = run_sipp(
            server.port, tmp_path, "-sf", str(SIPP_DIR / "uac_pcap.xml"), "-s", "echo", "-m", "1"
        )
        assert result.ok, result.errors[-3000:] + result.output[-3000:]
        time.sleep(0.5)
    finally:
        stop_server(server)
    log = server.log()
    stats = re.search(r"RTP in (\d+), out (\d+), lost (\d+)", log)
    assert stats, log
    packets_in, packets_out = int(stats.group(1)), int(stats.group(2))
    assert packets_in >= 230  # g711a.pcap holds 236 packets of 30 ms
    # We send every 20 ms for the whole call (8 s of SIPp pause): ~400 packets.
    assert packets_out >= 350, log
    recordings = sorted((tmp_path / "recordings").glob("*.wav"))
    assert len(recordings) == 1, recordings
    caller, agent = read_stereo(recordings[0])
    assert len(caller) >= 8000 * 7
    reference = pcap_audio(PCAPS / "g711a.pcap")
    score, _ = best_alignment(reference, caller)
    assert score >= 0.9, f"caller channel vs g711a.pcap: correlation {score:.3f}"
    # The right channel is what we played: the same speech ~0.5 s later.
    echo_score, echo_lag = best_alignment(reference, agent)
    _, caller_lag = best_alignment(reference, caller)
    assert echo_score >= 0.9, f"agent channel correlation {echo_score:.3f}"
    assert 0.45 <= (echo_lag - caller_lag) / 8000 <= 0.6


@pytest.mark.parametrize("name,digit", [("1", "1"), ("pound", "#"), ("star", "*"), ("9", "9")])
def test_sipp_rfc4733_digits_reach_the_app(tmp_path: Path, name: str, digit: str) -> None:
    scenario = tmp_path / "uac_dtmf.xml"
    scenario.write_text(
        (SIPP_DIR / "uac_dtmf.xml")
        .read_text()
        .replace("[dtmf_pcap]", str(PCAPS / f"dtmf_2833_{name}.pcap"))
    )
    server = start_server("examples/echo.py", tmp_path)
    try:
        result = run_sipp(server.port, tmp_path, "-sf", str(scenario), "-s", "echo", "-m", "1")
        assert result.ok, result.errors[-3000:] + result.output[-3000:]
        time.sleep(0.3)
    finally:
        stop_server(server)
    digits = re.findall(r"DTMF (\S) \((\d+) ms\)", server.log())
    assert [d for d, _ in digits] == [digit], server.log()
    assert 100 <= int(digits[0][1]) <= 400


def test_killed_process_leaves_a_recording_repaired_at_next_start(tmp_path: Path) -> None:
    import signal
    import subprocess

    from tests.conftest import free_port, require_sipp

    server = start_server("examples/echo.py", tmp_path)
    sipp = subprocess.Popen(
        [
            require_sipp(),
            f"127.0.0.1:{server.port}",
            "-sf",
            str(SIPP_DIR / "uac_pcap.xml"),
            "-s",
            "echo",
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-mp",
            str(free_port(pair=True)),
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "20s",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        time.sleep(4.0)
        server.proc.send_signal(signal.SIGKILL)  # no chance to fix the WAV header
        server.proc.wait(5)
    finally:
        sipp.kill()
        sipp.wait()
    recordings = sorted((tmp_path / "recordings").glob("*.wav"))
    assert len(recordings) == 1
    path = recordings[0]
    # Playable as it is: the header's "unknown size" makes readers go to end of file.
    assert struct.unpack("<I", path.read_bytes()[4:8])[0] == 0xFFFFFFFF
    caller, _ = read_stereo(path)
    assert len(caller) >= 8000 * 2, "at least the audio up to the last flush survives"
    restarted = start_server("examples/echo.py", tmp_path)  # fixes the header at start
    stop_server(restarted)
    data = path.read_bytes()
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8  # exact RIFF size now
    assert len(read_stereo(path)[0]) == len(caller)
