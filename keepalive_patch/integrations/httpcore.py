"""httpcore and httpcore2: keepalive options and connect retry to a proxy; replay.

httpcore's ``HTTPProxy`` takes ``socket_options`` and ``retries`` but builds its proxy connections
without them, and ``SOCKSProxy`` takes neither; httpx hands ``SOCKSProxy`` neither and
``HTTPProxy`` no ``retries``.  Every proxy pool does take a public ``network_backend``, so when the
caller gave none we give it one that wraps the library's own default backend: it merges the
options into each ``connect_tcp`` and retries a failed connect the way httpcore's
``HTTPConnection`` does.  The options come from the httpx transport being built on this thread
(``_handoff.building()``, what the transport hands over), else from
the pool's own arguments, so explicit caller values and the "uds means no socket options" rule
are exactly those of the transport.

Without ``socksio`` httpcore defines stand-in ``SOCKSProxy`` classes that take ``*args,
**kwargs`` and raise when built: SOCKS support is simply not installed, and they are left alone
without a word.

Replay (the second half of this file) wraps the connections' send: a request that fails on a
dead reused connection and that ``replay.should_replay`` (Go's rule) lets go again is answered
with the library's own ``ConnectionNotAvailable``, which the pool already answers by dropping
the connection (closed by then) and sending the request on another one.  A failure on a fresh
connection is never replayed, so the sends are bounded by the pool's idle connections plus one.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Protocol

from keepalive_patch import _handoff, config, replay, sockopts
from keepalive_patch._log import INFO, WARNING, log_once, logger
from keepalive_patch._wrapping import (
    InitPlan,
    Patcher,
    class_to_patch,
    fixed,
    parameter_names,
)

__all__ = ["patch", "unpatch", "wrapped"]  # the contract: integrations/__init__.py

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

    from keepalive_patch._wrapping import Wrapper

#: Proxy pool class -> whether it is the async flavour.
PROXY_CLASSES = {
    "HTTPProxy": False,
    "SOCKSProxy": False,
    "AsyncHTTPProxy": True,
    "AsyncSOCKSProxy": True,
}
#: Where each httpcore generation keeps its default backends (0.16 had no underscore).
_BACKEND_MODULES = ("_backends", "backends")
#: httpcore's ``RETRIES_BACKOFF_FACTOR``: connect retries wait 0, 0.5, 1, 2 ... seconds.
BACKOFF_FACTOR = 0.5

_patcher = Patcher()


class NetworkBackend(Protocol):
    """What a proxy pool needs of httpcore's ``NetworkBackend`` (sync or async)."""

    def connect_tcp(self, host: str, port: int, **kwargs: Any) -> Any: ...

    def sleep(self, seconds: float) -> Any: ...


def backoff_delays() -> Iterator[float]:
    """The pauses before each connect retry, as httpcore's own ``exponential_backoff``."""
    yield 0.0
    delay = BACKOFF_FACTOR
    while True:
        yield delay
        delay *= 2


class KeepaliveBackend:
    """A sync network backend: the default one, plus our socket options and connect retries."""

    def __init__(
        self,
        inner: NetworkBackend,
        socket_options: list[Any],
        retries: int,
        retry_on: tuple[type[BaseException], ...],
    ) -> None:
        self._inner = inner
        self._socket_options = socket_options
        self._retries = retries
        self._retry_on = retry_on

    def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        """The inner backend's connect, tried again after each ``retry_on`` error while retries
        are left, as httpcore's ``HTTPConnection`` does; the last try's error is the caller's."""
        connect = self._connect_kwargs(*args, **kwargs)
        for delay in self._retry_delays():
            try:
                return self._inner.connect_tcp(host, port, **connect)
            except self._retry_on:
                self._inner.sleep(delay)
        return self._inner.connect_tcp(host, port, **connect)

    def _connect_kwargs(
        self,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """``connect_tcp``'s arguments after host and port, for both twins (as httpcore's backends
        take them); options httpcore passed itself win per (level, optname)."""
        kwargs: dict[str, Any] = {"timeout": timeout, "local_address": local_address, **extra}
        ours = self._socket_options
        if socket_options is not None or ours:  # httpcore 0.16 backends take none at all
            kwargs["socket_options"] = (
                sockopts.merge(socket_options, ours) if ours else socket_options
            )
        return kwargs

    def _retry_delays(self) -> Iterator[float]:
        """The pause after each failed connect that is followed by another try."""
        return itertools.islice(backoff_delays(), self._retries)

    def __getattr__(self, name: str) -> Any:  # connect_unix_socket, sleep, anything newer
        if name == "_inner":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self._inner, name)


class AsyncKeepaliveBackend(KeepaliveBackend):
    """The async twin of ``KeepaliveBackend`` (asyncio and trio, as the default backend picks)."""

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        connect = self._connect_kwargs(*args, **kwargs)
        for delay in self._retry_delays():
            try:
                return await self._inner.connect_tcp(host, port, **connect)
            except self._retry_on:
                await self._inner.sleep(delay)
        return await self._inner.connect_tcp(host, port, **connect)


class _ProxyPlan(InitPlan):
    """How to give one proxy pool class our backend, learnt from its signature and module."""

    def __init__(
        self, init: Callable[..., None], module: ModuleType, name: str, is_async: bool
    ) -> None:
        super().__init__(init, f"{module.__name__}.{name}")
        self.is_async = is_async
        self.make_default = _default_backend(module, is_async)
        self.retry_on = tuple(
            error
            for error in (
                getattr(module, "ConnectError", None),
                getattr(module, "ConnectTimeout", None),
            )
            if isinstance(error, type)
        )
        self.takes_options = _takes_socket_options(self.make_default)
        #: httpcore2 >= 2.17 builds its proxy connections with the pool's own ``retries`` (an
        #: HTTP proxy pool also with its ``socket_options`` and ``uds``), which httpx2 >= 2.17
        #: hands it: a retry of ours would then repeat each of its own, and an HTTP proxy pool
        #: needs nothing of ours at all.
        self.connects_itself = _connects_with_own_retries(init, name)
        self.is_socks = "SOCKS" in name

    def adjust(self, arguments: dict[str, Any]) -> bool:
        """Give the pool our backend, unless the caller gave one (theirs to configure)."""
        if arguments.get("network_backend") is not None:
            return False
        if self.connects_itself and not self.is_socks:
            return False
        transport = _handoff.building()
        source = arguments if transport is None else transport
        given = source.get("socket_options")
        options = sockopts.read_once(given)  # an iterator: read once, the copy handed on
        if options is not given and arguments.get("socket_options") is given:
            arguments["socket_options"] = options
        options = list(options or [])
        retries = source.get("retries")
        retries = retries if isinstance(retries, int) and retries > 0 else 0
        if self.connects_itself:
            retries = 0  # the pool retries its own proxy connects
        if options and not self.takes_options:
            log_once(
                "proxy-nosockopts:" + self.label,
                WARNING,
                "%s backends take no socket_options; its proxy connections get retries only",
                self.label,
            )
            options = []
        if not options and not retries:
            return False
        backend_class = AsyncKeepaliveBackend if self.is_async else KeepaliveBackend
        arguments["network_backend"] = backend_class(
            self.make_default(), options, retries, self.retry_on
        )
        return True


#: Proxy pool class -> the connection class it builds its proxy connections with (beside it).
PROXY_CONNECTIONS = {
    "HTTPProxy": "ForwardHTTPConnection",
    "SOCKSProxy": "Socks5Connection",
    "AsyncHTTPProxy": "AsyncForwardHTTPConnection",
    "AsyncSOCKSProxy": "AsyncSocks5Connection",
}


def _connects_with_own_retries(init: Any, name: str) -> bool:
    """Whether the pool ``name`` (its ``__init__`` is ``init``) hands its own ``retries`` to the
    connections it makes to the proxy: their class takes ``retries`` (httpcore2 >= 2.17)."""
    module = sys.modules.get(getattr(init, "__module__", "") or "")
    connection = getattr(module, PROXY_CONNECTIONS.get(name, ""), None)
    connection_init = getattr(connection, "__init__", None)
    return connection_init is not None and "retries" in parameter_names(connection_init)


def _default_backend(module: ModuleType, is_async: bool) -> Callable[[], Any]:
    """The class the pool itself would use without ``network_backend`` (``AutoBackend`` or
    ``SyncBackend``); raises ``LookupError`` if this httpcore keeps it somewhere unknown."""
    import importlib

    name, submodule = ("AutoBackend", "auto") if is_async else ("SyncBackend", "sync")
    found = getattr(module, name, None)
    if isinstance(found, type):
        return found
    for package in _BACKEND_MODULES:
        try:
            backends = importlib.import_module(f"{module.__name__}.{package}.{submodule}")
        except ImportError:
            continue
        found = getattr(backends, name, None)
        if isinstance(found, type):
            return found
    raise LookupError(f"{module.__name__} has no {name} where keepalive-patch looks for it")


def _takes_socket_options(make_default: Callable[[], Any]) -> bool:
    connect = getattr(make_default, "connect_tcp", None)
    return connect is not None and "socket_options" in parameter_names(connect)


def patch(module: ModuleType) -> None:
    """Wrap the proxy pools of an imported httpcore-like module, once per class.

    A class this shim cannot serve (no ``network_backend`` parameter, no default backend where
    we expect it) is logged once and left alone.
    """
    library = module.__name__
    for class_name, is_async in PROXY_CLASSES.items():
        cls = class_to_patch(module, class_name, "its proxy connections are not patched")
        if cls is None:
            continue
        plan_for = functools.partial(
            _plan_or_none, module=module, class_name=class_name, is_async=is_async
        )
        _patcher.wrap_init(cls, plan_for)
    log_once("patched:" + library, INFO, "keepalive-patch applied to %s proxy pools", library)
    _patch_replay(module)  # its connections and pools: a safe request on a dead reused one


def _plan_or_none(
    init: Any, module: ModuleType, class_name: str, is_async: bool
) -> _ProxyPlan | None:
    library = module.__name__
    try:
        plan = _ProxyPlan(init, module, class_name, is_async)
    except LookupError as exc:
        log_once(f"nobackend:{library}", WARNING, "%s; proxies not patched", exc)
        return None
    if "network_backend" in plan.names:
        return plan
    if (
        not plan.takes_anything
    ):  # ``(*args, **kwargs)``: the stand-in of an httpcore without socksio
        log_once(
            f"nobackendarg:{library}.{class_name}",
            WARNING,
            "%s.%s takes no network_backend; its proxy connections are not patched",
            library,
            class_name,
        )
    return None


def unpatch() -> None:
    """Restore the exact original methods; disarm ours where another wraps it."""
    _patcher.unwrap_all()


def wrapped() -> list[tuple[type, str, Any]]:
    """(class, attribute, original) of every method this integration wraps now: the proxy
    pools' ``__init__``, and for replay the connections' and pools' send."""
    return _patcher.wrapped()


# --- Replay: the connections' send, and the pools' ------------------------------------------
#
# What the rule needs is noted when a request starts on a connection (``_start``): whether the
# connection had returned a response before (``_served``), and the byte count of its stream.
# The count needs every read of the connection to pass through a ``CountingStream``, put in
# place of httpcore's network stream before a request can be replayed from it (on the first
# request of an HTTP/2 connection, on the first reuse of an HTTP/1.1 one) and left there for
# the connection's life.
#
# Only a request a pool is sending may be handed back to it: whoever drives a connection
# directly must get the library's own error.  The pools' send is wrapped to say so in a
# ``ContextVar`` (``_pool_sending``): it is set for the pool's call and read by the connection's
# send inside it, on the same thread or, async, in the same task (asyncio and trio alike).
#
# A request that succeeds pays for two wrappers (the pool's, with the ContextVar's set and
# reset; the connection's, with a look-up and an add in ``_served``), on a reused or HTTP/2
# connection also for the count of its reads; the rest runs only when a send has failed.

#: The connections whose send we watch: (class, the method that sends a request).
CONNECTIONS = (
    ("HTTP11Connection", "handle_request"),
    ("AsyncHTTP11Connection", "handle_async_request"),
    ("HTTP2Connection", "handle_request"),
    ("AsyncHTTP2Connection", "handle_async_request"),
)
#: The pools' send: only a request one of them is sending may be handed back to it (proxy
#: pools are subclasses and inherit the wrapper).
POOLS = (
    ("ConnectionPool", "handle_request"),
    ("AsyncConnectionPool", "handle_async_request"),
)
#: Where httpcore's HTTP/1.1 and HTTP/2 connections keep their network stream.
STREAM_ATTRIBUTE = "_network_stream"

#: The library whose pool is sending a request in this context now (``None``: no pool).
_pool_sending: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "keepalive_patch_pool_sending", default=None
)
#: Connections that have returned a response: a request on one of them reuses it.  A set of
#: weak references, each removed by its own callback when its connection goes (what
#: ``weakref.WeakSet`` does in Python code, at about twice the cost per request).
_served: set[weakref.ref[Any]] = set()
#: Puts a connection's ``CountingStream`` in place once, whichever thread gets there first.
_counting_lock = threading.Lock()


class CountingStream:
    """A connection's network stream that counts the bytes read from it (sync twin).

    Everything but ``read`` is the inner stream's own.  The methods httpcore calls on every
    request are passed on by name (``__getattr__`` alone costs microseconds a call: the failed
    lookup raises first).
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


def _start(connection: object, counting: type[CountingStream], multiplexed: bool) -> replay.Started:
    """What a request notes as it starts on ``connection`` (``multiplexed``: HTTP/2).  Never
    raises: a connection we cannot count is never replayed from, and is sent on as is."""
    try:
        reused = weakref.ref(connection) in _served
    except TypeError:  # not weakly referenceable: never counts as reused
        return replay.FRESH
    if not reused and not multiplexed:
        return replay.FRESH
    try:
        stream = _counting_stream(connection, counting)
    except Exception:
        return replay.FRESH
    return replay.Started(reused, stream, 0 if stream is None else stream.received)


def _served_response(connection: object, started: replay.Started, response: Any) -> None:
    """Note that ``connection`` returned ``response``, whose ``network_stream`` extension is
    given back as the library made it (the inner stream, not our counting one)."""
    try:  # noqa: SIM105 - contextlib.suppress would add ~0.7 µs to every request
        _served.add(weakref.ref(connection, _served.discard))
    except TypeError:  # not weakly referenceable: stays "fresh"
        pass
    stream = started.stream
    if isinstance(stream, CountingStream):
        try:
            extensions = response.extensions
            if extensions.get("network_stream") is stream:
                extensions["network_stream"] = stream.stream
        except Exception:  # not httpcore's Response: nothing of ours to give back
            pass


def _hand_back(
    errors: replay.Errors,
    started: replay.Started,
    exc: Exception,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Raise the library's ``ConnectionNotAvailable`` from ``exc`` if the failed send goes back
    to its pool: the rule says replay, the switch is on and a pool of this library is sending
    the request (logged at DEBUG).  Else return, and the wrapper raises ``exc`` as is; so it
    does if deciding fails.
    """
    try:
        request = args[0] if args else kwargs["request"]
        if not replay.should_replay(started, request, exc, errors):
            return
        if not config.current().replay or _pool_sending.get() != errors.library:
            return
        logger().debug(
            "keepalive-patch: replaying %s %s on another connection: the reused one failed "
            "before any response (%s: %s)",
            request.method.decode("ascii", "replace"),
            request.url.origin,
            type(exc).__name__,
            exc,
        )
    except Exception:
        log_once(
            "replay:error:" + errors.library,
            WARNING,
            "keepalive-patch could not decide whether to replay a %s request; raising its error",
            errors.library,
            exc_info=True,
        )
        return
    raise errors.not_available() from exc


def _connection_wrapper(errors: replay.Errors, is_async: bool, multiplexed: bool) -> Wrapper:
    """The wrapper of a connection's send (``handle_request`` or its async twin); ``multiplexed``
    for HTTP/2 connections.

    Both twins answer a failure the same way (``_hand_back``); only the ``await`` is theirs.
    """

    counting = AsyncCountingStream if is_async else CountingStream

    def keepalive_replay(
        wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        started = _start(instance, counting, multiplexed)
        try:
            response = wrapped(*args, **kwargs)
        except Exception as exc:
            _hand_back(errors, started, exc, args, kwargs)
            raise
        _served_response(instance, started, response)
        return response

    async def async_keepalive_replay(
        wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        started = _start(instance, counting, multiplexed)
        try:
            response = await wrapped(*args, **kwargs)
        except Exception as exc:
            _hand_back(errors, started, exc, args, kwargs)
            raise
        _served_response(instance, started, response)
        return response

    return async_keepalive_replay if is_async else keepalive_replay


def _pool_wrapper(library: str, is_async: bool) -> Wrapper:
    """The wrapper of a pool's send: ``_pool_sending`` says ``library`` while it runs."""

    def keepalive_pool(
        wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        token = _pool_sending.set(library)
        try:
            return wrapped(*args, **kwargs)
        finally:
            _pool_sending.reset(token)

    async def async_keepalive_pool(
        wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        token = _pool_sending.set(library)
        try:
            return await wrapped(*args, **kwargs)
        finally:
            _pool_sending.reset(token)

    return async_keepalive_pool if is_async else keepalive_pool


def _patch_replay(module: ModuleType) -> None:
    """Wrap the connections' and pools' send of ``module`` (httpcore / httpcore2), once per class.

    Nothing is wrapped while the ``replay`` setting is off; the wrappers read it again on every
    failure, so turning it off later (``apply(replay=False)``) takes effect at once.
    """
    if not config.current().replay:
        return
    library = module.__name__
    if not replay.supported(module):
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
        errors = replay.Errors(module)
    except AttributeError as exc:
        log_once(
            "replay:layout:" + library,
            WARNING,
            "keepalive-patch: %s; requests on dead reused %s connections are not replayed",
            exc,
            library,
        )
        return
    for name, attribute in POOLS:
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            _patcher.wrap(cls, attribute, fixed(_pool_wrapper(library, "async" in attribute)))
    for cls, attribute, multiplexed in connections:
        if isinstance(cls, type):  # without h2, HTTP2Connection is a stand-in: not wrapped
            wrapper = _connection_wrapper(errors, "async" in attribute, multiplexed)
            _patcher.wrap(cls, attribute, fixed(wrapper))
    log_once(
        "replay:patched:" + library,
        INFO,
        "keepalive-patch replays safe requests on dead reused %s connections",
        library,
    )
