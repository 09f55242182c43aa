"""_wrapping: wrapt is imported at the first construction (arming stub), not at ``import httpx``.

Checked on live loopback connections (``getsockopt``) in this process; what only a fresh
interpreter shows (wrapt not imported yet, a race to arm, wrapt missing) is in
``fresh/test_arming.py``.
"""

from __future__ import annotations

import inspect
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import wrapt
from support.libs import all_wrapped, installed_libraries, takes_socket_options
from support.servers import serving

import keepalive_patch
from keepalive_patch.integrations import httpx as patch

LIBS = installed_libraries()
CLASSES = [getattr(lib, name) for lib in LIBS for name in patch.TRANSPORT_CLASSES]


@pytest.fixture
def unpatched() -> Iterator[dict[type, Any]]:
    """Start from the untouched classes; leave the import-time state (applied) behind."""
    keepalive_patch.remove()
    originals = {cls: cls.__dict__["__init__"] for cls in CLASSES}
    try:
        yield originals
    finally:
        keepalive_patch.remove()
        keepalive_patch.apply()


def answer_every_request(conn: socket.socket, stop: threading.Event) -> None:
    """HTTP/1.1: answer each request on ``conn`` with ``ok`` and keep the connection open."""
    conn.settimeout(5)
    with conn:
        data = b""
        while not stop.is_set():
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            data += chunk
            while b"\r\n\r\n" in data:
                _, _, data = data.partition(b"\r\n\r\n")
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


@pytest.fixture
def server() -> Iterator[str]:
    """A loopback HTTP/1.1 server that answers every request and keeps connections open."""
    with serving(answer_every_request) as url:
        yield url


def keepalive_when_patched(lib: Any) -> int:
    """SO_KEEPALIVE a patched transport's connections carry: 0 on httpx < 0.25 (retries only)."""
    return 1 if takes_socket_options(lib) else 0


def live_keepalive(lib: Any, transport: Any, url: str) -> int:
    """SO_KEEPALIVE as read back from the live socket of a request made through ``transport``."""
    with lib.Client(transport=transport) as client:
        response = client.get(url)
        sock = response.extensions["network_stream"].get_extra_info("socket")
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
def test_stub_until_first_transport_then_wrapt(
    lib: Any, unpatched: dict[type, Any], server: str
) -> None:
    keepalive_patch.apply()
    cls = lib.HTTPTransport
    stub = cls.__dict__["__init__"]
    assert not isinstance(stub, wrapt.FunctionWrapper)
    assert inspect.signature(stub) == inspect.signature(unpatched[cls])
    first = lib.HTTPTransport()
    assert first._pool._retries == 1
    assert live_keepalive(lib, first, server) == keepalive_when_patched(lib)
    assert isinstance(cls.__dict__["__init__"], wrapt.FunctionWrapper)
    assert cls.__dict__["__init__"].__wrapped__ is unpatched[cls]
    second = lib.HTTPTransport()  # through wrapt now
    assert second._pool._retries == 1
    assert live_keepalive(lib, second, server) == keepalive_when_patched(lib)


@pytest.mark.parametrize("lib", LIBS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("subclass_first", [True, False], ids=["subclass-first", "base-first"])
def test_subclasses_calling_super_are_patched(
    lib: Any, subclass_first: bool, unpatched: dict[type, Any], server: str
) -> None:
    keepalive_patch.apply()

    class Custom(lib.HTTPTransport):  # type: ignore[name-defined, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.seen = True
            super().__init__(*args, **kwargs)

    class Plain(lib.HTTPTransport):  # type: ignore[name-defined, misc]
        pass

    order = [Custom, Plain, lib.HTTPTransport]
    if not subclass_first:
        order.reverse()
    for cls in order:
        transport = cls()
        assert live_keepalive(lib, transport, server) == keepalive_when_patched(lib), cls
        assert transport._pool._retries == 1
    assert Custom().seen


def test_caller_settings_still_win(unpatched: dict[type, Any], server: str) -> None:
    keepalive_patch.apply()
    mine: dict[str, Any] = {"retries": 3}
    if takes_socket_options(httpx):
        mine["socket_options"] = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)]
    transport = httpx.HTTPTransport(**mine)  # the first one: through the stub
    assert transport._pool._retries == 3
    assert live_keepalive(httpx, transport, server) == 0


@pytest.mark.parametrize("arm_first", [True, False], ids=["armed", "stub"])
def test_remove_restores_exact_originals(arm_first: bool, unpatched: dict[type, Any]) -> None:
    keepalive_patch.apply()
    if arm_first:
        for cls in CLASSES:
            cls()
    keepalive_patch.remove()
    for cls in CLASSES:
        assert cls.__dict__["__init__"] is unpatched[cls]
        pool = cls()._pool  # built as the library alone builds it
        assert pool._retries == 0 and not getattr(pool, "_socket_options", None)


def test_stub_wrapped_by_someone_else(unpatched: dict[type, Any], server: str) -> None:
    keepalive_patch.apply()
    calls: list[int] = []

    def outer(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        calls.append(1)
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(httpx.HTTPTransport, "__init__", outer)
    transport = httpx.HTTPTransport()
    assert transport._pool._retries == 1
    assert live_keepalive(httpx, transport, server) == keepalive_when_patched(httpx)
    assert calls == [1]
    keepalive_patch.remove()  # ours is covered: it passes through from now on
    transport = httpx.HTTPTransport()
    assert calls == [1, 1]
    assert transport._pool._retries == 0
    assert getattr(transport._pool, "_socket_options", None) is None
    httpx.HTTPTransport.__init__ = unpatched[httpx.HTTPTransport]


def _every_library() -> list[str]:
    """Import every library the registry watches that is installed here; their names."""
    import importlib

    found = []
    for module in keepalive_patch.WATCHED:
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        found.append(module)
    return found


def _looks(function: Any) -> dict[str, Any]:
    """What instrumentation reads of a method before choosing how to wrap it."""
    return {
        "coroutine": inspect.iscoroutinefunction(function),
        "signature": str(inspect.signature(function)),
        "name": function.__name__,
        "qualname": function.__qualname__,
        "module": function.__module__,
        "doc": function.__doc__,
        "unwrapped": inspect.unwrap(function),
    }


def test_every_wrapped_method_looks_like_its_original_before_first_use() -> None:
    """Before the first call a method's stand-in is what the class holds: to ``inspect`` and
    ``functools.wraps`` readers it must be the original (coroutine-ness included), for every
    method of every integration, replay's connection sends among them."""
    assert _every_library()
    keepalive_patch.remove()
    keepalive_patch.apply()  # fresh stand-ins, none used yet
    wrapped = all_wrapped()
    assert any(inspect.iscoroutinefunction(original) for _, _, original in wrapped)
    for cls, attribute, original in wrapped:
        standing = cls.__dict__[attribute]
        assert standing is not original, (cls, attribute)
        want = _looks(original)
        want["unwrapped"] = inspect.unwrap(original)
        assert _looks(standing) == want, (cls, attribute)
