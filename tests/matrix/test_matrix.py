"""The reduced compatibility matrix (``nox -s ci``), run by plain ``pytest`` in CI.

Why here and not as an extra line in ``.ci/run``: the contract stays "``pip install -e
'.[test]'`` then ``pytest``" everywhere, and a broken old-version combination fails CI as an
ordinary test with nox's output attached.  It takes minutes and needs PyPI and pyenv's
interpreters, so it runs only where ``CI`` is set (CI sets ``CI=true``) or when asked with
``KEEPALIVE_PATCH_TEST_MATRIX=1`` (or ``=full`` for the whole covering set).  The suite inside
each nox session runs with ``-m "not matrix"``, so this never recurses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OFF_WORDS = {"", "0", "false", "no", "off"}
#: Upper bound for the whole run; the reduced set takes well under a tenth of it.
TIMEOUT = 40 * 60


def requested_session() -> str | None:
    """``ci``, ``full`` or None (skip), from KEEPALIVE_PATCH_TEST_MATRIX, else from CI."""
    asked = os.environ.get("KEEPALIVE_PATCH_TEST_MATRIX")
    if asked is not None:
        word = asked.strip().lower()
        if word in OFF_WORDS:
            return None
        return "full" if word == "full" else "ci"
    return "ci" if os.environ.get("CI", "").strip().lower() not in OFF_WORDS else None


@pytest.mark.matrix
def test_compatibility_matrix() -> None:
    session = requested_session()
    if session is None:
        pytest.skip("compatibility matrix: set KEEPALIVE_PATCH_TEST_MATRIX=1 (runs in CI)")
    pytest.importorskip("nox")
    command = [sys.executable, "-m", "nox", "-s", session, "--no-color"]
    # Progress goes straight to the terminal (pytest captures the rest): these are minutes.
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
                if (
                    progress is not None
                    and line.startswith("nox >")
                    and ("Running session" in line or "was successful" in line or "failed" in line)
                ):
                    progress.write(line)
                    progress.flush()
            code = process.wait(timeout=60)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
    tail = "".join(lines)[-6000:]
    assert code == 0, f"nox -s {session} failed:\n{tail}"
