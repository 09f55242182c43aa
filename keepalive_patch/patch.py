"""Give every httpx / httpx2 transport keepalive socket options and a connect retry.

Holds the settings in force (computed and probed once, on first use) and the plan that rewrites a
transport's ``__init__`` arguments; ``_wrapping`` puts that plan on the classes.  Runs only once
httpx or httpx2 has been imported; ``inspect`` and wrapt are imported inside functions.
"""

import _thread
import os

from keepalive_patch import config
from keepalive_patch._log import log_once
from keepalive_patch._wrapping import InitPatcher, InitPlan, class_to_patch

TYPE_CHECKING = False
if TYPE_CHECKING:
    import inspect
    from collections.abc import Iterable, Mapping
    from types import ModuleType
    from typing import Any, Callable

    from keepalive_patch.options import ProbeResult

TRANSPORT_CLASSES = ("HTTPTransport", "AsyncHTTPTransport")
WARNING, INFO = 30, 20

_lock = _thread.RLock()
#: (config generation, settings, probe) of the last computation.
_active: "tuple[int, config.Settings, ProbeResult] | None" = None
_patcher = InitPatcher()
#: ``.arguments``: the final arguments of the transport ``__init__`` running on this thread.
_building = _thread._local()


def current() -> "tuple[config.Settings, ProbeResult]":
    """The settings in force and the probed options; recomputed after ``config.configure``."""
    global _active
    generation, overrides, source = config.configured()
    with _lock:
        if _active is not None and _active[0] == generation:
            return _active[1], _active[2]
        from keepalive_patch import options

        settings = config.resolve(os.environ, overrides, source)
        result = options.probe(options.keepalive_options(settings))
        if result.rejected:
            names = ", ".join(
                f"{options.option_name(opt[0], opt[1])}={opt[2]} ({why})"
                for opt, why in result.rejected
            )
            log_once("rejected:" + names, WARNING, "this kernel rejects %s; not setting it", names)
        if not result.probed:
            log_once("noprobe", WARNING, "could not open a socket to probe keepalive options")
            return settings, result
        _active = (generation, settings, result)
        return settings, result


class _TransportPlan(InitPlan):
    """How to add our arguments to one ``__init__``, learnt from its signature (never guessed)."""

    def __init__(self, init: "Callable[..., None]", label: str) -> None:
        super().__init__(init, label)
        self.names = set(self.signature.parameters)
        if "socket_options" not in self.names:
            library = label.rpartition(".")[0]
            log_once(
                "nosockopts:" + library,
                WARNING,
                "%s transports take no socket_options (httpx < 0.25); injecting retries only",
                library,
            )

    def rewrite(
        self, args: "tuple[Any, ...]", kwargs: "dict[str, Any]"
    ) -> "inspect.BoundArguments | None":
        """The caller's arguments with keepalive options and retries added where unset.

        ``None`` when the arguments do not fit the signature: httpx should raise its own error.
        """
        bound = self.bind(args, kwargs)
        if bound is None:
            return None
        arguments = bound.arguments
        settings, probed = current()
        if settings.retries and "retries" in self.names and "retries" not in arguments:
            arguments["retries"] = settings.retries
        if "socket_options" in self.names and arguments.get("uds") is None and probed.accepted:
            arguments["socket_options"] = merge_options(
                arguments.get("socket_options"), probed.accepted
            )
        return bound

    def call(self, wrapped: "Callable[..., None]", bound: "inspect.BoundArguments") -> None:
        """Build the transport, letting the proxy pool it creates see our arguments."""
        previous = building()
        _building.arguments = bound.arguments
        try:
            wrapped(*bound.args, **bound.kwargs)
        finally:
            _building.arguments = previous


def building() -> "Mapping[str, Any] | None":
    """The arguments (ours included) of the transport being built on this thread, if any.

    The proxy pools read ``socket_options`` and ``retries`` from here: httpx hands neither to
    ``SOCKSProxy`` and no retries to ``HTTPProxy``.
    """
    arguments: Mapping[str, Any] | None = getattr(_building, "arguments", None)
    return arguments


def merge_options(
    given: "Iterable[Any] | None", keepalive: "list[tuple[int, int, int]]"
) -> "list[Any]":
    """The caller's options (materialized once) plus each keepalive option they did not set."""
    if given is None:
        return list(keepalive)
    merged = list(given)
    present = {tuple(opt[:2]) for opt in merged if isinstance(opt, (tuple, list))}
    merged.extend(opt for opt in keepalive if opt[:2] not in present)
    return merged


def patch_module(module: "ModuleType") -> None:
    """Arm the transport classes of an imported httpx-like module, once per class."""
    import functools

    library = module.__name__
    for class_name in TRANSPORT_CLASSES:
        cls = class_to_patch(module, class_name, "not patched")
        if cls is None:
            continue
        _patcher.patch(cls, functools.partial(_TransportPlan, label=f"{library}.{class_name}"))
    log_once("patched:" + library, INFO, "keepalive-patch applied to %s", library)


def unpatch_all() -> None:
    """Restore the exact original ``__init__`` objects; disarm ours where another wraps it."""
    _patcher.unpatch_all()


def original_init(cls: type) -> "Any":
    """The ``__init__`` a patched transport class had before us."""
    return _patcher.original(cls)


def patched_classes() -> "list[type]":
    """The transport classes currently patched."""
    return _patcher.classes()
