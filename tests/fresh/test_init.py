"""The public API, and what ``import keepalive_patch`` does to a fresh interpreter.

The programs run in fresh interpreters are the files in ``tests/scripts/``.
"""

from __future__ import annotations

import json
import types

import pytest
from support.libs import require_socket_options
from support.procs import HEAVY, PYTHON, clean_env, run_python, run_script

import keepalive_patch


def test_public_api() -> None:
    assert keepalive_patch.is_applied()
    assert keepalive_patch.settings().idle == 30
    assert keepalive_patch.socket_options()[0][2] == 1
    assert set(keepalive_patch.__all__) >= {"apply", "remove", "is_applied", "socket_options"}


def test_import_loads_nothing_heavy() -> None:
    """The start-up path is one module: nothing of ``HEAVY`` (no HTTP library, no wrapt, no
    typing/logging/socket) and none of our others; integrations follow their library in."""
    added = json.loads(run_script("import_cost.py").stdout)
    assert not set(HEAVY) & set(added), added
    assert added == ["keepalive_patch"], added


def test_http_library_import_triggers_the_patch() -> None:
    """Importing httpx arms its classes; wrapt is loaded by the first transport built."""
    report = json.loads(run_script("import_arms.py", "httpx").stdout)
    loaded = set(report.pop("modules_idle"))
    idle = [name for name in HEAVY if name in loaded]
    assert {"idle": idle, **report} == {
        "idle": [],
        "armed": True,
        "wrapt_at_import": False,
        "wrapped": "FunctionWrapper",
        "retries": 1,
    }


def test_library_imported_before_the_shim_is_patched_at_once() -> None:
    code = "import httpx, keepalive_patch; print(httpx.HTTPTransport()._pool._retries)"
    result = run_python([*PYTHON, "-c", code], clean_env())
    assert result.stdout.strip() == "1"


def test_environment_settings_reach_the_live_socket() -> None:
    require_socket_options(pytest.importorskip("httpx"))
    env = clean_env(
        KEEPALIVE_PATCH_IDLE="5",
        KEEPALIVE_PATCH_INTERVAL="2",
        KEEPALIVE_PATCH_COUNT="4",
        KEEPALIVE_PATCH_USER_TIMEOUT="0",
    )
    result = run_script("live_settings.py", "httpx", env=env, flags=["-W", "error"])
    options = json.loads(result.stdout)
    names = ["TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT"]
    assert [options[name] for name in names] == [5, 2, 4, 0]
    assert result.stderr == "", "no warnings, no log output by default"


def test_disable_variable_leaves_everything_alone() -> None:
    result = run_script("shim_state.py", "httpx", env=clean_env(KEEPALIVE_PATCH_DISABLE="1"))
    state = json.loads(result.stdout)
    assert state == {"applied": False, "init": "function", "retries": 0, "wrapt": False}


def test_bad_environment_never_breaks_the_host() -> None:
    env = clean_env(
        KEEPALIVE_PATCH_IDLE="forever",
        KEEPALIVE_PATCH_COUNT="0",
        KEEPALIVE_PATCH_INTERVAL="32767",
        KEEPALIVE_PATCH_REPLAY="sometimes",
        KEEPALIVE_PATCH_SKIP="nosuchlib",
    )
    result = run_script("shim_state.py", "httpx", env=env, flags=["-W", "error"])
    assert json.loads(result.stdout)["retries"] == 1
    assert result.stderr == ""


def test_retries_only_host_with_warnings_as_errors(retries_only_lib: types.ModuleType) -> None:
    """A fresh ``-X dev -W error`` host: requests work, retries=1, one note, nothing else."""
    flags = ["-X", "dev", "-W", "error"]
    done = run_script("retries_only_host.py", retries_only_lib.__name__, flags=flags)
    assert json.loads(done.stdout) == [["ok", 0, 1], ["ok", 0, 1]]
    ours = [line for line in done.stderr.splitlines() if line.startswith("keepalive_patch ")]
    assert [line for line in ours if "retries only" in line] == [
        f"keepalive_patch WARNING {retries_only_lib.__name__} transports take no socket_options "
        "(httpx < 0.25); injecting retries only"
    ]
    others = [line for line in done.stderr.splitlines() if not line.startswith("keepalive_patch ")]
    assert others == [], done.stderr


@pytest.mark.parametrize("word", ["y", "perhaps", "TRUE ", "2"])
def test_mistyped_opt_out_fails_closed(word: str) -> None:
    """An emergency off switch must not be defeated by a typo: any other value disables."""
    env = clean_env(KEEPALIVE_PATCH_DISABLE=word)
    result = run_script("shim_state.py", "httpx", env=env, check=False)
    state = json.loads(result.stdout)
    assert [state["applied"], state["retries"]] == [False, 0], result.stderr


def test_logger_has_a_null_handler_and_stdout_stays_clean() -> None:
    env = clean_env(KEEPALIVE_PATCH_IDLE="bad")  # something to log
    result = run_script("logger_handlers.py", "httpx", env=env)
    assert json.loads(result.stdout) == ["NullHandler"]
    assert result.stderr == ""
