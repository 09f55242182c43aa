"""Send a safe request again, on another connection, when a reused connection turns out dead.

A server or load balancer may close an idle keep-alive connection just as the client reuses it.
httpcore notices a close that has already arrived (``is_readable``) but not one that races the
request, and its ``retries`` cover connects only.  Go's ``net/http`` answers this with
``shouldRetryRequest`` + ``isReplayable``; this module is that rule, adapted:

1. the connection was reused: it had returned a response before this request;
2. nothing of the response arrived: a close, a reset, a broken pipe or keepalive's own
   ``ETIMEDOUT`` before the response head (never a timeout; never once a response is returned);
3. the request is replayable: GET, HEAD, OPTIONS, TRACE, or any method with an
   ``Idempotency-Key`` / ``X-Idempotency-Key`` header; and its body is empty or bytes
   (never a generator, an async iterator or a file object).

Then the connection's ``handle_request`` raises the library's own ``ConnectionNotAvailable``,
which the pool already answers by dropping the connection (closed by then) and sending the
request on another one.  A failure on a fresh connection is never replayed, so the sends are
bounded by the pool's idle connections plus one.  Only a request a pool is sending is handed
back this way: whoever drives a connection directly gets the library's error, as ever.
A send that succeeds pays for the wrapper and one ``WeakSet.add`` (a few microseconds); the
rest runs only when a send has failed.

The rule (the first half) knows nothing of httpcore; the wrappers (the second half) are put on
httpcore / httpcore2 >= 1.0 by ``integrations.httpcore``.  httpcore 0.16 / 0.17 (httpx 0.23 /
0.24) are left alone: their pools keep a closed connection, so replaying there would use up
``max_connections`` one dead connection at a time.
"""

from __future__ import annotations

import contextlib
import errno
import sys
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


def nothing_arrived(exc: BaseException, errors: Errors) -> bool:
    """True if ``exc`` says the connection died before any response (Go: server closed idle).

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

#: Connections that have returned a response: a request on one of them reuses it.
_served: weakref.WeakSet[Any] = weakref.WeakSet()
_patcher = Patcher()


def _was_served(connection: object) -> bool:
    """True if ``connection`` had returned a response before the request that just failed."""
    try:
        return connection in _served
    except TypeError:  # not weakly referenceable: never counts as reused
        return False


def _mark_served(connection: object) -> None:
    with contextlib.suppress(TypeError):  # not weakly referenceable: stays "fresh"
        _served.add(connection)


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
    connection: object,
    exc: Exception,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> bool:
    """The whole rule for a failed send, the switch, and the DEBUG line if we replay.

    Never raises: if deciding fails, the library's own error goes to the caller.
    """
    try:
        if not _was_served(connection) or not nothing_arrived(exc, errors):
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


def _connection_wrapper(errors: Errors, pools: frozenset[Any], is_async: bool) -> Wrapper:
    """The wrapper of a connection's send (``handle_request`` or its async twin).

    Both twins answer a failure the same way (``hand_back``); only the ``await`` is theirs.
    """

    def hand_back(
        connection: object, exc: Exception, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Raise the library's ``ConnectionNotAvailable`` if the rule says replay; else return,
        and the wrapper raises the library's own error as is."""
        if _replay(errors, pools, connection, exc, args, kwargs):
            raise errors.not_available() from exc

    def keepalive_replay(
        wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            response = wrapped(*args, **kwargs)
        except Exception as exc:
            hand_back(instance, exc, args, kwargs)
            raise
        _mark_served(instance)
        return response

    async def async_keepalive_replay(
        wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            response = await wrapped(*args, **kwargs)
        except Exception as exc:
            hand_back(instance, exc, args, kwargs)
            raise
        _mark_served(instance)
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


def supported(module: ModuleType) -> bool:
    """httpcore >= 1.0 and httpcore2: a pool sending a request again first drops the closed
    connections.  httpcore 0.16 / 0.17 keep a closed connection in the pool for good."""
    if module.__name__ != "httpcore":
        return True
    major = str(getattr(module, "__version__", "0")).partition(".")[0]
    return major.isdigit() and int(major) >= 1


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
            "keepalive-patch replays requests only with httpcore 1.0 or later; %s %s raises "
            "as before",
            library,
            getattr(module, "__version__", "(unknown version)"),
        )
        return
    connections = [(getattr(module, name, None), attribute) for name, attribute in CONNECTIONS]
    if not any(isinstance(cls, type) for cls, _ in connections):
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
    for cls, attribute in connections:
        if isinstance(cls, type):  # without h2, HTTP2Connection is a stand-in: not wrapped
            wrapper = _connection_wrapper(errors, pools, is_async="async" in attribute)
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
