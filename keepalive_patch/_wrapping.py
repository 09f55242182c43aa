"""Wrap a class's method with wrapt — once, reversibly, and without importing wrapt early.

Every integration patches the same way: it hands ``Patcher.wrap`` a class, the name of a method
(mostly ``__init__``) and a factory that, given the original, returns a wrapt-style wrapper.
How one method goes from a stand-in to the wrapt wrapper and back to the original is explained
above ``_Wrapped``.

Rewriting an ``__init__``'s arguments is the common case: an ``InitPlan`` says what to add to
a call's arguments by name, and ``init_wrapper`` makes the wrapper that applies it.
"""

from __future__ import annotations

import _thread
import types
from typing import TYPE_CHECKING, Any, Callable, Dict, Tuple  # noqa: UP035 - runtime aliases, 3.9

from keepalive_patch._log import NO_WRAPT, WARNING, log_once

if TYPE_CHECKING:
    import inspect
    from types import ModuleType

#: A wrapt wrapper function: ``(wrapped, instance, args, kwargs) -> result``.
Wrapper = Callable[[Callable[..., Any], Any, "tuple[Any, ...]", "dict[str, Any]"], Any]


#: ``inspect.CO_VARARGS`` / ``CO_VARKEYWORDS`` / ``CO_COROUTINE``, without importing ``inspect``.
CO_VARARGS, CO_VARKEYWORDS, CO_COROUTINE = 0x04, 0x08, 0x80

#: A rewritten call: its positional and keyword arguments as passed on, and all of them by name.

Call = Tuple[Tuple[Any, ...], Dict[str, Any], Dict[str, Any]]  # noqa: UP006


class InitPlan:
    """How to rewrite the arguments of one class's ``__init__``: subclasses define ``adjust``.

    The caller's arguments are bound against the installed signature, never guessed: httpx
    changed its positional order between releases.  A keyword-only call naming only known
    parameters, the required ones included, binds to itself: that is how ``Client()`` builds its
    transports, and ``Signature.bind`` would cost more than the rest of a cheap constructor (a
    transport sharing one SSL context).
    """

    def __init__(self, init: Callable[..., None], label: str) -> None:
        self._init = init
        self._signature: inspect.Signature | None = None
        #: For log messages: ``httpx.HTTPTransport`` and the like.
        self.label = label
        shape = _plain_shape(init)
        if shape is None:  # not a plain function (wrapped, builtin...): ask inspect
            shape = _inspected_shape(self.signature)
        #: Every named parameter (less ``self``), those a keyword can fill, the required ones,
        #: and whether the signature is nothing but ``(*args, **kwargs)``.
        self.names, self._keywords, self._required, self.takes_anything = shape

    @property
    def signature(self) -> inspect.Signature:
        """The original ``__init__``'s own signature, less ``self``: made on first need, since
        ``inspect`` costs milliseconds to import and the common call does without it."""
        if self._signature is None:
            import inspect

            parameters = list(inspect.signature(self._init).parameters.values())[1:]
            self._signature = inspect.Signature(parameters)
        return self._signature

    def adjust(self, arguments: dict[str, Any]) -> bool:
        """Add ours to the call's ``arguments`` (by name, as given); False leaves the call as is."""
        raise NotImplementedError

    def fast(self, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """The keywords to call the original with, when a plan can tell them at a glance;
        ``None`` sends the call through ``rewrite`` and ``call``."""
        return None

    def rewrite(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call | None:
        """The call's arguments with ours added; ``None`` leaves it untouched (also when the
        arguments do not fit the signature: the library raises its own error then)."""
        if not args and self._required <= kwargs.keys() <= self._keywords:
            arguments = dict(kwargs)
            return ((), arguments, arguments) if self.adjust(arguments) else None
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            return None
        if not self.adjust(bound.arguments):
            return None
        return bound.args, bound.kwargs, dict(bound.arguments)

    def call(self, wrapped: Callable[..., None], call: Call) -> None:
        """Call the original with the rewritten arguments, ``call`` as ``rewrite`` made it."""
        args, kwargs, _ = call
        wrapped(*args, **kwargs)


class CallerError(Exception):
    """Raised by a plan when reading the caller's own arguments failed: theirs to see.

    A ``socket_options`` generator that raises must reach its caller as without the shim; a
    plan cannot just fall back to the original call then, because the generator is spent.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


def _plain_shape(
    function: Any,
) -> tuple[frozenset[str], frozenset[str], frozenset[str], bool] | None:
    """``InitPlan``'s view of a plain Python function's parameters, read from its code object
    (``None`` for anything else): named, keyword-capable, required, and ``(*args, **kwargs)``."""
    code = getattr(function, "__code__", None)
    if not isinstance(function, types.FunctionType) or hasattr(function, "__wrapped__"):
        return None
    if code is None or code.co_argcount < 1:  # no ``self``
        return None
    positional = code.co_varnames[1 : code.co_argcount]  # less self
    keyword_only = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    defaults = len(function.__defaults__ or ())
    kwdefaults = function.__kwdefaults__ or {}
    by_keyword = positional[max(code.co_posonlyargcount - 1, 0) :] + keyword_only
    required = positional[: len(positional) - defaults] + tuple(
        name for name in keyword_only if name not in kwdefaults
    )
    varargs = bool(code.co_flags & CO_VARARGS)
    varkeywords = bool(code.co_flags & CO_VARKEYWORDS)
    return (
        frozenset(positional + keyword_only),
        frozenset(by_keyword),
        frozenset(name for name in required if name in by_keyword),
        not positional and not keyword_only and varargs and varkeywords,
    )


def _inspected_shape(
    signature: inspect.Signature,
) -> tuple[frozenset[str], frozenset[str], frozenset[str], bool]:
    """``_plain_shape`` for what only ``inspect`` can read."""
    parameters = list(signature.parameters.values())
    named = [p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    by_keyword = [p for p in named if p.kind is not p.POSITIONAL_ONLY]
    return (
        frozenset(p.name for p in named),
        frozenset(p.name for p in by_keyword),
        frozenset(p.name for p in by_keyword if p.default is p.empty),
        len(parameters) == 2 and not named,  # ``(*args, **kwargs)``
    )


def _is_coroutine_function(function: Any) -> bool:
    """``inspect.iscoroutinefunction`` for what we wrap (a function, or someone's wrapper of
    one that passes ``__code__`` through), without importing ``inspect``."""
    code = getattr(function, "__code__", None)
    return bool(getattr(code, "co_flags", 0) & CO_COROUTINE)


def fixed(wrapper: Wrapper) -> Callable[[Any], Wrapper]:
    """A ``make_wrapper`` for ``Patcher.wrap`` that gives ``wrapper`` whatever the original."""
    return lambda original: wrapper


def parameter_names(function: Any) -> frozenset[str]:
    """The named parameters of ``function`` (``self`` included for a method's function)."""
    shape = _plain_shape(function)
    if shape is not None:
        return shape[0] | {function.__code__.co_varnames[0]}
    import inspect

    try:
        return frozenset(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return frozenset()


def init_wrapper(plan: InitPlan) -> Wrapper:
    """The wrapper that applies ``plan``: any failure of ours calls the original as called."""

    def keepalive_init(
        wrapped: Callable[..., None],
        instance: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        try:
            fast = None if args else plan.fast(kwargs)
            if fast is not None:
                return wrapped(**fast)
            call = plan.rewrite(args, kwargs)
        except CallerError as caller_error:
            raise caller_error.error from None
        except Exception:
            log_once(
                "error:" + plan.label,
                WARNING,
                "keepalive-patch failed to prepare a %s; leaving it unchanged",
                plan.label,
                exc_info=True,
            )
            return wrapped(*args, **kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        return plan.call(wrapped, call)

    return keepalive_init


def class_to_patch(module: ModuleType, class_name: str, unpatched: str) -> type | None:
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


# -- one wrapped method, from patch to remove ------------------------------------------------------
#
# Every method we wrap goes through the same three steps, all in ``_Wrapped``:
#
# 1. Patched: the class gets a *stand-in*, not the wrapt wrapper.  Importing wrapt 2.x costs
#    ~20-25 ms (its package imports ``asyncio`` and ``importlib.metadata``), and a process that
#    imports httpx without building a client should never pay for it.  The stand-in must look
#    like the original to whoever inspects the class before its first use (instrumentation picks
#    a sync or async wrapper by ``inspect.iscoroutinefunction``): ``functools.update_wrapper``
#    gives it the original's name, docstring and ``__wrapped__`` (so ``inspect.signature`` shows
#    the original's), and the stand-in of a coroutine function is itself one.
# 2. First call: the stand-in imports wrapt, makes the ``FunctionWrapper`` and puts it in the
#    class in its own place, so every later call goes straight through wrapt.  If someone wrapped
#    the stand-in meanwhile (it is no longer what the class holds), it stays in their chain and
#    keeps handing calls to the wrapt wrapper.  Without wrapt, it calls the original.
# 3. Removed: where ours (stand-in or wrapt wrapper) is still what the class holds, the class
#    gets the exact original back.  Where another wrapper covers ours, ours is switched off
#    instead (``active``, which wrapt asks before every call as ``enabled``): it passes straight
#    through, and the other wrapper survives.


class _Wrapped:
    """One method of one class that we wrap: its original, our wrapper, and what stands in."""

    def __init__(self, cls: type, attribute: str, original: Any, wrapper: Wrapper) -> None:
        self.cls = cls
        self.attribute = attribute
        self.original = original
        self.wrapper = wrapper
        #: False once removed: a wrapper of ours someone else still holds passes through.
        self.active = True
        #: The wrapt ``FunctionWrapper``, made at the first call (step 2).
        self.armed: Any = None
        self.stand_in = self._make_stand_in()
        #: What the class holds while it is ours: the stand-in, then the wrapt wrapper.
        self.installed: Any = self.stand_in

    def is_active(self) -> bool:
        return self.active

    def _make_stand_in(self) -> Callable[..., Any]:
        """Step 1: a function that looks like the original and arms on first use."""
        import functools

        original = self.original

        def stand_in(self_: object, *args: Any, **kwargs: Any) -> Any:
            if self.active:
                armed = self.armed if self.armed is not None else self.arm()
                if armed is not None:
                    # Bind as attribute access on the instance would, so wrapt sees ``instance``.
                    return armed.__get__(self_, type(self_))(*args, **kwargs)
            return original(self_, *args, **kwargs)

        async def async_stand_in(self_: object, *args: Any, **kwargs: Any) -> Any:
            return await stand_in(self_, *args, **kwargs)

        made = async_stand_in if _is_coroutine_function(original) else stand_in
        functools.update_wrapper(made, original)
        return made

    def arm(self) -> Any:
        """Step 2: the wrapt wrapper, made once and put in the class; ``None`` without wrapt."""
        try:
            import wrapt
        except Exception:
            import keepalive_patch

            keepalive_patch._wrapt_failed = True  # is_applied() says so from now on
            log_once(
                NO_WRAPT,
                WARNING,
                "keepalive-patch cannot import wrapt; %s runs unpatched",
                self.cls.__qualname__,
                exc_info=True,
            )
            return None
        with _lock:
            if self.armed is None and self.active:
                self.armed = wrapt.FunctionWrapper(
                    self.original, self.wrapper, enabled=self.is_active
                )
                if self.cls.__dict__.get(self.attribute) is self.stand_in:
                    setattr(self.cls, self.attribute, self.armed)
                    self.installed = self.armed
            return self.armed  # ``None``: removed meanwhile

    def remove(self) -> None:
        """Step 3: the exact original back, or ours switched off under someone else's."""
        with _lock:
            self.active = False
            if self.cls.__dict__.get(self.attribute) is self.installed:
                setattr(self.cls, self.attribute, self.original)
                return
        log_once(
            f"covered:{self.cls.__module__}.{self.cls.__qualname__}.{self.attribute}",
            WARNING,
            "%s.%s was wrapped again after keepalive-patch; ours passes through",
            self.cls.__qualname__,
            self.attribute,
        )


#: One lock for every wrap, arm and remove: they are rare, and must not interleave.
_lock = _thread.RLock()


class Patcher:
    """Wraps methods of classes, each (class, method) once, and can take them all off again."""

    def __init__(self) -> None:
        self._wrapped: dict[tuple[type, str], _Wrapped] = {}

    def wrap(
        self, cls: type, attribute: str, make_wrapper: Callable[[Any], Wrapper | None]
    ) -> None:
        """Put ``make_wrapper(original)`` on ``cls.attribute`` (``None`` leaves it alone).

        Only a method defined on ``cls`` itself is wrapped: subclasses inherit the wrapper.
        """
        with _lock:
            original = cls.__dict__.get(attribute)
            if (cls, attribute) in self._wrapped or original is None:
                return
            wrapper = make_wrapper(original)
            if wrapper is not None:
                wrapped = _Wrapped(cls, attribute, original, wrapper)
                setattr(cls, attribute, wrapped.stand_in)
                self._wrapped[cls, attribute] = wrapped

    def wrap_init(self, cls: type, plan_for: Callable[[Any], InitPlan | None]) -> None:
        """Wrap ``cls.__init__`` with the plan ``plan_for(original)`` makes (``None``: leave it)."""

        def make_wrapper(original: Any) -> Wrapper | None:
            plan = plan_for(original)
            return None if plan is None else init_wrapper(plan)

        self.wrap(cls, "__init__", make_wrapper)

    def unwrap_all(self) -> None:
        """Restore the exact originals; switch ours off where another wrapper covers it."""
        with _lock:
            wrapped, self._wrapped = list(self._wrapped.values()), {}
        for item in wrapped:
            item.remove()

    def wrapped(self) -> list[tuple[type, str, Any]]:
        """(class, attribute, original) of every method wrapped now."""
        with _lock:
            return [(w.cls, w.attribute, w.original) for w in self._wrapped.values()]
