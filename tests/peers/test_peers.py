"""The peers' own test suites under the hook (``nox -s "peers(NAME)"``), run by plain ``pytest``.

Like tests/matrix/test_matrix.py: the contract stays "``pip install -e '.[test]'`` then
``pytest``", and a peer whose suite changes outcome under the hook fails CI as an ordinary test
with the driver's verdict attached.  It takes minutes and needs PyPI, so it runs only where ``CI``
is set (the reduced set, ``ci=True`` in run.py's table) or when asked with
``KEEPALIVE_PATCH_TEST_PEERS=1`` (``=all`` for every peer).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from run import PEERS, in_namespace

ROOT = Path(__file__).resolve().parents[2]
OFF_WORDS = {"", "0", "false", "no", "off"}
#: Upper bound for one peer (install, both runs, reruns); each CI peer takes a few minutes.
TIMEOUT = 40 * 60


def requested() -> str | None:
    """``ci``, ``all`` or None (skip), from KEEPALIVE_PATCH_TEST_PEERS, else from CI."""
    asked = os.environ.get("KEEPALIVE_PATCH_TEST_PEERS")
    if asked is not None:
        word = asked.strip().lower()
        if word in OFF_WORDS:
            return None
        return "all" if word == "all" else "ci"
    return "ci" if os.environ.get("CI", "").strip().lower() not in OFF_WORDS else None


@pytest.mark.peers
@pytest.mark.parametrize("peer", list(PEERS))
def test_peer_suite_same_outcome_under_the_hook(peer: str) -> None:
    which = requested()
    if which is None:
        pytest.skip("peer suites: set KEEPALIVE_PATCH_TEST_PEERS=1 (runs in CI)")
    if which == "ci" and not PEERS[peer].ci:
        pytest.skip(f"{peer} is not in the reduced set: KEEPALIVE_PATCH_TEST_PEERS=all runs it")
    if PEERS[peer].offline is None and not in_namespace():
        pytest.skip(f"{peer}'s suite runs only in a network namespace of its own (root)")
    pytest.importorskip("nox")
    command = [sys.executable, "-m", "nox", "-s", f"peers({peer})", "--no-color"]
    # The verdict and progress go straight to the terminal (pytest captures the rest).
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
                if progress is not None and line.startswith(("peers: ", "nox > Session")):
                    progress.write(line)
                    progress.flush()
            code = process.wait(timeout=60)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
    # The driver's verdict (each difference on a line of its own) ends the output.
    tail = "".join(lines)[-6000:]
    assert code == 0, f"nox -s 'peers({peer})' failed:\n{tail}"
