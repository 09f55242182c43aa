"""One HTTP request from inside the client namespace; prints JSON lines describing the result.

Run as ``python _client.py '<json spec>'``.  The hook is on only if the spec says so: then
``keepalive_patch`` is imported before the HTTP library, exactly as an application would.
``spec["lib"]`` picks the library: httpx / httpx2 (``mode`` sync or async), requests, urllib3
(sync) or aiohttp (async).  A watcher thread reads the keepalive options back from every live
socket this process has to the server (``getsockopt``), whichever library opened it.

Start-up (imports, building the client, the library's lazy work on its first request) is
expensive and the suite starts dozens of clients at once on few cores, so each client builds
everything, sends one warm-up request to a loopback origin of its own, prints ``{"ready": true}``
and sends the request under test only when a line arrives on stdin: the measured part runs
without start-up contention.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import socket
import socketserver
import stat
import struct
import sys
import threading
import time
from typing import Any, Callable
from urllib.parse import urlsplit

#: What the watcher reads from each live socket, by name (SO_KEEPALIVE first).
OPTIONS = {
    "SO_KEEPALIVE": (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    "TCP_KEEPIDLE": (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPIDLE", 4)),
    "TCP_KEEPINTVL": (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPINTVL", 5)),
    "TCP_KEEPCNT": (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPCNT", 6)),
    "TCP_USER_TIMEOUT": (socket.IPPROTO_TCP, getattr(socket, "TCP_USER_TIMEOUT", 18)),
}


TCP_INFO = getattr(socket, "TCP_INFO", 11)


def emit(line: dict[str, Any]) -> None:
    """One line at a time: a client killed while hanging still reports what it printed."""
    print(json.dumps(line), flush=True)


def ready() -> None:
    """Say the client is built, then wait for the test's go (a line on stdin).  The time of the
    go is before anything was sent: no timer of the request can have started earlier."""
    emit({"ready": True})
    sys.stdin.readline()
    emit({"t_go": time.monotonic()})


class _Warm(socketserver.StreamRequestHandler):
    """Reads a request's head and answers 204, closing the connection: a warm-up needs no more."""

    def handle(self) -> None:
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        self.wfile.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")


def warm_origin() -> str:
    """A loopback origin in this process (and namespace) that answers every request with 204."""
    server = socketserver.TCPServer(("127.0.0.1", 0), _Warm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"


class Watcher:
    """Polls this process's sockets; keeps the options of each one connected to ``peer``."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer
        self.live: dict[int, dict[str, Any]] = {}  # local port -> options read back
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> list[dict[str, Any]]:
        """Stop polling; the last read of every socket seen."""
        self.done.set()
        self._thread.join(5.0)
        return list(self.live.values())

    def _loop(self) -> None:
        said = 0.0
        while not self.done.wait(0.1):
            changed = False
            for fd in _socket_fds():
                read = _read_options(fd, self.peer)
                if read is None:
                    continue
                port, options = read
                before = self.live.get(port, {})
                changed |= {k: v for k, v in before.items() if k != "tcp_info"} != {
                    k: v for k, v in options.items() if k != "tcp_info"
                }
                self.live[port] = options
            # New options at once; TCP_INFO alone once a second (stdout is a 64 KiB pipe the
            # test reads only at the end).
            if changed or (self.live and time.monotonic() - said >= 1.0):
                said = time.monotonic()
                emit({"live": list(self.live.values())})


def _socket_fds() -> list[int]:
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                fds.append(int(name))
        except OSError:
            continue  # closed since the listing
    return fds


def _read_options(fd: int, peer: tuple[str, int]) -> tuple[int, dict[str, Any]] | None:
    """The options on ``fd`` if it is a TCP socket connected to ``peer``; never closes ``fd``."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        if sock.type != socket.SOCK_STREAM or sock.getpeername()[:2] != peer:
            return None
        options: dict[str, Any] = {
            name: sock.getsockopt(level, opt) for name, (level, opt) in OPTIONS.items()
        }
        options["tcp_info"] = _tcp_info(sock)
        return sock.getsockname()[1], options
    except OSError:
        return None
    finally:
        sock.detach()


def _tcp_info(sock: socket.socket) -> dict[str, int]:
    """A few TCP_INFO fields (Linux) for assertion messages: why a connection ended when."""
    fields = struct.unpack("8B19I", sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 84))
    state, _, retransmits, probes, backoff = fields[:5]
    rto, _, _, _, unacked = fields[8:13]
    last_ack_recv, rtt = fields[20], fields[23]
    return {
        "state": state,
        "retransmits": retransmits,
        "probes": probes,
        "backoff": backoff,
        "rto_ms": rto // 1000,
        "rtt_ms": rtt // 1000,
        "unacked": unacked,
        "ms_since_ack": last_ack_recv,
    }


def httpx_like(
    spec: dict[str, Any], body: bytes | None, method: str, warm: str
) -> Callable[[], Any]:
    """httpx / httpx2: announce the pool's socket options and retries, then send."""
    lib = importlib.import_module(spec["lib"])
    timeout = lib.Timeout(
        spec.get("timeout", 5.0),
        read=spec.get("read_timeout", 5.0),
        write=spec.get("write_timeout", 5.0),
    )

    def announce(client: Any) -> None:
        pool = getattr(getattr(client, "_transport", None), "_pool", None)
        options = getattr(pool, "_socket_options", None)
        emit(
            {
                "socket_options": [list(opt) for opt in options] if options else [],
                "retries": getattr(pool, "_retries", None),
            }
        )

    def request_sync() -> int:
        with lib.Client(timeout=timeout) as client:
            announce(client)
            client.get(warm)
            ready()
            return int(client.request(method, spec["url"], content=body).status_code)

    async def request_async() -> int:
        async with lib.AsyncClient(timeout=timeout) as client:
            announce(client)
            await client.get(warm)
            ready()
            response = await client.request(method, spec["url"], content=body)
            return int(response.status_code)

    if spec["mode"] == "sync":
        return request_sync
    return lambda: asyncio.run(request_async())


def requests_client(
    spec: dict[str, Any], body: bytes | None, method: str, warm: str
) -> Callable[[], Any]:
    """A requests Session as an application builds it: no adapter, no retries of its own."""
    import requests

    def request() -> int:
        with requests.Session() as session:
            adapter: Any = session.get_adapter(spec["url"])
            retries = adapter.max_retries
            emit({"retries": {"total": retries.total, "connect": retries.connect}})
            timeout = (spec.get("timeout", 5.0), spec.get("read_timeout", 5.0))
            session.get(warm, timeout=timeout)
            ready()
            response = session.request(method, spec["url"], data=body, timeout=timeout)
            return int(response.status_code)

    return request


def urllib3_client(
    spec: dict[str, Any], body: bytes | None, method: str, warm: str
) -> Callable[[], Any]:
    """A urllib3 PoolManager with its default retries, or none where the spec says so (then a
    read timeout is reported at once instead of after three more attempts)."""
    import urllib3

    def request() -> int:
        timeout = urllib3.Timeout(connect=spec.get("timeout", 5.0), read=spec.get("read_timeout"))
        retries = False if spec.get("no_retries") else urllib3.Retry.DEFAULT
        with urllib3.PoolManager(timeout=timeout, retries=retries) as http:
            http.request("GET", warm)
            ready()
            return int(http.request(method, spec["url"], body=body).status)

    return request


def aiohttp_client(
    spec: dict[str, Any], body: bytes | None, method: str, warm: str
) -> Callable[[], Any]:
    """An aiohttp ClientSession with the default TCPConnector."""
    import aiohttp

    async def request() -> int:
        timeout = aiohttp.ClientTimeout(
            total=None, connect=spec.get("timeout", 5.0), sock_read=spec.get("read_timeout", 5.0)
        )
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await (await session.get(warm)).read()
            ready()  # blocks the loop, which has nothing else to do now
            response = await session.request(method, spec["url"], data=body)
            await response.read()  # reads the whole body and releases the connection
            return int(response.status)

    return lambda: asyncio.run(request())


CLIENTS = {
    "httpx": httpx_like,
    "httpx2": httpx_like,
    "requests": requests_client,
    "urllib3": urllib3_client,
    "aiohttp": aiohttp_client,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec["hook"]:
        import keepalive_patch  # noqa: F401  (applies on import)
    body = bytes(spec["upload"]) if spec.get("upload") else None
    method = "POST" if spec.get("post") or body else "GET"
    if method == "POST" and body is None:
        body = b"order=1"
    url = urlsplit(spec["url"])
    watcher = Watcher((str(url.hostname), int(url.port or 80)))
    request = CLIENTS[spec["lib"]](spec, body, method, warm_origin())
    result: dict[str, Any] = {}
    try:
        result.update(outcome="response", status=request())
    except Exception as exc:
        result.update(
            outcome="error",
            error=type(exc).__name__,
            error_types=[cls.__name__ for cls in type(exc).__mro__],
            message=str(exc)[:200],
        )
    result["t_end"] = time.monotonic()
    result["live"] = watcher.stop()
    emit(result)


if __name__ == "__main__":
    main()
