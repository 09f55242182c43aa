"""Wrap the transports' ``__init__`` so every transport gets keepalive options and a retry.

Only runs once httpx or httpx2 has been imported: ``wrapt`` and ``inspect`` are imported here,
inside functions, never at interpreter start.  Importing wrapt 2.x costs ~20-25 ms (its package
imports ``asyncio`` and ``importlib.metadata``), so ``patch_module`` first installs a tiny arming
stub; the first construction of each class imports wrapt and puts the wrapt wrapper in its place.
A process that imports httpx without ever building a transport never pays for wrapt.
"""

import _thread
import os

from keepalive_patch import config
from keepalive_patch._log import log_once

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from types import ModuleType
    from typing import Any, Callable

    from keepalive_patch.options import ProbeResult

TRANSPORT_CLASSES = ("HTTPTransport", "AsyncHTTPTransport")
WARNING, INFO = 30, 20

_lock = _thread.RLock()
_overrides: "dict[str, int | None]" = {}
_override_source = "apply"
_active: "tuple[config.Settings, ProbeResult] | None" = None
#: class -> (its own original ``__init__``, what we put in its place (the arming stub, then the
#: wrapt wrapper), the plan)
_patched: "dict[type, tuple[Any, Any, _Plan]]" = {}
#: ``.arguments``: the final arguments of the transport ``__init__`` running on this thread.
_building = _thread._local()


def configure(overrides: "Mapping[str, int | None]", source: str = "apply") -> None:
    """Set explicit overrides; settings and the probe are recomputed on next use."""
    global _active, _override_source
    with _lock:
        _overrides.clear()
        _overrides.update(overrides)
        _override_source = source
        _active = None


def current() -> "tuple[config.Settings, ProbeResult]":
    """The settings in force and the probed options; recomputed after ``configure``."""
    global _active
    with _lock:
        if _active is not None:
            return _active
        from keepalive_patch import options

        settings = config.resolve(os.environ, _overrides, _override_source)
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
        _active = (settings, result)
        return _active


class _Plan:
    """How to add our arguments to one ``__init__``, learnt from its signature (never guessed)."""

    def __init__(self, init: "Callable[..., None]", library: str) -> None:
        import inspect

        parameters = list(inspect.signature(init).parameters.values())[1:]  # drop ``self``
        self.signature = inspect.Signature(parameters)
        self.names = {p.name for p in parameters}
        self.library = library
        self.active = True
        if "socket_options" not in self.names:
            log_once(
                "nosockopts:" + library,
                WARNING,
                "%s transports take no socket_options (httpx < 0.25); injecting retries only",
                library,
            )

    def rewrite(
        self, args: "tuple[Any, ...]", kwargs: "dict[str, Any]"
    ) -> "tuple[tuple[Any, ...], dict[str, Any]] | None":
        """The caller's arguments with keepalive options and retries added where unset.

        ``None`` when the arguments do not fit the signature: httpx should raise its own error.
        """
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            return None
        arguments = bound.arguments
        settings, probed = current()
        if settings.retries and "retries" in self.names and "retries" not in arguments:
            arguments["retries"] = settings.retries
        if "socket_options" in self.names and arguments.get("uds") is None and probed.accepted:
            arguments["socket_options"] = merge_options(
                arguments.get("socket_options"), probed.accepted
            )
        return bound.args, bound.kwargs


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


def _make_wrapper(plan: _Plan) -> "Callable[..., None]":
    def keepalive_init(
        wrapped: "Callable[..., None]",
        instance: object,
        args: "tuple[Any, ...]",
        kwargs: "dict[str, Any]",
    ) -> None:
        if not plan.active:
            return wrapped(*args, **kwargs)
        try:
            rewritten = plan.rewrite(args, kwargs)
        except Exception:
            log_once(
                "error:" + plan.library,
                WARNING,
                "keepalive-patch failed to prepare a %s transport; leaving it unchanged",
                plan.library,
                exc_info=True,
            )
            return wrapped(*args, **kwargs)
        if rewritten is None:
            return wrapped(*args, **kwargs)
        previous = building()
        try:
            _building.arguments = plan.signature.bind(*rewritten[0], **rewritten[1]).arguments
        except Exception:  # cannot happen: rewrite() bound these very arguments
            _building.arguments = None
        try:
            return wrapped(*rewritten[0], **rewritten[1])
        finally:
            _building.arguments = previous

    return keepalive_init


def patch_module(module: "ModuleType") -> None:
    """Arm the transport classes of an imported httpx-like module, once per class."""
    library = module.__name__
    for class_name in TRANSPORT_CLASSES:
        cls = getattr(module, class_name, None)
        original = getattr(cls, "__dict__", {}).get("__init__")
        if not isinstance(cls, type) or original is None:
            log_once(
                f"missing:{library}.{class_name}",
                WARNING,
                "%s.%s not found; not patched",
                library,
                class_name,
            )
            continue
        with _lock:
            if cls in _patched:
                continue
            plan = _Plan(original, library)
            stub = _make_arming_stub(cls, original, plan)
            cls.__init__ = stub  # type: ignore[misc]
            _patched[cls] = (original, stub, plan)
    log_once("patched:" + library, INFO, "keepalive-patch applied to %s", library)


def _make_arming_stub(cls: type, original: "Any", plan: _Plan) -> "Callable[..., None]":
    """A stand-in ``__init__`` that wraps ``cls`` with wrapt on first use, then defers to it."""
    import functools

    armed: list[Any] = []  # the wrapt wrapper, once made

    def stub(self: object, *args: "Any", **kwargs: "Any") -> None:
        if not plan.active:
            return original(self, *args, **kwargs)  # type: ignore[no-any-return]
        wrapper = armed[0] if armed else _arm(cls, stub, armed)
        if wrapper is None:
            return original(self, *args, **kwargs)  # type: ignore[no-any-return]
        # Bind exactly as attribute access on the instance would, so wrapt sees ``instance``.
        return wrapper.__get__(self, type(self))(*args, **kwargs)  # type: ignore[no-any-return]

    functools.update_wrapper(stub, original)  # name, doc, and __wrapped__ for inspect.signature
    return stub


def _arm(cls: type, stub: "Any", armed: "list[Any]") -> "Any":
    """Make the wrapt wrapper for ``cls`` and put it in place of ``stub``; ``None`` if we cannot."""
    try:
        import wrapt
    except Exception:
        log_once(
            "nowrapt", WARNING, "keepalive-patch cannot import wrapt; transports run unpatched",
            exc_info=True,
        )  # fmt: skip
        return None
    with _lock:
        if armed:
            return armed[0]
        entry = _patched.get(cls)
        if entry is None:  # removed meanwhile
            return None
        original, _, plan = entry
        wrapper = wrapt.FunctionWrapper(original, _make_wrapper(plan))
        armed.append(wrapper)
        if cls.__dict__.get("__init__") is stub:
            cls.__init__ = wrapper  # type: ignore[misc]
            _patched[cls] = (original, wrapper, plan)
        # Otherwise someone wrapped our stub: it stays in their chain and keeps delegating.
        return wrapper


def unpatch_all() -> None:
    """Restore the exact original ``__init__`` objects; disarm ours where another wraps it."""
    with _lock:
        for cls, (original, wrapper, plan) in list(_patched.items()):
            plan.active = False
            if cls.__dict__.get("__init__") is wrapper:
                cls.__init__ = original  # type: ignore[misc]
            else:
                log_once(
                    f"covered:{cls.__module__}.{cls.__qualname__}",
                    WARNING,
                    "%s.__init__ was wrapped again after keepalive-patch; ours now passes through",
                    cls.__qualname__,
                )
            del _patched[cls]


def patched_classes() -> "list[type]":
    """The transport classes currently wrapped."""
    with _lock:
        return list(_patched)
