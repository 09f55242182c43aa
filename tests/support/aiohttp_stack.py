"""Helpers for the aiohttp tests: an origin that holds each response open, an httpx transport
that sends through aiohttp (the way litellm does), and a way to find a live client socket.

aiohttp hands a connection back to its pool as soon as a response body is complete, so
``response.connection`` is ``None`` after a small body.  ``HeldOrigin`` sends the head and the
first body byte, and the rest only when the test calls ``release()``: meanwhile the response holds
its connection and ``connection.transport.get_extra_info("socket")`` is the live socket.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

from support.proxies import IO_TIMEOUT, OriginServer

BODY = b"ok"


class HeldOrigin(OriginServer):
    """An origin whose every response waits after its first body byte until ``release()``."""

    body = BODY

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._go = threading.Semaphore(0)
        super().__init__(tls)

    def release(self) -> None:
        """Let one held response finish."""
        self._go.release()

    def answer(self, conn: socket.socket) -> bool:
        """The head and the first body byte now; the rest only after ``release()``."""
        conn.sendall(self.head() + self.body[:1])
        if not self._go.acquire(timeout=IO_TIMEOUT):
            return False
        conn.sendall(self.body[1:])
        return True


async def closed(sock: Any, within: float = 5.0) -> None:
    """Wait (bounded) until the loop has really closed a socket whose session was closed.

    A TLS transport closes its socket only after the TLS shutdown, some loop iterations after
    ``ClientSession.close()``; on Python < 3.11 a loop that ends first leaves it unclosed (a
    ResourceWarning, with or without the shim).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while sock.fileno() != -1 and loop.time() < deadline:
        await asyncio.sleep(0.005)


def _open_sockets() -> Iterator[socket.socket]:
    """A duplicate of every socket this process has open (each must be closed by the caller)."""
    directory = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    ours: set[int] = set()  # a duplicate may reuse the number of the listing's own descriptor
    for name in os.listdir(directory):
        if not name.isdigit() or int(name) in ours:
            continue
        try:
            duplicate = os.dup(int(name))
        except OSError:
            continue
        ours.add(duplicate)
        try:
            yield socket.socket(fileno=duplicate)
        except OSError:  # not a socket
            os.close(duplicate)


def socket_connected_to(peer: Any, local: Any = None) -> socket.socket:
    """The process's own live socket connected to ``peer`` (from ``local``, if given).

    For clients whose response objects do not expose the connection (the SDKs' aiohttp
    clients, a Unix-socket connection after its body): the kernel socket is the same one, read
    through a duplicate descriptor.  The caller closes the duplicate.
    """
    found = []
    for sock in _open_sockets():
        try:
            match = sock.getpeername() == peer and (local is None or sock.getsockname() == local)
        except OSError:
            match = False
        if match:
            found.append(sock)
        else:
            sock.close()
    if len(found) != 1:
        for sock in found:
            sock.close()
        raise LookupError(f"{len(found)} sockets connected to {peer!r} from {local!r}")
    return found[0]


def aiohttp_transport(lib: ModuleType, **connector_kwargs: Any) -> Any:
    """An ``httpx.AsyncBaseTransport`` (of httpx or httpx2, as ``lib``) over an aiohttp session.

    Minimal, as litellm's: the ``ClientSession`` and its ``TCPConnector`` (litellm's limits,
    plus ``connector_kwargs``) are made on first use inside the running loop.  Each response
    carries its aiohttp response in ``extensions["aiohttp_response"]``.
    """
    import aiohttp

    class Stream(lib.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, response: aiohttp.ClientResponse) -> None:
            self.response = response

        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in self.response.content.iter_chunked(65536):
                yield chunk

        async def aclose(self) -> None:
            self.response.release()

    class AiohttpTransport(lib.AsyncBaseTransport):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            self.session: aiohttp.ClientSession | None = None

        async def handle_async_request(self, request: Any) -> Any:
            if self.session is None:
                connector = aiohttp.TCPConnector(
                    limit=1000, limit_per_host=500, keepalive_timeout=120, **connector_kwargs
                )
                self.session = aiohttp.ClientSession(connector=connector)
            response = await self.session.request(
                request.method,
                str(request.url),
                headers=list(request.headers.multi_items()),
                data=await request.aread() or None,
                allow_redirects=False,
                auto_decompress=False,
            )
            return lib.Response(
                status_code=response.status,
                headers=list(response.raw_headers),
                stream=Stream(response),
                request=request,
                extensions={"aiohttp_response": response},
            )

        async def aclose(self) -> None:
            if self.session is not None:
                await self.session.close()

    return AiohttpTransport()
