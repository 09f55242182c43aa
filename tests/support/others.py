"""Other Pythons (pyenv's 3.9 and 3.13) with httpx, requests and aiohttp, but no wrapt.

They stand for the fleet's interpreters: environments that never installed keepalive-patch nor
wrapt, and inherit a ``PYTHONPATH`` pointing at a directory of ours.  Each virtualenv is made
once per test session by ``pip install`` from the package index (pip's cache makes it quick).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: What a fleet's app environment has: the HTTP libraries, nothing of ours.
APP_PACKAGES = ("httpx", "requests", "aiohttp")
#: The other Pythons these tests use, where pyenv has them.
VERSIONS = ("3.9", "3.13")


def other_python(version: str) -> str | None:
    """pyenv's newest ``version``.x interpreter, unless it is the one running the tests."""
    found = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python")))
    if not found or Path(found[-1]).resolve() == Path(sys.executable).resolve():
        return None
    return found[-1]


def app_venv(python: str, root: Path) -> Path:
    """A virtualenv of ``python`` at ``root`` with ``APP_PACKAGES``; returns its interpreter."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    subprocess.run([python, "-m", "venv", str(root)], check=True, env=env, timeout=300)
    venv_python = root / "bin" / "python"
    subprocess.run(
        [str(venv_python), "-m", "pip", "install", "-q", *APP_PACKAGES],
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )
    listed = subprocess.run(
        [str(venv_python), "-c", "import importlib.util as u; print(u.find_spec('wrapt'))"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    assert listed.stdout.strip() == "None", "the app's environment must not have wrapt"
    return venv_python


def run_fleet_app(
    prefix: list[str], env: dict[str, str], *args: str
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """``scripts/fleet_app.py`` (``FLEET_APP_LOG=1``) run through ``prefix`` (an interpreter, or
    launchers and one) from ``/``: its report, and the whole result (an agent may print around
    the report)."""
    from support.procs import SCRIPTS, run_python

    env = dict(env, FLEET_APP_LOG="1")
    result = run_python([*prefix, str(SCRIPTS / "fleet_app.py"), *args], env, cwd="/")
    lines = [line for line in result.stdout.splitlines() if line.startswith('{"results"')]
    assert len(lines) == 1, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(lines[0])
    return report, result


def assert_fleet_app_patched(report: dict[str, Any]) -> None:
    """What ``scripts/fleet_app.py`` reports from a patched interpreter: every library's live
    socket carries the options, httpx and requests got their connect retry, and the server
    counted the replay of a GET whose reused connection died."""
    from support.procs import expected

    assert sorted(report["results"]) == ["aiohttp", "httpx", "requests"]
    for library, got in report["results"].items():
        assert got["options"] == {key: expected()[key] for key in got["options"]}, library
    assert report["results"]["httpx"]["retries"] == 1
    assert report["results"]["requests"]["retries"] == 1
    assert report["replay"] == {"requests": 3, "outcome": "ok"}
