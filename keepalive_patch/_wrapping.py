"""Wrap a class's ``__init__`` with wrapt — once, reversibly, and without importing wrapt early.

Both the httpx transports (``patch``) and the httpcore proxy pools (``proxies``) are patched the
same way; only the *plan*, which rewrites one call's arguments, differs.  Importing wrapt 2.x costs
~20-25 ms (its package imports ``asyncio`` and ``importlib.metadata``), so a class is first given a
tiny arming stub; its first construction imports wrapt and puts the wrapt wrapper in the stub's
place.  A process that imports httpx without building a client never pays for wrapt.
"""

import _thread

from keepalive_patch._log import log_once

TYPE_CHECKING = False
if TYPE_CHECKING:
    import inspect
    from types import ModuleType
    from typing import Any, Callable

WARNING = 30


class InitPlan:
    """How to rewrite the arguments of one class's ``__init__``; subclasses say how."""

    def __init__(self, init: "Callable[..., None]", label: str) -> None:
        import inspect

        #: The original ``__init__``'s own signature, less ``self``: arguments are bound, never
        #: guessed (httpx changed its positional order between releases).
        self.signature = inspect.Signature(list(inspect.signature(init).parameters.values())[1:])
        #: For log messages: ``httpx.HTTPTransport`` and the like.
        self.label = label
        #: False once removed: a wrapper someone else still holds then passes straight through.
        self.active = True

    def bind(
        self, args: "tuple[Any, ...]", kwargs: "dict[str, Any]"
    ) -> "inspect.BoundArguments | None":
        """The call's arguments by name; ``None`` if they do not fit (the library raises then)."""
        try:
            return self.signature.bind(*args, **kwargs)
        except TypeError:
            return None

    def rewrite(
        self, args: "tuple[Any, ...]", kwargs: "dict[str, Any]"
    ) -> "inspect.BoundArguments | None":
        """The call's arguments with ours added, or ``None`` to leave the call untouched."""
        raise NotImplementedError

    def call(self, wrapped: "Callable[..., None]", bound: "inspect.BoundArguments") -> None:
        """Call the original with the rewritten arguments."""
        wrapped(*bound.args, **bound.kwargs)


def _wrapper_for(plan: InitPlan) -> "Callable[..., None]":
    """The wrapt wrapper function: any failure of ours calls the original exactly as called."""

    def keepalive_init(
        wrapped: "Callable[..., None]",
        instance: object,
        args: "tuple[Any, ...]",
        kwargs: "dict[str, Any]",
    ) -> None:
        if not plan.active:
            return wrapped(*args, **kwargs)
        try:
            bound = plan.rewrite(args, kwargs)
        except Exception:
            log_once(
                "error:" + plan.label,
                WARNING,
                "keepalive-patch failed to prepare a %s; leaving it unchanged",
                plan.label,
                exc_info=True,
            )
            return wrapped(*args, **kwargs)
        if bound is None:
            return wrapped(*args, **kwargs)
        return plan.call(wrapped, bound)

    return keepalive_init


def class_to_patch(module: "ModuleType", class_name: str, unpatched: str) -> "type | None":
    """``module.class_name`` if it is a class with its own ``__init__``; else say so once."""
    cls = getattr(module, class_name, None)
    if isinstance(cls, type) and "__init__" in cls.__dict__:
        return cls
    log_once(
        f"missing:{module.__name__}.{class_name}",
        WARNING,
        "%s.%s not found; %s",
        module.__name__,
        class_name,
        unpatched,
    )
    return None


class InitPatcher:
    """Puts plans on classes' ``__init__``, each class once, and can take them all off again."""

    def __init__(self) -> None:
        self._lock = _thread.RLock()
        #: class -> [its own original ``__init__``, what stands in its place now, the plan]
        self._patched: dict[type, list[Any]] = {}

    def patch(self, cls: type, plan_for: "Callable[[Any], InitPlan | None]") -> None:
        """Arm ``cls`` with ``plan_for(original __init__)``; a ``None`` plan leaves it alone."""
        with self._lock:
            original = cls.__dict__.get("__init__")
            if cls in self._patched or original is None:
                return
            plan = plan_for(original)
            if plan is not None:
                stub = self._arming_stub(cls, original, plan)
                cls.__init__ = stub  # type: ignore[misc]
                self._patched[cls] = [original, stub, plan]

    def _arming_stub(self, cls: type, original: "Any", plan: InitPlan) -> "Callable[..., None]":
        """A stand-in ``__init__`` that wraps ``cls`` with wrapt on first use, then defers to it."""
        import functools

        armed: list[Any] = []  # the wrapt wrapper, once made

        def stub(self_: object, *args: "Any", **kwargs: "Any") -> None:
            wrapper = (armed[0] if armed else self._arm(cls, stub, armed)) if plan.active else None
            if wrapper is None:
                return original(self_, *args, **kwargs)  # type: ignore[no-any-return]
            # Bind as attribute access on the instance would, so wrapt sees ``instance``.
            return wrapper.__get__(self_, type(self_))(*args, **kwargs)  # type: ignore[no-any-return]

        functools.update_wrapper(stub, original)  # name, doc, and __wrapped__ for inspect
        return stub

    def _arm(self, cls: type, stub: "Any", armed: "list[Any]") -> "Any":
        """Make the wrapt wrapper for ``cls`` and put it where ``stub`` is; ``None`` if we can't."""
        try:
            import wrapt
        except Exception:
            log_once(
                "nowrapt",
                WARNING,
                "keepalive-patch cannot import wrapt; %s runs unpatched",
                cls.__qualname__,
                exc_info=True,
            )
            return None
        with self._lock:
            entry = self._patched.get(cls)
            if not armed and entry is not None:
                original, _, plan = entry
                armed.append(wrapt.FunctionWrapper(original, _wrapper_for(plan)))
                if cls.__dict__.get("__init__") is stub:
                    cls.__init__ = armed[0]  # type: ignore[misc]
                    entry[1] = armed[0]
                # Otherwise someone wrapped our stub: it stays in their chain and delegates.
            return armed[0] if armed else None  # nothing armed: removed meanwhile

    def unpatch_all(self) -> None:
        """Restore the exact original ``__init__`` objects; disarm ours where another wraps it."""
        with self._lock:
            for cls, (original, replacement, plan) in list(self._patched.items()):
                plan.active = False
                if cls.__dict__.get("__init__") is replacement:
                    cls.__init__ = original  # type: ignore[misc]
                else:
                    log_once(
                        f"covered:{cls.__module__}.{cls.__qualname__}",
                        WARNING,
                        "%s.__init__ was wrapped again after keepalive-patch; ours passes through",
                        cls.__qualname__,
                    )
                del self._patched[cls]

    def original(self, cls: type) -> "Any":
        """The ``__init__`` that ``cls`` had before we patched it."""
        with self._lock:
            return self._patched[cls][0]

    def classes(self) -> "list[type]":
        """The classes currently patched."""
        with self._lock:
            return list(self._patched)
