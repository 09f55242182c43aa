"""An application that knows nothing of keepalive-patch: httpx and httpx2, sync and async.

Each client makes one request to a loopback server started here; the options of the live
connection are read with ``getsockopt`` and printed as JSON.  ``--child`` also runs this script
in a child process and includes what the child saw.  ``--exit N`` exits with status N.
"""

import sys

MODULES_AT_START = sorted(sys.modules)

import asyncio  # noqa: E402
import http.server  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import httpx2  # noqa: E402

NAMES = ("SO_KEEPALIVE", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def read_options(sock: "socket.socket") -> "dict[str, int]":
    values = {}
    for name in NAMES:
        if hasattr(socket, name):
            level = socket.SOL_SOCKET if name.startswith("SO_") else socket.IPPROTO_TCP
            values[name] = sock.getsockopt(level, getattr(socket, name))
    return values


def sync_request(module: Any, url: str) -> "dict[str, int]":
    with module.Client(trust_env=False) as client, client.stream("GET", url) as response:
        response.read()
        return read_options(response.extensions["network_stream"].get_extra_info("socket"))


async def async_request(module: Any, url: str) -> "dict[str, int]":
    async with module.AsyncClient(trust_env=False) as client:  # noqa: SIM117 - Python 3.9
        async with client.stream("GET", url) as response:
            await response.aread()
            return read_options(response.extensions["network_stream"].get_extra_info("socket"))


def main() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    results: dict[str, dict[str, int]] = {}
    for module in (httpx, httpx2):
        results[module.__name__ + " sync"] = sync_request(module, url)
        results[module.__name__ + " async"] = asyncio.run(async_request(module, url))
    server.shutdown()
    server.server_close()
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
