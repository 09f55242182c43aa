"""urllib3 1.26 / 2.x, and so requests, botocore and all built on them: keepalive options on
every connection urllib3 opens.

Each urllib3 connection -- direct, to an HTTP proxy (forwarding or ``CONNECT``), through
``urllib3.contrib.socks`` -- is an ``HTTPConnection`` or a subclass of it, and makes its socket in
``connect()``: ``HTTPConnection.connect`` or ``HTTPSConnection.connect`` (``SOCKSConnection``,
botocore's ``AWSHTTPConnection``, ``HTTP2Connection`` and others inherit one of the two or reach
it through ``super()``) calls ``self._new_conn()``, which hands ``self.socket_options`` to the
function that creates the socket (urllib3's ``create_connection``, or PySocks' for SOCKS) to be
set on it before it connects.  ``self.socket_options`` is what ``__init__`` stored: the caller's
options, urllib3's ``default_socket_options`` when the caller gave none, ``[]`` from a pool with
a proxy, or ``None``, urllib3's way to say "no options" -- or whatever the caller assigned since.

So those two ``connect`` methods are wrapped, and for the length of the call only,
``socket_options`` holds that value with ours merged in by the keepalive policy
(``sockopts.merge``); then the caller's value is put back, so ``conn.socket_options`` reads as
urllib3 (or the caller) set it, before and after.  Wrapping ``connect`` rather than
``_new_conn`` reaches the many subclasses that replace ``_new_conn`` (SOCKS, address pinning,
SSRF guards) but read ``self.socket_options`` as urllib3 does.  ``None`` is left alone.

A caller's iterator is read once, when the connection first connects (where urllib3 itself would
read it), and what it gave is remembered for that connection, so a reconnect gets the same
options instead of an exhausted iterator.  An exception raised while reading it is the caller's.

Retries are left to urllib3 and its users (requests: ``integrations/requests.py``).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable

from keepalive_patch import sockopts
from keepalive_patch._log import INFO, WARNING, log_once
from keepalive_patch._wrapping import CallerError, Patcher, fixed

__all__ = ["patch", "unpatch", "wrapped"]  # the contract: integrations/__init__.py

if TYPE_CHECKING:
    from types import ModuleType

LABEL = "urllib3.connection.HTTPConnection"
#: The classes whose own ``connect`` makes the socket (every other connection class inherits one).
CLASSES = ("HTTPConnection", "HTTPSConnection")

_patcher = Patcher()


#: A connection whose options were a caller's iterator -> (that iterator, what it gave).
_read: weakref.WeakKeyDictionary[Any, tuple[Any, list[Any]]] = weakref.WeakKeyDictionary()


def _connect_with_keepalive(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Connect with ours merged into the connection's options, then put its own value back."""
    try:
        own = instance.__dict__.get("socket_options", _ABSENT)
        options = _options_for(instance)
    except CallerError as caller_error:
        raise caller_error.error from None
    except Exception:
        _log_failure()
        return wrapped(*args, **kwargs)
    if options is None:
        return wrapped(*args, **kwargs)
    instance.socket_options = options
    try:
        return wrapped(*args, **kwargs)
    finally:
        if getattr(instance, "socket_options", None) is options:  # unless changed meanwhile
            if own is _ABSENT:
                del instance.socket_options
            else:
                instance.socket_options = own


_ABSENT = object()


def _options_for(connection: Any) -> list[Any] | None:
    """The options ``connection`` should connect with; ``None`` to leave it as it is.

    A ``connect`` that reaches another wrapped one (a subclass calling both bases) merges the
    merged list again, which adds nothing: every option in it is set by then.
    """
    given = getattr(connection, "socket_options", None)
    if given is None:  # urllib3's "no options"
        return None
    if isinstance(given, (list, tuple)):
        merged = _merged(given)
        return None if merged is None else list(merged)
    if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
        return None  # not options urllib3 could set either: not ours to read
    earlier = _read.get(connection)
    if earlier is not None and earlier[0] is given:
        theirs = earlier[1]
    else:
        theirs = list(sockopts.read_once(given) or [])  # a caller's iterator: read once, here
        with contextlib.suppress(TypeError):  # a class that cannot be weakly referenced
            _read[connection] = (given, theirs)
    try:
        merged = _merged(theirs)
    except Exception:  # what it gave is used even if merging fails: the iterator is spent
        _log_failure()
        merged = None
    return list(theirs if merged is None else merged)


def _log_failure() -> None:
    log_once(
        "error:" + LABEL,
        WARNING,
        "keepalive-patch failed to add keepalive options to a %s; leaving it unchanged",
        LABEL,
        exc_info=True,
    )


#: (the ``InForce`` the results were merged with, {caller's options: merged}).  One connection
#: per request is common (``Connection: close``, short-lived pools), and nearly every one
#: carries the same few lists (urllib3's default, ``[]`` for proxies, botocore's): merging
#: each once keeps a new connection's cost to a dictionary lookup.
_memo: tuple[object, dict[tuple[Any, ...], tuple[Any, ...]]] = (None, {})
MEMO_SIZE = 64


def _merged(given: list[Any] | tuple[Any, ...]) -> list[Any] | tuple[Any, ...] | None:
    """``sockopts.merge(given, options in force)``; ``None`` if none in force."""
    global _memo
    state = sockopts.in_force()
    if not state.options:
        return None
    owner, memo = _memo
    if owner is not state:  # new settings: start over
        memo = {}
        _memo = (state, memo)
    try:
        key = tuple(given)
        found = memo.get(key)
    except TypeError:  # an unhashable option (a list inside): merge it every time
        return sockopts.merge(given, state.options)
    if found is None:
        found = tuple(sockopts.merge(key, state.options))
        if len(memo) < MEMO_SIZE:
            memo[key] = found
    return found


def patch(module: ModuleType) -> None:
    """Wrap ``connect`` of an imported ``urllib3.connection``'s connection classes, once.

    An ``HTTPSConnection`` without a ``connect`` of its own inherits the wrapped one; without
    ``ssl`` it is urllib3's stand-in, which makes no connections.
    """
    base = getattr(module, "HTTPConnection", None)
    if not (isinstance(base, type) and "connect" in base.__dict__):
        log_once(
            f"missing:{module.__name__}.HTTPConnection.connect",
            WARNING,
            "%s.HTTPConnection.connect not found; urllib3 connections get no keepalive options",
            module.__name__,
        )
        return
    for name in CLASSES:
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, base) and "connect" in cls.__dict__:
            _patcher.wrap(cls, "connect", fixed(_connect_with_keepalive))
    name = module.__name__
    log_once("patched:" + name, INFO, "keepalive-patch applied to %s", name)


def unpatch() -> None:
    """Restore the exact original methods; disarm ours where another wrapper covers them."""
    _patcher.unwrap_all()


def wrapped() -> list[tuple[type, str, Any]]:
    """(class, attribute, original) of every method this integration wraps now."""
    return _patcher.wrapped()
