"""httpcore and httpcore2: the keepalive options and connect retry on the socket to a proxy.

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
"""

from __future__ import annotations

import functools
import itertools
from typing import TYPE_CHECKING, Any, Callable, Protocol

from keepalive_patch import _handoff, replay, sockopts
from keepalive_patch._log import INFO, WARNING, log_once
from keepalive_patch._wrapping import (
    InitPlan,
    Patcher,
    class_to_patch,
    parameter_names,
)

__all__ = ["patch", "unpatch", "wrapped"]  # the contract: integrations/__init__.py

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

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

    def adjust(self, arguments: dict[str, Any]) -> bool:
        """Give the pool our backend, unless the caller gave one (theirs to configure)."""
        if arguments.get("network_backend") is not None:
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
    replay.patch(module)  # its connections and pools: a safe request on a dead reused one


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
    """Restore the exact original ``__init__`` objects; disarm ours where another wraps it."""
    _patcher.unwrap_all()
    replay.unpatch()


def wrapped() -> list[tuple[type, str, Any]]:
    """(class, attribute, original) of every method this integration wraps now: the proxy
    pools' ``__init__`` and replay's connection sends."""
    return _patcher.wrapped() + replay.wrapped()
