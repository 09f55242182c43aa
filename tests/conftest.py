"""Shared fixtures: real HTTP servers on loopback and a Unix socket, the libraries, the shim.

Helpers live in ``tests/support/``; this file holds fixtures only.
"""

from __future__ import annotations

import http.server
import os
import tempfile
import threading
from collections.abc import Iterator
from types import ModuleType

import pytest
from support.libs import LIBRARIES, MODES, require_socket_options, takes_socket_options, version_of
from support.servers import Handler, UnixHTTPServer

import keepalive_patch
from keepalive_patch import _log


@pytest.fixture(scope="session")
def http_url() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def uds_path() -> Iterator[str]:
    """A real HTTP server on a Unix domain socket; yields the socket path."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "http.sock")
        server = UnixHTTPServer(path, Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield path
        finally:
            server.shutdown()
            server.server_close()


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
