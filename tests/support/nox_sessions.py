"""Running nox sessions from plain ``pytest`` (the matrix and the peer suites, on in CI).

Each is switched by one variable (``KEEPALIVE_PATCH_TEST_MATRIX``, ``KEEPALIVE_PATCH_TEST_PEERS``)
or, unset, by ``CI``; a session's progress goes straight to the terminal, since it takes
minutes, and a watchdog bounds it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
OFF_WORDS = {"", "0", "false", "no", "off"}
#: Upper bound for one nox run.
TIMEOUT = 40 * 60


def requested(variable: str, wider: str) -> str | None:
    """``ci``, ``wider`` (when ``variable`` says so) or None (skip): ``variable``, else ``CI``."""
    asked = os.environ.get(variable)
    if asked is not None:
        word = asked.strip().lower()
        if word in OFF_WORDS:
            return None
        return wider if word == wider else "ci"
    return "ci" if os.environ.get("CI", "").strip().lower() not in OFF_WORDS else None


def run_nox(session: str, shown: Callable[[str], bool]) -> tuple[int, str]:
    """``nox -s session`` from the checkout; lines ``shown`` accepts go to the terminal.

    Returns the exit status and the output's last 6000 characters (for the failure message).
    """
    command = [sys.executable, "-m", "nox", "-s", session, "--no-color"]
    progress = sys.__stderr__
    lines: list[str] = []
    with subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": ""},
    ) as process:
        assert process.stdout is not None
        watchdog = threading.Timer(TIMEOUT, process.kill)  # bounds the read loop below
        watchdog.start()
        try:
            for line in process.stdout:
                lines.append(line)
                if progress is not None and shown(line):
                    progress.write(line)
                    progress.flush()
            code = process.wait(timeout=60)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
    return code, "".join(lines)[-6000:]
