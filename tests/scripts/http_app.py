"""An application that knows nothing of keepalive-patch: httpx and httpx2, sync and async.

It uses whichever of httpx and httpx2 is installed.  Each client makes one request to a loopback
server started here; for each connection it prints, as JSON, the options read with ``getsockopt``
from the live socket, whether the library's transports take ``socket_options`` at all (httpx <
0.25 does not), and the connect retries of the client's transport pool.  ``--child`` also runs
this script in a child process and includes what the child saw.  ``--exit N`` exits with N.

The other programs here import its loopback server and connection report (``serving``,
``sync_request``, ``async_request``): importing this module loads no HTTP library (``main``
does), so they still decide what is imported when.  It stands alone: it runs under ``-I`` too,
where its own directory is not on ``sys.path``.
"""

import sys

MODULES_AT_START = sorted(sys.modules)

import asyncio  # noqa: E402
import http.server  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any  # noqa: E402

LIBRARIES = ("httpx", "httpx2")
#: What ``read_options`` reads, where the platform has it.
NAMES = ("SO_KEEPALIVE", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT")


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with ``ok`` on a keep-alive HTTP/1.1 connection."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving() -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 for the duration; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def live_socket(response: Any) -> socket.socket:
    """The socket under an httpx (or httpx2) response."""
    sock: socket.socket = response.extensions["network_stream"].get_extra_info("socket")
    return sock


def read_options(sock: socket.socket) -> dict[str, int]:
    """``{option name: value}`` read with ``getsockopt`` from a live socket."""
    values = {}
    for name in NAMES:
        if hasattr(socket, name):
            level = socket.SOL_SOCKET if name.startswith("SO_") else socket.IPPROTO_TCP
            values[name] = sock.getsockopt(level, getattr(socket, name))
    return values


def describe(module: Any, client: Any, response: Any) -> dict[str, Any]:
    """What one connection carries, and what the library and the client's pool were given."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    return {
        "options": read_options(live_socket(response)),
        "takes_socket_options": "socket_options"
        in inspect.signature(module.HTTPTransport.__init__).parameters,
        "retries": getattr(pool, "_retries", None),
        "version": module.__version__,
    }


def sync_request(module: Any, url: str) -> dict[str, Any]:
    """One GET through ``module.Client()``, described while its connection is live."""
    with module.Client(trust_env=False) as client, client.stream("GET", url) as response:
        response.read()
        return describe(module, client, response)


async def async_request(module: Any, url: str) -> dict[str, Any]:
    """One GET through ``module.AsyncClient()``, described while its connection is live."""
    async with module.AsyncClient(trust_env=False) as client:  # noqa: SIM117 - Python 3.9
        async with client.stream("GET", url) as response:
            await response.aread()
            return describe(module, client, response)


def main() -> None:
    modules = [
        importlib.import_module(name)
        for name in LIBRARIES
        if importlib.util.find_spec(name) is not None
    ]
    results: dict[str, dict[str, Any]] = {}
    with serving() as url:
        for module in modules:
            results[module.__name__ + " sync"] = sync_request(module, url)
            results[module.__name__ + " async"] = asyncio.run(async_request(module, url))
    report: dict[str, Any] = {"results": results, "modules_at_start": MODULES_AT_START}
    if "--child" in sys.argv:
        child = subprocess.run(
            [sys.executable, __file__], capture_output=True, text=True, timeout=60, check=True
        )
        report["child"] = json.loads(child.stdout)
    print(json.dumps(report))
    if "--exit" in sys.argv:
        sys.exit(int(sys.argv[sys.argv.index("--exit") + 1]))


if __name__ == "__main__":
    main()
