"""Go's rule for sending a request again when a reused connection turns out dead.

A server or load balancer may close an idle keep-alive connection just as the client reuses it.
httpcore notices a close that has already arrived (``is_readable``) but not one that races the
request, and its ``retries`` cover connects only.  Go's ``net/http`` answers this with
``shouldRetryRequest`` + ``isReplayable``; ``should_replay`` below is that function, branch by
branch, with the map beside it.  This module is the rule alone: pure functions of a request, an
error and what the connection was when the request started, and where it may be applied
(``supported``: httpcore >= 1.0.3, whose pool drops a dead connection).  It patches nothing;
``integrations.httpcore`` wraps the connections that ask it, and decides what is not the rule
(the ``replay`` switch, whether a pool is sending the request, the log line).

Rule 1 is decided when the request starts: a request that started on a connection which had
not yet returned a response (two HTTP/2 streams on a new connection, say) is never replayed,
even if the other stream's response arrives before this one fails.  "Before one byte of the
response" is counted, not read from the error: httpcore raises the same "Server disconnected
without sending a response" for a clean close, for a close after part of the response head and
for a close after a ``100 Continue``.  So the connection's stream counts the bytes it reads
(``Counted``), the request notes the count when it starts, and a failure after the count moved
is never replayed: Go decides ``errServerClosedIdle`` and ``transportReadFromServerError`` the
same way (its first read of the response failed).  On HTTP/2 the count is the connection's, so
a byte for any stream since this request started rules it out: stricter than per stream,
never looser.
"""

from __future__ import annotations

import errno
import sys
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import ModuleType

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


class Request(Protocol):
    """What the rule reads of httpcore's ``Request``."""

    @property
    def method(self) -> bytes: ...

    @property
    def headers(self) -> Iterable[tuple[bytes, bytes]]: ...

    @property
    def stream(self) -> object: ...


class Counted(Protocol):
    """A connection's network stream that counts the bytes read from it (the integration's
    ``CountingStream``)."""

    received: int


class Started:
    """What the connection was when the request started on it: Go's ``persistConn`` as the
    rule reads it."""

    __slots__ = ("mark", "reused", "stream")

    def __init__(self, reused: bool, stream: Counted | None = None, mark: int = 0) -> None:
        #: Go's ``pc.isReused()``: the connection had returned a response before this request.
        self.reused = reused
        #: The connection's counted stream (``None``: not counted), and its count at the start.
        self.stream = stream
        self.mark = mark


#: A request on a connection that has not returned a response: never replayed.
FRESH = Started(False)


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


# --- The rule, beside Go's ``(*persistConn).shouldRetryRequest`` (net/http/transport.go) ------
#
#   Go                                          here
#   http2isNoCachedConnError(err) -> true       left out: an HTTP/2 connection that can take no
#                                               more streams raises ConnectionNotAvailable
#                                               itself, which its pool already answers
#   err == errMissingHost -> false              left out: httpx rejects a URL without a host
#                                               before it reaches a connection
#   !pc.isReused() -> false                     not started.reused -> False
#   nothingWrittenError -> body rewindable      left out: httpcore's errors do not say whether a
#                                               byte of the request went out (README), so a
#                                               request that is not replayable is never replayed
#   !req.isReplayable() -> false                not is_replayable(request) -> False
#   transportReadFromServerError -> true        read_from_server_failed(...) -> True: a reset, a
#                                               broken pipe (Go sees those as its read failing
#                                               too) or keepalive's ETIMEDOUT, before one byte
#   err == errServerClosedIdle -> true          server_closed_idle(...) -> True: a close before
#                                               one byte
#   return false // conservatively              return False (timeouts, a malformed response, an
#                                               HTTP/2 GOAWAY or RST_STREAM, a byte arrived)


def should_replay(started: Started, request: Request, exc: BaseException, errors: Errors) -> bool:
    """Go's ``shouldRetryRequest``: whether ``request``, which failed with ``exc`` on a
    connection that was ``started`` when it began, may be sent again on another connection."""
    if not started.reused:
        return False
    if not is_replayable(request):
        return False
    if read_from_server_failed(exc, started, errors):
        return True
    if server_closed_idle(exc, started, errors):  # noqa: SIM103 - one branch per Go's line
        return True
    return False


# --- The request: Go's ``isReplayable`` ------------------------------------------------------


def is_replayable(request: Request) -> bool:
    """Go's ``isReplayable``: a safe method or an idempotency key, and a body we can resend."""
    if not body_is_replayable(request.stream):
        return False
    if request.method.upper() in SAFE_METHODS:
        return True
    return any(name.lower() in IDEMPOTENCY_HEADERS for name, _ in request.headers)


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


# --- The error kinds -------------------------------------------------------------------------


def read_from_server_failed(exc: BaseException, started: Started, errors: Errors) -> bool:
    """Go's ``transportReadFromServerError``: the connection broke (``connection_broke``)
    before one byte of the response arrived."""
    return connection_broke(exc, errors) and nothing_arrived(started)


def server_closed_idle(exc: BaseException, started: Started, errors: Errors) -> bool:
    """Go's ``errServerClosedIdle``: the server closed the connection (``closed_by_server``)
    before one byte of the response arrived."""
    return closed_by_server(exc, errors) and nothing_arrived(started)


def connection_broke(exc: BaseException, errors: Errors) -> bool:
    """A reset, a broken pipe, any read or write error of the connection, or keepalive's
    ``ETIMEDOUT`` (a dead peer, reported by httpcore as a timeout); never a real timeout."""
    if isinstance(exc, errors.timeouts):
        return keepalive_timed_out(exc)
    return isinstance(exc, errors.broken)


def closed_by_server(exc: BaseException, errors: Errors) -> bool:
    """httpcore's ``RemoteProtocolError("Server disconnected ...")``: a close (FIN), HTTP/1.1
    and HTTP/2, raised with a plain message.

    Its other ``RemoteProtocolError`` s are a malformed response (raised ``from`` h11's error)
    or an HTTP/2 GOAWAY / RST_STREAM (carrying the h2 event): the server may have seen and
    processed the request, so those are not a close.
    """
    if not isinstance(exc, errors.protocol):
        return False
    return exc.__cause__ is None and len(exc.args) == 1 and isinstance(exc.args[0], str)


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


def nothing_arrived(started: Started) -> bool:
    """True if not one byte was read from the connection since the request started: no part of
    a response head, no 1xx, no HTTP/2 frame.  Without a counted stream we cannot know: False."""
    return started.stream is not None and started.stream.received == started.mark


# --- Where the rule may be applied ------------------------------------------------------------

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
    after ``ConnectionNotAvailable`` for good (an unknown version counts as one of those), so
    replaying there would use up ``max_connections`` one dead connection at a time until every
    request fails with ``PoolTimeout``."""
    if module.__name__ != "httpcore":
        return True
    return release(str(getattr(module, "__version__", ""))) >= FIRST_REPLAYED_HTTPCORE
