"""What a user installs: the sdist and wheel built from this tree, checked, and the wheel installed
into a clean virtualenv where ``keepalive-patch check`` must pass.

A packaging mistake (a missing ``bootstrap/``, ``py.typed``, an entry point) fails here instead of
for a user.  Building fetches the build backend from the package index (``python -m build``'s
isolated environment), as ``pip install`` of the wheel fetches wrapt.
"""

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from support.procs import REPO, clean_env, run_python

import keepalive_patch

pytestmark = pytest.mark.fleet

pytest.importorskip("build")

#: What the source tree holds that is not the project (local environments and caches).
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".nox", "__pycache__", "*.egg-info", "build", "dist", "*_cache"
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build`` (sdist, then the wheel from the sdist) of a copy of this tree."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    out = root / "dist"
    run_python([sys.executable, "-m", "build", "--outdir", str(out), str(source)], clean_env())
    return out


def only(directory: Path, pattern: str) -> Path:
    (found,) = directory.glob(pattern)
    return found


def test_twine_check_passes(dist: Path) -> None:
    files = [str(only(dist, "*.whl")), str(only(dist, "*.tar.gz"))]
    result = run_python([sys.executable, "-m", "twine", "check", "--strict", *files], clean_env())
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_holds_the_bootstrap_the_types_and_the_entry_points(dist: Path) -> None:
    wheel = only(dist, f"keepalive_patch-{keepalive_patch.__version__}-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        declared = archive.read(entry_points).decode()
    for member in (
        "keepalive_patch/__init__.py",
        "keepalive_patch/py.typed",
        "keepalive_patch/bootstrap/sitecustomize.py",
        "keepalive_patch/bootstrap/keepalive_patch_otel.py",
        "keepalive_patch/otel.py",
        "keepalive_patch/bundle.py",
    ):
        assert member in names, member
    assert not [name for name in names if name.startswith("tests/")]
    assert "keepalive-patch = keepalive_patch.cli:main" in declared
    assert "keepalive_patch = keepalive_patch.otel:KeepalivePatchInstrumentor" in declared


def test_the_wheel_in_a_clean_venv_passes_check(dist: Path, tmp_path: Path) -> None:
    """``pip install <wheel> httpx`` in a new virtualenv, then ``keepalive-patch check``."""
    root = tmp_path / "venv"
    venv.create(root, with_pip=True)
    bin_dir = root / "bin"
    wheel = only(dist, "*.whl")
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel), "httpx"],
        check=True,
        capture_output=True,
        env=clean_env(),
        timeout=600,
    )
    result = run_python([str(bin_dir / "keepalive-patch"), "check"], clean_env(), cwd=tmp_path)
    assert "Patch: applied" in result.stdout
    assert "OK: every installed library's connections carry the keepalive options." in (
        result.stdout
    )
    path = run_python(
        [str(bin_dir / "python"), "-m", "keepalive_patch", "path"], clean_env(), cwd=tmp_path
    )
    assert Path(path.stdout.strip(), "sitecustomize.py").is_file()
    assert str(root) in path.stdout  # the installed copy, not this checkout
