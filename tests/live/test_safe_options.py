"""Inputs that must never break a working app, on live loopback connections.

From adversarial testing: an option the kernel refuses in any way, a kernel check
(``sockopts.vet``) that fails whole, and a caller whose own ``socket_options`` generator raises.
"""

from __future__ import annotations

import logging
import socket
import types
from collections.abc import Iterator
from typing import Any

import pytest
from support.faults import offer_extra_option
from support.libs import require_socket_options
from support.sockets import expected, fetch, kernel_defaults

import keepalive_patch
from keepalive_patch import sockopts

TCP = socket.IPPROTO_TCP


def test_an_option_that_raises_anything_is_dropped_alone(
    keepalive_lib: types.ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    http_url: str,
) -> None:
    """setsockopt raises OverflowError for a value beyond a C int: drop that option only."""
    offer_extra_option(monkeypatch, (TCP, socket.TCP_KEEPCNT, 2**40))
    with caplog.at_level(logging.WARNING, logger="keepalive_patch"):
        keepalive_patch.apply()
        [options] = fetch(keepalive_lib, "sync", http_url)
    assert options == expected()
    assert keepalive_lib.HTTPTransport()._pool._retries == 1
    assert any(str(2**40) in record.getMessage() for record in caplog.records)


def test_a_kernel_check_that_fails_whole_still_leaves_retries(
    lib: types.ModuleType, monkeypatch: pytest.MonkeyPatch, http_url: str
) -> None:
    def broken(options: Any, sock: Any = socket) -> Any:
        raise RuntimeError("no kernel check today")

    monkeypatch.setattr(sockopts, "vet", broken)
    keepalive_patch.apply()
    assert keepalive_patch.socket_options() == []
    assert keepalive_patch.settings().idle == 30, "settings() never raises on configuration"
    assert lib.HTTPTransport()._pool._retries == 1
    [options] = fetch(lib, "sync", http_url)
    assert options == kernel_defaults()


def test_the_callers_own_generator_error_reaches_the_caller(lib: types.ModuleType) -> None:
    """Unpatched, httpx raises it at the request; patched, from the constructor: never lost."""

    def options() -> Iterator[tuple[int, int, int]]:
        yield (TCP, socket.TCP_NODELAY, 1)
        raise RuntimeError("the caller's own bug")

    require_socket_options(lib)
    with pytest.raises(RuntimeError, match="the caller's own bug"):
        lib.HTTPTransport(socket_options=options())
    with pytest.raises(RuntimeError, match="the caller's own bug"):
        lib.AsyncHTTPTransport(socket_options=options())
