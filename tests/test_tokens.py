"""siphon.tokens: buffered CSPRNG values for tags, branches, Call-IDs and SSRCs."""

from __future__ import annotations

import os
import re
import threading

import pytest

from siphon import tokens
from siphon.sip.message import new_branch, new_call_id, new_tag


def test_token_hex_has_the_asked_length_and_alphabet() -> None:
    for n in (1, 4, 6, 8, 12, 16):
        value = tokens.token_hex(n)
        assert re.fullmatch(rf"[0-9a-f]{{{2 * n}}}", value), value


def test_values_do_not_repeat_across_many_refills() -> None:
    seen = {tokens.token_hex(8) for _ in range(20_000)}  # ~40 refills of the buffer
    assert len(seen) == 20_000


@pytest.mark.parametrize("k", [1, 7, 8, 16, 30, 32, 64])
def test_randbits_stays_in_range_and_uses_the_top_bit(k: int) -> None:
    values = [tokens.randbits(k) for _ in range(2000)]
    assert all(0 <= v < 2**k for v in values)
    # Every bit position is exercised: the high bit is set about half of the time.
    high = sum(v >> (k - 1) for v in values)
    assert 800 < high < 1200


def test_randbits_rejects_nonpositive_sizes() -> None:
    with pytest.raises(ValueError):
        tokens.randbits(0)


def test_large_requests_bypass_the_buffer() -> None:
    assert len(tokens.random_bytes(4096)) == 4096


def test_threads_never_receive_the_same_bytes() -> None:
    results: list[list[str]] = [[] for _ in range(8)]

    def draw(out: list[str]) -> None:
        out.extend(tokens.token_hex(6) for _ in range(3000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [v for out in results for v in out]
    assert len(set(everything)) == len(everything)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (POSIX)")
def test_a_forked_child_does_not_repeat_its_parents_next_values() -> None:
    tokens.token_hex(8)  # the buffer now holds unread bytes the child inherits
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        os.write(write_end, tokens.token_hex(8).encode())
        os._exit(0)
    os.close(write_end)
    child_value = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert child_value != tokens.token_hex(8)


def test_sip_identifiers_use_it() -> None:
    assert re.fullmatch(r"z9hG4bK[0-9a-f]{16}", new_branch())
    assert re.fullmatch(r"[0-9a-f]{12}", new_tag())
    assert re.fullmatch(r"[0-9a-f]{24}@example\.com", new_call_id("example.com"))
