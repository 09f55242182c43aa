"""The ``keepalive_patch`` logger, created on first use so that idle imports stay free.

``logging`` costs milliseconds to import; the hook runs at interpreter start, so nothing here
touches it until the shim actually has something to say.
"""

import _thread

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging

LOGGER_NAME = "keepalive_patch"

_said: "set[str]" = set()
_lock = _thread.allocate_lock()


def logger() -> "logging.Logger":
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
    """Let every message be logged again (tests, and after ``remove()``)."""
    with _lock:
        _said.clear()
