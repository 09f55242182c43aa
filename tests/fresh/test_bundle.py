"""``keepalive-patch bundle DIR``: one directory that patches any CPython 3.9+ of a fleet.

The bundle is built once per session (``bundle_dir``: it fetches wrapt's wheels from the package
index).  The app interpreters are pyenv's Python 3.9 and 3.13 in virtualenvs with httpx, requests
and aiohttp only (``app_python``); ``scripts/fleet_app.py`` reads the options back from their
live connections and the server counts the replay.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from support import bundles
from support.others import assert_fleet_app_patched, run_fleet_app
from support.procs import clean_env, run_python

import keepalive_patch
from keepalive_patch import bundle

pytestmark = pytest.mark.fleet


def app_env(bundle_dir: Path) -> "dict[str, str]":
    """Only ``PYTHONPATH`` set; bytecode writing left on, so a write would show."""
    env = clean_env(PYTHONPATH=str(bundle_dir / bundle.BOOTSTRAP))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def movable_copy(bundle_dir: Path, where: Path) -> Path:
    copy = where / "elsewhere" / "kp"
    shutil.copytree(bundle_dir, copy)
    return copy


def test_bundle_holds_the_package_and_wrapt_for_every_python(bundle_dir: Path) -> None:
    manifest = json.loads((bundle_dir / bundle.MANIFEST).read_text())
    assert manifest["keepalive_patch"] == keepalive_patch.__version__
    assert manifest["pythonpath"] == bundle.BOOTSTRAP == "keepalive_patch/bootstrap"
    assert (bundle_dir / bundle.BOOTSTRAP / "sitecustomize.py").is_file()
    assert (bundle_dir / "wrapt" / "__init__.py").is_file()
    assert (bundle_dir / "wrapt" / "wrappers.py").is_file()  # the pure-Python fallback
    machine = os.uname().machine
    for python in bundle.PYTHONS:
        tag = python.replace(".", "")
        assert f"_wrappers.cpython-{tag}-{machine}-linux-gnu.so" in manifest["extensions"]
    # musl's 3.9 / 3.10 extensions share glibc's file name: glibc's is kept, and it is said.
    assert all(":wrapt/_wrappers.cpython-3" in name for name in manifest["shadowed"])


def test_any_python_is_patched_from_a_read_only_copy(
    app_python: str, bundle_dir: Path, tmp_path: Path
) -> None:
    """PYTHONPATH alone, a copy moved elsewhere, read-only: live sockets carry the options, the
    server counts the replay, the compiled wrapt of that Python is used, nothing is written."""
    copy = movable_copy(bundle_dir, tmp_path)
    command = bundles.read_only(copy, [app_python])
    before = bundles.tree(copy)
    report, result = run_fleet_app(command, app_env(copy))
    assert report["shim"] == {"applied": True, "file": str(copy / "keepalive_patch/__init__.py")}
    assert_fleet_app_patched(report)
    assert Path(report["wrapt_extension"]).parent == copy / "wrapt"
    assert str(copy) not in report["sys_path"]
    assert "cannot import wrapt" not in result.stderr
    assert bundles.tree(copy) == before  # nothing written into it


def test_check_runs_from_the_bundle(app_python: str, bundle_dir: Path) -> None:
    command = [app_python, "-m", "keepalive_patch", "check"]
    result = run_python(command, app_env(bundle_dir), cwd="/")
    assert "Patch: applied" in result.stdout
    assert "OK: every installed library's connections carry the keepalive options." in (
        result.stdout
    )
    for library in ("httpx", "requests", "aiohttp"):
        assert f"  {library}" in result.stdout


def test_a_target_that_is_not_empty_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "full"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    result = bundles.build(target)
    assert result.returncode == 2
    assert "is not empty" in result.stderr
    assert [p.name for p in target.iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("version", ["3.8", "4", "latest"])
def test_an_unsupported_python_version_is_a_usage_error(version: str, tmp_path: Path) -> None:
    result = bundles.build(tmp_path / "b", "--python", version)
    assert result.returncode == 2
    assert "not a CPython version keepalive-patch supports" in result.stderr
    assert not (tmp_path / "b").exists()


def test_a_python_nothing_can_be_fetched_for(tmp_path: Path) -> None:
    result = bundles.build(tmp_path / "b", "--python", "3.9,3.99")
    assert result.returncode == 1
    assert "nothing to fetch for CPython 3.99" in result.stderr
    assert not (tmp_path / "b").exists()  # nothing half built
    assert [p.name for p in tmp_path.iterdir()] == []


def test_no_network_at_build_time(tmp_path: Path) -> None:
    """An index nobody answers (a closed loopback port; no configuration files, no local wheels):
    the message says what building needs, and that running never needs it."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_RETRIES="1"
    )
    result = bundles.build(tmp_path / "b", "--python", "3.9", env=env)
    assert result.returncode == 1
    assert "could not reach the package index" in result.stderr
    assert "building a bundle needs the network" in result.stderr
    assert "running one never does" in result.stderr
    assert not (tmp_path / "b").exists()


def test_bundle_command_is_documented() -> None:
    """README names the command the tests run."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert " ".join(bundles.COMMAND) + " " in readme
