"""Run fresh interpreters (the programs in tests/scripts/) and judge what they report.

``run_python`` is the one way to start an interpreter (a command and an environment in, the
output captured, a non-zero exit a test failure); ``run_script`` runs a program of
``tests/scripts/`` with it, in ``clean_env()`` unless told otherwise; ``run_app`` runs the
unmodified test application (``http_app.py``) and returns its report, judged by
``assert_patched`` / ``assert_unpatched``.  ``HEAVY`` is what start-up must never load.
"""

import ast
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
SCRIPTS = TESTS / "scripts"
APP = SCRIPTS / "http_app.py"
#: This interpreter, the one the fresh ones are started from (the test environment's).
PYTHON = [sys.executable]
#: The app's connections: sync and async for each library installed here (as for the app).
CONNECTIONS = sorted(
    f"{name} {mode}"
    for name in ("httpx", "httpx2")
    if importlib.util.find_spec(name) is not None
    for mode in ("sync", "async")
)
#: Where the test's dependencies (httpx, httpx2, wrapt...) live, for throwaway environments.
DEPENDENCIES = sysconfig.get_paths()["purelib"]
#: What the start-up path (``keepalive_patch`` alone) must never import
#: (principle 3, "cost nothing when idle"): the HTTP libraries we patch, wrapt, and the standard
#: modules that cost milliseconds to import.  Every fresh-interpreter test judges start-up by this.
HEAVY = (
    # the libraries the integrations patch, and what they bring with them
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "anyio",
    "urllib3",
    "requests",
    "aiohttp",
    "botocore",
    # what we patch with, loaded at the first client built
    "wrapt",
    # standard modules the start-up path avoids (~1-6 ms each)
    "logging",
    "socket",
    "typing",
)


def clean_env(**extra: str) -> "dict[str, str]":
    """This environment without PYTHONPATH, user-site tricks or KEEPALIVE_PATCH_* settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("KEEPALIVE_PATCH_")
        and name not in ("PYTHONPATH", "PYTHONUSERBASE", "PYTHONNOUSERSITE", "PYTHONSTARTUP")
    }
    env.update(extra)
    return env


def run_python(
    command: "list[str]", env: "dict[str, str]", cwd: "Path | str | None" = None, check: bool = True
) -> "subprocess.CompletedProcess[str]":
    """Run ``command`` (an interpreter, or a launcher that starts one) and capture its output.

    ``check``: a non-zero exit fails the test, showing the program's stderr.
    """
    result = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{command} exited {result.returncode}:\n{result.stderr}")
    return result


def run_script(
    script: str,
    *args: str,
    env: "dict[str, str] | None" = None,
    flags: "Sequence[str]" = (),
    check: bool = True,
) -> "subprocess.CompletedProcess[str]":
    """``python [flags] tests/scripts/<script> [args]`` in ``env`` (default: ``clean_env()``)."""
    command = [*PYTHON, *flags, str(SCRIPTS / script), *args]
    return run_python(command, clean_env() if env is None else env, check=check)


def run_app(
    prefix: "list[str]", env: "dict[str, str]", *args: str, cwd: "Path | str | None" = None
) -> "dict[str, Any]":
    """Run the app through ``prefix`` (an interpreter, or a launcher + interpreter)."""
    result = run_python([*prefix, str(APP), *args], env, cwd=cwd)
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def expected(
    idle: int = 30, interval: int = 10, count: int = 3, user_timeout: int = 0
) -> "dict[str, int]":
    """The options an app's live sockets carry; ``TCP_USER_TIMEOUT`` is opt-in (0: unset)."""
    return {
        "SO_KEEPALIVE": 1,
        "TCP_KEEPIDLE": idle,
        "TCP_KEEPINTVL": interval,
        "TCP_KEEPCNT": count,
        "TCP_USER_TIMEOUT": user_timeout,
    }


def assert_patched(
    report: "dict[str, Any]",
    retries: int = 1,
    connections: "Sequence[str]" = CONNECTIONS,
    **settings: int,
) -> None:
    """Every connection of the app (and of its child, if any) was patched: its pool got the
    connect retries and, where the library takes socket_options, its live socket carries exactly
    the keepalive options; httpx < 0.25 takes none, so there the socket has none of ours.

    ``connections``: what the program connected with (the app: every installed library)."""
    want = expected(**settings)
    assert sorted(report["results"]) == sorted(connections), "every expected connection was made"
    for name, got in report["results"].items():
        assert got["retries"] == retries, (name, got)
        options = got["options"]
        if got["takes_socket_options"]:
            assert {key: options.get(key) for key in want} == want, (name, got)
        else:  # retries only
            assert options["SO_KEEPALIVE"] == 0, (name, got)
            assert options.get("TCP_USER_TIMEOUT", 0) == 0, (name, got)
    if "child" in report:
        assert_patched(report["child"], retries, connections, **settings)


def assert_unpatched(report: "dict[str, Any]", connections: "Sequence[str]" = CONNECTIONS) -> None:
    """No connection of the app (nor of its child) got anything from keepalive-patch."""
    assert sorted(report["results"]) == sorted(connections), "every expected connection was made"
    for name, got in report["results"].items():
        assert got["retries"] == 0, (name, got)
        assert got["options"]["SO_KEEPALIVE"] == 0, (name, got)
        assert got["options"].get("TCP_USER_TIMEOUT", 0) == 0, (name, got)
    if "child" in report:
        assert_unpatched(report["child"], connections)


@functools.cache
def heavy_without_us() -> "frozenset[str]":
    """What of ``HEAVY`` this environment's interpreter loads at start with no hook at all.

    Not ours to judge: on Python 3.9 the finder of an editable install (``pip install -e``, as
    here and in nox) imports ``typing`` through ``importlib.util`` before any hook runs.
    """
    return frozenset(start_modules(PYTHON, clean_env())) & frozenset(HEAVY)


def assert_light_start(modules: "list[str]") -> None:
    """Nothing heavy was imported before the app's first line ran (beyond ``heavy_without_us``)."""
    heavy = set(modules) & set(HEAVY) - heavy_without_us()
    assert not heavy, sorted(heavy)


def start_modules(prefix: "list[str]", env: "dict[str, str]") -> "list[str]":
    """``sys.modules`` of an interpreter that never imports anything itself."""
    code = "import sys; print(repr(sorted(sys.modules)))"
    result = run_python([*prefix, "-c", code], env)
    modules: list[str] = ast.literal_eval(result.stdout)
    return modules


def install_copy(site_dir: Path, package: bool = True) -> None:
    """``pip install keepalive-patch``, offline: the package copied in, its deps found by path.

    Not the checkout itself on the path: its top-level sitecustomize.py would patch everything.
    """
    site_dir.mkdir(parents=True, exist_ok=True)
    if package:
        shutil.copytree(
            REPO / "keepalive_patch",
            site_dir / "keepalive_patch",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    # Sorts before keepalive_patch.pth, as the files of a real installation are there first.
    (site_dir / "_keepalive_test_paths.pth").write_text(f"{DEPENDENCIES}\n")


def throwaway_venv(root: Path, install: bool = True) -> "tuple[Path, Path]":
    """A fresh virtualenv (no pip: fast, offline), the test's deps, the package if ``install``."""
    venv.create(root, with_pip=False, symlinks=os.name != "nt")
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = Path(
        run_python(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            clean_env(),
        ).stdout.strip()
    )
    install_copy(purelib, package=install)
    return python, purelib
