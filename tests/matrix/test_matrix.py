"""The reduced compatibility matrix (``nox -s ci``), run by plain ``pytest`` in CI.

Why here and not as an extra line in ``.ci/run``: the contract stays "``pip install -e
'.[test]'`` then ``pytest``" everywhere, and a broken old-version combination fails CI as an
ordinary test with nox's output attached.  It takes minutes and needs PyPI and pyenv's
interpreters, so it runs only where ``CI`` is set (CI sets ``CI=true``) or when asked with
``KEEPALIVE_PATCH_TEST_MATRIX=1`` (or ``=full`` for the whole covering set).  The suite inside
each nox session runs with ``-m "not matrix"``, so this never recurses.
"""

from __future__ import annotations

import pytest
from support.nox_sessions import requested, run_nox


@pytest.mark.matrix
def test_compatibility_matrix() -> None:
    session = requested("KEEPALIVE_PATCH_TEST_MATRIX", "full")
    if session is None:
        pytest.skip("compatibility matrix: set KEEPALIVE_PATCH_TEST_MATRIX=1 (runs in CI)")
    pytest.importorskip("nox")
    code, tail = run_nox(
        session,
        lambda line: (
            line.startswith("nox >")
            and ("Running session" in line or "was successful" in line or "failed" in line)
        ),
    )
    assert code == 0, f"nox -s {session} failed:\n{tail}"
