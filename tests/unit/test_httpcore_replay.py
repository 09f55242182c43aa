"""The httpcore integration's replay wrappers, without a network: the byte count of a connection's
stream, "reused" decided when the request starts, the pool's "I am sending this" seen by the
connection's send (sync, asyncio and trio).  The live tests (``tests/live/test_replay.py``)
prove the whole on real connections."""

from __future__ import annotations

import asyncio
import gc
import warnings
from types import ModuleType
from typing import Any

import anyio
import pytest

from keepalive_patch import replay
from keepalive_patch.integrations import httpcore as integration


@pytest.fixture(params=["httpcore", "httpcore2"])
def core(request: pytest.FixtureRequest) -> ModuleType:
    return pytest.importorskip(request.param)


# -- did a byte of the response arrive? -------------------------------------------------------


class Chunks:
    """A network stream that hands out the given chunks, then ``b""`` (a close)."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.closed = False

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def close(self) -> None:
        self.closed = True

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written = buffer

    def get_extra_info(self, info: str) -> object:
        return f"info:{info}"


def test_a_byte_read_since_the_mark_means_something_arrived(core: ModuleType) -> None:
    errors = replay.Errors(core)
    closed = core.RemoteProtocolError("Server disconnected without sending a response.")
    for chunks, arrived in (
        ((), False),
        ((b"HTTP/1.1 200 OK\r\nContent-Le",), True),
        ((b"HTTP/1.1 100 Continue\r\n\r\n",), True),
        ((b"H",), True),
    ):
        stream = integration.CountingStream(Chunks(b"HTTP/1.1 200 OK\r\n\r\n", *chunks))
        stream.read(65536)  # the previous response, before the mark
        started = replay.Started(True, stream, stream.received)
        while stream.read(65536):
            pass
        assert replay.nothing_arrived(started) is not arrived, chunks
        assert replay.server_closed_idle(closed, started, errors) is not arrived, chunks


def test_the_counting_stream_is_the_inner_stream_but_for_the_count() -> None:
    inner = Chunks(b"abc")
    stream = integration.CountingStream(inner)
    assert stream.read(10) == b"abc"
    stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=1.0)
    assert stream.get_extra_info("is_readable") == "info:is_readable"
    stream.close()
    assert (stream.received, inner.closed, stream.chunks) == (3, True, [])
    assert inner.written == b"GET / HTTP/1.1\r\n\r\n"


def test_the_async_counting_stream_counts_the_same() -> None:
    class AsyncChunks(Chunks):
        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # type: ignore[override]
            return super().read(max_bytes, timeout)

    stream = integration.AsyncCountingStream(AsyncChunks(b"ab", b"c"))

    async def read_all() -> bytes:
        data = b""
        while chunk := await stream.read(10):
            data += chunk
        return data

    assert asyncio.run(read_all()) == b"abc"
    assert stream.received == 3


# -- rule 1 is decided when the request starts; only a pool gets the request back ------------


class Connection:
    """Stands for an httpcore connection: the wrapper reads only its network stream."""

    def __init__(self) -> None:
        self._network_stream = Chunks()


def served(connection: object) -> None:
    """Note that ``connection`` returned a response, as its send's wrapper does."""
    integration._served_response(connection, replay.FRESH, None)


def failing_send(core: ModuleType, connection: Connection, served_meanwhile: bool) -> Any:
    """A connection's send that dies as a closed connection does (another stream's response
    having come back meanwhile, if ``served_meanwhile``)."""

    def send(request: object) -> Any:
        if served_meanwhile:
            served(connection)
        raise core.RemoteProtocolError("Server disconnected")

    return send


def pool_send(core: ModuleType, call: Any) -> Any:
    """``call()`` as a pool of ``core`` sends it: through the pool wrapper."""
    wrapper = integration._pool_wrapper(core.__name__, is_async=False)
    return wrapper(lambda: call(), object(), (), {})


@pytest.mark.parametrize("served_before", [False, True], ids=["fresh", "reused"])
def test_reused_is_what_the_connection_was_when_the_request_started(
    core: ModuleType, served_before: bool
) -> None:
    """A request that started on an HTTP/2 connection before its first response is not replayed
    when the connection dies, even though by then another stream's response had come back."""
    wrapper = integration._connection_wrapper(replay.Errors(core), is_async=False, multiplexed=True)
    connection = Connection()
    if served_before:
        served(connection)
    request = core.Request("GET", "http://127.0.0.1/")
    send = failing_send(core, connection, served_meanwhile=True)
    expected = core.ConnectionNotAvailable if served_before else core.RemoteProtocolError
    with pytest.raises(expected):
        pool_send(core, lambda: wrapper(send, connection, (request,), {}))


def test_only_a_pool_of_the_same_library_gets_the_request_back(core: ModuleType) -> None:
    wrapper = integration._connection_wrapper(replay.Errors(core), is_async=False, multiplexed=True)
    connection = Connection()
    served(connection)
    request = core.Request("GET", "http://127.0.0.1/")
    send = failing_send(core, connection, served_meanwhile=False)
    with pytest.raises(core.RemoteProtocolError):  # no pool
        wrapper(send, connection, (request,), {})
    other = integration._pool_wrapper("another-httpcore", is_async=False)
    with pytest.raises(core.RemoteProtocolError):  # another library's pool
        other(lambda: wrapper(send, connection, (request,), {}), object(), (), {})
    with pytest.raises(core.ConnectionNotAvailable):
        pool_send(core, lambda: wrapper(send, connection, (request,), {}))
    assert integration._pool_sending.get() is None  # the pool's mark is gone after its call


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_async_pool_is_seen_by_the_send_it_awaits(backend: str) -> None:
    """Set in the pool's coroutine, seen in the connection's send it awaits (one task), not in
    another task, and gone after the pool's call."""
    if backend == "trio":
        pytest.importorskip("trio")
    wrapper = integration._pool_wrapper("httpcore", is_async=True)
    seen: list[Any] = []

    async def connection_send() -> str:
        await anyio.sleep(0.05)  # the other task looks meanwhile
        seen.append(("send", integration._pool_sending.get()))
        return "response"

    async def elsewhere() -> None:
        await anyio.sleep(0.01)
        seen.append(("other task", integration._pool_sending.get()))

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(elsewhere)
            assert await wrapper(connection_send, object(), (), {}) == "response"
        seen.append(("after", integration._pool_sending.get()))

    anyio.run(main, backend=backend)
    assert seen == [("other task", None), ("send", "httpcore"), ("after", None)]


def test_a_served_connection_is_remembered_once_and_forgotten_with_it() -> None:
    connection = Connection()
    assert not integration._start(connection, integration.CountingStream, False).reused
    served(connection)
    served(connection)  # its second response
    assert integration._start(connection, integration.CountingStream, False).reused
    [mine] = [ref for ref in list(integration._served) if ref() is connection]
    del connection
    with warnings.catch_warnings():  # the collection may finalize other tests' leftovers too
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    assert mine() is None
    assert not any(ref is mine for ref in list(integration._served))
    plain = object()  # not weakly referenceable: never counts as reused, and no error
    served(plain)
    assert integration._start(plain, integration.CountingStream, True) is replay.FRESH
