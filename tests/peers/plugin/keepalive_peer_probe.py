"""A pytest plugin loaded into both runs of a peer's suite (``-p keepalive_peer_probe``): at
session start it opens one loopback connection with each library named in
``KEEPALIVE_PEER_PROBE`` and writes the ``SO_KEEPALIVE`` its live socket carries (read back with
``getsockopt``, as ``keepalive-patch check`` does) to ``KEEPALIVE_PEER_PROBE_DIR/<process>.json``.

The driver (``tests/peers/run.py``) refuses a hooked run whose sockets show 0 and a plain run
whose sockets show 1, so a hook that silently did not load cannot pass for one that did.  Every
process writes its own file: the pytest process and, under pytest-xdist, each worker, where the
tests actually run.  It never imports keepalive_patch (that would apply the patch).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any, Callable

#: A response head promising one byte that never comes: the client's connection stays attached
#: to the response (aiohttp releases it at the end of the body) while the probe reads its socket.
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"


@contextlib.contextmanager
def _origin() -> Iterator[int]:
    """A loopback server answering every request with an empty 200; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = server.accept()
                with client:
                    client.settimeout(10)
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = client.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    client.sendall(RESPONSE)
                    # Wait for the client to hang up.
                    with contextlib.suppress(OSError):
                        client.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def _keepalive(sock: socket.socket) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)


def _urllib3(port: int) -> int:
    from urllib3.connection import HTTPConnection

    conn = HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.connect()
        assert conn.sock is not None
        return _keepalive(conn.sock)
    finally:
        conn.close()


def _httpx_like(name: str) -> Callable[[int], int]:
    def probe(port: int) -> int:
        lib: Any = __import__(name)
        with (
            lib.Client(trust_env=False) as client,
            client.stream("GET", f"http://127.0.0.1:{port}/") as response,
        ):
            return _keepalive(response.extensions["network_stream"].get_extra_info("socket"))

    return probe


def _aiohttp(port: int) -> int:
    import aiohttp

    async def probe() -> int:
        async with (
            aiohttp.ClientSession(trust_env=False) as session,
            session.get(f"http://127.0.0.1:{port}/") as response,
        ):
            assert response.connection is not None
            transport = response.connection.transport
            assert transport is not None
            return _keepalive(transport.get_extra_info("socket"))

    return asyncio.run(probe())


PROBES: dict[str, Callable[[int], int]] = {
    "urllib3": _urllib3,
    "httpx": _httpx_like("httpx"),
    "httpx2": _httpx_like("httpx2"),
    "aiohttp": _aiohttp,
}


def report() -> dict[str, Any]:
    """What this process shows: each library's SO_KEEPALIVE (or the error that prevented it)."""
    libraries = [name for name in os.environ.get("KEEPALIVE_PEER_PROBE", "").split(",") if name]
    sockets: dict[str, Any] = {}
    with _origin() as port:
        for name in libraries:
            try:
                sockets[name] = PROBES[name](port)
            except Exception as exc:  # reported, and the driver refuses the run
                sockets[name] = f"{type(exc).__name__}: {exc}"
    return {
        "pid": os.getpid(),
        "keepalive_patch_loaded": "keepalive_patch" in sys.modules,
        "so_keepalive": sockets,
    }


def pytest_sessionstart(session: Any) -> None:
    directory = os.environ.get("KEEPALIVE_PEER_PROBE_DIR")
    if not directory:
        return
    process = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(os.path.join(directory, f"{process}.json"), "w") as file:
        json.dump(report(), file)
