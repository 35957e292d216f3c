#!/usr/bin/env python3
"""Fuzz the SIP parser: parse_datagram, StreamParser and every typed accessor.

Inputs are random bytes and mutations (bit flips, truncations, duplications,
insertions of CR/LF/NUL/quotes/<>/%/; ...) of the fixture corpus in
tests/sip/fixtures. The invariants:

* parse_datagram and StreamParser.feed return messages or raise RemoteProtocolError;
* typed accessors (call_id, cseq, from_addr, to_addr, vias, contacts, record_routes,
  routes, max_forwards, request_uri, ...) return or raise RemoteProtocolError, also on
  the partial request an error carries;
* a message that parses re-serializes, re-parses to the same fields, and
  re-serializes to the same bytes.

Anything else is a crash: the input is saved to --crash-dir and the exit status is 1.
Uses atheris (coverage-guided) when it is importable and --engine is auto or atheris;
otherwise a seeded random mutator.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import os
import random
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from siphon.errors import RemoteProtocolError  # noqa: E402
from siphon.sip.message import Message, Request  # noqa: E402
from siphon.sip.parser import (  # noqa: E402
    MAX_DATAGRAM_SIZE,
    MAX_HEADER_COUNT,
    StreamParser,
    parse_datagram,
)

CORPUS_DIR = ROOT / "tests" / "sip" / "fixtures"
ACCESSORS = (
    "call_id",
    "cseq",
    "from_addr",
    "to_addr",
    "from_tag",
    "to_tag",
    "vias",
    "top_via",
    "contacts",
    "record_routes",
    "routes",
    "max_forwards",
    "content_type",
)
SPECIAL = [
    b"\r", b"\n", b"\r\n", b"\r\n\r\n", b"\r\n ", b"\r\n\t", b"\x00", b'"', b"\\", b"<", b">",
    b"%", b"%0", b"%00", b";", b",", b":", b" ", b"\t", b"=", b"?", b"@", b"[", b"]", b"\xff",
    b"\xc3", b"\x7f", b"sip:", b"sips:", b"tel:", b"SIP/2.0", b"SIP/2.0/UDP ", b";tag=",
    b";branch=z9hG4bK", b";rport=\xc2\xb2", b";rport=99999999999999999999", b"Content-Length: ",
    b"l: 99999\r\n", b"Via: ", b"v: ", b"CSeq: ", b"Max-Forwards: 0068", b"*", b"[::1]",
]  # fmt: skip


class Crash(Exception):
    """An invariant broke."""


def load_corpus(extra: list[Path]) -> list[bytes]:
    files = sorted(CORPUS_DIR.rglob("*.sip"))
    for path in extra:
        files += sorted(path.rglob("*")) if path.is_dir() else [path]
    corpus = [f.read_bytes() for f in files if f.is_file()]
    return corpus or [b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"]


def exercise(msg: Message) -> dict[str, str]:
    seen: dict[str, str] = {}
    names = ACCESSORS + (("request_uri",) if isinstance(msg, Request) else ())
    for name in names:
        try:
            value = getattr(msg, name)
        except RemoteProtocolError:
            seen[name] = "error"
            continue
        seen[name] = repr(value)
        if name == "vias":
            for via in value:
                seen[name] += repr((via.branch, via.received, via.rport, via.sent_by, str(via)))
        elif name in ("contacts", "routes", "record_routes"):
            seen[name] += repr([(str(a), a.tag) for a in value])
        elif name in ("from_addr", "to_addr", "request_uri"):
            seen[name] += str(value)
    try:
        seen["options"] = repr(msg.option_tags("Supported") + msg.option_tags("Require"))
    except RemoteProtocolError:
        seen["options"] = "error"
    if isinstance(msg, Request):
        seen["response"] = repr(msg.make_response(400, to_tag="t").to_bytes())
    return seen


def _fields(msg: Message) -> tuple[object, ...]:
    headers = [(n, v) for n, v in msg.headers if n != "Content-Length"]
    return (type(msg), msg.start_line(), headers, msg.body)


def round_trip(msg: Message) -> None:
    data = msg.to_bytes()
    if len(data) > MAX_DATAGRAM_SIZE or len(msg.headers) >= MAX_HEADER_COUNT:
        return
    try:
        again = parse_datagram(data)
    except RemoteProtocolError as exc:
        raise Crash(f"serialized message does not re-parse: {exc}") from exc
    if _fields(again) != _fields(msg):
        raise Crash(f"round trip changed the message:\n{_fields(msg)}\n{_fields(again)}")
    if again.to_bytes() != data:
        raise Crash("serialize -> parse -> serialize is not stable")
    if exercise(again) != exercise(msg):
        raise Crash("typed views differ after the round trip")


def check(data: bytes, chunks: list[int]) -> None:
    """Raise (anything but RemoteProtocolError) when an invariant breaks."""
    try:
        msg = parse_datagram(data)
    except RemoteProtocolError as exc:
        if not exc.reason or not 400 <= exc.status_hint < 600:
            raise Crash(f"error without a usable status/reason: {exc!r}") from exc
        if exc.partial is not None:
            if not isinstance(exc.partial, Request):
                raise Crash(f"partial is not a Request: {exc.partial!r}") from exc
            exercise(exc.partial)
    else:
        exercise(msg)
        round_trip(msg)
    parser = StreamParser()
    pos = 0
    try:
        for size in [*chunks, len(data)]:
            for streamed in parser.feed(data[pos : pos + size]):
                exercise(streamed)
                round_trip(streamed)
            pos += size
    except RemoteProtocolError as exc:
        if isinstance(exc.partial, Request):
            exercise(exc.partial)


def mutate(rng: random.Random, corpus: list[bytes]) -> bytes:
    if rng.random() < 0.05:
        return rng.randbytes(rng.randint(0, 512))
    data = bytearray(rng.choice(corpus))
    for _ in range(rng.choice((1, 1, 2, 3, 8))):
        n = len(data)
        head = data.find(b"\r\n\r\n")
        # Mostly inside the header block, where the grammar is.
        i = rng.randint(0, head) if head > 0 and rng.random() < 0.8 else rng.randint(0, n)
        op = rng.randrange(9)
        if op == 7 and rng.random() < 0.8:
            op = 3  # splicing mostly yields garbage start lines; do it less
        if op == 0 and i < n:
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            del data[i:]
        elif op == 2:
            j = rng.randint(i, min(n, i + 128))
            data[j:j] = data[i:j] * rng.randint(1, 3)
        elif op in (3, 4):
            data[i:i] = rng.choice(SPECIAL)
        elif op == 5:
            del data[i : i + rng.randint(1, 32)]
        elif op == 6:
            data[i : i + 1] = rng.choice(SPECIAL)
        elif op == 7:
            other = rng.choice(corpus)
            k = rng.randint(0, len(other))
            data[i:] = other[k:]  # splice two messages
        elif op == 8 and i < n:
            data[i : i + 16] = bytes(data[i : i + 16]).swapcase()
    return bytes(data)


def chunking(rng: random.Random, size: int) -> list[int]:
    if size == 0 or rng.random() < 0.3:
        return []
    return [rng.randint(1, max(1, size // 3)) for _ in range(rng.randint(1, 12))]


def save_crash(data: bytes, crash_dir: Path) -> Path:
    crash_dir.mkdir(parents=True, exist_ok=True)
    path = crash_dir / f"crash-{hashlib.sha1(data).hexdigest()[:16]}.sip"
    path.write_bytes(data)
    return path


def run_one(data: bytes, chunks: list[int], crash_dir: Path) -> bool:
    try:
        check(data, chunks)
    except Exception:
        path = save_crash(data, crash_dir)
        traceback.print_exc()
        print(f"\nCRASH: input saved to {path} (chunks {chunks})", file=sys.stderr)
        return False
    return True


def run_random(args: argparse.Namespace, corpus: list[bytes]) -> int:
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    done = 0
    print(f"fuzz_parser: random engine, seed {seed}, {len(corpus)} corpus files", flush=True)
    # The corpus itself first, then mutations.
    for data in corpus:
        if not run_one(data, chunking(rng, len(data)), args.crash_dir):
            return 1
    while (args.iterations is None or done < args.iterations) and (
        deadline is None or time.monotonic() < deadline
    ):
        data = mutate(rng, corpus)
        if not run_one(data, chunking(rng, len(data)), args.crash_dir):
            return 1
        done += 1
    print(f"fuzz_parser: {done} inputs, no crash (seed {seed})", flush=True)
    return 0


def run_atheris(args: argparse.Namespace, corpus: list[bytes]) -> int:
    atheris: Any = importlib.import_module("atheris")

    deadline = time.monotonic() + args.seconds if args.seconds else None
    count = 0

    def one(data: bytes) -> None:
        nonlocal count
        count += 1
        if (args.iterations is not None and count > args.iterations) or (
            deadline is not None and time.monotonic() > deadline
        ):
            print(f"fuzz_parser: {count - 1} inputs, no crash", flush=True)
            os._exit(0)
        fdp = atheris.FuzzedDataProvider(data)
        split = fdp.ConsumeIntInRange(0, 1024)
        payload = fdp.ConsumeBytes(fdp.remaining_bytes())
        if not run_one(payload, [split] if split else [], args.crash_dir):
            os._exit(1)

    seeds = args.crash_dir / "atheris-seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    for data in corpus:
        (seeds / hashlib.sha1(data).hexdigest()[:16]).write_bytes(b"\x00\x00" + data)
    atheris.Setup([sys.argv[0], str(seeds)], one)
    atheris.Fuzz()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Fuzz siphon's SIP parser (parse_datagram, StreamParser, accessors).",
        epilog="Exit status 0: no crash; 1: a crash, with the input saved in --crash-dir.",
    )
    parser.add_argument("--seconds", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--iterations", type=int, default=None, help="stop after N inputs")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random engine")
    parser.add_argument(
        "--engine",
        choices=("auto", "random", "atheris"),
        default="auto",
        help="atheris when importable (auto), or the built-in random mutator",
    )
    parser.add_argument(
        "--crash-dir", type=Path, default=Path("fuzz-crashes"), help="where crashing inputs go"
    )
    parser.add_argument(
        "--corpus", type=Path, action="append", default=[], help="extra corpus file or directory"
    )
    parser.add_argument(
        "--reproduce", type=Path, default=None, help="run one saved input and show any crash"
    )
    args = parser.parse_args(argv)
    if args.reproduce is not None:
        data = args.reproduce.read_bytes()
        ok = all(run_one(data, chunks, args.crash_dir) for chunks in ([], [1] * len(data)))
        print("no crash" if ok else "crash reproduced")
        return 0 if ok else 1
    if args.seconds is None and args.iterations is None:
        args.iterations = 10_000
    corpus = load_corpus(args.corpus)
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if importlib.util.find_spec("atheris") is not None else "random"
    runner: Callable[[argparse.Namespace, list[bytes]], int]
    runner = run_atheris if engine == "atheris" else run_random
    return runner(args, corpus)


if __name__ == "__main__":
    sys.exit(main())
