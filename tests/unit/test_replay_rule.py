"""The replay rule by itself: which requests are replayable, which errors mean a dead
connection, and whether a byte of the response arrived.  The exceptions are the libraries' own
classes, built the way httpcore raises them (``raise Mapped(exc) from exc``); the live tests
prove the same on real connections."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import h11
import pytest

from keepalive_patch import replay


@pytest.fixture(params=["httpcore", "httpcore2"])
def core(request: pytest.FixtureRequest) -> ModuleType:
    return pytest.importorskip(request.param)


def raised_from(cls: type[BaseException], cause: BaseException) -> BaseException:
    """``cls(cause)`` raised ``from cause``, as httpcore's ``map_exceptions`` does."""
    try:
        raise cls(cause) from cause
    except cls as exc:
        return exc


def body(library: str, content: bytes = b"") -> object:
    """The request body ``library`` builds for bytes (or for no body at all)."""
    module = pytest.importorskip(library)
    return module.Request("POST", "http://127.0.0.1/", content=content).stream


# -- is the request replayable? ---------------------------------------------------------------


@pytest.mark.parametrize("library", ["httpx", "httpx2", "httpcore", "httpcore2"])
@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"get"])
def test_safe_methods_with_a_bytes_body_are_replayable(library: str, method: bytes) -> None:
    assert replay.is_replayable(method, [], body(library))
    assert replay.is_replayable(method, [], body(library, b"payload"))


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"PATCH", b"CONNECT"])
def test_other_methods_need_an_idempotency_key(method: bytes) -> None:
    stream = body("httpx", b"payload")
    assert not replay.is_replayable(method, [(b"Host", b"x")], stream)
    for name in (b"Idempotency-Key", b"idempotency-key", b"X-Idempotency-Key"):
        assert replay.is_replayable(method, [(b"Host", b"x"), (name, b"k")], stream)
    assert not replay.is_replayable(method, [(b"Idempotency", b"k")], stream)


def test_json_and_form_bodies_are_bytes_bodies() -> None:
    httpx = pytest.importorskip("httpx")
    for kwargs in ({"json": {"a": 1}}, {"data": {"a": "1"}}, {}):
        request = httpx.Request("POST", "http://127.0.0.1/", **kwargs)  # type: ignore[arg-type]
        assert replay.body_is_replayable(request.stream), kwargs


def test_streamed_bodies_are_never_replayable() -> None:
    httpx = pytest.importorskip("httpx")

    def chunks() -> Iterator[bytes]:
        yield b"x"

    streamed = httpx.Request("GET", "http://127.0.0.1/", content=chunks())
    files = httpx.Request("POST", "http://127.0.0.1/", files={"f": b"x"})
    subclass = type("MyStream", (type(body("httpx")),), {})(b"x")
    for stream in (streamed.stream, files.stream, subclass, chunks(), [b"x"], b"x", None):
        assert not replay.body_is_replayable(stream), stream
        assert not replay.is_replayable(b"GET", [(b"Idempotency-Key", b"k")], stream)


# -- did the connection die? -------------------------------------------------------------------


def test_a_close_reset_or_broken_pipe_is_a_dead_connection(core: ModuleType) -> None:
    errors = replay.Errors(core)
    disconnected = core.RemoteProtocolError("Server disconnected without sending a response.")
    for exc in (
        disconnected,
        core.RemoteProtocolError("Server disconnected"),  # HTTP/2
        raised_from(core.ReadError, ConnectionResetError(errno.ECONNRESET, "reset")),
        raised_from(core.WriteError, BrokenPipeError(errno.EPIPE, "broken pipe")),
    ):
        assert replay.connection_died(exc, errors), exc


def test_a_malformed_or_refused_response_is_not_a_dead_connection(core: ModuleType) -> None:
    errors = replay.Errors(core)
    malformed = raised_from(core.RemoteProtocolError, h11.RemoteProtocolError("bad status line"))
    goaway = core.RemoteProtocolError(object())  # HTTP/2 carries the h2 event
    for exc in (malformed, goaway, core.LocalProtocolError("x"), core.ConnectError("refused")):
        assert not replay.connection_died(exc, errors), exc


def test_timeouts_are_never_replayed(core: ModuleType) -> None:
    errors = replay.Errors(core)
    for cls in (core.ReadTimeout, core.WriteTimeout):
        assert not replay.connection_died(raised_from(cls, socket.timeout("timed out")), errors)
        assert not replay.connection_died(cls("timed out"), errors)
    assert not replay.connection_died(core.PoolTimeout("pool"), errors)
    assert not replay.connection_died(core.ConnectTimeout("connect"), errors)


def test_keepalive_etimedout_is_a_dead_peer_not_a_timeout(core: ModuleType) -> None:
    """Python >= 3.10 maps ``OSError(ETIMEDOUT)`` to ``TimeoutError`` = ``socket.timeout``, so
    httpcore's sync backend reports keepalive's verdict as ``ReadTimeout``."""
    errors = replay.Errors(core)
    dead = OSError(errno.ETIMEDOUT, "Connection timed out")
    assert isinstance(dead, TimeoutError)
    assert replay.connection_died(raised_from(core.ReadTimeout, dead), errors)
    assert replay.connection_died(raised_from(core.WriteTimeout, dead), errors)
    assert replay.connection_died(raised_from(core.ReadError, dead), errors)  # Python 3.9
    wrapped = raised_from(RuntimeError, dead)  # anyio / trio put their own error in between
    assert replay.connection_died(raised_from(core.ReadError, wrapped), errors)


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
        stream = replay.CountingStream(Chunks(b"HTTP/1.1 200 OK\r\n\r\n", *chunks))
        stream.read(65536)  # the previous response, before the mark
        mark = stream.received
        while stream.read(65536):
            pass
        assert replay.nothing_arrived(stream, mark) is not arrived, chunks
        assert replay.server_closed_idle(closed, errors, stream, mark) is not arrived, chunks
    assert not replay.nothing_arrived(None, 0)  # a stream we could not count: never replayed


def test_the_counting_stream_is_the_inner_stream_but_for_the_count() -> None:
    inner = Chunks(b"abc")
    stream = replay.CountingStream(inner)
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

    stream = replay.AsyncCountingStream(AsyncChunks(b"ab", b"c"))

    async def read_all() -> bytes:
        data = b""
        while chunk := await stream.read(10):
            data += chunk
        return data

    assert asyncio.run(read_all()) == b"abc"
    assert stream.received == 3


# -- which httpcore drops a dead connection from its pool? ------------------------------------


@pytest.mark.parametrize(
    ("version", "replayed"),
    [
        ("0.16.3", False),
        ("0.17.3", False),
        ("1.0.0", False),
        ("1.0.2", False),
        ("1.0.3", True),
        ("1.0.9", True),
        ("1.1.0", True),
        ("2.0", True),
        ("1.0.10", True),
        ("unknown", False),
        ("", False),
    ],
)
def test_httpcore_is_replayed_from_1_0_3(version: str, replayed: bool) -> None:
    """httpcore 1.0.3 rewrote the pool to drop closed connections whenever it places a request;
    before, a connection closed under ``ConnectionNotAvailable`` kept its slot for good."""
    module = ModuleType("httpcore")
    module.__version__ = version  # type: ignore[attr-defined]
    assert replay.supported(module) is replayed
    assert replay.supported(ModuleType("httpcore2"))  # every httpcore2 has the newer pool


def test_the_library_errors_are_found_where_the_rule_expects_them(core: ModuleType) -> None:
    errors = replay.Errors(core)
    assert errors.not_available is core.ConnectionNotAvailable
    assert errors.broken == (core.ReadError, core.WriteError)


# -- rule 1 is decided when the request starts --------------------------------------------------


class Connection:
    """Stands for an httpcore connection: the rule reads only its network stream."""

    def __init__(self) -> None:
        self._network_stream = Chunks()


def pool_send(send: Any, connection: Connection, request: object) -> Any:
    """Stands for a pool's send: the wrapper hands a request back only to a pool."""
    return send(connection, request)


@pytest.mark.parametrize("served_before", [False, True], ids=["fresh", "reused"])
def test_reused_is_what_the_connection_was_when_the_request_started(
    core: ModuleType, served_before: bool
) -> None:
    """A request that started on an HTTP/2 connection before its first response is not replayed
    when the connection dies, even though by then another stream's response had come back."""
    wrapper = replay._connection_wrapper(
        replay.Errors(core), frozenset({pool_send.__code__}), is_async=False, multiplexed=True
    )
    connection = Connection()
    if served_before:
        replay._mark_served(connection)
    request = core.Request("GET", "http://127.0.0.1/")

    def send(instance: Connection, request: object) -> Any:
        replay._mark_served(instance)  # another stream's response returned meanwhile
        raise core.RemoteProtocolError("Server disconnected")

    def wrapped(request: object) -> Any:
        return send(connection, request)

    expected = core.ConnectionNotAvailable if served_before else core.RemoteProtocolError
    with pytest.raises(expected):
        pool_send(lambda c, r: wrapper(wrapped, c, (r,), {}), connection, request)
