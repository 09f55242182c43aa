"""aiohttp: every ``TCPConnector`` connection carries the keepalive options, read back live.

Real servers on 127.0.0.1 (``support.aiohttp_stack.HeldOrigin`` holds each response open so the
response still owns its connection); the options are read with ``getsockopt`` from
``response.connection.transport.get_extra_info("socket")``, and the socket's addresses are
checked against what the server (or proxy) accepted.  aiohttp >= 3.12 is patched through its
public ``socket_factory``; older aiohttp on its connect step.  Both paths run the same tests.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")

from support.aiohttp_stack import (  # noqa: E402
    HeldOrigin,
    aiohttp_transport,
    closed,
    socket_connected_to,
)
from support.faults import (  # noqa: E402
    break_sockopts,
    raised,
    warnings_from_patching_twice,
    with_and_without_shim,
)
from support.libs import (  # noqa: E402
    has_socket_factory,
    original_of,
    wrapped_classes,
)
from support.procs import run_script  # noqa: E402
from support.proxies import (  # noqa: E402
    HTTPProxyServer,
    LoopbackServer,
    read_head,
)
from support.sockets import expected, kernel_defaults, read_options  # noqa: E402

import keepalive_patch  # noqa: E402
from keepalive_patch import sockopts  # noqa: E402
from keepalive_patch.integrations import aiohttp as integration  # noqa: E402

TCP = socket.IPPROTO_TCP

pytestmark = pytest.mark.usefixtures("no_proxy_env")
VERSION = tuple(int(part) for part in aiohttp.__version__.split(".")[:2])
HAS_SOCKET_FACTORY = has_socket_factory(aiohttp.TCPConnector)
needs_socket_factory = pytest.mark.skipif(
    not HAS_SOCKET_FACTORY,
    reason=f"aiohttp {aiohttp.__version__} has no TCPConnector(socket_factory=) (added in 3.12)",
)


@pytest.fixture
def origin() -> Iterator[HeldOrigin]:
    with HeldOrigin() as server:
        yield server


class Seen:
    """What one request's live socket showed."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.options = read_options(sock)
        self.local = sock.getsockname()[:2]
        self.peer = sock.getpeername()[:2]


async def held_get(session: Any, origin: HeldOrigin, url: str | None = None, **kw: Any) -> Seen:
    """GET while the origin holds the body: read the live socket, then let the body finish."""
    async with session.get(url or origin.url, **kw) as response:
        assert response.status == 200
        seen = Seen(response.connection.transport.get_extra_info("socket"))
        origin.release()
        assert await response.read() == b"ok"
    return seen


def get_with(origin: HeldOrigin, connector: Any = None, **kw: Any) -> Seen:
    """One held GET on a fresh session (over ``connector()``, if given) in a fresh loop."""

    async def main() -> Seen:
        async with aiohttp.ClientSession(connector=connector() if connector else None) as session:
            seen = await held_get(session, origin, **kw)
        await closed(seen.sock)
        return seen

    seen: Seen = asyncio.run(main())
    assert seen.peer == origin.address
    assert seen.local in origin.peers, "the socket read is the one the origin accepted"
    return seen


# -- direct connections ----------------------------------------------------------------------


def test_default_session_gets_keepalive(origin: HeldOrigin) -> None:
    seen = get_with(origin)
    assert seen.options == expected()
    assert seen.options["SO_KEEPALIVE"] == 1
    assert seen.options["TCP_KEEPIDLE"] == 30
    assert seen.options["TCP_USER_TIMEOUT"] == 0, "opt-in only"


def test_unpatched_control_has_kernel_defaults(origin: HeldOrigin) -> None:
    keepalive_patch.remove()
    assert get_with(origin).options == kernel_defaults()


def test_explicit_connector_and_settings(origin: HeldOrigin) -> None:
    keepalive_patch.apply(idle=45, interval=5, count=4, user_timeout=20_000)
    seen = get_with(origin, lambda: aiohttp.TCPConnector(limit=3, force_close=True))
    assert seen.options == {
        "SO_KEEPALIVE": 1,
        "TCP_KEEPIDLE": 45,
        "TCP_KEEPINTVL": 5,
        "TCP_KEEPCNT": 4,
        "TCP_USER_TIMEOUT": 20_000,
    }


def test_every_new_connection_is_patched(origin: HeldOrigin) -> None:
    async def main() -> list[Seen]:
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection per request
        async with aiohttp.ClientSession(connector=connector) as session:
            return [await held_get(session, origin) for _ in range(3)]

    seen = asyncio.run(main())
    assert len({s.local for s in seen}) == 3
    assert all(s.options == expected() for s in seen)


def test_tls_connection_gets_keepalive(server_tls: Any) -> None:
    with HeldOrigin(tls=server_tls) as tls_origin:
        seen = get_with(tls_origin, ssl=False)
    assert seen.options == expected()


def test_subclasses_are_patched(origin: HeldOrigin) -> None:
    class Plain(aiohttp.TCPConnector):  # type: ignore[misc,name-defined]
        pass

    class OwnInit(aiohttp.TCPConnector):  # type: ignore[misc,name-defined]
        def __init__(self, *, note: str, **kwargs: Any) -> None:
            self.note = note
            super().__init__(limit=7, **kwargs)

    assert get_with(origin, Plain).options == expected()
    assert get_with(origin, lambda: OwnInit(note="mine")).options == expected()
    assert wrapped_classes(integration) == [aiohttp.TCPConnector], "subclasses inherit it"


# -- through an HTTP proxy -------------------------------------------------------------------


def test_forwarding_proxy_connection_gets_keepalive(origin: HeldOrigin) -> None:
    with HTTPProxyServer() as proxy:

        async def main() -> Seen:
            async with aiohttp.ClientSession() as session:
                return await held_get(session, origin, proxy=proxy.url)

        seen = asyncio.run(main())
        assert seen.peer == proxy.address, "the socket read is the client->proxy one"
        assert seen.local in proxy.peers
        assert proxy.requests == [f"GET {origin.url} HTTP/1.1".encode()]
    assert seen.options == expected()


def test_connect_tunnel_connection_gets_keepalive(server_tls: Any) -> None:
    with HeldOrigin(tls=server_tls) as tls_origin, HTTPProxyServer() as proxy:

        async def main() -> Seen:
            async with aiohttp.ClientSession() as session:
                seen = await held_get(session, tls_origin, proxy=proxy.url, ssl=False)
            await closed(seen.sock)
            return seen

        seen = asyncio.run(main())
        assert seen.peer == proxy.address
        assert seen.local in proxy.peers
        assert proxy.requests[0].startswith(b"CONNECT 127.0.0.1:")
    assert seen.options == expected()


# -- what the caller chose wins --------------------------------------------------------------


class CallersFactory:
    """A caller's own ``socket_factory``: their options, and a count of the sockets made."""

    def __init__(self, *options: tuple[int, int, int]) -> None:
        self.options = options
        self.made = 0

    def __call__(self, addr_info: Any) -> socket.socket:
        self.made += 1
        sock = socket.socket(addr_info[0], addr_info[1], addr_info[2])
        for option in self.options:
            sock.setsockopt(*option)
        return sock


@needs_socket_factory
def test_callers_socket_factory_is_left_alone(origin: HeldOrigin) -> None:
    """litellm's opt-in: SO_KEEPALIVE and its own idle time; none of ours is mixed in."""
    theirs = CallersFactory(
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1), (TCP, socket.TCP_KEEPIDLE, 77)
    )
    seen = get_with(origin, lambda: aiohttp.TCPConnector(socket_factory=theirs))
    assert theirs.made == 1
    defaults = kernel_defaults()
    assert seen.options == {**defaults, "SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 77}


@needs_socket_factory
def test_callers_plain_socket_factory_gets_nothing_of_ours(origin: HeldOrigin) -> None:
    theirs = CallersFactory()
    assert get_with(origin, lambda: aiohttp.TCPConnector(socket_factory=theirs)).options == (
        kernel_defaults()
    )
    assert theirs.made == 1


@needs_socket_factory
def test_subclass_passing_its_own_factory_keeps_it(origin: HeldOrigin) -> None:
    theirs = CallersFactory((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0))

    class Factoried(aiohttp.TCPConnector):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__(socket_factory=theirs)

    assert get_with(origin, Factoried).options == kernel_defaults()
    assert theirs.made == 1


@needs_socket_factory
def test_socket_factory_none_means_ours(origin: HeldOrigin) -> None:
    """``None`` is aiohttp's own default: the caller chose nothing."""
    seen = get_with(origin, lambda: aiohttp.TCPConnector(socket_factory=None))
    assert seen.options == expected()


def test_bad_arguments_raise_aiohttps_own_error() -> None:
    patched_error, original_error = with_and_without_shim(
        lambda: raised(lambda: aiohttp.TCPConnector(no_such_argument=1), TypeError)
    )
    assert str(patched_error) == str(original_error)


def test_callers_factory_error_reaches_the_caller(origin: HeldOrigin) -> None:
    if not HAS_SOCKET_FACTORY:
        pytest.skip(f"aiohttp {aiohttp.__version__} takes no socket_factory (3.12+)")

    class Theirs(Exception):
        pass

    def failing(addr_info: Any) -> socket.socket:
        raise Theirs("the caller's own")

    with pytest.raises(Theirs, match="the caller's own"):
        get_with(origin, lambda: aiohttp.TCPConnector(socket_factory=failing))


# -- errors and retries stay aiohttp's -------------------------------------------------------


def connect_error(port: int) -> BaseException:
    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            await session.get(f"http://127.0.0.1:{port}/")

    with pytest.raises(aiohttp.ClientConnectorError) as error:
        asyncio.run(main())
    return error.value


def test_connect_error_is_aiohttps_own() -> None:
    with LoopbackServer(listen=False) as closed:  # bound, not listening: refused
        patched = connect_error(closed.port)
        keepalive_patch.remove()
        unpatched = connect_error(closed.port)
    assert type(patched) is type(unpatched)
    assert patched.os_error.errno == unpatched.os_error.errno == errno.ECONNREFUSED
    assert str(patched) == str(unpatched)


class DropsReused(LoopbackServer):
    """Answers the first request on a connection, then closes it on the next one, unanswered:
    aiohttp retries an idempotent request that failed on a reused connection."""

    def handle(self, conn: socket.socket) -> None:
        if not read_head(conn):
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        read_head(conn)  # the second request: dropped


def connections_for_two_gets() -> tuple[int, list[Any]]:
    """How many connections two GETs took, and what each GET gave (status or error type)."""
    with DropsReused() as server:

        async def main() -> list[Any]:
            async with aiohttp.ClientSession() as session:
                outcomes: list[Any] = []
                for _ in range(2):
                    try:
                        async with session.get(f"http://127.0.0.1:{server.port}/") as response:
                            await response.read()
                            outcomes.append(response.status)
                    except aiohttp.ClientError as error:
                        outcomes.append(type(error))
                return outcomes

        outcomes = asyncio.run(main())
        return len(server.peers), outcomes


def test_aiohttps_own_retry_is_unchanged_and_no_connect_retry_added() -> None:
    """Whatever this aiohttp does (3.9 raises ServerDisconnectedError, newer ones retry the GET
    on a new connection), it does the same with the shim: the server counts the connections."""
    patched = connections_for_two_gets()
    keepalive_patch.remove()
    assert patched == connections_for_two_gets()
    assert patched[1][0] == 200


# -- containment -----------------------------------------------------------------------------


def test_kernel_rejected_option_never_fails_the_connect(
    origin: HeldOrigin, caplog: pytest.LogCaptureFixture
) -> None:
    """TCP_KEEPIDLE=0 is EINVAL on Linux: skipped on that socket, the rest set, connect fine."""
    factory = integration.KeepaliveSocketFactory(
        [(TCP, socket.TCP_KEEPIDLE, 0), (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    )
    with caplog.at_level(logging.WARNING, logger="keepalive_patch"):
        connected = socket.create_connection(origin.address, timeout=5)
        with connected:
            integration.set_options(connected, factory.options)  # the older aiohttp's path
            assert connected.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        if HAS_SOCKET_FACTORY:
            seen = get_with(origin, lambda: aiohttp.TCPConnector(socket_factory=factory))
            assert seen.options["SO_KEEPALIVE"] == 1
            assert seen.options["TCP_KEEPIDLE"] == kernel_defaults()["TCP_KEEPIDLE"]
    assert any("TCP_KEEPIDLE=0" in record.getMessage() for record in caplog.records)


def test_rejected_option_in_force_never_fails_the_connect(
    origin: HeldOrigin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same end to end, whichever hook this aiohttp has: the option reaches our code."""
    state = sockopts.in_force()
    bad = state._replace(options=[*state.options[:1], (TCP, socket.TCP_KEEPIDLE, 0)])
    monkeypatch.setattr(sockopts, "in_force", lambda: bad)
    seen = get_with(origin)
    assert seen.options["SO_KEEPALIVE"] == 1
    assert seen.options["TCP_KEEPIDLE"] == kernel_defaults()["TCP_KEEPIDLE"]


@pytest.mark.parametrize(
    ("broken", "message"),
    [("in_force", "failed to prepare"), ("apply_to", "failed to set options")],
    ids=["before_connect_connector_as_aiohttp_made_it", "after_connect_connection_usable"],
)
def test_internal_failure_leaves_aiohttp_as_it_is(
    origin: HeldOrigin,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    broken: str,
    message: str,
) -> None:
    """Our failure while preparing the connector or after the connect: aiohttp's own defaults,
    every connection usable, one log line."""
    break_sockopts(monkeypatch, broken)
    with caplog.at_level(logging.WARNING, logger="keepalive_patch"):
        seen = [get_with(origin, lambda: aiohttp.TCPConnector(force_close=True)) for _ in range(2)]
    assert all(s.options == kernel_defaults() for s in seen)
    failures = [r for r in caplog.records if message in r.getMessage()]
    assert len(failures) == 1, "logged once, not per connector or connection"


# -- what is left alone, and removal ---------------------------------------------------------


def test_unix_connector_is_left_alone(uds_path: str) -> None:
    async def main() -> int:
        connector = aiohttp.UnixConnector(path=uds_path)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get("http://localhost/") as response:
                assert await response.read() == b"ok"
            with socket_connected_to(uds_path) as sock:  # pooled, still open
                assert sock.family == socket.AF_UNIX
                keepalive: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
                return keepalive

    assert asyncio.run(main()) == 0
    for name in ("__init__", "_create_connection"):
        assert not hasattr(vars(aiohttp.UnixConnector)[name], "__wrapped__"), name
    assert not issubclass(aiohttp.UnixConnector, aiohttp.TCPConnector)
    assert not issubclass(aiohttp.NamedPipeConnector, aiohttp.TCPConnector)
    assert aiohttp.UnixConnector not in wrapped_classes(integration)


def test_remove_restores_the_exact_original(origin: HeldOrigin) -> None:
    attribute = "__init__" if HAS_SOCKET_FACTORY else "_wrap_create_connection"
    assert [(cls, name) for cls, name, _ in integration.wrapped()] == [
        (aiohttp.TCPConnector, attribute)
    ]
    original = original_of(integration, aiohttp.TCPConnector, attribute)
    keepalive_patch.remove()
    assert aiohttp.TCPConnector.__dict__[attribute] is original
    assert inspect.isfunction(original)
    assert get_with(origin).options == kernel_defaults()
    keepalive_patch.apply()
    assert get_with(origin).options == expected()


def test_skip_setting_leaves_aiohttp_alone(origin: HeldOrigin) -> None:
    keepalive_patch.apply(skip=["aiohttp"])
    assert get_with(origin).options == kernel_defaults()
    keepalive_patch.apply(skip=[])
    assert get_with(origin).options == expected()


# -- httpx sending through aiohttp, as litellm does ------------------------------------------


@pytest.fixture(params=["httpx", "httpx2"])
def httpx_lib(request: pytest.FixtureRequest) -> Any:
    return pytest.importorskip(request.param)


def httpx_get(lib: Any, origin: HeldOrigin, **connector_kwargs: Any) -> Seen:
    async def main() -> Seen:
        transport = aiohttp_transport(lib, **connector_kwargs)
        client = lib.AsyncClient(transport=transport)
        async with client, client.stream("GET", origin.url) as response:
            assert response.status_code == 200
            aio_response = response.extensions["aiohttp_response"]
            seen = Seen(aio_response.connection.transport.get_extra_info("socket"))
            origin.release()
            assert await response.aread() == b"ok"
        return seen

    seen: Seen = asyncio.run(main())
    assert seen.local in origin.peers
    return seen


def test_httpx_over_aiohttp_gets_keepalive(httpx_lib: Any, origin: HeldOrigin) -> None:
    assert httpx_get(httpx_lib, origin).options == expected()


@needs_socket_factory
def test_httpx_over_aiohttp_with_litellms_opt_in_keeps_its_values(
    httpx_lib: Any, origin: HeldOrigin
) -> None:
    """``AIOHTTP_SO_KEEPALIVE=true``: litellm's factory, with its defaults 60 / 30 / 5."""
    theirs = CallersFactory(
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (TCP, socket.TCP_KEEPIDLE, 60),
        (TCP, socket.TCP_KEEPINTVL, 30),
        (TCP, socket.TCP_KEEPCNT, 5),
    )
    seen = httpx_get(httpx_lib, origin, socket_factory=theirs)
    assert seen.options == {
        "SO_KEEPALIVE": 1,
        "TCP_KEEPIDLE": 60,
        "TCP_KEEPINTVL": 30,
        "TCP_KEEPCNT": 5,
        "TCP_USER_TIMEOUT": 0,
    }


# -- the SDKs' own aiohttp clients -----------------------------------------------------------


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_sdk_default_aiohttp_client_gets_keepalive(sdk: str, origin: HeldOrigin) -> None:
    """The SDK's own ``DefaultAioHttpClient()`` (an httpx / httpx2 client whose transport is an
    aiohttp session): our options, read from its live socket.  With aiohttp skipped (httpx and
    httpx2 still patched) the same client's socket has the kernel's defaults: the options came
    through aiohttp's connector, so the SDK really sent through aiohttp."""
    module = pytest.importorskip(sdk, reason=f"{sdk} is not installed")
    client_class = getattr(module, "DefaultAioHttpClient", None)
    if client_class is None:
        pytest.skip(f"{sdk} {module.__version__} has no DefaultAioHttpClient")

    async def main() -> dict[str, int]:
        try:
            client = client_class()
        except RuntimeError as error:  # the SDK's own word: its aiohttp extra is missing
            pytest.skip(f"{sdk}[aiohttp] is not installed: {error}")
        async with client, client.stream("GET", origin.url) as response:
            assert response.status_code == 200
            # The SDK's response hides its aiohttp connection: find the live socket by the
            # address the origin accepted it from.
            with socket_connected_to(origin.address, origin.peers[-1]) as sock:
                options = read_options(sock)
            origin.release()
            await response.aread()
        return options

    assert asyncio.run(main()) == expected()
    keepalive_patch.apply(skip=["aiohttp"])
    assert asyncio.run(main()) == kernel_defaults()
    assert len(origin.peers) == 2, "one connection per client"


# -- cost: loaded only after aiohttp, wrapt only at first use --------------------------------


def test_fresh_interpreter_patches_aiohttp_lazily() -> None:
    """``import keepalive_patch`` loads neither aiohttp nor this integration; importing aiohttp
    patches it without wrapt, which waits for the first connector (or connect) to use it."""
    run_script("aiohttp_lazy.py")


@needs_socket_factory
def test_feature_detection_still_sees_socket_factory(origin: HeldOrigin) -> None:
    """litellm decides whether to pass its factory from ``inspect.signature``: both before our
    wrapper is armed (a stub) and after (wrapt), the signature is aiohttp's own."""
    keepalive_patch.remove()
    keepalive_patch.apply()
    for _ in range(2):  # the stub, then the armed wrapper
        assert "socket_factory" in inspect.signature(aiohttp.TCPConnector.__init__).parameters
        assert "socket_factory" in inspect.signature(aiohttp.TCPConnector).parameters
        get_with(origin)


def test_unknown_connector_layout_is_logged_once_and_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An aiohttp with neither ``socket_factory`` nor the private connect step (none such can be
    installed here: a stand-in module) is left exactly as it is, said once."""
    import types

    module = types.ModuleType("aiohttp")
    module.__version__ = "9.9.9"  # type: ignore[attr-defined]

    class TCPConnector:
        def __init__(self, *, limit: int = 100) -> None:
            self.limit = limit

        async def _connect_some_other_way(self) -> None: ...

    module.TCPConnector = TCPConnector  # type: ignore[attr-defined]
    init = TCPConnector.__dict__["__init__"]
    messages = warnings_from_patching_twice(integration.patch, module, "9.9.9", caplog)
    assert messages == [
        "aiohttp 9.9.9 has neither TCPConnector(socket_factory=) nor "
        "TCPConnector._wrap_create_connection; its connections get no keepalive options"
    ]
    assert TCPConnector.__dict__["__init__"] is init
    assert TCPConnector not in wrapped_classes(integration)
    assert TCPConnector(limit=3).limit == 3
