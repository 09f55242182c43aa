"""An application that knows nothing of keepalive-patch, using httpx, requests and aiohttp.

It runs under any Python 3.9+, in environments that have only some of these libraries (and no
keepalive-patch, no wrapt): each installed one makes a GET to a loopback server started here,
and while that connection is still open the options of the client's own socket are read with
``getsockopt`` (the socket is found among this process's file descriptors by the local address
the server saw).  With httpx it also makes two GETs on one client to a path where the server
drops a reused connection on its second request without answering; the server counts the
requests it received (a replay is a third one).

Prints one JSON line::

    {"results": {"httpx": {"options": {...}, "retries": 1}, "requests": ..., "aiohttp": ...},
     "replay": {"requests": 3, "outcome": "ok"},
     "shim": null | {"applied": true, "file": "..."}, "sys_path": [...],
     "wrapt_extension": null | "<the compiled wrapt module loaded, if any>",
     "datadog_patch": {"httpx": false, ...}}

Each library requests its own path (``/httpx``, ``/requests``, ``/aiohttp``), so an agent's spans
(a console exporter's output) can be told apart.  The report is the line starting with
``{"results"``; an agent may print its own lines around it.

``shim`` is read from ``sys.modules`` (never imported): what keepalive-patch, if something
loaded it, says of itself.  ``FLEET_APP_LOG=1`` sends every log record to stderr (level DEBUG),
so the test can read what the shim logged (a variable, not a flag: launchers such as
``opentelemetry-instrument`` parse the flags that follow the script).
"""

import asyncio
import http.server
import importlib.util
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NAMES = ("SO_KEEPALIVE", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT")
LIBRARIES = ("httpx", "requests", "aiohttp")


class Counting(http.server.ThreadingHTTPServer):
    """Counts the requests it receives, and remembers each connection's client address."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests = 0
        self.peers: list[tuple[str, int]] = []


class Handler(http.server.BaseHTTPRequestHandler):
    """``ok`` on a keep-alive connection; ``/drop`` closes a reused connection unanswered."""

    protocol_version = "HTTP/1.1"
    server: Counting

    def do_GET(self) -> None:
        self.server.requests += 1
        self.on_this_connection = getattr(self, "on_this_connection", 0) + 1
        self.server.peers.append(self.client_address[:2])
        if self.path == "/drop" and self.on_this_connection > 1:
            self.close_connection = True  # unanswered: a connection that died while idle
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving() -> Iterator[Counting]:
    server = Counting()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url_of(server: Counting, path: str = "/") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def options_of(local: "tuple[str, int]") -> "dict[str, int]":
    """The options of this process's open TCP socket whose local address is ``local``."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(fd)))
        except OSError:
            continue
        with sock:
            try:
                name = sock.getsockname()
            except OSError:
                continue
            if sock.type != socket.SOCK_STREAM or not isinstance(name, tuple):
                continue
            if tuple(name[:2]) == tuple(local):
                return {
                    option: sock.getsockopt(
                        socket.SOL_SOCKET if option.startswith("SO_") else socket.IPPROTO_TCP,
                        getattr(socket, option),
                    )
                    for option in NAMES
                }
    raise AssertionError(f"no open socket with the local address {local}")


def with_httpx(server: Counting) -> "dict[str, Any]":
    import httpx

    with httpx.Client(trust_env=False) as client:
        client.get(url_of(server, "/httpx")).raise_for_status()
        pool = getattr(client._transport, "_pool", None)
        return {"options": options_of(server.peers[-1]), "retries": getattr(pool, "_retries", 0)}


def with_requests(server: Counting) -> "dict[str, Any]":
    import requests

    with requests.Session() as session:
        session.trust_env = False
        session.get(url_of(server, "/requests")).raise_for_status()
        retries: Any = getattr(session.get_adapter(url_of(server)), "max_retries", None)
        connect = getattr(retries, "connect", None) or 0
        return {"options": options_of(server.peers[-1]), "retries": connect}


async def with_aiohttp(server: Counting) -> "dict[str, Any]":
    import aiohttp

    async with aiohttp.ClientSession() as session:  # noqa: SIM117 - Python 3.9
        async with session.get(url_of(server, "/aiohttp")) as response:
            await response.read()
            return {"options": options_of(server.peers[-1]), "retries": 0}


def replay(server: Counting) -> "dict[str, Any]":
    """Two GETs on one httpx client; the second meets a reused connection that died."""
    import httpx

    before = server.requests
    outcome = "ok"
    with httpx.Client(trust_env=False) as client:
        client.get(url_of(server, "/drop"))
        try:
            client.get(url_of(server, "/drop"))
        except Exception as exc:
            outcome = type(exc).__name__
    return {"requests": server.requests - before, "outcome": outcome}


def shim() -> "dict[str, Any] | None":
    module = sys.modules.get("keepalive_patch")
    if module is None:
        return None
    return {"applied": module.is_applied(), "file": module.__file__}


def datadog_patched(name: str) -> bool:
    """ddtrace's own marker on a library it patched (``requests`` spells it with two ``_``)."""
    module = sys.modules.get(name)
    return any(getattr(module, marker, False) for marker in ("_datadog_patch", "__datadog_patch"))


def main() -> None:
    if os.environ.get("FLEET_APP_LOG"):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="LOG %(message)s")
    installed = [name for name in LIBRARIES if importlib.util.find_spec(name) is not None]
    results: dict[str, Any] = {}
    report: dict[str, Any] = {"results": results}
    with serving() as server:
        if "httpx" in installed:
            results["httpx"] = with_httpx(server)
            report["replay"] = replay(server)
        if "requests" in installed:
            results["requests"] = with_requests(server)
        if "aiohttp" in installed:
            results["aiohttp"] = asyncio.run(with_aiohttp(server))
    report["shim"] = shim()
    report["sys_path"] = sys.path
    report["wrapt_extension"] = getattr(sys.modules.get("wrapt._wrappers"), "__file__", None)
    report["datadog_patch"] = {name: datadog_patched(name) for name in installed}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
