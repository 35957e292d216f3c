"""Process settings the ``siphon`` command applies before it serves."""

from __future__ import annotations

import resource
import subprocess
import sys


def test_the_open_file_soft_limit_is_lifted_to_the_hard_one() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 256
    script = (
        "import resource\n"
        "from siphon.cli import raise_fd_limit\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({low}, {hard}))\n"
        "raise_fd_limit()\n"
        "print(*resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    soft_after, hard_after = (int(v) for v in out.stdout.split())
    assert hard_after == hard
    if hard == resource.RLIM_INFINITY:
        assert soft_after > low  # lifted to the kernel's usual nr_open, or kept on refusal
    else:
        assert soft_after == hard
