"""The replay rule by itself, beside Go's ``shouldRetryRequest``: one case per branch, then what
each error kind and ``isReplayable`` take in.  The exceptions are the libraries' own classes,
built the way httpcore raises them (``raise Mapped(exc) from exc``); the live tests prove the
same on real connections, and ``test_httpcore_replay`` the wrappers that ask the rule."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any, Callable

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


def request(method: bytes, headers: Any = (), stream: object = None) -> Any:
    """What the rule reads of a request (a bytes body unless given)."""
    if stream is None:
        stream = body("httpcore")
    return SimpleNamespace(method=method, headers=list(headers), stream=stream)


class Count:
    """A counted stream, as far as the rule reads one."""

    def __init__(self, received: int = 0) -> None:
        self.received = received


def reused(received_since: int = 0) -> replay.Started:
    """A connection that had returned a response, ``received_since`` bytes read since."""
    return replay.Started(True, Count(100 + received_since), 100)


GET = request(b"GET")


# Kinds of failure, each made from the library's module as httpcore raises it.


def closed(core: ModuleType) -> BaseException:
    return core.RemoteProtocolError("Server disconnected without sending a response.")


def reset(core: ModuleType) -> BaseException:
    return raised_from(core.ReadError, ConnectionResetError(errno.ECONNRESET, "reset"))


def broken_pipe(core: ModuleType) -> BaseException:
    return raised_from(core.WriteError, BrokenPipeError(errno.EPIPE, "broken pipe"))


def timed_out(core: ModuleType) -> BaseException:
    return raised_from(core.ReadTimeout, socket.timeout("timed out"))


# -- the rule, branch by branch, beside Go's ---------------------------------------------------

#: (Go's branch, the connection when the request started, the request, the failure, replayed).
BRANCHES = [
    ("!pc.isReused() -> false", replay.FRESH, GET, closed, False),
    ("nothingWrittenError: left out", reused(), request(b"POST"), broken_pipe, False),
    ("!req.isReplayable() -> false", reused(), request(b"POST"), closed, False),
    ("transportReadFromServerError -> true", reused(), GET, reset, True),
    ("transportReadFromServerError: a byte arrived", reused(1), GET, reset, False),
    ("errServerClosedIdle -> true", reused(), GET, closed, True),
    ("errServerClosedIdle: a byte arrived", reused(1), GET, closed, False),
    ("return false // conservatively", reused(), GET, timed_out, False),
]


@pytest.mark.parametrize(
    ("started", "sent", "failure", "replayed"),
    [case[1:] for case in BRANCHES],
    ids=[case[0] for case in BRANCHES],
)
def test_the_rule_is_gos_branch_by_branch(
    core: ModuleType,
    started: replay.Started,
    sent: Any,
    failure: Callable[[ModuleType], BaseException],
    replayed: bool,
) -> None:
    assert replay.should_replay(started, sent, failure(core), replay.Errors(core)) is replayed


def test_a_stream_that_is_not_counted_is_never_replayed(core: ModuleType) -> None:
    """Without a count nobody can say that no byte arrived."""
    uncounted = replay.Started(True, None, 0)
    assert not replay.should_replay(uncounted, GET, closed(core), replay.Errors(core))
    assert not replay.nothing_arrived(uncounted)


# -- is the request replayable? (Go's ``isReplayable``) ----------------------------------------


@pytest.mark.parametrize("library", ["httpx", "httpx2", "httpcore", "httpcore2"])
@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"get"])
def test_safe_methods_with_a_bytes_body_are_replayable(library: str, method: bytes) -> None:
    assert replay.is_replayable(request(method, [], body(library)))
    assert replay.is_replayable(request(method, [], body(library, b"payload")))


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"PATCH", b"CONNECT"])
def test_other_methods_need_an_idempotency_key(method: bytes) -> None:
    stream = body("httpx", b"payload")
    assert not replay.is_replayable(request(method, [(b"Host", b"x")], stream))
    for name in (b"Idempotency-Key", b"idempotency-key", b"X-Idempotency-Key"):
        assert replay.is_replayable(request(method, [(b"Host", b"x"), (name, b"k")], stream))
    assert not replay.is_replayable(request(method, [(b"Idempotency", b"k")], stream))


def test_json_and_form_bodies_are_bytes_bodies() -> None:
    httpx = pytest.importorskip("httpx")
    for kwargs in ({"json": {"a": 1}}, {"data": {"a": "1"}}, {}):
        built = httpx.Request("POST", "http://127.0.0.1/", **kwargs)  # type: ignore[arg-type]
        assert replay.body_is_replayable(built.stream), kwargs


def test_streamed_bodies_are_never_replayable() -> None:
    httpx = pytest.importorskip("httpx")

    def chunks() -> Iterator[bytes]:
        yield b"x"

    streamed = httpx.Request("GET", "http://127.0.0.1/", content=chunks())
    files = httpx.Request("POST", "http://127.0.0.1/", files={"f": b"x"})
    subclass = type("MyStream", (type(body("httpx")),), {})(b"x")
    for stream in (streamed.stream, files.stream, subclass, chunks(), [b"x"], b"x", None):
        assert not replay.body_is_replayable(stream), stream
        keyed = SimpleNamespace(method=b"GET", headers=[(b"Idempotency-Key", b"k")], stream=stream)
        assert not replay.is_replayable(keyed)


# -- which failures are a dead connection (the error kinds) ------------------------------------


def test_a_close_reset_or_broken_pipe_is_a_dead_connection(core: ModuleType) -> None:
    errors = replay.Errors(core)
    assert replay.server_closed_idle(closed(core), reused(), errors)
    http2_close = core.RemoteProtocolError("Server disconnected")
    assert replay.server_closed_idle(http2_close, reused(), errors)
    assert replay.read_from_server_failed(reset(core), reused(), errors)
    assert replay.read_from_server_failed(broken_pipe(core), reused(), errors)
    for exc in (closed(core), http2_close, reset(core), broken_pipe(core)):
        assert replay.should_replay(reused(), GET, exc, errors), exc


def test_a_malformed_or_refused_response_is_not_a_dead_connection(core: ModuleType) -> None:
    errors = replay.Errors(core)
    malformed = raised_from(core.RemoteProtocolError, h11.RemoteProtocolError("bad status line"))
    goaway = core.RemoteProtocolError(object())  # HTTP/2 carries the h2 event
    for exc in (malformed, goaway, core.LocalProtocolError("x"), core.ConnectError("refused")):
        assert not replay.should_replay(reused(), GET, exc, errors), exc


def test_timeouts_are_never_replayed(core: ModuleType) -> None:
    errors = replay.Errors(core)
    for cls in (core.ReadTimeout, core.WriteTimeout):
        timed_out = raised_from(cls, socket.timeout("timed out"))
        assert not replay.should_replay(reused(), GET, timed_out, errors)
        assert not replay.should_replay(reused(), GET, cls("timed out"), errors)
    assert not replay.should_replay(reused(), GET, core.PoolTimeout("pool"), errors)
    assert not replay.should_replay(reused(), GET, core.ConnectTimeout("connect"), errors)


def test_keepalive_etimedout_is_a_dead_peer_not_a_timeout(core: ModuleType) -> None:
    """Python >= 3.10 maps ``OSError(ETIMEDOUT)`` to ``TimeoutError`` = ``socket.timeout``, so
    httpcore's sync backend reports keepalive's verdict as ``ReadTimeout``."""
    errors = replay.Errors(core)
    dead = OSError(errno.ETIMEDOUT, "Connection timed out")
    assert isinstance(dead, TimeoutError)
    wrapped = raised_from(RuntimeError, dead)  # anyio / trio put their own error in between
    for exc in (
        raised_from(core.ReadTimeout, dead),
        raised_from(core.WriteTimeout, dead),
        raised_from(core.ReadError, dead),  # Python 3.9
        raised_from(core.ReadError, wrapped),
    ):
        assert replay.read_from_server_failed(exc, reused(), errors), exc
        assert replay.should_replay(reused(), GET, exc, errors), exc


def test_the_library_errors_are_found_where_the_rule_expects_them(core: ModuleType) -> None:
    errors = replay.Errors(core)
    assert errors.not_available is core.ConnectionNotAvailable
    assert errors.broken == (core.ReadError, core.WriteError)


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
    assert replay.supported(ModuleType("httpcore2"))  # always the newer pool
