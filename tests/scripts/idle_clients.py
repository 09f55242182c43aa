"""A service holding idle keep-alive connections of httpx, requests and aiohttp, for ``inspect``.

Usage: ``idle_clients.py [--own-policy]``.  Starts a loopback HTTP server in this process (so
it also holds a listener and the server ends of the connections), makes one GET with each
library that is installed, and leaves each connection idle in its client's pool.  Then it prints
one line of JSON, ``{"pid": ..., "connections": {library: {"local": [host, port], "remote":
[host, port], "options": {name: value}}}}``: the options read with ``getsockopt`` from each
client's live socket, found among this process's descriptors by the local address the server
saw, and waits until its standard input is closed.

``--own-policy``: each client is given the caller's own keepalive policy, anthropic-style
(``SO_KEEPALIVE`` 1, idle 60 s, interval 60 s, 5 probes), through the library's own way of
taking socket options (httpx ``socket_options``, urllib3's through a requests adapter,
aiohttp's ``socket_factory``); a library too old to take them (httpx < 0.25, aiohttp < 3.12)
is left out.  It knows nothing of keepalive-patch.
"""

import asyncio
import http.server
import importlib
import inspect
import json
import os
import socket
import stat
import sys
import threading
from importlib.util import find_spec
from typing import Any

from http_app import NAMES, Handler

OWN_POLICY = [
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 60),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 5),
]
#: library -> the client address the server saw for its request (``GET /<library>``).
SEEN: dict[str, tuple[str, int]] = {}


class Recording(Handler):
    """The test app's handler, noting which client address asked for which library."""

    def do_GET(self) -> None:
        SEEN[self.path.strip("/")] = self.client_address[:2]
        super().do_GET()


def httpx_client(url: str, own: bool) -> Any:
    import httpx

    # By a dict: httpx < 0.25 takes no socket_options (its typing would reject the keyword).
    own_options: dict[str, Any] = {"socket_options": OWN_POLICY}
    transport = httpx.HTTPTransport(**own_options) if own else None
    client = httpx.Client(trust_env=False, transport=transport)
    client.get(url + "httpx").raise_for_status()
    return client


def requests_session(url: str, own: bool) -> Any:
    import requests
    import requests.adapters

    class OwnOptions(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["socket_options"] = OWN_POLICY
            super().init_poolmanager(*args, **kwargs)

    session = requests.Session()
    session.trust_env = False
    if own:
        session.mount("http://", OwnOptions())
    session.get(url + "requests").raise_for_status()
    return session


def own_socket(addr_info: Any) -> socket.socket:
    sock = socket.socket(addr_info[0], addr_info[1], addr_info[2])
    for level, name, value in OWN_POLICY:
        sock.setsockopt(level, name, value)
    return sock


async def aiohttp_session(url: str, own: bool) -> Any:
    import aiohttp

    # By a dict: aiohttp < 3.12 takes no socket_factory (its typing would reject the keyword).
    own_factory: dict[str, Any] = {"socket_factory": own_socket} if own else {}
    connector = aiohttp.TCPConnector(**own_factory)
    session = aiohttp.ClientSession(connector=connector, trust_env=False)
    async with session.get(url + "aiohttp") as response:
        await response.read()
        response.raise_for_status()
    return session


def options_at(local: tuple[str, int]) -> dict[str, Any]:
    """The live socket of this process whose local address is ``local``, read with getsockopt."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with sock:
            if sock.type != socket.SOCK_STREAM or sock.getsockname()[:2] != local:
                continue
            options = {}
            for option in NAMES:
                level = socket.SOL_SOCKET if option.startswith("SO_") else socket.IPPROTO_TCP
                options[option] = sock.getsockopt(level, getattr(socket, option))
            return {
                "local": list(local),
                "remote": list(sock.getpeername()[:2]),
                "options": options,
            }
    raise SystemExit(f"no socket of this process has the local address {local}")


#: library -> (class, parameter) through which it takes a caller's own socket options.
OWN_WAY = {
    "httpx": ("HTTPTransport", "socket_options"),
    "requests": ("Session", ""),
    "aiohttp": ("TCPConnector", "socket_factory"),
}


def usable(name: str, own: bool) -> bool:
    """Whether ``name`` is installed and, for ``--own-policy``, takes socket options."""
    if find_spec(name) is None:
        return False
    cls, parameter = OWN_WAY[name]
    if not own or not parameter:
        return True
    signature = inspect.signature(getattr(importlib.import_module(name), cls).__init__)
    return parameter in signature.parameters


def main() -> None:
    own = "--own-policy" in sys.argv
    clients: list[Any] = []
    loop = asyncio.new_event_loop()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        if usable("httpx", own):
            clients.append(httpx_client(url, own))
        if usable("requests", own):
            clients.append(requests_session(url, own))
        if usable("aiohttp", own):
            clients.append(loop.run_until_complete(aiohttp_session(url, own)))
        report = {
            "pid": os.getpid(),
            "connections": {library: options_at(local) for library, local in SEEN.items()},
        }
        print(json.dumps(report), flush=True)
        sys.stdin.read()  # idle until the test closes our input
        for client in clients:
            closed = client.close()
            if asyncio.iscoroutine(closed):
                loop.run_until_complete(closed)
    finally:
        server.shutdown()
        server.server_close()
        loop.close()


if __name__ == "__main__":
    main()
