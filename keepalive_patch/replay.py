"""Send a safe request again, on another connection, when a reused connection turns out dead.

A server or load balancer may close an idle keep-alive connection just as the client reuses it.
httpcore notices a close that has already arrived (``is_readable``) but not one that races the
request, and its ``retries`` cover connects only.  Go's ``net/http`` answers this with
``shouldRetryRequest`` + ``isReplayable``; this module is that rule, adapted:

1. the connection was reused: it had returned a response before this request started on it;
2. the server closed it idle: a close, a reset, a broken pipe or keepalive's own ``ETIMEDOUT``,
   and not one byte of the response (a 1xx included) had arrived (never a timeout);
3. the request is replayable: GET, HEAD, OPTIONS, TRACE, or any method with an
   ``Idempotency-Key`` / ``X-Idempotency-Key`` header; and its body is empty or bytes
   (never a generator, an async iterator or a file object).

Then the connection's ``handle_request`` raises the library's own ``ConnectionNotAvailable``,
which the pool already answers by dropping the connection (closed by then) and sending the
request on another one.  A failure on a fresh connection is never replayed, so the sends are
bounded by the pool's idle connections plus one.  Only a request a pool is sending is handed
back this way: whoever drives a connection directly gets the library's error, as ever.
A send that succeeds pays for the wrapper and a ``WeakSet`` look-up and add (a few
microseconds), on a reused or HTTP/2 connection also for a byte count on its reads; the rest
runs only when a send has failed.

Rule 1 is decided when the request starts: a request that started on a connection which had
not yet returned a response (two HTTP/2 streams on a new connection, say) is never replayed,
even if the other stream's response arrives before this one fails.  Rule 2's "not one byte" is
counted, not read from the error: httpcore raises the same "Server disconnected without sending
a response" for a clean close, for a close after part of the response head and for a close
after a ``100 Continue``.  So a connection's network stream is wrapped in a ``CountingStream``
before a request can be replayed from it (on the first request of an HTTP/2 connection, on the
first reuse of an HTTP/1.1 one); a request notes the count when it starts, and a failure after
the count moved is never replayed (Go decides ``errServerClosedIdle`` the same way: its first
read of the response found the connection closed).  On HTTP/2 the count is the connection's,
so a byte for any stream since this request started rules it out: stricter than per stream,
never looser.

The rule (the first half) knows nothing of httpcore; the wrappers (the second half) are put on
httpcore >= 1.0.3 and httpcore2 by ``integrations.httpcore``.  Older httpcore is left alone: its
pools keep a closed connection in its slot after ``ConnectionNotAvailable`` (httpcore 0.16, 0.17
and 1.0.0 - 1.0.2; 1.0.3 rewrote the pool to drop closed connections whenever it assigns
requests), so replaying there would use up ``max_connections`` one dead connection at a time
until every request fails with ``PoolTimeout``.
"""

from __future__ import annotations

import contextlib
import errno
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable

from keepalive_patch import config
from keepalive_patch._log import INFO, WARNING, log_once, logger
from keepalive_patch._wrapping import Patcher, fixed

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import ModuleType

    from keepalive_patch._wrapping import Wrapper

# --- The rule ------------------------------------------------------------------------------

#: Go's ``isReplayable`` methods: safe, so a server that saw one twice came to no harm.
SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
#: Headers by which a caller says "sending this twice is harmless", for any method (Go's too).
IDEMPOTENCY_HEADERS = frozenset({b"idempotency-key", b"x-idempotency-key"})
#: Request bodies that yield the same bytes every time they are iterated: (module, class).
#: httpx builds these for ``content=bytes``, ``json=``, ``data=`` (a form) and for no body.
REPLAYABLE_BODIES = (
    ("httpx._content", "ByteStream"),
    ("httpx2._content", "ByteStream"),
    ("httpcore._models", "ByteStream"),
    ("httpcore2._models", "ByteStream"),
)


def body_is_replayable(body: object) -> bool:
    """True for a body that can be sent again unchanged: exactly a ``REPLAYABLE_BODIES`` class.

    Looked up in ``sys.modules``, never imported (a body of a library not loaded cannot be
    here), and compared by identity: httpx rewrites ``__module__``, and a subclass may stream.
    """
    cls = type(body)
    for module_name, class_name in REPLAYABLE_BODIES:
        module = sys.modules.get(module_name)
        if module is not None and getattr(module, class_name, None) is cls:
            return True
    return False


def is_replayable(method: bytes, headers: Iterable[tuple[bytes, bytes]], body: object) -> bool:
    """Go's ``isReplayable``: a safe method or an idempotency key, and a body we can resend."""
    if not body_is_replayable(body):
        return False
    if method.upper() in SAFE_METHODS:
        return True
    return any(name.lower() in IDEMPOTENCY_HEADERS for name, _ in headers)


def keepalive_timed_out(exc: BaseException) -> bool:
    """True if ``exc`` comes from ETIMEDOUT: the kernel gave up on the peer (keepalive probes
    or TCP_USER_TIMEOUT went unanswered), which says the connection is dead, not slow.

    httpcore's sync backend maps ``socket.timeout`` to ``ReadTimeout`` / ``WriteTimeout``, and
    since Python 3.10 ``socket.timeout`` is ``TimeoutError``, which ``OSError(ETIMEDOUT)`` also
    is.  A real timeout (``settimeout`` ran out) carries no errno.
    """
    cause = exc.__cause__
    for _ in range(4):  # httpcore raises ``from`` the OS error; anyio and trio add a level
        if cause is None:
            return False
        if isinstance(cause, OSError) and cause.errno == errno.ETIMEDOUT:
            return True
        cause = cause.__cause__
    return False


class Errors:
    """One library's exception classes, as the rule needs them."""

    def __init__(self, module: ModuleType) -> None:
        self.library: str = module.__name__
        #: What a pool answers by trying another connection.
        self.not_available: type[Exception] = module.ConnectionNotAvailable
        #: The connection itself failed: a reset, a broken pipe, a read or write error.
        self.broken: tuple[type[BaseException], ...] = (module.ReadError, module.WriteError)
        #: "Server disconnected ..." (a close), but also a malformed or refused response.
        self.protocol: type[BaseException] = module.RemoteProtocolError
        #: Never replayed, unless the "timeout" is keepalive's verdict on a dead peer.
        self.timeouts: tuple[type[BaseException], ...] = (module.ReadTimeout, module.WriteTimeout)


def connection_died(exc: BaseException, errors: Errors) -> bool:
    """True if ``exc`` is the kind of error a dead connection gives: a close, a reset, a broken
    pipe, keepalive's ``ETIMEDOUT``.  Whether part of the response had arrived is
    ``nothing_arrived``'s question, not this one's.

    httpcore raises ``RemoteProtocolError("Server disconnected ...")`` with a plain message for
    a close (HTTP/1.1 and HTTP/2).  Its other ``RemoteProtocolError`` s are a malformed response
    (raised ``from`` h11's error) or an HTTP/2 GOAWAY / RST_STREAM (carrying the h2 event): the
    server may have seen and processed the request, so those are not replayed.
    """
    if isinstance(exc, errors.timeouts):
        return keepalive_timed_out(exc)
    if isinstance(exc, errors.broken):
        return True
    if isinstance(exc, errors.protocol):
        return exc.__cause__ is None and len(exc.args) == 1 and isinstance(exc.args[0], str)
    return False


class CountingStream:
    """A connection's network stream that counts the bytes read from it (sync twin).

    Put in place of the connection's stream before its first request and left there for its
    life, so that every read of the connection goes through ``read``; everything else is the
    inner stream's own.  The methods httpcore calls on every request are passed on by name
    (``__getattr__`` alone costs microseconds a call: the failed lookup raises first).
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        #: Bytes read so far: a request notes it when it starts (its mark).
        self.received = 0

    def read(self, max_bytes: int, timeout: float | None = None) -> Any:
        data = self.stream.read(max_bytes, timeout)
        self.received += len(data)
        return data

    def write(self, *args: Any, **kwargs: Any) -> Any:
        return self.stream.write(*args, **kwargs)

    def get_extra_info(self, info: str) -> Any:
        return self.stream.get_extra_info(info)

    def __getattr__(self, name: str) -> Any:  # close / aclose, start_tls, anything newer
        if name == "stream":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.stream, name)


class AsyncCountingStream(CountingStream):
    """The async twin of ``CountingStream`` (asyncio and trio streams alike)."""

    async def read(self, max_bytes: int, timeout: float | None = None) -> Any:
        data = await self.stream.read(max_bytes, timeout)
        self.received += len(data)
        return data


def nothing_arrived(stream: CountingStream | None, mark: int) -> bool:
    """True if not one byte was read from ``stream`` since the request noted ``mark``: no part of
    a response head, no 1xx, no HTTP/2 frame.  Without a counted stream we cannot know: False."""
    return stream is not None and stream.received == mark


def server_closed_idle(
    exc: BaseException, errors: Errors, stream: CountingStream | None, mark: int
) -> bool:
    """Go's ``errServerClosedIdle``: the connection died before one byte of the response came."""
    return connection_died(exc, errors) and nothing_arrived(stream, mark)


# --- The wrappers: httpcore / httpcore2 connections ------------------------------------------

#: The connections whose send we watch: (class, the method that sends a request).
CONNECTIONS = (
    ("HTTP11Connection", "handle_request"),
    ("AsyncHTTP11Connection", "handle_async_request"),
    ("HTTP2Connection", "handle_request"),
    ("AsyncHTTP2Connection", "handle_async_request"),
)
#: The pools' send methods: only a request one of them is sending may be handed back to it.
POOLS = (
    ("ConnectionPool", "handle_request"),
    ("AsyncConnectionPool", "handle_async_request"),
)
#: How far up the stack a pool's send may be: proxy and HTTPConnection layers, our guard.
POOL_DEPTH = 16

#: Where httpcore's HTTP/1.1 and HTTP/2 connections keep their network stream.
STREAM_ATTRIBUTE = "_network_stream"

#: Connections that have returned a response: a request on one of them reuses it.
_served: weakref.WeakSet[Any] = weakref.WeakSet()
#: Puts a connection's ``CountingStream`` in place once, whichever thread gets there first.
_counting_lock = threading.Lock()
_patcher = Patcher()


class Started:
    """What a request noted when it started on a connection."""

    __slots__ = ("mark", "reused", "stream")

    def __init__(self, reused: bool, stream: CountingStream | None, mark: int) -> None:
        #: Rule 1: the connection had returned a response before this request started.
        self.reused = reused
        #: The connection's counted stream, and its count when the request started (rule 2).
        self.stream = stream
        self.mark = mark


def _was_served(connection: object) -> bool:
    """True if ``connection`` has returned a response: asked when a request starts on it."""
    try:
        return connection in _served
    except TypeError:  # not weakly referenceable: never counts as reused
        return False


def _mark_served(connection: object) -> None:
    with contextlib.suppress(TypeError):  # not weakly referenceable: stays "fresh"
        _served.add(connection)


def _counting_stream(connection: Any, counting: type[CountingStream]) -> CountingStream | None:
    """``connection``'s counted stream, put in place the first time a request needs it.

    Always before that request is sent.  An HTTP/2 connection gets it on its first request, as
    its streams read the connection for each other: no read may bypass the count.  An HTTP/1.1
    connection gets it on its first reuse, when the one response before has been read whole, so
    a connection used once (``Connection: close``) pays nothing.  ``None`` if the connection
    keeps no stream where httpcore does: its requests are then never replayed.
    """
    stream = getattr(connection, STREAM_ATTRIBUTE, None)
    if isinstance(stream, CountingStream) or stream is None:
        return stream
    with _counting_lock:
        stream = getattr(connection, STREAM_ATTRIBUTE)
        if not isinstance(stream, CountingStream):
            stream = counting(stream)
            setattr(connection, STREAM_ATTRIBUTE, stream)
        return stream


#: A request on a connection that has not returned a response: never replayed.
_FRESH = Started(False, None, 0)


def _start(connection: object, counting: type[CountingStream], multiplexed: bool) -> Started:
    """What a request notes as it starts on ``connection`` (``multiplexed``: HTTP/2).  Never
    raises: a connection we cannot count is never replayed from, and is sent on as is."""
    reused = _was_served(connection)
    if not reused and not multiplexed:
        return _FRESH
    try:
        stream = _counting_stream(connection, counting)
    except Exception:
        return _FRESH
    return Started(reused, stream, 0 if stream is None else stream.received)


def _served_response(connection: object, stream: CountingStream | None, response: Any) -> None:
    """Note that ``connection`` returned ``response``, whose ``network_stream`` extension is
    given back as the library made it (the inner stream, not our counting one)."""
    _mark_served(connection)
    if stream is not None:
        try:
            extensions = response.extensions
            if extensions.get("network_stream") is stream:
                extensions["network_stream"] = stream.stream
        except Exception:  # not httpcore's Response: nothing of ours to give back
            pass


def _sent_by_pool(pools: frozenset[Any]) -> bool:
    """True if one of the pools' send methods is on the stack above the failed send.

    A pool answers ``ConnectionNotAvailable`` by trying another connection; whoever drives a
    connection directly must get the library's own error.  Looked up only when a send failed,
    so a request that succeeds pays nothing for it.
    """
    frame = sys._getframe(1)
    for _ in range(POOL_DEPTH):
        if frame is None:
            return False
        if frame.f_code in pools:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _replay(
    errors: Errors,
    pools: frozenset[Any],
    started: Started,
    exc: Exception,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> bool:
    """The whole rule for a failed send, the switch, and the DEBUG line if we replay.

    Never raises: if deciding fails, the library's own error goes to the caller.
    """
    try:
        if not started.reused:  # rule 1, as it stood when the request started
            return False
        if not server_closed_idle(exc, errors, started.stream, started.mark):
            return False
        request = args[0] if args else kwargs["request"]
        if not is_replayable(request.method, request.headers, request.stream):
            return False
        if not config.current().replay or not _sent_by_pool(pools):
            return False
        logger().debug(
            "keepalive-patch: replaying %s %s on another connection: the reused one failed "
            "before any response (%s: %s)",
            request.method.decode("ascii", "replace"),
            request.url.origin,
            type(exc).__name__,
            exc,
        )
        return True
    except Exception:
        log_once(
            "replay:error:" + errors.library,
            WARNING,
            "keepalive-patch could not decide whether to replay a %s request; raising its error",
            errors.library,
            exc_info=True,
        )
        return False


def _connection_wrapper(
    errors: Errors, pools: frozenset[Any], is_async: bool, multiplexed: bool
) -> Wrapper:
    """The wrapper of a connection's send (``handle_request`` or its async twin); ``multiplexed``
    for HTTP/2 connections.

    Both twins answer a failure the same way (``hand_back``); only the ``await`` is theirs.
    """

    counting = AsyncCountingStream if is_async else CountingStream

    def hand_back(
        started: Started,
        exc: Exception,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """Raise the library's ``ConnectionNotAvailable`` if the rule says replay; else return,
        and the wrapper raises the library's own error as is."""
        if _replay(errors, pools, started, exc, args, kwargs):
            raise errors.not_available() from exc

    def keepalive_replay(
        wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        started = _start(instance, counting, multiplexed)
        try:
            response = wrapped(*args, **kwargs)
        except Exception as exc:
            hand_back(started, exc, args, kwargs)
            raise
        _served_response(instance, started.stream, response)
        return response

    async def async_keepalive_replay(
        wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        started = _start(instance, counting, multiplexed)
        try:
            response = await wrapped(*args, **kwargs)
        except Exception as exc:
            hand_back(started, exc, args, kwargs)
            raise
        _served_response(instance, started.stream, response)
        return response

    return async_keepalive_replay if is_async else keepalive_replay


def _pool_code(module: ModuleType) -> frozenset[Any]:
    """The code objects of ``module``'s pool send methods (subclasses such as ``HTTPProxy``
    inherit them; an override that calls ``super()`` still has them on the stack)."""
    codes = set()
    for class_name, attribute in POOLS:
        cls = getattr(module, class_name, None)
        method = cls.__dict__.get(attribute) if isinstance(cls, type) else None
        code = getattr(method, "__code__", None)
        if code is not None:  # a wrapt wrapper of someone else's gives its original's code
            codes.add(code)
    return frozenset(codes)


#: The first httpcore whose pool drops a closed connection before it places a request again
#: (its pool was rewritten around ``_assign_requests_to_connections``); httpcore2 always does.
FIRST_REPLAYED_HTTPCORE = (1, 0, 3)


def release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version string: ``"1.0.2"`` -> (1, 0, 2), ``"1.0.3rc1"`` ->
    (1, 0, 3), ``"x"`` -> ()."""
    numbers = []
    for part in version.split("."):
        digits = part[: len(part) - len(part.lstrip("0123456789"))]
        if not digits:
            break
        numbers.append(int(digits))
        if digits != part:
            break
    return tuple(numbers)


def supported(module: ModuleType) -> bool:
    """httpcore >= 1.0.3 and httpcore2: a pool sending a request again first drops the closed
    connections.  httpcore 0.16, 0.17 and 1.0.0 - 1.0.2 keep a closed connection in its slot
    after ``ConnectionNotAvailable`` for good (an unknown version counts as one of those)."""
    if module.__name__ != "httpcore":
        return True
    return release(str(getattr(module, "__version__", ""))) >= FIRST_REPLAYED_HTTPCORE


def patch(module: ModuleType) -> None:
    """Wrap the connections and pools of ``module`` (httpcore / httpcore2), once per class.

    Nothing is wrapped while the ``replay`` setting is off; the wrappers read it again on every
    failure, so turning it off later (``apply(replay=False)``) takes effect at once.
    """
    if not config.current().replay:
        return
    library = module.__name__
    if not supported(module):
        log_once(
            "replay:old:" + library,
            INFO,
            "keepalive-patch replays requests only with httpcore 1.0.3 or later (older pools "
            "keep a dead connection in its slot); %s %s raises as before",
            library,
            getattr(module, "__version__", "(unknown version)"),
        )
        return
    connections = [
        (getattr(module, name, None), attribute, "HTTP2" in name) for name, attribute in CONNECTIONS
    ]
    if not any(isinstance(cls, type) for cls, _, _ in connections):
        return  # no connection classes: nothing here sends a request
    try:
        errors = Errors(module)
    except AttributeError as exc:
        log_once(
            "replay:layout:" + library,
            WARNING,
            "keepalive-patch: %s; requests on dead reused %s connections are not replayed",
            exc,
            library,
        )
        return
    pools = _pool_code(module)
    for cls, attribute, multiplexed in connections:
        if isinstance(cls, type):  # without h2, HTTP2Connection is a stand-in: not wrapped
            is_async = "async" in attribute
            wrapper = _connection_wrapper(errors, pools, is_async, multiplexed)
            _patcher.wrap(cls, attribute, fixed(wrapper))
    log_once(
        "replay:patched:" + library,
        INFO,
        "keepalive-patch replays safe requests on dead reused %s connections",
        library,
    )


def unpatch() -> None:
    """Restore the exact original methods; disarm ours where another wrapper covers it."""
    _patcher.unwrap_all()


def patched_classes() -> list[type]:
    """The classes with a replay wrapper now."""
    return _patcher.classes()
