"""The peers' own test suites under the hook (``nox -s "peers(NAME)"``), run by plain ``pytest``.

Like tests/matrix/test_matrix.py: the contract stays "``pip install -e '.[test]'`` then
``pytest``", and a peer whose suite changes outcome under the hook fails CI as an ordinary test
with the driver's verdict attached.  It takes minutes and needs PyPI, so it runs only where ``CI``
is set (the reduced set, ``ci=True`` in run.py's table) or when asked with
``KEEPALIVE_PATCH_TEST_PEERS=1`` (``=all`` for every peer).
"""

from __future__ import annotations

import pytest
from run import PEERS, in_namespace
from support.nox_sessions import requested, run_nox


@pytest.mark.peers
@pytest.mark.parametrize("peer", list(PEERS))
def test_peer_suite_same_outcome_under_the_hook(peer: str) -> None:
    which = requested("KEEPALIVE_PATCH_TEST_PEERS", "all")
    if which is None:
        pytest.skip("peer suites: set KEEPALIVE_PATCH_TEST_PEERS=1 (runs in CI)")
    if which == "ci" and not PEERS[peer].ci:
        pytest.skip(f"{peer} is not in the reduced set: KEEPALIVE_PATCH_TEST_PEERS=all runs it")
    if PEERS[peer].offline is None and not in_namespace():
        pytest.skip(f"{peer}'s suite runs only in a network namespace of its own (root)")
    pytest.importorskip("nox")
    # The driver's verdict (each difference on a line of its own) ends the output.
    code, tail = run_nox(
        f"peers({peer})", lambda line: line.startswith(("peers: ", "nox > Session"))
    )
    assert code == 0, f"nox -s 'peers({peer})' failed:\n{tail}"
