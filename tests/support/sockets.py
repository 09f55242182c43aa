"""Read keepalive options back from live sockets, and make requests that expose them."""

from __future__ import annotations

import asyncio
import importlib
import socket
from types import ModuleType
from typing import Any

import keepalive_patch
from keepalive_patch import config
from keepalive_patch.sockopts import SocketOption, keepalive_options, option_name


def live_socket(response: Any) -> Any:
    """The socket under an httpx response (a ``socket.socket``, or trio's socket wrapper)."""
    return response.extensions["network_stream"].get_extra_info("socket")


#: Every keepalive option this platform has (``TCP_USER_TIMEOUT`` too, even when not in force).
ALL_OPTIONS = keepalive_options(config.defaults(user_timeout=1))


def read_options(sock: Any, options: list[SocketOption] | None = None) -> dict[str, int]:
    """``{option name: value}`` read with getsockopt from a live socket."""
    wanted = options or ALL_OPTIONS
    return {option_name(level, name): sock.getsockopt(level, name) for level, name, _ in wanted}


def kernel_defaults() -> dict[str, int]:
    """What ``read_options`` gives for a fresh TCP socket nobody set options on."""
    with socket.socket() as fresh:
        return read_options(fresh)


def expected(**changes: int) -> dict[str, int]:
    """The option values the shim should set, by name, with any expected changes."""
    values = {option_name(level, name): 0 for level, name, _ in ALL_OPTIONS}  # 0: not set
    values.update(
        (option_name(level, name), value) for level, name, value in keepalive_patch.socket_options()
    )
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
