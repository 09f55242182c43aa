"""Arming in a fresh interpreter: wrapt is imported at the first transport built, not before.

The companion of ``live/test_wrapping.py``, for what only a new process shows: nothing has
imported wrapt yet, eight threads race to build the first transports, or wrapt is missing.
The programs are ``scripts/concurrent_arming.py`` and ``scripts/no_wrapt.py``.
"""

from __future__ import annotations

import json
from types import ModuleType

import pytest
from support.libs import installed_libraries, takes_socket_options
from support.procs import run_script

LIBS = installed_libraries()


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_fresh_process_defers_wrapt_and_arms_concurrently(lib: ModuleType) -> None:
    socket_options = "yes" if takes_socket_options(lib) else "no"  # httpx < 0.25: retries only
    done = run_script("concurrent_arming.py", lib.__name__, socket_options)
    result = json.loads(done.stdout)
    assert result == {
        "wrapt_before_first_transport": False,
        "made": 8,
        "patched": 8,
        "wrapped": [True, True],
    }, done.stderr


def test_missing_wrapt_leaves_transports_unpatched() -> None:
    done = run_script("no_wrapt.py", "httpx", flags=["-W", "error"])
    assert json.loads(done.stdout) == [None, 0]
    assert done.stderr == ""
