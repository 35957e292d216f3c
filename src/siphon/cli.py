"""``siphon`` command line: ``siphon dev app.py`` and ``siphon start app.py``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.util
import json
import logging
import os
import resource
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from siphon import __version__
from siphon.app import CallHandler, ServerConfig, SipServer
from siphon.errors import ConfigError
from siphon.io.overload import DEFAULT_MAX_QUEUE_DELAY


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data)


def _setup_logging(level: str, json_logs: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


# Net allocations between collections of the youngest generation (CPython: 700).
# Each young collection promotes what is alive at that moment, the objects of the
# calls in progress included, and promoted objects count towards the next full
# collection, which rescans everything a server keeps: transactions linger for
# 64*T1 (32 s), so a busy server holds hundreds of thousands of objects. Collecting
# the young generation less often lets most of a call's objects die young instead.
GC_YOUNG_THRESHOLD = 20_000


def raise_fd_limit() -> None:
    """Lift the soft limit on open files to the hard one, as servers do.

    Each call holds two RTP sockets and the RTP pool keeps released pairs open
    (siphon.io.ports sizes it from this limit); Debian's soft default of 1024
    would cap a server at a few hundred calls.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20  # Linux's usual nr_open
    if soft != resource.RLIM_INFINITY and soft < target:
        # Above the kernel's nr_open it is refused: the soft limit stays then.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def tune_gc() -> None:
    """Garbage collector settings for a long-running server (see GC_YOUNG_THRESHOLD)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def load_handlers(path: str) -> dict[str, CallHandler]:
    """Import ``path`` and return its call handlers (App or Agent objects) by name."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(f"siphon_user_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    sys.path.insert(0, str(file.parent.resolve()))
    spec.loader.exec_module(module)
    found = {
        name: obj
        for name, obj in vars(module).items()
        if not isinstance(obj, type) and isinstance(obj, CallHandler)
    }
    if not found:
        raise ConfigError(
            f"{path} defines no call handler: create one at module level, "
            "e.g. 'app = siphon.app.App()' with an @app.on_call coroutine"
        )
    return found


def _parse_rtp_range(text: str) -> tuple[int, int]:
    start, _, end = text.partition("-")
    try:
        return int(start), int(end)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rtp-ports wants START-END, not {text!r}") from None


def _parse_auth(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError("--auth wants USER:PASSWORD")
    return user, password


def _env_default(name: str, default: Any) -> Any:
    """Flags default to ``SIPHON_<NAME>`` from the environment (containers set those)."""
    return os.environ.get(f"SIPHON_{name}", default)


def _add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=_env_default("HOST", None), help="address to bind")
    p.add_argument("--sip-port", type=int, default=int(_env_default("SIP_PORT", 5060)))
    p.add_argument(
        "--transport", default=_env_default("TRANSPORT", "udp,tcp"), help="comma list: udp,tcp"
    )
    p.add_argument(
        "--advertise",
        default=_env_default("ADVERTISE", None),
        help="host to put in Via/Contact/SDP (public address behind NAT)",
    )
    p.add_argument(
        "--rtp-ports",
        type=_parse_rtp_range,
        default=_parse_rtp_range(_env_default("RTP_PORTS", "10000-20000")),
    )
    p.add_argument(
        "--rtp-prefill",
        type=int,
        default=int(_env_default("RTP_PREFILL", 1024)),
        help="RTP port pairs to bind at start, ready for the first calls (0: on demand)",
    )
    p.add_argument(
        "--auth",
        type=_parse_auth,
        action="append",
        default=[],
        help="require Digest auth for INVITEs: USER:PASSWORD (repeatable)",
    )
    p.add_argument(
        "--no-record",
        action="store_true",
        help="do not write a stereo WAV per call (./recordings)",
    )
    p.add_argument(
        "--media-timeout",
        type=float,
        default=float(_env_default("MEDIA_TIMEOUT", 30.0)),
        help="seconds without RTP before an answered call is ended",
    )
    p.add_argument(
        "--max-queue-delay",
        type=float,
        default=float(_env_default("MAX_QUEUE_DELAY", DEFAULT_MAX_QUEUE_DELAY)),
        help="overload control: refuse a share of new calls (503) while SIP requests "
        "wait longer than this many seconds (0: take every call)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        help="on SIGTERM, seconds to wait for active calls (default: 30 start, 2 dev)",
    )
    p.add_argument("--log-level", default=_env_default("LOG_LEVEL", "info"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="siphon", description="SIPHON: AI phone agents that speak SIP and RTP themselves."
    )
    parser.add_argument("--version", action="version", version=f"siphon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("dev", "run an agent or app on 127.0.0.1 with readable logs"),
        ("start", "run an agent or app in production (0.0.0.0, JSON logs)"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("file", help="Python file defining an Agent (or App)")
        p.add_argument("--app", help="name of the handler object when the file has several")
        _add_server_options(p)
    c = sub.add_parser(
        "call",
        help="call an agent as a simulated caller (offline voice and recognition)",
        description="Dial URI, speak each --say line with the offline TTS, transcribe the "
        "agent's answers with the offline STT, and hang up after the last answer.",
    )
    c.add_argument("uri", help="e.g. sip:receptionist@127.0.0.1:5070")
    c.add_argument("--say", action="append", default=[], help="a line to speak (repeatable)")
    c.add_argument(
        "--wait-greeting", action="store_true", help="let the agent greet first (transcribed)"
    )
    c.add_argument("--record", type=Path, default=None, help="stereo WAV of the call")
    c.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    c.add_argument("--timeout", type=float, default=120.0, help="give up after this long")
    c.add_argument(
        "--expect",
        action="append",
        default=[],
        help="a sentence the agent may say (repeatable): sharpens recognition of its answers",
    )
    c.add_argument("--voice", choices=("piper", "espeak"), default="piper")
    c.add_argument("--log-level", default="warning")
    return parser


def _server_config(args: argparse.Namespace, production: bool) -> ServerConfig:
    drain = args.drain_timeout
    return ServerConfig(
        host=args.host or ("0.0.0.0" if production else "127.0.0.1"),
        sip_port=args.sip_port,
        transports=tuple(t.strip().lower() for t in args.transport.split(",") if t.strip()),
        advertised_host=args.advertise,
        rtp_port_start=args.rtp_ports[0],
        rtp_port_end=args.rtp_ports[1],
        rtp_prefill=args.rtp_prefill,
        auth=dict(args.auth) or None,
        record=not args.no_record,
        media_timeout=args.media_timeout,
        drain_timeout=drain if drain is not None else (30.0 if production else 2.0),
        overload_control=args.max_queue_delay != 0,
        max_queue_delay=args.max_queue_delay or DEFAULT_MAX_QUEUE_DELAY,
    )


async def _serve(server: SipServer) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)

    def ready(s: SipServer) -> None:
        # Models and modules loaded at start-up live as long as the process: move them
        # out of the collector's generations, so full collections stop rescanning them.
        gc.collect()
        gc.freeze()
        logging.getLogger("siphon").info(
            "ready: sip:%s:%d (%s)", s.config.host, s.sip_port, ",".join(s.config.transports)
        )

    await server.serve(ready)


def _run(server: SipServer) -> int:
    tune_gc()
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        asyncio.run(_serve(server))
    else:
        uvloop.run(_serve(server))
    return 0


def run_handler(
    handler: CallHandler, *, production: bool, argv: Sequence[str] | None = None
) -> int:
    """Serve one handler with the server flags (``agent.dev()`` / ``agent.start()``)."""
    parser = argparse.ArgumentParser(
        prog=Path(sys.argv[0]).name,
        description=f"serve {handler!r} ({'production' if production else 'development'})",
    )
    _add_server_options(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    _setup_logging(args.log_level, json_logs=production)
    try:
        raise_fd_limit()  # before the server sizes its RTP pool
        server = SipServer(handler, _server_config(args, production))
    except ConfigError as exc:
        print(f"siphon: {exc}", file=sys.stderr)
        return 2
    return _run(server)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "call":
        from siphon.caller_cli import run_call

        return run_call(args)
    production = args.command == "start"
    _setup_logging(args.log_level, json_logs=production)
    try:
        handlers = load_handlers(args.file)
        if args.app:
            if args.app not in handlers:
                raise ConfigError(
                    f"--app {args.app}: not found; the file defines {', '.join(sorted(handlers))}"
                )
            handler = handlers[args.app]
        elif len(handlers) == 1:
            handler = next(iter(handlers.values()))
        else:
            raise ConfigError(
                f"{args.file} defines several handlers "
                f"({', '.join(sorted(handlers))}): choose one with --app"
            )
        raise_fd_limit()  # before the server sizes its RTP pool
        server = SipServer(handler, _server_config(args, production))
    except ConfigError as exc:
        print(f"siphon: {exc}", file=sys.stderr)
        return 2
    return _run(server)


if __name__ == "__main__":
    sys.exit(main())
