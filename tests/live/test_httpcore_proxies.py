"""Keepalive options and the connect retry reach the client->proxy socket on every proxy path.

Real loopback servers (``tests/proxy_servers.py``): an origin (plain or TLS), an HTTP proxy that
forwards ``http://`` requests and tunnels ``CONNECT`` for ``https://`` ones, and a SOCKS5 proxy.
The options are read back with ``getsockopt`` from the socket under the response's
``network_stream``, after checking that its peer is the proxy and that the proxy accepted a
connection from exactly that client address.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Callable

import pytest
from support.faults import warnings_from_patching_twice, with_and_without_shim
from support.libs import wrapped_classes
from support.proxies import HTTPProxyServer, OriginServer, Socks5ProxyServer
from support.servers import LoopbackServer

import keepalive_patch
from keepalive_patch.integrations import httpcore as proxies
from keepalive_patch.sockopts import read_back

LIBRARIES = {"httpx": "httpcore", "httpx2": "httpcore2"}
KINDS = ("forward", "tunnel", "socks")
#: The environment variable that routes each kind of request through a proxy.
ENV_VARS = {"forward": "HTTP_PROXY", "tunnel": "HTTPS_PROXY", "socks": "ALL_PROXY"}
TCP = getattr(socket, "IPPROTO_TCP", 6)

pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture(params=sorted(LIBRARIES))
def lib(request: pytest.FixtureRequest) -> ModuleType:
    return pytest.importorskip(request.param)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "socks":
        pytest.importorskip("socksio")
    return str(request.param)


@pytest.fixture
def route(kind: str, server_tls: Any) -> Iterator[tuple[LoopbackServer, OriginServer]]:
    """(proxy, origin) for ``kind``: the origin speaks TLS only on the CONNECT path."""
    proxy: LoopbackServer = Socks5ProxyServer() if kind == "socks" else HTTPProxyServer()
    with proxy, OriginServer(tls=server_tls if kind == "tunnel" else None) as origin:
        yield proxy, origin


@pytest.fixture
def forward() -> Iterator[tuple[LoopbackServer, OriginServer]]:
    """(HTTP proxy, plain origin): the forward path, for tests that need no other."""
    with HTTPProxyServer() as proxy, OriginServer() as origin:
        yield proxy, origin


def core_of(lib: ModuleType) -> ModuleType:
    return pytest.importorskip(LIBRARIES[lib.__name__])


def takes_socket_options(lib: ModuleType) -> bool:
    """httpx < 0.25 transports have no socket_options: the shim gives them retries only."""
    return "socket_options" in inspect.signature(lib.HTTPTransport.__init__).parameters


def proxy_of(lib: ModuleType, proxy: LoopbackServer) -> Any:
    return lib.Proxy(proxy.url)  # type: ignore[attr-defined]


def proxy_socket(response: Any, proxy: LoopbackServer) -> Any:
    """The live client->proxy socket under ``response``, checked from both ends."""
    assert response.status_code == 200
    assert response.text == "ok"
    sock = response.extensions["network_stream"].get_extra_info("socket")
    assert sock is not None
    assert tuple(sock.getpeername()[:2]) == proxy.address
    assert tuple(sock.getsockname()[:2]) in proxy.peers
    return sock


def read_options(sock: Any, options: list[tuple[int, int, int]]) -> dict[tuple[int, int], Any]:
    return {(level, name): value for (level, name, _), value in read_back(sock, options)}


def assert_keepalive(sock: Any, options: list[tuple[int, int, int]]) -> None:
    assert options, "this kernel accepted no keepalive option"
    got = read_options(sock, options)
    want = {(level, name): value for level, name, value in options}
    assert got.pop((socket.SOL_SOCKET, socket.SO_KEEPALIVE))
    del want[(socket.SOL_SOCKET, socket.SO_KEEPALIVE)]
    assert got == want


def assert_no_keepalive(sock: Any) -> None:
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


def check_expected(lib: ModuleType, sock: Any) -> None:
    if takes_socket_options(lib):
        assert_keepalive(sock, keepalive_patch.socket_options())
    else:
        assert_no_keepalive(sock)


def run_async(flavour: str, main: Callable[[], Any]) -> Any:
    if flavour == "trio":
        trio = pytest.importorskip("trio")
        return trio.run(main)
    return asyncio.run(main())


# -- every path, sync ------------------------------------------------------------------------


def test_sync_transport_through_proxy(lib: ModuleType, kind: str, route: Any) -> None:
    proxy, origin = route
    transport = lib.HTTPTransport(proxy=proxy_of(lib, proxy), verify=False)
    with lib.Client(transport=transport) as client:
        response = client.get(origin.url)
        check_expected(lib, proxy_socket(response, proxy))
        assert client.get(origin.url).status_code == 200  # the pooled connection still works
    assert len(proxy.peers) == 1


@pytest.mark.parametrize("flavour", ["asyncio", "trio"])
def test_async_transport_through_proxy(
    lib: ModuleType, kind: str, route: Any, flavour: str
) -> None:
    proxy, origin = route

    async def main() -> None:
        transport = lib.AsyncHTTPTransport(proxy=proxy_of(lib, proxy), verify=False)
        async with lib.AsyncClient(transport=transport) as client:
            response = await client.get(origin.url)
            check_expected(lib, proxy_socket(response, proxy))

    run_async(flavour, main)


def test_proxy_from_environment(
    lib: ModuleType, kind: str, route: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, origin = route
    monkeypatch.setenv(ENV_VARS[kind], proxy.url)
    with lib.Client(verify=False) as client:
        response = client.get(origin.url)
        check_expected(lib, proxy_socket(response, proxy))


def test_async_proxy_from_environment(
    lib: ModuleType, kind: str, route: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, origin = route
    monkeypatch.setenv(ENV_VARS[kind], proxy.url)

    async def main() -> None:
        async with lib.AsyncClient(verify=False) as client:
            response = await client.get(origin.url)
            check_expected(lib, proxy_socket(response, proxy))

    run_async("asyncio", main)


# -- the caller's rules ----------------------------------------------------------------------


def test_explicit_keepalive_policy_wins(lib: ModuleType, kind: str, route: Any) -> None:
    """The caller's own keepalive timing is their policy on the proxy socket too."""
    if not takes_socket_options(lib):
        pytest.skip(f"{lib.__name__} {lib.__version__} transports take no socket_options")
    if not hasattr(socket, "TCP_KEEPIDLE"):
        pytest.skip("no TCP_KEEPIDLE here")
    proxy, origin = route
    mine = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1), (TCP, socket.TCP_KEEPIDLE, 77)]
    transport = lib.HTTPTransport(proxy=proxy_of(lib, proxy), verify=False, socket_options=mine)
    with lib.Client(transport=transport) as client:
        sock = proxy_socket(client.get(origin.url), proxy)
        got = read_options(sock, keepalive_patch.socket_options())
    with socket.socket() as fresh:
        expected = read_options(fresh, keepalive_patch.socket_options())  # the kernel's own
    expected[(TCP, socket.TCP_KEEPIDLE)] = 77
    assert got.pop((socket.SOL_SOCKET, socket.SO_KEEPALIVE))
    del expected[(socket.SOL_SOCKET, socket.SO_KEEPALIVE)]
    assert got == expected


def test_explicit_keepalive_off_is_respected(lib: ModuleType, route: Any) -> None:
    if not takes_socket_options(lib):
        pytest.skip(f"{lib.__name__} {lib.__version__} transports take no socket_options")
    proxy, origin = route
    mine = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)]
    transport = lib.HTTPTransport(proxy=proxy_of(lib, proxy), verify=False, socket_options=mine)
    with lib.Client(transport=transport) as client:
        assert_no_keepalive(proxy_socket(client.get(origin.url), proxy))


def test_uds_means_no_socket_options(lib: ModuleType, kind: str, route: Any) -> None:
    """The core rule (uds set -> no socket options) holds even though httpx then ignores uds."""
    proxy, origin = route
    if proxies._connects_with_own_retries(
        getattr(core_of(lib).HTTPProxy.__init__, "__wrapped__", None), "HTTPProxy"
    ):
        pytest.skip(f"{lib.__name__} {lib.__version__} sends its proxy connections through uds")
    transport = lib.HTTPTransport(
        proxy=proxy_of(lib, proxy), verify=False, uds="/nonexistent/keepalive-patch.sock"
    )
    with lib.Client(transport=transport) as client:
        assert_no_keepalive(proxy_socket(client.get(origin.url), proxy))


def test_settings_follow_apply(lib: ModuleType, route: Any) -> None:
    if not takes_socket_options(lib) or not hasattr(socket, "TCP_KEEPIDLE"):
        pytest.skip("needs socket_options and TCP_KEEPIDLE")
    proxy, origin = route
    keepalive_patch.apply(idle=45, interval=5, count=2)
    transport = lib.HTTPTransport(proxy=proxy_of(lib, proxy), verify=False)
    with lib.Client(transport=transport) as client:
        sock = proxy_socket(client.get(origin.url), proxy)
        assert sock.getsockopt(TCP, socket.TCP_KEEPIDLE) == 45
        assert_keepalive(sock, keepalive_patch.socket_options())


def test_remove_restores_proxy_classes(lib: ModuleType, route: Any) -> None:
    proxy, origin = route
    core = core_of(lib)
    lib.HTTPTransport(proxy=proxy_of(lib, proxy))  # make sure the core is imported and wrapped
    wrapped = {name: core.__dict__[name].__dict__["__init__"] for name in proxies.PROXY_CLASSES}
    keepalive_patch.remove()
    try:
        for name in proxies.PROXY_CLASSES:
            init = getattr(core, name).__dict__["__init__"]
            assert init is not wrapped[name]
            assert init is getattr(wrapped[name], "__wrapped__", None)
        transport = lib.HTTPTransport(proxy=proxy_of(lib, proxy), verify=False)
        with lib.Client(transport=transport) as client:
            assert_no_keepalive(proxy_socket(client.get(origin.url), proxy))
    finally:
        keepalive_patch.apply()
    assert set(proxies.PROXY_CLASSES) <= {cls.__name__ for cls in wrapped_classes(proxies)}


# -- httpcore used directly ------------------------------------------------------------------


def test_core_proxy_honours_its_own_socket_options(lib: ModuleType, forward: Any) -> None:
    """Straight httpcore: the pool's own socket_options now reach its proxy connection."""
    core = core_of(lib)
    if "socket_options" not in inspect.signature(core.HTTPProxy.__init__).parameters:
        pytest.skip(f"{core.__name__} {core.__version__} proxies take no socket_options")
    proxy, origin = forward
    mine = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    with core.HTTPProxy(proxy_url=proxy.url, socket_options=mine) as pool:
        response = pool.request("GET", origin.url)
        sock = response.extensions["network_stream"].get_extra_info("socket")
        assert tuple(sock.getpeername()[:2]) == proxy.address
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        if hasattr(socket, "TCP_KEEPIDLE"):  # only what the caller asked for, no more
            with socket.socket() as fresh:
                kernel_default = fresh.getsockopt(TCP, socket.TCP_KEEPIDLE)
            assert sock.getsockopt(TCP, socket.TCP_KEEPIDLE) == kernel_default


def test_callers_network_backend_is_left_alone(lib: ModuleType, forward: Any) -> None:
    core = core_of(lib)
    proxy, origin = forward
    backend = proxies._default_backend(core, is_async=False)()
    kwargs: dict[str, Any] = {"network_backend": backend}
    if "socket_options" in inspect.signature(core.HTTPProxy.__init__).parameters:
        kwargs["socket_options"] = keepalive_patch.socket_options()

    def keepalive_on_the_proxy_socket() -> int:
        with core.HTTPProxy(proxy_url=proxy.url, **kwargs) as pool:
            response = pool.request("GET", origin.url)
            sock = response.extensions["network_stream"].get_extra_info("socket")
            assert tuple(sock.getpeername()[:2]) == proxy.address
            return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))

    # httpcore's own behaviour with a backend of the caller's: none before httpcore2 2.17 (its
    # proxy pools dropped their socket_options), the pool's own options from 2.17 on.
    patched, unpatched = with_and_without_shim(keepalive_on_the_proxy_socket)
    assert patched == unpatched


# -- the connect retry -----------------------------------------------------------------------


def count_connects(
    monkeypatch: pytest.MonkeyPatch, backend_class: type, on_failure: Callable[[], None]
) -> list[str]:
    """Record each real ``connect_tcp`` the default backend makes; call ``on_failure`` once it
    fails (the test starts the proxy listening then)."""
    attempts: list[str] = []
    original = backend_class.__dict__["connect_tcp"]

    if inspect.iscoroutinefunction(original):

        async def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
            attempts.append("attempt")
            try:
                return await original(self, *args, **kwargs)
            except Exception:
                on_failure()
                raise

    else:

        def spy(self: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            attempts.append("attempt")
            try:
                return original(self, *args, **kwargs)
            except Exception:
                on_failure()
                raise

    monkeypatch.setattr(backend_class, "connect_tcp", spy)
    return attempts


@pytest.mark.parametrize("socks", [False, True], ids=["http-proxy", "socks-proxy"])
def test_connect_to_proxy_is_retried(
    lib: ModuleType, socks: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy refuses the first connect (bound, not yet listening); the retry gets through."""
    if socks:
        pytest.importorskip("socksio")
    core = core_of(lib)
    proxy: LoopbackServer = (
        Socks5ProxyServer(listen=False) if socks else HTTPProxyServer(listen=False)
    )
    with proxy, OriginServer() as origin:
        attempts = count_connects(
            monkeypatch, proxies._default_backend(core, is_async=False), proxy.start_listening
        )
        with lib.Client(transport=lib.HTTPTransport(proxy=proxy_of(lib, proxy))) as client:
            assert client.get(origin.url).text == "ok"
        assert len(attempts) == 2


@pytest.mark.parametrize("flavour", ["asyncio", "trio"])
def test_async_connect_to_proxy_is_retried(
    lib: ModuleType, flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = core_of(lib)
    with HTTPProxyServer(listen=False) as proxy, OriginServer() as origin:
        attempts = count_connects(
            monkeypatch, proxies._default_backend(core, is_async=True), proxy.start_listening
        )

        async def main() -> str:
            transport = lib.AsyncHTTPTransport(proxy=proxy_of(lib, proxy))
            async with lib.AsyncClient(transport=transport) as client:
                return str((await client.get(origin.url)).text)

        assert run_async(flavour, main) == "ok"
        assert len(attempts) == 2


def test_explicit_retries_zero_is_respected(
    lib: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = core_of(lib)
    with HTTPProxyServer(listen=False) as proxy:
        attempts = count_connects(
            monkeypatch, proxies._default_backend(core, is_async=False), lambda: None
        )
        transport = lib.HTTPTransport(proxy=proxy_of(lib, proxy), retries=0)
        with lib.Client(transport=transport) as client, pytest.raises(lib.ConnectError):
            client.get("http://127.0.0.1:9/")
        assert len(attempts) == 1


def test_explicit_retries_are_used(lib: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """retries=3 on the transport: four connects to a proxy that never listens, then httpx's
    own ConnectError (the waits are httpcore's: 0, 0.5 and 1 s)."""
    core = core_of(lib)
    with HTTPProxyServer(listen=False) as proxy:
        attempts = count_connects(
            monkeypatch, proxies._default_backend(core, is_async=False), lambda: None
        )
        monkeypatch.setattr(proxies, "BACKOFF_FACTOR", 0.01)
        transport = lib.HTTPTransport(proxy=proxy_of(lib, proxy), retries=3)
        with lib.Client(transport=transport) as client, pytest.raises(lib.ConnectError):
            client.get("http://127.0.0.1:9/")
        assert len(attempts) == 4


# -- versions this shim cannot serve ---------------------------------------------------------


def fake_core(name: str, with_backend_arg: bool) -> ModuleType:
    """A stand-in for an httpcore this shim does not know (none such can be installed here)."""
    module = ModuleType(name)

    class SyncBackend:
        def connect_tcp(self, host: str, port: int, timeout: Any = None) -> None: ...

    module.SyncBackend = SyncBackend  # type: ignore[attr-defined]
    for class_name in proxies.PROXY_CLASSES:
        if with_backend_arg:

            def init(self: Any, proxy_url: str, network_backend: Any = None) -> None:
                self.network_backend = network_backend

        else:

            def init(self: Any, proxy_url: str) -> None:  # type: ignore[misc]
                pass

        setattr(module, class_name, type(class_name, (), {"__init__": init}))
    return module


def test_unknown_core_layout_is_logged_once_and_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    module = fake_core("fakecore_nobackend", with_backend_arg=True)  # no AutoBackend anywhere
    inits = {name: getattr(module, name).__dict__["__init__"] for name in proxies.PROXY_CLASSES}
    messages = warnings_from_patching_twice(proxies.patch, module, "fakecore_nobackend", caplog)
    assert messages == [
        "fakecore_nobackend has no AutoBackend where keepalive-patch looks for "
        "it; proxies not patched"
    ]
    for name in ("AsyncHTTPProxy", "AsyncSOCKSProxy"):
        assert getattr(module, name).__dict__["__init__"] is inits[name]
    # the sync classes found their SyncBackend and are wrapped; a pool still builds
    pool = module.HTTPProxy("http://127.0.0.1:1")
    assert pool.network_backend is None or hasattr(pool.network_backend, "connect_tcp")
    proxies.unpatch()
    keepalive_patch.apply()
    for name in proxies.PROXY_CLASSES:
        assert getattr(module, name).__dict__["__init__"] is inits[name]


def test_pool_without_network_backend_is_logged_once_and_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    module = fake_core("fakecore_noarg", with_backend_arg=False)
    module.AutoBackend = module.SyncBackend  # type: ignore[attr-defined]
    messages = warnings_from_patching_twice(proxies.patch, module, "fakecore_noarg", caplog)
    assert len(messages) == len(proxies.PROXY_CLASSES)
    assert all("takes no network_backend" in m for m in messages)
    assert not any(cls.__module__ == "fakecore_noarg" for cls in wrapped_classes(proxies))
