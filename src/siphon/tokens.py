"""Unpredictable identifiers for protocol fields: tags, branches, Call-IDs, SSRCs.

RFC 3261 §19.3 wants tags and Call-IDs that are globally unique and
cryptographically random (at least 32 bits), and RFC 3550 §5.1 wants SSRC,
sequence and timestamp origins random. ``secrets`` would do, but it makes one
``getrandom`` system call per value and a call setup needs about eight; at
thousands of calls a second that is a measurable share of the SIP path. So the
kernel's CSPRNG is read 4 KiB at a time and handed out in slices: the bytes are
exactly as unpredictable, the system calls 500 times fewer.

Safe across threads (one lock) and across ``fork`` (a child process drops the
parent's buffer, or parent and child would hand out the same values).

Sans-IO: no asyncio, no sockets; only ``os.urandom``.
"""

from __future__ import annotations

import os
import threading

# 4 KiB: one page, ~500 eight-byte tokens per system call. Larger buys little more.
_REFILL_BYTES = 4096

_lock = threading.Lock()
_buffer = b""
_offset = 0


def _forget_after_fork() -> None:
    global _buffer, _offset, _lock
    _buffer, _offset = b"", 0
    _lock = threading.Lock()  # it may have been held by another thread at fork time


os.register_at_fork(after_in_child=_forget_after_fork)


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the kernel's CSPRNG (buffered; each byte handed out once)."""
    global _buffer, _offset
    if n > _REFILL_BYTES // 4:
        return os.urandom(n)  # large requests are rare: no point buffering them
    with _lock:
        start = _offset
        end = start + n
        if end > len(_buffer):
            _buffer = os.urandom(_REFILL_BYTES)
            start, end = 0, n
        _offset = end
        return _buffer[start:end]


def token_hex(nbytes: int) -> str:
    """A random lowercase hex string of ``2 * nbytes`` characters (like ``secrets``)."""
    return random_bytes(nbytes).hex()


def randbits(k: int) -> int:
    """A uniformly random integer in ``[0, 2**k)``."""
    if k <= 0:
        raise ValueError("randbits needs k > 0")
    nbytes = (k + 7) // 8
    return int.from_bytes(random_bytes(nbytes), "big") >> (nbytes * 8 - k)
