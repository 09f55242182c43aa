"""Clients built BEFORE ``import keepalive_patch``, connecting after it: what do they get?

Run as ``python built_before.py``.  Builds an httpx / httpx2 ``Client``, a requests ``Session``
and an aiohttp ``TCPConnector`` (each installed one), then imports keepalive_patch, then makes
one request with each, to a loopback server, and prints as JSON ``{client: SO_KEEPALIVE read
from its live socket}``, plus the same for a client of each kind built after the import.
"""

import asyncio
import importlib
import importlib.util
import json
import socket
from typing import Any

from http_app import live_socket, serving

NAMES = [
    name
    for name in ("httpx", "httpx2", "requests", "aiohttp")
    if importlib.util.find_spec(name) is not None
]
modules = {name: importlib.import_module(name) for name in NAMES}


if "aiohttp" in modules:

    class Connector(modules["aiohttp"].TCPConnector):  # type: ignore[misc]
        """Notes the socket of each connection: a small response is read and its connection
        released before the caller could look at it."""

        sockets: list[socket.socket]

        async def connect(self, *args: Any, **kwargs: Any) -> Any:
            connection = await super().connect(*args, **kwargs)
            self.sockets = [
                *getattr(self, "sockets", []),
                connection.transport.get_extra_info("socket"),
            ]
            return connection


def build(name: str) -> Any:
    module = modules[name]
    if name == "requests":
        return module.Session()
    if name == "aiohttp":
        return Connector()
    return module.Client(trust_env=False)


def keepalive(sock: socket.socket) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)


async def use(name: str, client: Any, url: str) -> int:
    """One GET with ``client`` (blocking ones block the loop: the server is threaded)."""
    if name == "requests":
        with client.get(url, stream=True) as response:
            return keepalive(response.raw.connection.sock)
    if name == "aiohttp":
        async with modules["aiohttp"].ClientSession(connector=client) as session:  # noqa: SIM117 - 3.9
            async with session.get(url) as response:
                await response.read()
                return keepalive(client.sockets[-1])
    with client.stream("GET", url) as response:
        return keepalive(live_socket(response))


async def main() -> dict[str, Any]:
    """aiohttp's connector wants a running loop, so everything happens inside one."""
    before = {name: build(name) for name in NAMES}
    import keepalive_patch

    after = {name: build(name) for name in NAMES}
    with serving() as url:
        return {
            "applied": keepalive_patch.is_applied(),
            "before": {name: await use(name, before[name], url) for name in NAMES},
            "after": {name: await use(name, after[name], url) for name in NAMES},
        }


print(json.dumps(asyncio.run(main())))
