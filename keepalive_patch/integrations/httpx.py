"""httpx and httpx2: keepalive socket options and a connect retry for every transport.

``HTTPTransport.__init__`` and ``AsyncHTTPTransport.__init__`` are wrapped; the caller's
arguments are bound against the installed signature and ours are added where the caller set
none (``retries``) or by the keepalive policy (``socket_options``, see ``sockopts.merge``).
``uds=`` means no socket options: TCP options on a Unix socket fail every request.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable

from keepalive_patch import _handoff, config, sockopts
from keepalive_patch._log import INFO, WARNING, log_once
from keepalive_patch._wrapping import Call, InitPlan, Patcher, class_to_patch

__all__ = ["patch", "unpatch", "wrapped"]  # the contract: integrations/__init__.py

if TYPE_CHECKING:
    from types import ModuleType

TRANSPORT_CLASSES = ("HTTPTransport", "AsyncHTTPTransport")
#: Arguments whose presence needs the full plan: ours, and those that change what we add.
DECIDING = frozenset({"retries", "socket_options", "uds", "proxy"})

_patcher = Patcher()


class _TransportPlan(InitPlan):
    """How to add our arguments to one transport ``__init__``, learnt from its signature."""

    def __init__(self, init: Callable[..., None], label: str) -> None:
        super().__init__(init, label)
        names = self.names
        self.takes_retries = "retries" in names
        self.takes_options = "socket_options" in names
        #: Keyword names a call may use and still take the fast path (what ``Client()`` does).
        self._plain = frozenset() if self._required else self._keywords - DECIDING
        #: (settings generation, what every plain call gets), made on first use.
        self._ours: tuple[int, dict[str, Any]] | None = None
        if not self.takes_options:
            library = label.rpartition(".")[0]
            log_once(
                "nosockopts:" + library,
                WARNING,
                "%s transports take no socket_options (httpx < 0.25); injecting retries only",
                library,
            )

    def fast(self, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """A call naming none of ``DECIDING`` gets exactly what ``adjust`` adds to a call that
        names none of them, worked out once per settings generation (the options as one shared
        tuple: nobody mutates it)."""
        if not kwargs.keys() <= self._plain:
            return None
        ours = self._ours
        if ours is None or ours[0] != config.generation():
            generation, state = config.generation(), sockopts.in_force()
            extra: dict[str, Any] = {}
            self.adjust(extra)
            if "socket_options" in extra:
                extra["socket_options"] = tuple(extra["socket_options"])
            ours = (generation, extra)
            if state.probed:  # else probe again next time, as ``in_force`` does
                self._ours = ours
        return {**kwargs, **ours[1]}

    def adjust(self, arguments: dict[str, Any]) -> bool:
        """Add keepalive options and retries where the caller set none (by the policy)."""
        state = sockopts.in_force()
        retries = state.settings.retries
        if retries and self.takes_retries and "retries" not in arguments:
            arguments["retries"] = retries
        if self.takes_options and state.options and arguments.get("uds") is None:
            given = arguments.get("socket_options")
            if given is None:
                arguments["socket_options"] = list(state.options)
            else:
                arguments["socket_options"] = sockopts.merge(
                    sockopts.read_once(given), state.options
                )
        return True

    def call(self, wrapped: Callable[..., None], call: Call) -> None:
        """Build the transport; its proxy pool, if any, sees our arguments (``_handoff``)."""
        args, kwargs, arguments = call
        if arguments.get("proxy") is None:
            wrapped(*args, **kwargs)
            return
        with _handoff.handing_over(arguments):
            wrapped(*args, **kwargs)


def patch(module: ModuleType) -> None:
    """Wrap the transport classes of an imported httpx-like module, once per class."""
    library = module.__name__
    for class_name in TRANSPORT_CLASSES:
        cls = class_to_patch(module, class_name, "not patched")
        if cls is not None:
            label = f"{library}.{class_name}"
            _patcher.wrap_init(cls, functools.partial(_TransportPlan, label=label))
    log_once("patched:" + library, INFO, "keepalive-patch applied to %s", library)


def unpatch() -> None:
    """Restore the exact original ``__init__`` objects; disarm ours where another wraps it."""
    _patcher.unwrap_all()


def wrapped() -> list[tuple[type, str, Any]]:
    """(class, attribute, original) of every method this integration wraps now."""
    return _patcher.wrapped()
