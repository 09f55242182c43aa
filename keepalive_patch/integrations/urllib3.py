"""urllib3 1.26 / 2.x, and so requests, botocore and all built on them: keepalive options on
every connection urllib3 opens.

Each urllib3 connection -- direct, to an HTTP proxy (forwarding or ``CONNECT``), through
``urllib3.contrib.socks`` -- is an ``HTTPConnection`` or a subclass of it, and its ``__init__``
stores what its socket will be given in ``self.socket_options``: the caller's options, urllib3's
``default_socket_options`` when the caller gave none, ``[]`` from a pool with a proxy, or
``None``, urllib3's way to say "no options".  So ``HTTPConnection.__init__`` alone is wrapped
(``HTTPSConnection``, ``SOCKSConnection``, botocore's ``AWSHTTPConnection`` and others reach it
through ``super()``) and, once it has run, the stored options get ours by the keepalive policy
(``sockopts.merge``); ``None`` is left alone.  Reading what ``__init__`` stored rather than its
arguments serves both generations: 1.26 takes ``**kw`` and falls back to the instance's
``default_socket_options``, 2.x binds the class's list as the parameter's default.

Retries are left to urllib3 and its users (requests: ``integrations/requests.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable

from keepalive_patch import sockopts
from keepalive_patch._log import INFO, WARNING, log_once
from keepalive_patch._wrapping import CallerError, Patcher, class_to_patch, fixed

if TYPE_CHECKING:
    from types import ModuleType

LABEL = "urllib3.connection.HTTPConnection"

_patcher = Patcher()


def _add_keepalive(
    wrapped: Callable[..., None], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Build the connection as called, then give its stored options ours by the policy."""
    wrapped(*args, **kwargs)
    try:
        _merge_into(instance)
    except CallerError as caller_error:
        raise caller_error.error from None
    except Exception:
        log_once(
            "error:" + LABEL,
            WARNING,
            "keepalive-patch failed to add keepalive options to a %s; leaving it unchanged",
            LABEL,
            exc_info=True,
        )


def _merge_into(connection: Any) -> None:
    """``connection.socket_options`` with ours merged in; ``None`` (no options) left alone."""
    given = getattr(connection, "socket_options", None)
    if given is None:
        return
    if not isinstance(given, (list, tuple)):
        if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
            return  # not options urllib3 could set either: not ours to read
        try:  # a caller's iterator: read once, here; what goes wrong reading it is theirs
            given = list(given)
        except Exception as exc:
            raise CallerError(exc) from exc
        connection.socket_options = given  # what it gave stays, even if merging fails
    merged = _merged(given)
    if merged is not None:
        connection.socket_options = merged


#: (the ``InForce`` the results were merged with, {caller's options: merged}).  One connection
#: per request is common (``Connection: close``, short-lived pools), and nearly every one
#: carries the same few lists (urllib3's default, ``[]`` for proxies, botocore's): merging
#: each once keeps a new connection's cost to a dictionary lookup.
_memo: tuple[object, dict[tuple[Any, ...], tuple[Any, ...]]] = (None, {})
MEMO_SIZE = 64


def _merged(given: list[Any] | tuple[Any, ...]) -> list[Any] | None:
    """``sockopts.merge(given, options in force)`` as a new list; ``None`` if none in force."""
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
    return list(found)


def patch(module: ModuleType) -> None:
    """Wrap ``HTTPConnection.__init__`` of an imported ``urllib3.connection``, once."""
    cls = class_to_patch(module, "HTTPConnection", "urllib3 connections get no keepalive options")
    if cls is not None:
        _patcher.wrap(cls, "__init__", fixed(_add_keepalive))
        name = module.__name__
        log_once("patched:" + name, INFO, "keepalive-patch applied to %s", name)


def unpatch() -> None:
    """Restore the exact original ``__init__``; disarm ours where another wrapper covers it."""
    _patcher.unwrap_all()


def patched_classes() -> list[type]:
    """The connection classes wrapped now."""
    return _patcher.classes()
