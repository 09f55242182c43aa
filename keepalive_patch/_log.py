"""The ``keepalive_patch`` logger, created on first use so that idle imports stay free.

``logging`` costs milliseconds to import; the hook runs at interpreter start, so nothing here
touches it until the shim actually has something to say.  The level names below are
``logging``'s own numbers, spelled out so that callers need not import ``logging`` to say them.
"""

from __future__ import annotations

import _thread
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

LOGGER_NAME = "keepalive_patch"
WARNING = 30
INFO = 20
DEBUG = 10
#: The ``log_once`` key of "cannot import wrapt": said once, wherever it is noticed first.
NO_WRAPT = "nowrapt"

_said: set[str] = set()
_lock = _thread.allocate_lock()


def logger() -> logging.Logger:
    """Return the package logger, with a NullHandler so nothing reaches stderr by default."""
    import logging

    log = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
        log.addHandler(logging.NullHandler())
    return log


def log_once(key: str, level: int, msg: str, *args: object, exc_info: bool = False) -> None:
    """Log ``msg`` the first time ``key`` is seen in this process; later calls are silent."""
    with _lock:
        if key in _said:
            return
        _said.add(key)
    logger().log(level, msg, *args, exc_info=exc_info)


def forget() -> None:
    """Let every message be logged again: ``check`` does, so that its report shows them all."""
    with _lock:
        _said.clear()
