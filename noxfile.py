"""Compatibility matrix: the whole test suite across Python x httpx x wrapt x urllib3 x aiohttp.

    nox -s full      the covering set below (17 sessions, ~the full product's coverage)
    nox -s ci        the reduced set CI runs (through tests/matrix/test_matrix.py)
    nox -l           list the sessions; ``nox -s "full(py3.9, httpx 0.23.3, ...)"`` runs one

Every httpx version meets both wrapt majors and both the oldest and the newest Python it
supports (httpx 0.29 needs Python >= 3.10: it runs on 3.10 and 3.13); every Python meets httpx
0.28, the newest 3.9 gets.  urllib3 1.26.x meets every Python and 2.x every Python from 3.10
(botocore pins urllib3 < 1.27 on 3.9); aiohttp 3.9.0 (the oldest supported: options set after
connect; its wheels end at Python 3.12) runs on 3.9 and 3.10, 3.11 (the last before
``socket_factory``) and the newest on the oldest and the newest Python.  pip resolves each
httpx's own httpcore (0.23 -> 0.16, 0.24 -> 0.17, 0.25+ -> 1.x) and the newest httpx2 each
Python has (3.9 -> 2.0.0, 3.10 -> 2.14.0); httpx2 is left out next to httpx < 0.25 (h11
conflict), where its tests skip.  A row may name its httpcore after the httpx version
(``0.25.2/1.0.2``): pip's choice never installs httpcore 1.0.0 - 1.0.2, whose pools keep a dead
connection in its slot, so replay is left off there (``test_the_pool_never_starves`` runs on
them); httpx2 and the SDKs are left out next to a named httpcore (it may need h11 < 0.15).
openai[aiohttp] / anthropic[aiohttp] (their ``DefaultAioHttpClient``) go in where those
clients can work (``_sdk_clients_work``): the newest SDKs on the newest aiohttp with httpx2, the
httpx_aiohttp-based releases next to httpx >= 0.27 (openai 2.46 on aiohttp 3.11; anthropic 0.125
on Python 3.9, where openai has no aiohttp client).
Interpreters are found on PATH or in pyenv; none is ever downloaded.
"""

from __future__ import annotations

import configparser
import glob
import os
import re

import nox

# pyenv's interpreters, for machines where its shims are not on PATH (CI here): appended, so
# whatever PATH already offers wins.
_PYENV_ROOT = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
os.environ["PATH"] = os.pathsep.join(
    [
        os.environ.get("PATH", ""),
        *sorted(glob.glob(os.path.join(_PYENV_ROOT, "versions", "*", "bin"))),
    ]
)

nox.options.download_python = "never"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["ci"]

WRAPT = {"1": "wrapt>=1.17,<1.18", "2": "wrapt>=2,<3"}

URLLIB3 = {"1": "urllib3>=1.26,<2", "2": "urllib3>=2,<3"}
#: aiohttp: the oldest supported (no socket_factory: options set after connect), the last
#: before socket_factory, and the newest each Python gets.
AIOHTTP = {"3.9": "aiohttp==3.9.0", "3.11": "aiohttp>=3.11,<3.12", "new": "aiohttp>=3.12"}

Combo = tuple[str, str, str, str, str]
COLUMNS = ("python", "httpx", "wrapt", "urllib3", "aiohttp")


def _table(text: str) -> list[Combo]:
    """The combinations in ``text``: a ``COLUMNS`` header, then one combination a line, aligned
    (easier to read down a column than rows of quoted tuples).  httpx is a version, optionally
    ``/`` the httpcore version to pin beside it; wrapt and urllib3 are majors, keys of ``WRAPT`` /
    ``URLLIB3``; aiohttp is a key of ``AIOHTTP``."""
    header, *lines = text.strip().splitlines()
    if tuple(header.split()) != COLUMNS:
        raise ValueError(f"a matrix table starts with the header {' '.join(COLUMNS)}: {header!r}")
    combos = []
    for line in lines:
        python, httpx, wrapt, urllib3, aiohttp = line.split()
        combos.append((python, httpx, wrapt, urllib3, aiohttp))
    return combos


#: The covering set (``nox -s full``).
FULL = _table(
    """
    python  httpx   wrapt  urllib3  aiohttp
    3.9     0.23.3  1      1        3.9
    3.9     0.24.1  2      1        new
    3.9     0.25.2  1      1        3.11
    3.9     0.27.2  2      1        new
    3.9     0.28.1  1      1        3.9
    3.13    0.23.3  2      2        new
    3.13    0.24.1  1      1        3.11
    3.13    0.25.2  2      1        new
    3.13    0.27.2  1      2        3.11
    3.13    0.28.1  2      1        new
    3.10    0.28.1  2      2        3.9
    3.11    0.28.1  1      1        new
    3.12    0.28.1  2      2        3.11
    3.10    0.29.0  2      2        new
    3.13    0.29.0  1      2        3.11
    3.9     0.25.2/1.0.0 2 1        3.9
    3.10    0.25.2/1.0.2 2 2        3.11
    """
)
#: What CI adds to its own run (newest of everything on its default Python): the oldest
#: stack (httpcore 0.16, retries only; urllib3 1.26; aiohttp 3.9.0), httpx 0.24 on httpcore
#: 0.17 with the last aiohttp before socket_factory, the first httpx with socket_options on
#: the newest Python with urllib3 1.26 and the newest aiohttp, and httpcore 1.0.2 (the last
#: whose pool keeps a dead connection: replay stays off).
CI = _table(
    """
    python  httpx   wrapt  urllib3  aiohttp
    3.9     0.23.3  1      1        3.9
    3.12    0.24.1  2      2        3.11
    3.13    0.25.2  1      1        new
    3.10    0.25.2/1.0.2 2 2        3.11
    """
)


def _httpx_httpcore(cell: str) -> tuple[str, str | None]:
    """An httpx cell: ``0.25.2`` -> ("0.25.2", None); ``0.25.2/1.0.2`` -> ("0.25.2", "1.0.2")."""
    httpx, _, httpcore = cell.partition("/")
    return httpx, httpcore or None


def _ids(combos: list[Combo]) -> list[str]:
    ids = []
    for py, cell, wrapt, urllib3, aiohttp in combos:
        httpx, httpcore = _httpx_httpcore(cell)
        core = f", httpcore {httpcore}" if httpcore else ""
        rest = f"wrapt {wrapt}, urllib3 {urllib3}, aiohttp {aiohttp}"
        ids.append(f"py{py}, httpx {httpx}{core}, {rest}")
    return ids


def _test_requirements(leave_out: set[str]) -> list[str]:
    """setup.cfg's ``test`` extra (the one source of truth), less the named projects."""
    parser = configparser.ConfigParser()
    parser.read(os.path.join(os.path.dirname(__file__), "setup.cfg"))
    lines = [
        line.split(" #")[0].strip()
        for line in parser["options.extras_require"]["test"].splitlines()
    ]
    return [
        line
        for line in lines
        if line and not line.startswith("#") and re.split(r"[\s;<>=!~\[]", line)[0] not in leave_out
    ]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2])


def _sdk_clients_work(python: str, httpx: str, aiohttp: str) -> bool:
    """Whether openai[aiohttp] / anthropic[aiohttp] install here with a working
    ``DefaultAioHttpClient``.  Their newest releases (Python >= 3.10) send through httpx2 and a
    vendored httpx_aiohttp, and openai's needs aiohttp >= 3.14.4: so the newest aiohttp, and
    httpx2, which is here only next to httpx >= 0.25.  Older releases (openai 2.46 with aiohttp
    3.11; anthropic 0.125, the last for 3.9) send through httpx and the httpx_aiohttp package,
    which needs httpx >= 0.27 and aiohttp >= 3.10.
    """
    if aiohttp == "3.9":
        return False  # every SDK aiohttp extra, and httpx_aiohttp, needs aiohttp >= 3.10
    if _version(httpx) >= (0, 27):
        return True
    return _version(python) >= (3, 10) and aiohttp == "new" and _version(httpx) >= (0, 25)


def _suite(session: nox.Session, cell: str, wrapt: str, urllib3: str, aiohttp: str) -> None:
    session.env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    httpx, httpcore = _httpx_httpcore(cell)
    pins = (f"httpx=={httpx}", WRAPT[wrapt], URLLIB3[urllib3], AIOHTTP[aiohttp])
    if httpcore:
        pins += (f"httpcore=={httpcore}",)
    leave_out = set()
    if _version(httpx) < (0, 25) or httpcore:
        # httpcore 0.16 / 0.17 (and 1.0.0 - 1.0.5) need h11 < 0.15 and httpcore2 needs h11 >=
        # 0.16: httpx2 cannot share this environment, so its tests skip here.
        leave_out.add("httpx2")
    if httpcore or not _sdk_clients_work(str(session.python), httpx, aiohttp):
        # pip would still install them, quietly picking releases without a working aiohttp
        # client (the SDK test skips), and next to httpx < 0.25 pulling httpcore down to 0.15
        # and anyio to 3.7; so they are left out, and their test skips as not installed.
        leave_out |= {"openai", "anthropic"}
    if leave_out:
        session.install("-e", ".", *_test_requirements(leave_out), *pins)
    else:
        session.install("-e", ".[test]", *pins)
    session.run(
        "python",
        "-c",
        "import importlib.metadata as m, sys; print(sys.version.split()[0], *("
        "f'{n}=={m.version(n)}' for n in ('httpx', 'httpcore', 'wrapt', 'httpx2', 'anyio', "
        "'urllib3', 'requests', 'aiohttp', 'openai', 'anthropic')"
        " if n in {d.metadata['Name'] for d in m.distributions()}))",
        silent=False,
    )
    # "fleet" tests build their own environments (bundles, other Pythons, agents, the wheel):
    # once, in the main run, is enough.
    marks = "not matrix and not fleet"
    session.run("pytest", "-q", "-m", marks, "-p", "no:cacheprovider", *session.posargs)


@nox.session
@nox.parametrize("python,httpx,wrapt,urllib3,aiohttp", FULL, ids=_ids(FULL))
def full(session: nox.Session, httpx: str, wrapt: str, urllib3: str, aiohttp: str) -> None:
    """The covering set."""
    _suite(session, httpx, wrapt, urllib3, aiohttp)


@nox.session
@nox.parametrize("python,httpx,wrapt,urllib3,aiohttp", CI, ids=_ids(CI))
def ci(session: nox.Session, httpx: str, wrapt: str, urllib3: str, aiohttp: str) -> None:
    """The reduced set CI runs."""
    _suite(session, httpx, wrapt, urllib3, aiohttp)
