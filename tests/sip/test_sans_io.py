"""siphon.sip and siphon.rtp are sans-IO: no asyncio, no sockets, no clock reads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import siphon

CORES = [Path(siphon.__file__).parent / name for name in ("sip", "rtp")]
FORBIDDEN = {"asyncio", "socket", "selectors", "threading", "trio", "anyio", "uvloop"}


def _core_modules() -> list[Path]:
    return sorted(p for core in CORES if core.is_dir() for p in core.rglob("*.py"))


def test_core_sources_import_no_io_library() -> None:
    offenders = []
    modules = _core_modules()
    assert modules, "no sans-IO core modules found"
    for path in modules:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders


def test_importing_every_core_module_loads_no_asyncio() -> None:
    names = [
        "siphon." + ".".join(p.relative_to(Path(siphon.__file__).parent).with_suffix("").parts)
        for p in _core_modules()
    ]
    code = (
        "import sys\n"
        + "".join(f"import {n}\n" for n in names)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'asyncio', 'socket'})\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"sans-IO cores pulled in: {out.stdout.strip()}"
