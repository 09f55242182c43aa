"""The ``keepalive-patch`` command: ``run``, ``path``, ``enable`` / ``disable`` and usage errors.

``run`` and ``enable`` are proven on the unmodified app (scripts/http_app.py) in subprocesses;
``enable`` / ``disable`` work on a throwaway virtualenv (or user site) made by the test.
"""

import os
import shlex
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from support.procs import (
    DEPENDENCIES,
    REPO,
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

from keepalive_patch import bootstrap, cli

SCRIPT = Path(sys.executable).parent / (
    "keepalive-patch.exe" if os.name == "nt" else "keepalive-patch"
)
#: The launcher, as a console script and as ``python -m``.
LAUNCHERS = pytest.mark.parametrize(
    "launcher",
    [[str(SCRIPT)], [sys.executable, "-m", "keepalive_patch"]],
    ids=["script", "module"],
)


@LAUNCHERS
def test_run_patches_the_app_and_its_children(launcher: "list[str]") -> None:
    report = run_app([*launcher, "run", "--", sys.executable], clean_env(), "--child")
    assert_patched(report)
    assert_light_start(report["modules_at_start"])


@LAUNCHERS
def test_run_flags_become_settings(launcher: "list[str]") -> None:
    flags = ["--idle", "7", "--interval", "2", "--count", "4", "--user-timeout", "5000"]
    report = run_app([*launcher, "run", *flags, "--", sys.executable], clean_env(), "--child")
    assert_patched(report, idle=7, interval=2, count=4, user_timeout=5000)


def test_run_without_the_double_dash() -> None:
    report = run_app([str(SCRIPT), "run", "--idle", "9", sys.executable], clean_env())
    assert_patched(report, idle=9)


@pytest.mark.parametrize("word", ["1", "y", "perhaps"])
def test_run_respects_the_opt_out_variable(word: str) -> None:
    """Mistyped, the emergency off switch still switches off (it fails closed)."""
    env = clean_env(KEEPALIVE_PATCH_DISABLE=word)
    assert_unpatched(run_app([str(SCRIPT), "run", "--", sys.executable], env, "--child"))


def test_run_passes_the_exit_status_through() -> None:
    command = [str(SCRIPT), "run", "--", sys.executable, "-c", "import sys; sys.exit(3)"]
    assert run_python(command, clean_env(), check=False).returncode == 3


def test_run_keeps_pythonpath_and_never_repeats_itself(tmp_path: Path) -> None:
    show = "import os, sys; print(os.environ['PYTHONPATH'])"
    nested = [str(SCRIPT), "run", "--", str(SCRIPT), "run", "--idle", "5", "--"]
    env = clean_env(PYTHONPATH=str(tmp_path))
    result = run_python([*nested, sys.executable, "-c", show], env)
    assert result.stdout.strip() == os.pathsep.join([bootstrap.DIRECTORY, str(tmp_path)])


def test_child_environment_adds_no_empty_path_entry() -> None:
    env = cli.child_environment({"PYTHONPATH": ""}, {"idle": 5, "count": None})
    assert env["PYTHONPATH"] == bootstrap.DIRECTORY
    assert env["KEEPALIVE_PATCH_IDLE"] == "5"
    assert "KEEPALIVE_PATCH_COUNT" not in env


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["run"], "missing the command"),
        (["run", "--"], "missing the command"),
        (["run", "--idle", "5"], "missing the command"),
        (["run", "--bogus", "--", "true"], "unrecognized arguments: --bogus"),
        (["run", "--idle", "0", "--", "true"], "idle must be an integer from 1 to 32767"),
        (["run", "--count", "x", "--", "true"], "not an integer: 'x'"),
        ([], "required"),
        (["frobnicate"], "invalid choice"),
        (["check", "ftp://example.invalid/"], "must start with http"),
        (["check", "--bogus"], "unrecognized arguments"),
        (["enable", "--everywhere"], "unrecognized arguments"),
    ],
)
def test_usage_errors_exit_2(arguments: "list[str]", message: str) -> None:
    result = run_python([str(SCRIPT), *arguments], clean_env(), check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "usage:" in result.stderr
    assert result.stdout == ""


def test_run_reports_a_missing_command() -> None:
    result = run_python(
        [str(SCRIPT), "run", "--", "no-such-command-here"], clean_env(), check=False
    )
    assert result.returncode == 127
    assert "command not found: no-such-command-here" in result.stderr


def test_run_reports_an_empty_command_as_not_found() -> None:
    result = run_python([str(SCRIPT), "run", "--", ""], clean_env(), check=False)
    assert result.returncode == 127
    assert "command not found: ''" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("closed", [">&-", "2>&-", ">&- 2>&-"])
def test_run_with_a_closed_output_stream_still_runs_the_command(
    closed: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    shell = f"{shlex.quote(str(SCRIPT))} run -- sh -c 'touch {marker}; exit 3' {closed}"
    result = run_python(["sh", "-c", shell], clean_env(), check=False)
    assert marker.exists(), result.stderr
    assert result.returncode == 3
    assert "Traceback" not in result.stderr


@LAUNCHERS
def test_path_prints_the_bootstrap_directory(launcher: "list[str]") -> None:
    printed = run_python([*launcher, "path"], clean_env()).stdout.strip()
    assert printed == bootstrap.DIRECTORY
    assert (Path(printed) / "sitecustomize.py").is_file()


def test_version() -> None:
    assert run_python([str(SCRIPT), "--version"], clean_env()).stdout.startswith("keepalive-patch ")


def test_bootstrap_directory_ships_in_the_package() -> None:
    """``packages = find:`` picks up the bootstrap package; no top-level module is shipped."""
    setuptools = pytest.importorskip("setuptools")
    found = setuptools.find_packages(str(REPO), include=["keepalive_patch", "keepalive_patch.*"])
    assert "keepalive_patch.bootstrap" in found
    assert "py_modules" not in (REPO / "setup.cfg").read_text()


# --- enable / disable ---------------------------------------------------------------------------


def test_enable_and_disable_a_virtualenv(tmp_path: Path) -> None:
    python, purelib = throwaway_venv(tmp_path / "venv")
    env = clean_env()
    pth = purelib / cli.PTH_NAME
    command = [str(python), "-m", "keepalive_patch"]

    assert_unpatched(run_app([str(python)], env))
    enabled = run_python([*command, "enable"], env, cwd=tmp_path)
    assert enabled.stdout == f"enabled: wrote {pth}; every new {python} process is patched\n"
    assert pth.read_text() == cli.PTH_CONTENT
    again = run_python([*command, "enable"], env, cwd=tmp_path)
    assert again.stdout == f"already enabled: {pth}\n"

    assert_patched(run_app([str(python)], env, "--child"))
    assert_patched(run_app([str(python), "-I"], env))  # site-packages .pth files still run
    assert "keepalive_patch" not in start_modules([str(python), "-S"], env)  # no site, no .pth
    assert_unpatched(run_app([str(python)], clean_env(KEEPALIVE_PATCH_DISABLE="1"), "--child"))
    assert_unpatched(run_app([str(python)], clean_env(KEEPALIVE_PATCH_DISABLE="y"), "--child"))
    assert_patched(run_app([str(python)], clean_env(KEEPALIVE_PATCH_IDLE="11")), idle=11)
    modules = start_modules([str(python)], env)
    assert_light_start(modules)
    assert "keepalive_patch" in modules

    disabled = run_python([*command, "disable"], env, cwd=tmp_path)
    assert disabled.stdout == f"disabled: removed {pth}\n"
    assert not pth.exists()
    again = run_python([*command, "disable"], env, cwd=tmp_path)
    assert again.stdout == f"already disabled: {pth} does not exist\n"
    assert_unpatched(run_app([str(python)], env))


def test_leftover_pth_is_harmless_once_the_package_is_gone(tmp_path: Path) -> None:
    python, purelib = throwaway_venv(tmp_path / "venv")
    shutil.rmtree(purelib / "keepalive_patch")  # pip uninstall keepalive-patch
    (purelib / "_keepalive_test_paths.pth").unlink()
    (purelib / cli.PTH_NAME).write_text(cli.PTH_CONTENT)
    result = run_python([str(python), "-c", "print('ok')"], clean_env())
    assert (result.stdout, result.stderr) == ("ok\n", "")


def test_enable_user_refused_in_a_virtualenv(tmp_path: Path) -> None:
    python, _ = throwaway_venv(tmp_path / "venv")
    result = run_python(
        [str(python), "-m", "keepalive_patch", "enable", "--user"], clean_env(), check=False
    )
    assert result.returncode == 1
    assert "does not read the user site-packages" in result.stderr


def test_enable_that_cannot_write_names_the_pth_and_suggests_only_what_works(
    tmp_path: Path,
) -> None:
    """A virtualenv has no user site, so ``--user`` is not suggested; the error names the .pth."""
    python, purelib = throwaway_venv(tmp_path / "venv")
    (purelib / cli.PTH_NAME).mkdir()  # root ignores permissions: make the write fail another way
    result = run_python([str(python), "-m", "keepalive_patch", "enable"], clean_env(), check=False)
    assert result.returncode == 1
    assert f"cannot change {purelib / cli.PTH_NAME}:" in result.stderr
    assert ".tmp" not in result.stderr
    assert "--user" not in result.stderr
    assert "Traceback" not in result.stderr


def _base_python() -> Path:
    """The interpreter this test virtualenv was made from: it has a user site."""
    name = "python.exe" if os.name == "nt" else "bin/python3"
    python = Path(sys.base_prefix) / name
    if not python.exists() or sys.flags.no_user_site:
        pytest.skip("no base interpreter with a user site")
    return python


def test_enable_and_disable_the_user_site(tmp_path: Path) -> None:
    python = _base_python()
    env = clean_env(PYTHONUSERBASE=str(tmp_path / "userbase"))
    where = [
        str(python),
        "-c",
        "import site; print(site.ENABLE_USER_SITE, site.getusersitepackages())",
    ]
    enabled_site, user_site_text = run_python(where, env).stdout.split()
    if enabled_site != "True":
        pytest.skip("the base interpreter has no user site here")
    user_site = Path(user_site_text)
    install_copy(user_site)  # pip install --user keepalive-patch
    command = [str(python), "-m", "keepalive_patch"]
    pth = user_site / cli.PTH_NAME

    assert_unpatched(run_app([str(python)], env, cwd=tmp_path))
    result = run_python([*command, "enable", "--user"], env, cwd=tmp_path)
    assert result.stdout.startswith(f"enabled: wrote {pth}")
    assert_patched(run_app([str(python)], env, "--child", cwd=tmp_path))
    result = run_python([*command, "disable", "--user"], env, cwd=tmp_path)
    assert result.stdout == f"disabled: removed {pth}\n"
    assert_unpatched(run_app([str(python)], env, cwd=tmp_path))


def test_enable_refuses_when_the_file_would_not_load_the_package(tmp_path: Path) -> None:
    """keepalive_patch only on PYTHONPATH: a new interpreter would not find it; nothing is left."""
    python = _base_python()
    env = clean_env(
        PYTHONUSERBASE=str(tmp_path / "userbase"),
        PYTHONPATH=os.pathsep.join([str(REPO), DEPENDENCIES]),
    )
    result = run_python(
        [str(python), "-m", "keepalive_patch", "enable", "--user"], env, cwd=tmp_path, check=False
    )
    if "does not read the user site" in result.stderr:
        pytest.skip("the base interpreter has no user site here")
    assert result.returncode == 1
    assert "did not load keepalive_patch" in result.stderr
    assert not list((tmp_path / "userbase").rglob(cli.PTH_NAME))


def test_pth_directory_is_this_environments_site_packages() -> None:
    assert cli.pth_directory(user=False) == sysconfig.get_paths()["purelib"]
    if site.ENABLE_USER_SITE:
        assert cli.pth_directory(user=True) == site.getusersitepackages()


def test_console_script_exists() -> None:
    assert SCRIPT.exists(), "pip install -e '.[test]' installs the keepalive-patch script"
    assert run_python([str(SCRIPT), "--help"], clean_env(), check=False).returncode == 0


def test_closed_output_pipe_is_quiet() -> None:
    """``keepalive-patch check --json | head``: no BrokenPipeError traceback."""
    check = subprocess.Popen(
        [sys.executable, "-m", "keepalive_patch", "check", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    assert check.stdout is not None and check.stderr is not None
    check.stdout.close()  # the reader is gone before the report is written
    check.wait(timeout=60)
    assert b"Traceback" not in check.stderr.read()
    check.stderr.close()
