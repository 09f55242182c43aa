"""The interpreter-start hooks: the checkout's sitecustomize and the package's bootstrap directory.

Every test runs the unmodified app (scripts/http_app.py) or a bare interpreter in a subprocess and
reads the options back from live loopback connections.
"""

import glob
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.others import assert_fleet_app_patched, run_fleet_app
from support.procs import (
    DEPENDENCIES,
    PYTHON,
    REPO,
    SCRIPTS,
    assert_light_start,
    assert_patched,
    assert_unpatched,
    clean_env,
    install_copy,
    run_app,
    run_python,
    start_modules,
    throwaway_venv,
)

from keepalive_patch import _sitecustomize, bootstrap

BOOTSTRAP = bootstrap.DIRECTORY
#: The two ways to put our sitecustomize first: the checkout itself, or the installed package's.
HOOK_DIRS = pytest.mark.parametrize("hook_dir", [str(REPO), BOOTSTRAP], ids=["checkout", "package"])


def pythonpath(*entries: "str | Path") -> str:
    return os.pathsep.join(str(entry) for entry in entries)


def second_sitecustomize(tmp_path: Path) -> Path:
    """A directory holding another ``sitecustomize`` (``scripts/second_sitecustomize.py``)."""
    second = tmp_path / "second"
    second.mkdir()
    shutil.copyfile(SCRIPTS / "second_sitecustomize.py", second / "sitecustomize.py")
    return second


@HOOK_DIRS
def test_app_is_patched_and_so_are_its_children(hook_dir: str) -> None:
    report = run_app(PYTHON, clean_env(PYTHONPATH=hook_dir), "--child")
    assert_patched(report)
    assert_light_start(report["modules_at_start"])
    assert "keepalive_patch" in report["modules_at_start"]


@HOOK_DIRS
def test_hosts_running_with_warnings_as_errors(hook_dir: str) -> None:
    result = run_python(
        [*PYTHON, "-X", "dev", "-W", "error", "-c", "pass"], clean_env(PYTHONPATH=hook_dir)
    )
    assert result.stderr == ""
    assert_patched(run_app([*PYTHON, "-W", "error"], clean_env(PYTHONPATH=hook_dir)))


@HOOK_DIRS
def test_settings_come_from_the_environment(hook_dir: str) -> None:
    env = clean_env(PYTHONPATH=hook_dir, KEEPALIVE_PATCH_IDLE="7", KEEPALIVE_PATCH_COUNT="2")
    assert_patched(run_app(PYTHON, env), idle=7, count=2)


@HOOK_DIRS
def test_opt_out_variable_wins(hook_dir: str) -> None:
    env = clean_env(PYTHONPATH=hook_dir, KEEPALIVE_PATCH_DISABLE="1")
    report = run_app(PYTHON, env, "--child")
    assert_unpatched(report)
    with pytest.raises(AssertionError):  # the check above is not vacuous, on any httpx
        assert_patched(report)


@HOOK_DIRS
def test_hook_imports_nothing_heavy(hook_dir: str) -> None:
    """Only our own light modules are added to what a bare interpreter loads."""
    bare = set(start_modules(PYTHON, clean_env()))
    hooked = set(start_modules(PYTHON, clean_env(PYTHONPATH=hook_dir)))
    assert_light_start(sorted(hooked))
    added = hooked - bare
    assert "keepalive_patch" in added
    assert {name for name in added if not name.startswith("keepalive_patch")} <= {"sitecustomize"}


@pytest.mark.parametrize("flag", ["-I", "-E", "-S"])
def test_isolated_modes_are_not_covered(flag: str, tmp_path: Path) -> None:
    """``-I`` and ``-E`` ignore PYTHONPATH and ``-S`` skips site: the PYTHONPATH ways miss them."""
    python, _ = throwaway_venv(tmp_path / "venv")
    env = clean_env(PYTHONPATH=BOOTSTRAP)
    assert "keepalive_patch" in start_modules([str(python)], env)
    assert "keepalive_patch" not in start_modules([str(python), flag], env)


def test_checkout_needs_no_installation(tmp_path: Path) -> None:
    """A virtualenv with httpx and wrapt but no keepalive-patch, and the checkout on PYTHONPATH."""
    python, _ = throwaway_venv(tmp_path / "venv", install=False)
    assert_unpatched(run_app([str(python)], clean_env()))
    assert_patched(run_app([str(python)], clean_env(PYTHONPATH=str(REPO)), "--child"))


@HOOK_DIRS
def test_next_sitecustomize_runs_once_after_the_patch(hook_dir: str, tmp_path: Path) -> None:
    second = second_sitecustomize(tmp_path)
    log = tmp_path / "log"
    # Our directory twice (and both of ours) must not run anything twice.
    path = pythonpath(hook_dir, BOOTSTRAP, REPO, hook_dir, second)
    code = "import sitecustomize, sys; print(sitecustomize.__file__); import sitecustomize"
    result = run_python([*PYTHON, "-c", code], clean_env(PYTHONPATH=path, SECOND_LOG=str(log)))
    assert log.read_text() == "ran applied=True\n"
    assert result.stdout.strip() == str(second / "sitecustomize.py")
    assert result.stderr == ""


@HOOK_DIRS
def test_next_sitecustomize_error_surfaces_as_without_us(hook_dir: str, tmp_path: Path) -> None:
    second = second_sitecustomize(tmp_path)
    code = "import sys; print('sitecustomize' in sys.modules, 'keepalive_patch' in sys.modules)"
    outcomes = []
    for path in (pythonpath(second), pythonpath(hook_dir, second)):
        env = clean_env(PYTHONPATH=path, SECOND_LOG=str(tmp_path / "log"), SECOND_RAISE="1")
        outcomes.append(run_python([*PYTHON, "-c", code], env))
    without_us, with_us = outcomes
    assert "RuntimeError: boom from the second sitecustomize" in without_us.stderr
    assert with_us.stderr == without_us.stderr
    assert (with_us.returncode, without_us.returncode) == (0, 0)
    assert without_us.stdout == "False False\n"
    assert with_us.stdout == "False True\n"  # the patch was applied before the error
    assert (tmp_path / "log").read_text() == "ran applied=False\nran applied=True\n"


@HOOK_DIRS
def test_next_sitecustomize_error_traceback_in_verbose_mode(hook_dir: str, tmp_path: Path) -> None:
    second = second_sitecustomize(tmp_path)
    env = clean_env(
        PYTHONPATH=pythonpath(hook_dir, second),
        SECOND_LOG=str(tmp_path / "log"),
        SECOND_RAISE="1",
        PYTHONVERBOSE="1",
    )
    result = run_python([*PYTHON, "-c", "pass"], env)
    assert "Traceback" in result.stderr
    assert "RuntimeError: boom from the second sitecustomize" in result.stderr


def test_find_next_skips_our_own_directory(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for directory in (ours, theirs):
        directory.mkdir()
        (directory / "sitecustomize.py").write_text("")
    spec = _sitecustomize.find_next(str(ours), [str(theirs), str(ours), str(ours), str(theirs)])
    assert spec is not None and spec.origin == str(theirs / "sitecustomize.py")
    assert _sitecustomize.find_next(str(ours), [str(theirs), str(ours)]) is None
    # Not on the path at all: search all of it, still never finding ourselves.
    spec = _sitecustomize.find_next(str(ours), [str(theirs)])
    assert spec is not None and spec.origin == str(theirs / "sitecustomize.py")


def _other_python(version: str) -> "str | None":
    pattern = os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python")
    found = sorted(glob.glob(pattern))
    return found[0] if found else None


def another_environment(root: Path) -> Path:
    """Another environment's site-packages, as ``pip install keepalive-patch`` leaves it: the
    package and wrapt (2.x here, its compiled extension built for this Python only)."""
    install_copy(root)
    (root / "_keepalive_test_paths.pth").unlink()
    shutil.copytree(
        Path(DEPENDENCIES) / "wrapt", root / "wrapt", ignore=shutil.ignore_patterns("__pycache__")
    )
    return root


def fleet_app(python: str, hook_dir: "str | Path") -> "tuple[dict[str, Any], str]":
    """``scripts/fleet_app.py`` run by ``python`` with ``PYTHONPATH=hook_dir``: report, log."""
    report, result = run_fleet_app([python], clean_env(PYTHONPATH=str(hook_dir)))
    return report, result.stderr


@pytest.mark.fleet
def test_another_interpreter_borrows_the_package_and_wrapt(app_python: str, tmp_path: Path) -> None:
    """A different Python inheriting PYTHONPATH, with no wrapt of its own, is patched: live
    sockets carry the options, retries are set, the server counts the replay."""
    site = another_environment(tmp_path / "site-packages")
    report, log = fleet_app(app_python, site / "keepalive_patch" / "bootstrap")
    assert report["shim"] == {"applied": True, "file": str(site / "keepalive_patch/__init__.py")}
    assert str(site) not in report["sys_path"]  # borrowed, not left on the path
    assert_fleet_app_patched(report)
    assert "cannot import wrapt" not in log
    assert "applied to httpx" in log


@pytest.mark.fleet
def test_another_interpreter_without_wrapt_is_not_applied(app_python: str) -> None:
    """Borrowing the package where no wrapt can be found: nothing is patched, and nothing says
    otherwise (``is_applied()``, the log once, no "applied to" line)."""
    # The checkout's bootstrap: the package beside it, but no wrapt there.
    report, log = fleet_app(app_python, BOOTSTRAP)
    assert report["shim"] == {"applied": False, "file": str(REPO / "keepalive_patch/__init__.py")}
    for library, got in report["results"].items():
        assert (got["options"]["SO_KEEPALIVE"], got["retries"]) == (0, 0), library
    assert report["replay"] == {"requests": 2, "outcome": "RemoteProtocolError"}
    assert log.count("cannot import wrapt") == 1, log
    assert "applied to" not in log


@pytest.mark.fleet
def test_check_says_why_nothing_is_applied_without_wrapt(app_python: str) -> None:
    command = [app_python, "-m", "keepalive_patch", "check"]
    result = run_python(command, clean_env(PYTHONPATH=BOOTSTRAP), cwd="/", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Patch: NOT APPLIED: this Python" in result.stdout
    assert "cannot import wrapt" in result.stdout


@pytest.mark.parametrize("version", ["2.7", "3.8"])
def test_older_interpreters_on_the_same_pythonpath_are_left_alone(version: str) -> None:
    python = _other_python(version)
    if python is None:
        pytest.skip(f"no Python {version} here")
    code = "import sys; print('keepalive_patch' in sys.modules)"
    for hook_dir in (BOOTSTRAP, str(REPO)):
        result = run_python([python, "-c", code], clean_env(PYTHONPATH=hook_dir))
        assert (result.stdout, result.stderr) == ("False\n", "")
