"""Go's replay rule on real loopback connections; the server's own counts prove every case.

``DyingServer`` answers the first request of each keep-alive connection, then reads the next one
whole and closes without answering (FIN or RST), the race a client loses when a server or load
balancer closes an idle connection just as it is reused.  ``server.connections_of("GET") ==
[1, 1, 2]`` reads: the GET was answered on connection 1, the next GET died on connection 1 and
was sent again, once, on connection 2.  ``[1, 1]``: it died and was not sent again.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

import anyio
import pytest
from support.dying_servers import DyingH2Server, DyingServer, Seen
from support.libs import original_of
from support.proxies import HTTPProxyServer, Socks5ProxyServer
from support.servers import LoopbackServer

import keepalive_patch
from keepalive_patch import replay
from keepalive_patch.integrations import httpcore as integration

#: Each httpx-like library and the httpcore-like library under it.
CORES = {"httpx": "httpcore", "httpx2": "httpcore2"}
#: Stands for a streamed request body, made fresh (sync or async) for each request.
STREAMED = "streamed"
#: What the unpatched library raises when a reused connection dies, by how it died.
ERRORS = {"fin": "RemoteProtocolError", "rst": "ReadError"}

pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def lib(lib: ModuleType) -> ModuleType:
    """``lib`` where its httpcore replays (>= 1.0.3); older httpcore is left alone."""
    core = importlib.import_module(CORES[lib.__name__])
    if not replay.supported(core):
        reason = f"{core.__name__} {core.__version__} < 1.0.3 is not replayed"
        pytest.skip(reason + " (test_old_httpcore_is_left_alone)")
    return lib


@pytest.fixture(params=sorted(ERRORS))
def close(request: pytest.FixtureRequest) -> str:
    """How the server kills the reused connection: FIN or RST."""
    return str(request.param)


def _sync_body() -> Iterator[bytes]:
    yield b"streamed "
    yield b"body"


async def _async_body() -> AsyncIterator[bytes]:
    yield b"streamed "
    yield b"body"


def exchange(
    lib: ModuleType, mode: str, url: str, calls: list[tuple[str, dict[str, Any]]], **client: Any
) -> list[Any]:
    """Send ``calls`` (method, ``request()`` keywords) in order on one client in ``mode``.

    Returns each response's status code, or the transport error it raised.
    """

    def prepared(kwargs: dict[str, Any], is_async: bool) -> dict[str, Any]:
        if kwargs.get("content") == STREAMED:
            return {**kwargs, "content": _async_body() if is_async else _sync_body()}
        return kwargs

    if mode == "sync":
        outcomes: list[Any] = []
        with lib.Client(**client) as sync_client:
            for method, kwargs in calls:
                try:
                    response = sync_client.request(method, url, **prepared(kwargs, False))
                    outcomes.append(response.status_code)
                except lib.TransportError as exc:
                    outcomes.append(exc)
        return outcomes

    async def main() -> list[Any]:
        outcomes: list[Any] = []
        async with lib.AsyncClient(**client) as async_client:
            for method, kwargs in calls:
                try:
                    response = await async_client.request(method, url, **prepared(kwargs, True))
                    outcomes.append(response.status_code)
                except lib.TransportError as exc:
                    outcomes.append(exc)
        return outcomes

    if mode == "trio":
        trio = importlib.import_module("trio")
        result: list[Any] = trio.run(main)
        return result
    return asyncio.run(main())


def concurrently(lib: ModuleType, mode: str, urls: list[str], **client: Any) -> list[Any]:
    """GET every one of ``urls`` at once on one ``AsyncClient`` (``mode``: asyncio or trio).

    Returns each response's status code, or the transport error it raised, in ``urls`` order.
    """

    async def main() -> list[Any]:
        outcomes: list[Any] = [None] * len(urls)

        async def get(index: int, url: str) -> None:
            try:
                outcomes[index] = (await client_.get(url)).status_code
            except lib.TransportError as exc:
                outcomes[index] = exc

        async with lib.AsyncClient(**client) as client_, anyio.create_task_group() as group:
            for index, url in enumerate(urls):
                group.start_soon(get, index, url)
        return outcomes

    result: list[Any] = anyio.run(main, backend=mode)
    return result


def twice(method: str = "GET", **kwargs: Any) -> list[tuple[str, dict[str, Any]]]:
    """The same request twice: the second one reuses the first one's connection."""
    return [(method, kwargs), (method, kwargs)]


def unpatched(function: Any) -> Any:
    """``function()`` with the shim removed: what the caller would get without us."""
    keepalive_patch.remove()
    try:
        return function()
    finally:
        keepalive_patch.apply()


def replay_wrapped(core: ModuleType | None = None) -> list[type]:
    """The classes (of ``core``, or of any library) whose send is wrapped for replay now."""
    return [
        cls
        for cls, attribute, _ in integration.wrapped()
        if attribute != "__init__"
        and (core is None or cls.__module__.split(".")[0] == core.__name__)
    ]


def same_error(got: Any, want: Any) -> bool:
    return isinstance(got, Exception) and (type(got), str(got)) == (type(want), str(want))


# -- rule 1 + 2 + 3 hold: replayed, once, on another connection ------------------------------


def test_safe_request_on_dead_reused_connection_is_replayed(
    lib: ModuleType, mode: str, close: str
) -> None:
    with DyingServer(close=close) as server:
        assert exchange(lib, mode, server.url, twice()) == [200, 200]
    assert server.connections_of("GET") == [1, 1, 2]
    assert [seen.answered for seen in server.seen] == [True, False, True]


def test_replayed_in_a_pool_of_one_connection(lib: ModuleType, mode: str) -> None:
    """The pool drops the dead connection before it opens another: no slot is lost."""
    limits = lib.Limits(max_connections=1, max_keepalive_connections=1)
    calls = [("GET", {})] * 4
    with DyingServer() as server:
        assert exchange(lib, mode, server.url, calls, limits=limits) == [200] * 4
    assert server.connections_of("GET") == [1, 1, 2, 2, 3, 3, 4]


def test_unpatched_the_caller_gets_the_error(lib: ModuleType, mode: str, close: str) -> None:
    with DyingServer(close=close) as server:
        first, second = unpatched(lambda: exchange(lib, mode, server.url, twice()))
    assert first == 200
    assert type(second) is getattr(lib, ERRORS[close])
    assert server.connections_of("GET") == [1, 1]


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "TRACE"])
def test_every_safe_method_is_replayed(lib: ModuleType, method: str) -> None:
    with DyingServer() as server:
        assert exchange(lib, "sync", server.url, twice(method)) == [200, 200]
    assert server.connections_of(method) == [1, 1, 2]


@pytest.mark.parametrize("header", ["Idempotency-Key", "X-Idempotency-Key"])
@pytest.mark.parametrize(
    "body",
    [{"content": b"raw bytes"}, {"json": {"a": 1}}, {"data": {"a": "1"}}, {}],
    ids=["bytes", "json", "form", "empty"],
)
def test_idempotency_key_makes_any_method_replayable(
    lib: ModuleType, mode: str, header: str, body: dict[str, Any]
) -> None:
    with DyingServer() as server:
        calls = twice("POST", headers={header: "key-1"}, **body)
        assert exchange(lib, mode, server.url, calls) == [200, 200]
    posts = server.sent("POST")
    assert [seen.connection for seen in posts] == [1, 1, 2]
    assert posts[1].body == posts[2].body == posts[0].body  # the same bytes, sent again
    assert posts[2].headers[header.lower()] == "key-1"


# -- rule 3 fails: not replayed, the library's own error -------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_unsafe_method_without_key_is_not_replayed(lib: ModuleType, method: str) -> None:
    with DyingServer() as server:
        first, second = exchange(lib, "sync", server.url, twice(method, content=b"data"))
    with DyingServer() as plain:
        _, plain_error = unpatched(lambda: exchange(lib, "sync", plain.url, twice(method)))
    assert first == 200
    assert same_error(second, plain_error)
    assert server.connections_of(method) == [1, 1]  # the dying request: sent exactly once


def test_post_without_key_is_not_replayed(lib: ModuleType, mode: str, close: str) -> None:
    with DyingServer(close=close) as server:
        first, second = exchange(lib, mode, server.url, twice("POST", content=b"data"))
    assert first == 200
    assert type(second) is getattr(lib, ERRORS[close])
    assert server.connections_of("POST") == [1, 1]


def test_streamed_body_is_not_replayed_even_with_a_key(lib: ModuleType, mode: str) -> None:
    calls = twice("PUT", content=STREAMED, headers={"Idempotency-Key": "key-1"})
    with DyingServer() as server:
        first, second = exchange(lib, mode, server.url, calls)
    assert first == 200
    assert type(second) is lib.RemoteProtocolError
    assert server.connections_of("PUT") == [1, 1]
    assert server.sent("PUT")[1].body == b"streamed body"  # it did reach the server, once


def test_safe_method_with_streamed_body_is_not_replayed(lib: ModuleType) -> None:
    with DyingServer() as server:
        first, second = exchange(lib, "sync", server.url, twice("GET", content=STREAMED))
    assert (first, type(second)) == (200, lib.RemoteProtocolError)
    assert server.connections_of("GET") == [1, 1]


# -- rule 1 fails: a fresh connection -------------------------------------------------------


def test_failure_on_a_fresh_connection_is_raised(lib: ModuleType, mode: str, close: str) -> None:
    with DyingServer(answered=0, close=close) as server:
        [outcome] = exchange(lib, mode, server.url, [("GET", {})])
    assert type(outcome) is getattr(lib, ERRORS[close])
    assert server.connections_of("GET") == [1]


def test_replays_end_on_a_fresh_connection(lib: ModuleType) -> None:
    """Every reused connection dies and so does every fresh one: sends = idle + 1, no loop."""

    async def main() -> list[Any]:
        async with lib.AsyncClient() as client:
            warm = await asyncio.gather(*(client.get(server.url) for _ in range(3)))
            server.answered = 0  # from now on, every connection dies on its next request
            try:
                return [*(r.status_code for r in warm), (await client.get(server.url))]
            except lib.TransportError as exc:
                return [*(r.status_code for r in warm), exc]

    with DyingServer(delay=0.2) as server:  # the three overlap: three idle connections
        *warm, last = asyncio.run(main())
    assert warm == [200, 200, 200]
    assert type(last) is lib.RemoteProtocolError
    first_round, dead = server.seen[:3], server.seen[3:]
    assert sorted(seen.connection for seen in first_round) == [1, 2, 3]
    assert sorted(seen.connection for seen in dead) == [1, 2, 3, 4]  # each idle one, then new
    assert dead[-1].connection == 4


# -- rule 2 fails: something of the response arrived, or a timeout -------------------------


def test_failure_after_the_response_head_is_raised(lib: ModuleType, mode: str) -> None:
    with DyingServer(close="mid-body") as server:
        first, second = exchange(lib, mode, server.url, twice())
    assert first == 200
    assert type(second) is lib.RemoteProtocolError  # "peer closed connection without ..."
    assert server.connections_of("GET") == [1, 1]


@pytest.mark.parametrize("how", ["partial-head", "1xx"])
def test_nothing_is_replayed_once_part_of_the_response_arrived(
    lib: ModuleType, mode: str, how: str
) -> None:
    """``HTTP/1.1 200 OK\\r\\nContent-Le`` or ``100 Continue``, then a close: httpcore raises the
    same "Server disconnected without sending a response" as for a clean close, but a byte of the
    response had arrived, so (as in Go) the request is not sent again."""
    with DyingServer(close=how) as server:
        first, second = exchange(lib, mode, server.url, twice())
    assert first == 200
    assert type(second) is lib.RemoteProtocolError
    assert server.connections_of("GET") == [1, 1]


@pytest.mark.parametrize("how", ["partial-head", "1xx"])
def test_a_keyed_post_expecting_100_continue_is_sent_once(
    lib: ModuleType, mode: str, how: str
) -> None:
    headers = {"Idempotency-Key": "key-1", "Expect": "100-continue"}
    calls = twice("POST", content=b"data", headers=headers)
    with DyingServer(close=how) as server:
        first, second = exchange(lib, mode, server.url, calls)
    assert first == 200
    assert type(second) is lib.RemoteProtocolError
    assert server.connections_of("POST") == [1, 1]


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_the_caller_reads_the_network_stream_httpcore_made(lib: ModuleType, http2: bool) -> None:
    """Counting the bytes a connection reads does not show: a response's ``network_stream``
    extension is the library's own stream, on a fresh and on a reused connection."""
    core = importlib.import_module(CORES[lib.__name__])
    if http2:
        pytest.importorskip("h2")
    server = DyingH2Server(answered=3) if http2 else DyingServer(answered=3)
    with server, lib.Client(http1=not http2, http2=http2) as client:
        streams = [client.get(server.url).extensions["network_stream"] for _ in range(3)]
    assert streams[0] is streams[1] is streams[2]
    assert type(streams[0]).__module__.startswith(core.__name__ + "._backends")


def test_timeout_is_never_replayed(lib: ModuleType, mode: str) -> None:
    with DyingServer(close="hang") as server:
        first, second = exchange(lib, mode, server.url, twice(), timeout=0.5)
    assert first == 200
    assert type(second) is lib.ReadTimeout
    assert server.connections_of("GET") == [1, 1]


# -- the switch --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["env", "apply"])
def test_switched_off_behaves_as_unpatched(
    lib: ModuleType, mode: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if how == "env":
        monkeypatch.setenv("KEEPALIVE_PATCH_REPLAY", "0")
        keepalive_patch.apply()
    else:
        keepalive_patch.apply(replay=False)
    with DyingServer() as server:
        first, second = exchange(lib, mode, server.url, twice())
    assert (first, type(second)) == (200, lib.RemoteProtocolError)
    assert server.connections_of("GET") == [1, 1]


def test_off_from_the_start_wraps_nothing(lib: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    core = importlib.import_module(CORES[lib.__name__])
    keepalive_patch.remove()
    monkeypatch.setenv("KEEPALIVE_PATCH_REPLAY", "0")
    keepalive_patch.apply()
    assert replay_wrapped() == []
    monkeypatch.delenv("KEEPALIVE_PATCH_REPLAY")
    keepalive_patch.apply()  # on again: the libraries already imported are patched now
    assert core.HTTP11Connection in replay_wrapped(core)


def test_remove_restores_the_original_methods(lib: ModuleType) -> None:
    core = importlib.import_module(CORES[lib.__name__])
    wrapped = [
        (core.HTTP11Connection, "handle_request"),
        (core.AsyncHTTP11Connection, "handle_async_request"),
        (core.ConnectionPool, "handle_request"),
        (core.AsyncConnectionPool, "handle_async_request"),
    ]
    originals = [original_of(integration, cls, name) for cls, name in wrapped]
    keepalive_patch.remove()
    try:
        assert [cls.__dict__[name] for cls, name in wrapped] == originals
    finally:
        keepalive_patch.apply()


def test_each_replay_is_logged_at_debug(lib: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="keepalive_patch")
    with DyingServer(close="rst") as server:
        assert exchange(lib, "sync", server.url, twice()) == [200, 200]
    [line] = [r.getMessage() for r in caplog.records if "replaying" in r.getMessage()]
    assert line.startswith(f"keepalive-patch: replaying GET http://127.0.0.1:{server.port} ")
    assert "ReadError" in line
    assert all(r.levelno == logging.DEBUG for r in caplog.records if "replaying" in r.getMessage())


def test_a_connection_driven_without_a_pool_gets_the_library_error(lib: ModuleType) -> None:
    """Only a pool can send a request elsewhere; a bare connection raises as it always did."""
    core = importlib.import_module(CORES[lib.__name__])
    with DyingServer() as server:
        origin = core.Origin(b"http", b"127.0.0.1", server.port)
        with core.HTTPConnection(origin) as connection:
            assert connection.request("GET", server.url).status == 200
            with pytest.raises(core.RemoteProtocolError):
                connection.request("GET", server.url)
    assert server.connections_of("GET") == [1, 1]


# -- through a proxy -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["forward", "tunnel", "socks"])
def test_replayed_through_a_proxy(lib: ModuleType, mode: str, kind: str, server_tls: Any) -> None:
    """The dead connection is the client's to the proxy (forward) or the tunnel through it."""
    if kind == "socks":
        pytest.importorskip("socksio")
    if not hasattr(lib, "Proxy"):
        pytest.skip(f"{lib.__name__} {lib.__version__} has no Proxy")
    proxy: LoopbackServer = Socks5ProxyServer() if kind == "socks" else HTTPProxyServer()
    with proxy, DyingServer(tls=server_tls if kind == "tunnel" else None) as server:
        transport = (lib.AsyncHTTPTransport if mode != "sync" else lib.HTTPTransport)(
            proxy=lib.Proxy(proxy.url), verify=False
        )
        outcomes = exchange(lib, mode, server.url, twice(), transport=transport)
    assert outcomes == [200, 200]
    assert server.connections_of("GET") == [1, 1, 2]
    assert len(proxy.peers) == 2  # the replay opened a new connection to the proxy


# -- HTTP/2 ----------------------------------------------------------------------------------


@pytest.fixture
def h2_lib(lib: ModuleType) -> ModuleType:
    pytest.importorskip("h2")
    return lib


def test_http2_dead_reused_connection_is_replayed(
    h2_lib: ModuleType, mode: str, close: str
) -> None:
    with DyingH2Server(close=close) as server:
        outcomes = exchange(h2_lib, mode, server.url, twice(), http1=False, http2=True)
    assert outcomes == [200, 200]
    assert server.connections_of("GET") == [1, 1, 2]


def test_http2_unpatched_the_caller_gets_the_error(h2_lib: ModuleType, close: str) -> None:
    with DyingH2Server(close=close) as server:
        first, second = unpatched(
            lambda: exchange(h2_lib, "sync", server.url, twice(), http1=False, http2=True)
        )
    assert (first, type(second)) == (200, getattr(h2_lib, ERRORS[close]))
    assert server.connections_of("GET") == [1, 1]


def test_http2_goaway_covering_the_request_is_not_replayed(h2_lib: ModuleType, mode: str) -> None:
    """GOAWAY naming our stream says the server may have processed it: the error stands."""
    with DyingH2Server(close="goaway") as server:
        first, second = exchange(h2_lib, mode, server.url, twice(), http1=False, http2=True)
    assert (first, type(second)) == (200, h2_lib.RemoteProtocolError)
    assert server.connections_of("GET") == [1, 1]


def test_http2_nothing_is_replayed_after_a_1xx(h2_lib: ModuleType, mode: str) -> None:
    with DyingH2Server(close="1xx") as server:
        first, second = exchange(h2_lib, mode, server.url, twice(), http1=False, http2=True)
    assert (first, type(second)) == (200, h2_lib.RemoteProtocolError)
    assert server.connections_of("GET") == [1, 1]


@pytest.fixture(params=["asyncio", "trio"])
def async_mode(request: pytest.FixtureRequest) -> str:
    if request.param == "trio":
        pytest.importorskip("trio")
    return str(request.param)


def test_http2_streams_started_on_a_new_connection_are_not_replayed(
    h2_lib: ModuleType, async_mode: str
) -> None:
    """Two GETs multiplexed on a new connection; the server answers the first stream and closes
    without GOAWAY.  The other one started before the connection had returned a response: it
    was not reused when it was sent, so it is raised, as unpatched, not sent again."""
    urls = [f"{{}}?r={index}" for index in (1, 2)]
    client = {"http1": False, "http2": True}
    with DyingH2Server() as server:
        outcomes = concurrently(h2_lib, async_mode, [u.format(server.url) for u in urls], **client)
    with DyingH2Server() as plain:
        unpatched_outcomes = unpatched(
            lambda: concurrently(h2_lib, async_mode, [u.format(plain.url) for u in urls], **client)
        )
    for got in (outcomes, unpatched_outcomes):
        assert sorted(got, key=lambda outcome: outcome != 200)[0] == 200
        assert [type(outcome) for outcome in got if outcome != 200] == [h2_lib.RemoteProtocolError]
    assert sorted(seen.target for seen in server.seen) == ["/?r=1", "/?r=2"]  # each sent once
    assert server.connections_of("GET") == [1, 1]


def test_http2_under_load_no_request_from_a_new_connection_is_replayed(
    h2_lib: ModuleType, async_mode: str
) -> None:
    """50 GETs, 10 at a time, on connections that each answer 3 streams and then close without
    GOAWAY: whatever was sent on a connection that had not returned a response is sent once;
    the rest is replayed at most once per connection, and the sends stay bounded."""
    count = 50

    async def main() -> list[Any]:
        limit = anyio.Semaphore(10)
        outcomes: list[Any] = [None] * count

        async def get(index: int) -> None:
            async with limit:
                try:
                    outcomes[index] = (await client.get(f"{server.url}?i={index}")).status_code
                except h2_lib.TransportError as exc:
                    outcomes[index] = exc

        async with h2_lib.AsyncClient(http1=False, http2=True) as client, \
                anyio.create_task_group() as group:  # fmt: skip
            for index in range(count):
                group.start_soon(get, index)
        return outcomes

    with DyingH2Server(answered=3) as server:
        outcomes = anyio.run(main, backend=async_mode)
    sends: dict[str, list[Seen]] = {}
    for seen in server.seen:
        sends.setdefault(seen.target, []).append(seen)
    assert len(sends) <= count  # some fail before they are sent: the connection is known dead
    fresh = [target for target, seens in sends.items() if seens[0].replies_before == 0]
    assert fresh  # the case under test happened
    assert [target for target in fresh if len(sends[target]) > 1] == []
    connections = {seen.connection for seen in server.seen}
    assert len(server.seen) <= count + len(connections)
    assert all(outcome == 200 or isinstance(outcome, h2_lib.TransportError) for outcome in outcomes)


def test_http2_post_without_key_is_not_replayed(h2_lib: ModuleType) -> None:
    calls = twice("POST", content=b"data")
    with DyingH2Server() as server:
        first, second = exchange(h2_lib, "sync", server.url, calls, http1=False, http2=True)
    assert (first, type(second)) == (200, h2_lib.RemoteProtocolError)
    assert server.connections_of("POST") == [1, 1]


# -- httpcore 0.16, 0.17, 1.0.0 - 1.0.2: their pools keep a closed connection in its slot ------


@pytest.fixture(params=sorted(CORES))
def any_lib(request: pytest.FixtureRequest) -> ModuleType:
    """httpx, then httpx2, whatever their httpcore (the ``lib`` above skips where not replayed)."""
    return pytest.importorskip(request.param)


@pytest.mark.parametrize("size", [1, 3])
def test_the_pool_never_starves(any_lib: ModuleType, mode: str, size: int) -> None:
    """``max_connections=size``, each connection dying on its second request, GETs one after
    another: where we replay, every GET succeeds on a new connection; where the pool would keep
    the dead connection in its slot (httpcore < 1.0.3), nothing is replayed and the caller gets
    exactly what it gets unpatched (never ``PoolTimeout``)."""
    lib = any_lib
    core = importlib.import_module(CORES[lib.__name__])
    client = {
        "limits": lib.Limits(max_connections=size, max_keepalive_connections=size),
        "timeout": lib.Timeout(5.0, pool=1.0),
    }
    calls = [("GET", {})] * (2 * size + 2)
    with DyingServer() as server:
        outcomes = exchange(lib, mode, server.url, calls, **client)
    assert not [outcome for outcome in outcomes if isinstance(outcome, lib.PoolTimeout)]
    if replay.supported(core):
        assert outcomes == [200] * len(calls)
        return
    with DyingServer() as plain:
        plain_outcomes = unpatched(lambda: exchange(lib, mode, plain.url, calls, **client))
    assert [o if o == 200 else type(o) for o in outcomes] == [
        o if o == 200 else type(o) for o in plain_outcomes
    ]
    assert server.connections_of("GET") == plain.connections_of("GET")


def test_old_httpcore_is_left_alone() -> None:
    """httpcore 0.16, 0.17 and 1.0.0 - 1.0.2 keep a closed connection in the pool after
    ``ConnectionNotAvailable``: replaying there would starve the pool, so the classes stay
    unwrapped and a dead reused connection raises exactly as without the shim."""
    core = pytest.importorskip("httpcore")
    if replay.supported(core):
        pytest.skip(f"httpcore {core.__version__} replays; this is for httpcore < 1.0.3")
    httpx = pytest.importorskip("httpx")
    assert replay_wrapped(core) == []
    with DyingServer() as server:
        first, second = exchange(httpx, "sync", server.url, twice())
    assert (first, type(second)) == (200, httpx.RemoteProtocolError)
    assert server.connections_of("GET") == [1, 1]
