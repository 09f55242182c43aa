"""aiohttp: keepalive socket options on every connection a ``TCPConnector`` opens.

Direct connections and connections to an HTTP proxy both go through the connector's
``_create_direct_connection``, so one hook covers both; ``TCPConnector`` subclasses inherit it.

- aiohttp >= 3.12 takes a public ``socket_factory``.  When the caller gave none (or ``None``),
  ``TCPConnector.__init__`` gets ours: it creates the socket exactly as aiohappyeyeballs' default
  does and sets the options before the connect.  A caller's own factory is their whole socket
  policy (litellm passes one when ``AIOHTTP_SO_KEEPALIVE=true``) and is left alone.
- Older aiohttp has no such parameter: ``TCPConnector._wrap_create_connection`` (private, but the
  one place every release from 3.0 on connects a TCP socket) is wrapped to set the options on
  the connected socket.  If it is missing, that is logged once and aiohttp left unpatched.

An option the kernel rejects is skipped, never raised: it must not fail a connect.  Any other
failure of ours is logged once and the connection used as aiohttp made it.  ``UnixConnector``
and ``NamedPipeConnector`` derive from ``BaseConnector``, not ``TCPConnector``: untouched.  No
connect retry is added; aiohttp's own retry of idempotent requests is unchanged.
"""

from __future__ import annotations

import functools
import inspect
import socket
from typing import TYPE_CHECKING, Any, Callable

from keepalive_patch import sockopts
from keepalive_patch._log import INFO, WARNING, log_once
from keepalive_patch._wrapping import InitPlan, Patcher, Wrapper, class_to_patch, parameter_names

__all__ = ["patch", "unpatch", "wrapped"]  # the contract: integrations/__init__.py

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence
    from types import ModuleType

    from keepalive_patch.sockopts import SocketOption

#: The connector's private connect step, hooked where ``socket_factory`` does not exist.
CONNECT_METHOD = "_wrap_create_connection"

_patcher = Patcher()


def set_options(sock: Any, options: Sequence[SocketOption]) -> None:
    """``sockopts.apply_to``, and anything else going wrong is logged: the socket stays usable."""
    try:
        sockopts.apply_to(sock, options)
    except Exception:
        log_once(
            "error:aiohttp.options",
            WARNING,
            "keepalive-patch failed to set options on an aiohttp connection; left as it was",
            exc_info=True,
        )


class KeepaliveSocketFactory:
    """A ``socket_factory`` for ``TCPConnector``: aiohappyeyeballs' own socket, plus ours.

    The options are those in force when the connector was built, as for httpx transports.
    """

    __slots__ = ("options",)

    def __init__(self, options: Sequence[SocketOption]) -> None:
        self.options = list(options)

    def __call__(self, addr_info: tuple[Any, ...]) -> socket.socket:
        # What aiohappyeyeballs' _connect_sock does when no factory is given (by position: by
        # keyword costs ~1.5k instructions more); its error, if any, is the library's own and
        # propagates unchanged.
        sock = socket.socket(addr_info[0], addr_info[1], addr_info[2])
        set_options(sock, self.options)
        return sock

    def __repr__(self) -> str:
        return f"<keepalive_patch aiohttp socket factory {self.options!r}>"


class _ConnectorPlan(InitPlan):
    """Give a ``TCPConnector`` our ``socket_factory`` when the caller chose none."""

    def adjust(self, arguments: dict[str, Any]) -> bool:
        if arguments.get("socket_factory") is not None:
            return False  # the caller's factory is theirs, whole
        options = sockopts.in_force().options
        if not options:
            return False
        arguments["socket_factory"] = KeepaliveSocketFactory(options)
        return True


async def _then_set_options(connecting: Awaitable[Any], options: Sequence[SocketOption]) -> Any:
    """Await aiohttp's connect (its errors are its own), then set ``options`` on the socket."""
    result = await connecting
    try:
        sock = result[0].get_extra_info("socket")
    except Exception:
        log_once(
            "error:aiohttp.socket",
            WARNING,
            "keepalive-patch found no socket under an aiohttp connection; left as it was",
            exc_info=True,
        )
    else:
        if sock is not None:
            set_options(sock, options)
    return result


def _connect_wrapper(original: Any) -> Wrapper:
    def keepalive_connect(
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Awaitable[Any]:
        try:
            options = sockopts.in_force().options
        except Exception:
            log_once(
                "error:aiohttp.TCPConnector",
                WARNING,
                "keepalive-patch failed to prepare an aiohttp connection; leaving it unchanged",
                exc_info=True,
            )
            options = []
        if not options:
            return wrapped(*args, **kwargs)
        return _then_set_options(wrapped(*args, **kwargs), options)

    return keepalive_connect


def _takes_socket_factory(connector_class: type) -> bool:
    """Whether this aiohttp's ``TCPConnector`` takes ``socket_factory`` (aiohttp >= 3.12)."""
    init = connector_class.__dict__.get("__init__")
    return init is not None and "socket_factory" in parameter_names(init)


def patch(module: ModuleType) -> None:
    """Hook ``aiohttp.TCPConnector``: its ``socket_factory`` where it exists, else its connect."""
    cls = class_to_patch(module, "TCPConnector", "aiohttp connections get no keepalive options")
    if cls is None:
        return
    connect = cls.__dict__.get(CONNECT_METHOD)
    if _takes_socket_factory(cls):
        _patcher.wrap_init(cls, functools.partial(_ConnectorPlan, label="aiohttp.TCPConnector"))
    elif connect is not None and inspect.iscoroutinefunction(inspect.unwrap(connect)):
        _patcher.wrap(cls, CONNECT_METHOD, _connect_wrapper)
    else:
        log_once(
            "missing:aiohttp." + CONNECT_METHOD,
            WARNING,
            "aiohttp %s has neither TCPConnector(socket_factory=) nor TCPConnector.%s; "
            "its connections get no keepalive options",
            getattr(module, "__version__", "(unknown version)"),
            CONNECT_METHOD,
        )
        return
    log_once("patched:aiohttp", INFO, "keepalive-patch applied to aiohttp")


def unpatch() -> None:
    """Restore the exact originals; connectors built meanwhile keep the factory they were given."""
    _patcher.unwrap_all()


def wrapped() -> list[tuple[type, str, Any]]:
    """(class, attribute, original) of every method this integration wraps now."""
    return _patcher.wrapped()
