"""Shared fixtures: real HTTP servers on loopback and on a Unix socket, and live-socket readers."""

from __future__ import annotations

import asyncio
import http.server
import importlib
import importlib.util
import inspect
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

import keepalive_patch
from keepalive_patch import _log

LIBRARIES = ("httpx", "httpx2")


def installed_libraries() -> tuple[ModuleType, ...]:
    """httpx and httpx2, as far as this environment has them."""
    return tuple(
        importlib.import_module(name) for name in LIBRARIES if importlib.util.find_spec(name)
    )


def takes_socket_options(lib: ModuleType) -> bool:
    """httpx < 0.25 has no ``socket_options``: the shim gives it retries only."""
    return "socket_options" in inspect.signature(lib.HTTPTransport.__init__).parameters


def version_of(lib: ModuleType) -> str:
    return f"{lib.__name__} {getattr(lib, '__version__', '(unknown version)')}"


def retries_only_reason(lib: ModuleType) -> str:
    """Why a test of keepalive options (or of their effect) cannot run with ``lib``."""
    return (
        f"{version_of(lib)} transports take no socket_options (httpx < 0.25): the shim gives "
        "them retries only, no keepalive options"
    )


def require_socket_options(lib: ModuleType) -> None:
    """Skip, saying exactly why, unless ``lib`` can carry keepalive options."""
    if not takes_socket_options(lib):
        pytest.skip(retries_only_reason(lib))


MODES = ("sync", "asyncio", "trio")


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers every request with a small body on a keep-alive HTTP/1.1 connection."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, Any]:
        request, _ = super().get_request()
        return request, ("uds", 0)  # BaseHTTPRequestHandler wants a (host, port) address


@pytest.fixture(scope="session")
def http_url() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
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
        server = _UnixHTTPServer(path, _Handler)
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


def live_socket(response: Any) -> Any:
    """The socket under an httpx response (a ``socket.socket``, or trio's socket wrapper)."""
    return response.extensions["network_stream"].get_extra_info("socket")


def read_options(sock: Any, options: list[tuple[int, int, int]] | None = None) -> dict[str, int]:
    """``{option name: value}`` read with getsockopt from a live socket."""
    from keepalive_patch.options import keepalive_options, option_name

    wanted = options or keepalive_options(keepalive_patch.settings())
    return {option_name(level, name): sock.getsockopt(level, name) for level, name, _ in wanted}


def kernel_defaults() -> dict[str, int]:
    """What ``read_options`` gives for a fresh TCP socket nobody set options on."""
    with socket.socket() as fresh:
        return read_options(fresh)


def expected(**changes: int) -> dict[str, int]:
    """The option values the shim should set, by name, with any expected changes."""
    from keepalive_patch.options import option_name

    values = {
        option_name(level, name): value for level, name, value in keepalive_patch.socket_options()
    }
    values.update(changes)
    return values


def fetch(
    lib: ModuleType,
    mode: str,
    url: str,
    transport_args: tuple[Any, ...] | None = None,
    transport_kwargs: dict[str, Any] | None = None,
    requests: int = 1,
) -> list[dict[str, int]]:
    """Make ``requests`` GETs with ``lib`` in ``mode``; return options read from each live socket.

    With no transport arguments the client builds its default transport; otherwise an explicit
    ``HTTPTransport``/``AsyncHTTPTransport`` is built from them.
    """
    explicit = transport_args is not None or transport_kwargs is not None
    args, kwargs = transport_args or (), transport_kwargs or {}
    if mode == "sync":
        transport = lib.HTTPTransport(*args, **kwargs) if explicit else None
        with lib.Client(transport=transport) as client:
            results = []
            for _ in range(requests):
                with client.stream("GET", url) as response:
                    assert response.status_code == 200
                    results.append(read_options(live_socket(response)))
                    response.read()
            return results

    async def main() -> list[dict[str, int]]:
        transport = lib.AsyncHTTPTransport(*args, **kwargs) if explicit else None
        async with lib.AsyncClient(transport=transport) as client:
            results = []
            for _ in range(requests):
                async with client.stream("GET", url) as response:
                    assert response.status_code == 200
                    results.append(read_options(live_socket(response)))
                    await response.aread()
            return results

    if mode == "trio":
        trio = importlib.import_module("trio")
        result: list[dict[str, int]] = trio.run(main)
        return result
    return asyncio.run(main())
