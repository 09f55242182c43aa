"""Defaults and inputs that must never break a working app, each in a fresh interpreter.

From adversarial testing: settings inside the documented bounds, a library imported from a zip,
an httpx without SOCKS support, a mistyped opt-out.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from support.libs import installed_libraries, takes_socket_options
from support.procs import SCRIPTS, clean_env, run_python

LIBRARY_NAMES = [lib.__name__ for lib in installed_libraries()]
EXTREMES = {"KEEPALIVE_PATCH_INTERVAL": "32767", "KEEPALIVE_PATCH_COUNT": "127"}


def _report(*argv: str, **env: str) -> dict[str, Any]:
    result = run_python([sys.executable, *argv], clean_env(**env))
    assert result.stderr == "", result.stderr
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return report


@pytest.mark.parametrize("name", LIBRARY_NAMES)
def test_extreme_in_bounds_settings_keep_the_patch_on(name: str, tmp_path: Path) -> None:
    """interval 32767 x count 127 once overflowed a derived option and switched all off."""
    report = _report(str(SCRIPTS / "zip_app.py"), str(tmp_path / "none.zip"), name, **EXTREMES)
    assert report["applied"] and report["retries"] == 1
    if takes_socket_options(importlib.import_module(name)):
        values = {tuple(option[:2]): option[2] for option in report["socket_options"]}
        assert 32767 in values.values() and 127 in values.values(), values


def test_extreme_in_bounds_settings_never_raise_in_settings_or_check() -> None:
    code = (
        "import keepalive_patch; s = keepalive_patch.settings(); "
        "print(s.interval, s.count, len(keepalive_patch.socket_options()) > 0)"
    )
    result = run_python([sys.executable, "-c", code], clean_env(**EXTREMES))
    assert result.stdout.split() == ["32767", "127", "True"], result.stderr
    check = run_python(
        [sys.executable, "-m", "keepalive_patch", "check", "--json"],
        clean_env(**EXTREMES),
        check=False,
    )
    assert "Traceback" not in check.stderr
    report = json.loads(check.stdout)
    assert report["settings"]["interval"]["value"] == 32767
    apply = run_python(
        [sys.executable, "-c", "import keepalive_patch; keepalive_patch.apply(interval=20000, "
         "count=127); print(keepalive_patch.settings().interval)"],
        clean_env(),
    )  # fmt: skip
    assert apply.stdout.strip() == "20000", apply.stderr


def _zip_of(name: str, directory: Path) -> Path:
    """The installed package ``name``, copied into a zip archive (what zipapp and shiv make)."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations
    package = Path(next(iter(spec.submodule_search_locations)))
    archive = directory / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in package.rglob("*.py"):
            bundle.write(path, str(path.relative_to(package.parent)))
    return archive


@pytest.mark.parametrize("name", LIBRARY_NAMES)
def test_library_imported_from_a_zip_is_patched(name: str, tmp_path: Path) -> None:
    """Python 3.9's zipimporter has no exec_module: the legacy load_module path is hooked."""
    archive = _zip_of(name, tmp_path)
    report = _report(str(SCRIPTS / "zip_app.py"), str(archive), name)
    assert report["file"].startswith(str(archive)), report
    assert report["loader"] == "zipimporter", "the real loader is put back"
    assert report["retries"] == 1
    if takes_socket_options(importlib.import_module(name)):
        assert report["socket_options"], report


@pytest.mark.parametrize("name", LIBRARY_NAMES)
def test_no_warning_when_socks_support_is_not_installed(name: str) -> None:
    result = run_python([sys.executable, str(SCRIPTS / "no_socksio_app.py"), name], clean_env())
    assert result.stdout.strip() == "stand-in"
    said = result.stderr  # httpx < 0.25's one "retries only" note may stand here
    assert "SOCKS" not in said and "network_backend" not in said, said


@pytest.mark.parametrize("name", LIBRARY_NAMES)
def test_skip_leaves_one_library_alone(name: str, tmp_path: Path) -> None:
    report = _report(
        str(SCRIPTS / "zip_app.py"), str(tmp_path / "none.zip"), name, KEEPALIVE_PATCH_SKIP=name
    )
    assert report["applied"] and report["retries"] == 0 and report["socket_options"] == []


def test_skip_with_an_unknown_name_is_logged_once_and_ignored() -> None:
    code = (
        "import logging, sys; logging.basicConfig(stream=sys.stdout, format='%(message)s'); "
        "import keepalive_patch, httpx; httpx.HTTPTransport(); httpx.HTTPTransport(); "
        "print(keepalive_patch.settings().skip == {'httpx2'})"
    )
    result = run_python(
        [sys.executable, "-c", code], clean_env(KEEPALIVE_PATCH_SKIP="httpx2, nosuchlib")
    )
    lines = result.stdout.splitlines()
    assert lines[-1] == "True"
    assert sum("nosuchlib" in line for line in lines) == 1, lines
