"""``keepalive-patch bundle DIR``: one directory that patches every CPython 3.9+ of a fleet.

The directory holds keepalive-patch (copied from this installation) and wrapt: the pure-Python
files once, and wrapt's compiled extension for each CPython version and platform asked for, side
by side.  Their file names carry the ABI (``_wrappers.cpython-39-x86_64-linux-gnu.so``,
``_wrappers.cpython-313-x86_64-linux-musl.so``), so every interpreter loads its own and ignores
the others; one for which none fits (another version, an older glibc) uses wrapt's pure-Python
implementation.  ``PYTHONPATH=DIR/keepalive_patch/bootstrap`` is all an app process needs: the
bootstrap borrows the package and wrapt from ``DIR`` (``_lend.lend_wrapt``).

Building needs the package index (``pip download`` of wrapt's wheels: PyPI, or whatever pip is
configured to use); running never touches the network.  The directory is built beside ``DIR``
and renamed into place, so a failed build leaves nothing half made.

Imported only by the command, never at interpreter start.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import keepalive_patch

#: The CPython versions a bundle carries wrapt's compiled extension for, unless told.
PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
#: Where the bootstrap sits inside a bundle: what ``PYTHONPATH`` names.
BOOTSTRAP = "keepalive_patch/bootstrap"
#: The bundle's own description, read by people and by the deployment tests.
MANIFEST = "bundle.json"
#: What pip says when it cannot reach the index at all (as opposed to finding nothing there).
_NETWORK_ERRORS = (
    "NewConnectionError",
    "Connection refused",
    "Network is unreachable",
    "Temporary failure in name resolution",
    "Name or service not known",
    "ConnectTimeout",
    "Read timed out",
    "Could not fetch URL",
)


class BundleError(Exception):
    """A bundle that cannot be built; ``status`` is the command's exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def default_platforms() -> list[str]:
    """glibc and musl wheels for this machine's architecture.

    Each tag also accepts wheels for an older C library (``platform_tags``); a host whose glibc
    is older than a wheel needs simply fails to load that extension, and wrapt uses its
    pure-Python implementation there.
    """
    machine = platform.machine() or "x86_64"
    return [f"manylinux_2_28_{machine}", f"musllinux_1_2_{machine}"]


def platform_tags(tag: str) -> list[str]:
    """``tag`` and every older tag of the same C library and architecture, newest first.

    ``pip download --platform`` matches the tags given exactly, and wheels name the oldest
    library they need (wrapt: ``manylinux_2_5`` and ``manylinux_2_28``; others
    ``manylinux2014``), so ``manylinux_2_28_x86_64`` is asked as 2.28, 2.27, ... 2.5 and the
    legacy aliases of 2.17, 2.12 and 2.5 (``manylinux2014``, ``manylinux2010``, ``manylinux1``).
    """
    glibc = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", tag)
    if glibc is not None:
        newest, arch = int(glibc.group(1)), glibc.group(2)
        aliases = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags = []
        for minor in range(newest, 4, -1):
            tags.append(f"manylinux_2_{minor}_{arch}")
            if minor in aliases:
                tags.append(f"{aliases[minor]}_{arch}")
        return tags
    musl = re.fullmatch(r"musllinux_1_(\d+)_(\w+)", tag)
    if musl is not None:
        newest, arch = int(musl.group(1)), musl.group(2)
        return [f"musllinux_1_{minor}_{arch}" for minor in range(newest, 0, -1)]
    return [tag]


def wrapt_version() -> str:
    """The wrapt this installation runs with: the one its tests ran against."""
    from importlib.metadata import version

    return version("wrapt")


def build(
    target: Path,
    pythons: Sequence[str] = PYTHONS,
    platforms: Sequence[str] | None = None,
    wrapt: str | None = None,
    out: TextIO | None = None,
) -> dict[str, object]:
    """Build the bundle at ``target``; returns its manifest.  Raises ``BundleError``."""
    out = sys.stdout if out is None else out
    platforms = list(platforms) if platforms else default_platforms()
    wrapt = wrapt or wrapt_version()
    _check_pythons(pythons)
    target = target.absolute()
    _check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as work:
        wheels = Path(work, "wheels")
        staging = Path(work, "bundle")
        staging.mkdir()
        shadowed: list[str] = []
        for tag in platforms:
            for python in pythons:
                print(f"fetching wrapt {wrapt} for CPython {python} ({tag})", file=out)
                fetched = wheels / tag / python
                _download(wrapt, python, tag, fetched)
                for wheel in sorted(fetched.glob("*.whl")):
                    shadowed += _extract(wheel, staging)
        package = Path(keepalive_patch.__file__).parent
        shutil.copytree(
            package,
            staging / "keepalive_patch",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        _declare_otel_entry_point(staging / BOOTSTRAP)
        manifest: dict[str, object] = {
            "keepalive_patch": keepalive_patch.__version__,
            "wrapt": wrapt,
            "pythons": list(pythons),
            "platforms": platforms,
            "extensions": sorted(p.name for p in (staging / "wrapt").glob("_wrappers.*.so")),
            "shadowed": shadowed,
            "pythonpath": BOOTSTRAP,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            target.rmdir()  # empty: checked above
        staging.rename(target)
    print(
        f"Built {target}: keepalive-patch {keepalive_patch.__version__} and wrapt {wrapt}, "
        f"compiled for CPython {', '.join(pythons)} ({', '.join(platforms)}), pure Python for "
        "any other CPython >= 3.9.\n"
        f"Give each app process: PYTHONPATH={target / BOOTSTRAP}\n"
        "Running it needs no network; copy or mount the directory anywhere (read-only is fine).",
        file=out,
    )
    return manifest


def _declare_otel_entry_point(bootstrap: Path) -> None:
    """Make the bootstrap directory declare keepalive-patch's OpenTelemetry entry point.

    OTel's ``sitecustomize`` (``opentelemetry-instrument``, the Operator) comes first on
    ``PYTHONPATH`` and does not run ours, but it loads every ``opentelemetry_instrumentor`` entry
    point on ``sys.path``: a ``dist-info`` here declares ours, served by ``keepalive_patch_otel``
    beside it, which borrows the package like our ``sitecustomize``.  Only a bundle has it (an
    installed keepalive-patch declares the entry point itself).
    """
    version = keepalive_patch.__version__
    dist_info = bootstrap / f"keepalive_patch-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: keepalive-patch\nVersion: {version}\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[opentelemetry_instrumentor]\n"
        "keepalive_patch = keepalive_patch_otel:KeepalivePatchInstrumentor\n"
    )


def _extract(wheel: Path, into: Path) -> list[str]:
    """Unpack ``wheel`` into ``into``, keeping any file already there; returns the members that
    differ from the file kept (``platform/member``).

    The pure-Python files are the same in every wheel of a release.  Extension names differ by
    ABI, except where two platforms share one: CPython < 3.11 on musl used glibc's
    ``-linux-gnu`` suffix, so musl's 3.9 / 3.10 extension would overwrite glibc's.  The platform
    given first (glibc by default) keeps the name; an interpreter of the other fails to load the
    foreign extension (its C library is not there) and wrapt uses its pure-Python implementation.
    """
    shadowed = []
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            path = into / member.filename
            if member.is_dir():
                continue
            data = archive.read(member)
            if path.exists():
                if ".dist-info/" not in member.filename and path.read_bytes() != data:
                    shadowed.append(f"{wheel.name}:{member.filename}")
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return shadowed


def _check_pythons(pythons: Sequence[str]) -> None:
    if not pythons:
        raise BundleError("no Python version given", 2)
    for python in pythons:
        match = re.fullmatch(r"3\.(\d+)", python)
        if match is None or int(match.group(1)) < 9:
            raise BundleError(
                f"{python!r} is not a CPython version keepalive-patch supports (3.9, 3.10, ...)", 2
            )


def _check_target(target: Path) -> None:
    if target.is_dir():
        if any(target.iterdir()):
            raise BundleError(
                f"{target} is not empty; give a new or empty directory (a bundle is built "
                "whole, never on top of something else)",
                2,
            )
    elif target.exists():
        raise BundleError(f"{target} exists and is not a directory", 2)


def _download(wrapt: str, python: str, tag: str, into: Path) -> None:
    """``pip download`` wrapt's wheel for one CPython and platform, or say clearly why not."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--implementation",
        "cp",
        "--python-version",
        python,
        *(option for each in platform_tags(tag) for option in ("--platform", each)),
        "--dest",
        str(into),
        f"wrapt=={wrapt}",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BundleError(f"could not run pip to fetch wrapt: {exc}") from None
    abi = "cp" + python.replace(".", "")
    nothing = (
        f"nothing to fetch for CPython {python}: the package index has no compiled wrapt {wrapt} "
        f"for {abi} on {tag}.  Leave that version out (--python; it would use wrapt's "
        "pure-Python implementation), or choose another wrapt (--wrapt) or platform (--platform)"
    )
    if result.returncode == 0:
        # Only a pure-Python wheel (``py3-none-any``) matched: nothing compiled for this ABI.
        if not any(f"-{abi}-{abi}-" in wheel.name for wheel in into.glob("*.whl")):
            raise BundleError(nothing + ".")
        return
    output = result.stdout + result.stderr
    if "No module named pip" in output:
        raise BundleError(f"building a bundle needs pip in this Python ({sys.executable})")
    last = [line for line in output.splitlines() if line.strip()][-1:] or ["(no output)"]
    # An index that lists no wrapt release at all was not reached (pip says why only when it
    # retries), or is a mirror without wrapt.
    if "(from versions: none)" in output or any(marker in output for marker in _NETWORK_ERRORS):
        raise BundleError(
            "could not reach the package index to fetch wrapt's wheels (it listed no wrapt "
            "release): building a bundle needs the network (PyPI, or the index pip is "
            "configured with: PIP_INDEX_URL, pip.conf); running one never does.  "
            f"pip said: {last[0]}"
        )
    raise BundleError(f"{nothing}.  pip said: {last[0]}")


def run(
    target: str,
    pythons: Sequence[str] | None,
    platforms: Sequence[str] | None,
    wrapt: str | None,
) -> int:
    """The command: build, print what was built (or why not), return the exit status."""
    try:
        build(Path(target), pythons or PYTHONS, platforms, wrapt)
    except BundleError as exc:
        print(f"keepalive-patch bundle: error: {exc}", file=sys.stderr)
        return exc.status
    return 0
