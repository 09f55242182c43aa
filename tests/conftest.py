"""Shared fixtures: real HTTP servers on loopback and a Unix socket, the libraries, the shim.

Helpers live in ``tests/support/``; this file holds fixtures only.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from support import bundles
from support.libs import LIBRARIES, MODES, require_socket_options, takes_socket_options, version_of
from support.others import VERSIONS, app_venv, other_python
from support.proxies import make_server_tls
from support.servers import Handler, UnixHTTPServer

import keepalive_patch
from keepalive_patch import _log
from keepalive_patch.check import loopback_server, serving

#: The variables that would route a test's requests through a proxy from outside.
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(scope="session")
def http_url() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1; yields its base URL."""
    with loopback_server(Handler) as url:
        yield url


@pytest.fixture(scope="session")
def uds_path() -> Iterator[str]:
    """A real HTTP server on a Unix domain socket; yields the socket path."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "http.sock")
        with serving(UnixHTTPServer(path, Handler)):
            yield path


@pytest.fixture(params=LIBRARIES)
def lib(request: pytest.FixtureRequest) -> ModuleType:
    """httpx, then httpx2 (skipped where not installed)."""
    return pytest.importorskip(request.param)


@pytest.fixture
def keepalive_lib(lib: ModuleType) -> ModuleType:
    """``lib``, where its transports take ``socket_options`` (httpx >= 0.25, httpx2)."""
    require_socket_options(lib)
    return lib


@pytest.fixture
def retries_only_lib(lib: ModuleType) -> ModuleType:
    """``lib``, where its transports take no ``socket_options`` (httpx 0.23 / 0.24)."""
    if takes_socket_options(lib):
        pytest.skip(f"{version_of(lib)} takes socket_options; retries only is for httpx < 0.25")
    return lib


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    if request.param == "trio":
        pytest.importorskip("trio")
    return str(request.param)


@pytest.fixture(autouse=True)
def _default_shim() -> Iterator[None]:
    """Every test starts and ends with the shim applied with default settings."""
    _log.forget()
    keepalive_patch.apply()
    yield
    keepalive_patch.apply()
    _log.forget()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variables from outside (either case): a test's proxy is the one it starts."""
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def clean_environment(no_proxy_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No proxy or keepalive-patch variables from outside; the shim with its defaults."""
    for name in os.environ:
        if name.startswith("KEEPALIVE_PATCH_"):
            monkeypatch.delenv(name)
    keepalive_patch.apply()
    yield
    keepalive_patch.apply()


@pytest.fixture(scope="session")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate (skips without openssl)."""
    try:
        return make_server_tls(tmp_path_factory.mktemp("tls"))
    except FileNotFoundError:
        pytest.skip("openssl is needed to make the TLS origin's certificate")


@pytest.fixture(scope="session", params=VERSIONS, ids=[f"python{v}" for v in VERSIONS])
def app_python(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fleet's app interpreter: pyenv's Python 3.9 or 3.13 in a virtualenv with httpx,
    requests and aiohttp, and neither keepalive-patch nor wrapt (skips without that Python)."""
    python = other_python(request.param)
    if python is None:
        pytest.skip(f"no separate Python {request.param} here (pyenv)")
    return str(app_venv(python, tmp_path_factory.mktemp(f"app{request.param}")))


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fleet bundle, built once by ``keepalive-patch bundle DIR`` (fetches wrapt's wheels)."""
    target = tmp_path_factory.mktemp("bundle") / "keepalive-patch"
    result = bundles.build(target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not list(target.rglob("__pycache__")), "a bundle ships no bytecode"
    return target
