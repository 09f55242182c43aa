"""requests: one retry of a failed connect for every ``HTTPAdapter`` built without ``max_retries``.

Keepalive options reach requests' sockets through urllib3 (``integrations/urllib3.py``); this
module adds only the connect retry, as httpcore's ``retries=1`` does for httpx: a connect that
failed sent nothing, so trying it again re-sends nothing.

Without ``max_retries`` requests uses ``Retry(0, read=False)``.  Ours keeps every part of that
but the connect count: ``read=False`` re-raises read errors as before; ``redirect=0``,
``status=0`` and ``other=0`` end in the same ``MaxRetryError`` a total of 0 gives (``other``
matters: urllib3 1.26 wraps any socket error through a proxy, sent bytes or not, as a
``ProxyError`` that would otherwise count against the total); and
``respect_retry_after_header=False`` because with a total above 0 urllib3 would otherwise start
retrying 413 / 429 / 503 answers that carry ``Retry-After``.  A connect that fails every time
ends in the ``MaxRetryError`` requests turns into the exception it raises today.  An explicit
``max_retries`` (keyword or positional, even 0) is never touched.

Before each retry urllib3 logs ``WARNING Retrying (Retry(total=0, connect=0, ...)) after
connection broken by ...`` on ``urllib3.connectionpool``; unpatched there is no retry and no such
record, so ours would put a new WARNING into every application that configured logging.  A
filter on that logger drops exactly the records about a ``Retry`` of ours, and the
``keepalive_patch`` logger says it at DEBUG instead (as for a replay).  Ours are told apart
without a subclass (which would change pickling and ``repr``): their ``allowed_methods`` is
urllib3's own default as a set object of ours, and every ``Retry`` an increment makes is handed
that same object.  Every other record, a retry of the application's own ``Retry`` included,
passes untouched.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any, Callable

from keepalive_patch import sockopts
from keepalive_patch._log import DEBUG, INFO, WARNING, log_once, logger
from keepalive_patch._wrapping import InitPlan, Patcher, class_to_patch, parameter_names

__all__ = ["patch", "unpatch", "wrapped"]  # the contract: integrations/__init__.py

if TYPE_CHECKING:
    from types import ModuleType

#: The ``Retry`` keywords ours sets; urllib3 < 1.26 lacks ``other``, and is then left alone.
RETRY_KEYWORDS = ("total", "connect", "read", "redirect", "status", "other")
RETRY_AFTER = "respect_retry_after_header"

#: The logger urllib3 writes its "Retrying (...)" WARNING to.
URLLIB3_POOL_LOGGER = "urllib3.connectionpool"

_patcher = Patcher()
#: Retry class -> the ``allowed_methods`` object its Retries of ours carry (urllib3's default).
_marks: dict[Any, frozenset[str]] = {}


def connect_retry(retry_class: Callable[..., Any], count: int) -> Any:
    """requests' own ``Retry(0, read=False)``, but a failed connect is tried again ``count``
    times."""
    marked: dict[str, Any] = {}
    mark = _mark_of(retry_class)
    if mark is not None:
        marked["allowed_methods"] = mark
    return retry_class(
        total=count,
        connect=count,
        read=False,
        redirect=0,
        status=0,
        other=0,
        **{RETRY_AFTER: False},
        **marked,
    )


def _mark_of(retry_class: Any) -> frozenset[str] | None:
    """urllib3's default ``allowed_methods`` as a new set object, the same for every call."""
    mark = _marks.get(retry_class)
    if mark is None:
        default = getattr(retry_class, "DEFAULT_ALLOWED_METHODS", None)
        if not isinstance(default, frozenset):
            return None  # without it, our retry is logged by urllib3 as anyone's
        mark = _marks.setdefault(retry_class, frozenset(list(default)))  # a new object
    return mark


class _OurRetryRecords(logging.Filter):
    """Drops urllib3's WARNING before a retry when the ``Retry`` is ours; says it at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            args = record.args
            if record.levelno != logging.WARNING or not isinstance(args, tuple) or not args:
                return True
            methods = getattr(args[0], "allowed_methods", None)
            if methods is None or not any(methods is mark for mark in _marks.values()):
                return True
            logger().log(DEBUG, "requests: connect retried: %s", record.getMessage())
            return False
        except Exception:  # a filter must never fail the log call (urllib3's request)
            return True


_records_filter = _OurRetryRecords()


class _AdapterPlan(InitPlan):
    """Adds our ``max_retries`` to an ``HTTPAdapter`` built without one."""

    def __init__(self, init: Callable[..., None], label: str, retry_class: Any) -> None:
        super().__init__(init, label)
        self.retry_class = retry_class

    def adjust(self, arguments: dict[str, Any]) -> bool:
        """Add ``max_retries`` unless the caller gave it or the setting is 0."""
        retries = sockopts.in_force().settings.retries
        if retries <= 0 or "max_retries" in arguments:
            return False
        arguments["max_retries"] = connect_retry(self.retry_class, retries)
        return True


def _plan_or_none(init: Callable[..., None], label: str, retry_class: Any) -> _AdapterPlan | None:
    """The plan for ``HTTPAdapter.__init__``, or ``None`` (said once) if this requests or its
    urllib3 lacks what the plan needs."""
    takes = parameter_names(getattr(retry_class, "__init__", None))
    parameters = parameter_names(init)
    missing = [name for name in (*RETRY_KEYWORDS, RETRY_AFTER) if name not in takes]
    if "max_retries" not in parameters:
        missing.append(f"{label}(max_retries=)")
    if missing:
        log_once(
            "noretry:" + label,
            WARNING,
            "%s: no %s here (urllib3 < 1.26?); its connects are not retried",
            label,
            ", ".join(missing),
        )
        return None
    return _AdapterPlan(init, label, retry_class)


def patch(module: ModuleType) -> None:
    """Wrap ``HTTPAdapter.__init__`` of an imported ``requests.adapters``, once."""
    cls = class_to_patch(module, "HTTPAdapter", "requests' connects are not retried")
    retry_class = getattr(module, "Retry", None)
    if cls is None:
        return
    if not isinstance(retry_class, type):
        log_once(
            "noretryclass:" + module.__name__,
            WARNING,
            "%s.Retry not found; requests' connects are not retried",
            module.__name__,
        )
        return
    label = f"{module.__name__}.HTTPAdapter"
    _patcher.wrap_init(cls, functools.partial(_plan_or_none, label=label, retry_class=retry_class))
    logging.getLogger(URLLIB3_POOL_LOGGER).addFilter(_records_filter)  # once: a set in effect
    log_once("patched:" + module.__name__, INFO, "keepalive-patch applied to %s", module.__name__)


def unpatch() -> None:
    """Restore the exact original ``__init__``; disarm ours where another wrapper covers it."""
    _patcher.unwrap_all()
    logging.getLogger(URLLIB3_POOL_LOGGER).removeFilter(_records_filter)


def wrapped() -> list[tuple[type, str, Any]]:
    """(class, attribute, original) of every method this integration wraps now."""
    return _patcher.wrapped()
