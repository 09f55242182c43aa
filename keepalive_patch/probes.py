"""What ``keepalive-patch check`` tries: per library, a request that exposes its live socket.

Each probe makes one real request with a library's ordinary client, the way an application
would, and reads the expected options back from that request's own socket while the connection
is still open.  A probe raises what the library raised when the request fails.  Adding an
integration means adding its probe to ``available()``.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, List, Optional, Protocol, Tuple  # noqa: UP035 - runtime, 3.9

from keepalive_patch import sockopts
from keepalive_patch.sockopts import SocketOption


class Transport(Protocol):
    """What ``check`` needs of an httpx-like module's transports."""

    def __init__(self, *args: Any, **kwargs: Any) -> None: ...


class HttpxLike(Protocol):
    """An httpx-like module: ``httpx`` or ``httpx2``."""

    __version__: str
    HTTPTransport: type[Transport]

    def Client(self, **kwargs: Any) -> Any: ...

    def AsyncClient(self, **kwargs: Any) -> Any: ...


#: What one probe returns: the status, the connect retries in force (``None``: the library's
#: own policy), and each expected option next to what ``getsockopt`` read from the live socket.
Result = Tuple[int, Optional[int], List[Tuple[SocketOption, Optional[int]]]]  # noqa: UP006


@dataclass(frozen=True)
class Probe:
    """One library, one transport flavour, and how to make a request that exposes its socket.

    ``options_from`` names the library of the registry (``keepalive_patch.WATCHED``) whose
    integration puts the options on these sockets, the ``KEEPALIVE_PATCH_SKIP`` name that leaves
    them alone: requests' sockets are urllib3's.  A probe runs only where that library is
    registered and its own package installed.
    """

    library: str
    transport: str
    options_from: str
    request: Callable[[str, bool, list[SocketOption], float], Result]


def available() -> list[Probe]:
    """The probes to run here: registered integrations, installed libraries."""
    from keepalive_patch import known_names

    probes = []
    for name in ("httpx", "httpx2"):
        probes.append(Probe(name, "sync", name, _httpx_sync(name)))
        probes.append(Probe(name, "async", name, _httpx_async(name)))
    probes.append(Probe("requests", "sync", "urllib3", _requests))
    probes.append(Probe("urllib3", "sync", "urllib3", _urllib3))
    probes.append(Probe("aiohttp", "async", "aiohttp", _aiohttp))
    return [
        probe
        for probe in probes
        if probe.options_from in known_names() and _importable(probe.library)
    ]


def takes_socket_options(module: ModuleType) -> bool:
    """Whether an httpx-like ``module``'s transports can carry keepalive options at all
    (httpx >= 0.25): where they cannot, ``check`` reports "retries only"."""
    from keepalive_patch._wrapping import parameter_names

    return "socket_options" in parameter_names(module.HTTPTransport.__init__)


def _importable(name: str) -> bool:
    import importlib.util

    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _readings(live: Any, expected: list[SocketOption]) -> list[tuple[SocketOption, int | None]]:
    if live is None:
        raise RuntimeError("the response does not expose its socket")
    return sockopts.read_back(live, expected)


def _httpx_sync(name: str) -> Callable[[str, bool, list[SocketOption], float], Result]:
    def request(url: str, trust_env: bool, expected: list[SocketOption], timeout: float) -> Result:
        import importlib

        module: HttpxLike = importlib.import_module(name)
        with (
            module.Client(trust_env=trust_env, timeout=timeout) as client,
            client.stream("GET", url) as response,
        ):
            live = _httpx_socket(response)
            return response.status_code, _pool_retries(client), _readings(live, expected)

    return request


def _httpx_async(name: str) -> Callable[[str, bool, list[SocketOption], float], Result]:
    def request(url: str, trust_env: bool, expected: list[SocketOption], timeout: float) -> Result:
        import asyncio
        import importlib

        module: HttpxLike = importlib.import_module(name)

        async def main() -> Result:
            async with (
                module.AsyncClient(trust_env=trust_env, timeout=timeout) as client,
                client.stream("GET", url) as response,
            ):
                live = _httpx_socket(response)
                return response.status_code, _pool_retries(client), _readings(live, expected)

        return asyncio.run(main())

    return request


def _httpx_socket(response: Any) -> Any:
    stream = response.extensions.get("network_stream")
    return None if stream is None else stream.get_extra_info("socket")


def _pool_retries(client: Any) -> int | None:
    """The connect retries of the client's transport pool (httpcore keeps them private)."""
    retries = getattr(getattr(getattr(client, "_transport", None), "_pool", None), "_retries", None)
    return retries if isinstance(retries, int) else None


def _requests(url: str, trust_env: bool, expected: list[SocketOption], timeout: float) -> Result:
    import requests

    with requests.Session() as session:
        session.trust_env = trust_env
        with session.get(url, stream=True, timeout=timeout) as response:
            live = getattr(getattr(response.raw, "connection", None), "sock", None)
            readings = _readings(live, expected)
        adapter = session.get_adapter(url)
        retry = getattr(adapter, "max_retries", None)
        connect = getattr(retry, "connect", None)
        retries = connect if isinstance(connect, int) else getattr(retry, "total", None)
        return response.status_code, retries if isinstance(retries, int) else None, readings


def _urllib3(url: str, trust_env: bool, expected: list[SocketOption], timeout: float) -> Result:
    import urllib3

    manager: Any = urllib3.PoolManager(timeout=timeout)
    if trust_env:
        import urllib.request

        proxy = urllib.request.getproxies().get(url.partition(":")[0])
        if proxy and not urllib.request.proxy_bypass(url.split("/")[2]):
            manager = urllib3.ProxyManager(proxy, timeout=timeout)
    with contextlib.closing(manager.request("GET", url, preload_content=False)) as response:
        live = getattr(getattr(response, "connection", None), "sock", None)
        readings = _readings(live, expected)
        return response.status, None, readings


def _aiohttp(url: str, trust_env: bool, expected: list[SocketOption], timeout: float) -> Result:
    import asyncio

    import aiohttp

    sockets: list[Any] = []

    class Connector(aiohttp.TCPConnector):
        """Notes the socket of each connection: a small response may be read, and its
        connection released to the pool, before the caller could look at it."""

        async def connect(self, *args: Any, **kwargs: Any) -> Any:
            connection = await super().connect(*args, **kwargs)
            transport = connection.transport
            sockets.append(None if transport is None else transport.get_extra_info("socket"))
            return connection

    async def main() -> Result:
        limit = aiohttp.ClientTimeout(total=timeout)
        async with (
            aiohttp.ClientSession(
                connector=Connector(), trust_env=trust_env, timeout=limit
            ) as session,
            session.get(url) as response,
        ):
            return response.status, None, _readings(sockets[-1] if sockets else None, expected)

    return asyncio.run(main())
