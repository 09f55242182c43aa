"""keepalive-patch: TCP keepalive and one connect retry for every HTTP client of a process.

``import keepalive_patch`` is enough: from then on every transport, connection pool and connector
of the libraries in ``integrations.WATCHED`` gets keepalive socket options (and httpx transports
``retries=1``) unless the caller set them.  At interpreter start only this module and
``integrations`` (the registry and its import hook) are loaded; the rest, and wrapt, follow the
HTTP libraries into the process.
"""

import os

from keepalive_patch import integrations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from keepalive_patch.config import Settings
    from keepalive_patch.sockopts import SocketOption

__all__ = ["Settings", "__version__", "apply", "is_applied", "remove", "settings", "socket_options"]
__version__ = "0.2.0"

#: ``config.DISABLE_VAR`` and ``config.ENABLED_WORDS``, spelled out here so that an ordinary
#: start never loads ``config``: every module on the start-up path costs ~0.1 ms.
_DISABLE_VAR = "KEEPALIVE_PATCH_DISABLE"
_ENABLED_WORDS = ("", "0", "false", "no", "off")


def __getattr__(name: str) -> "Any":
    """``keepalive_patch.Settings``, loaded on first use for the same reason."""
    if name == "Settings":
        from keepalive_patch.config import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def apply(
    *,
    idle: "int | None" = None,
    interval: "int | None" = None,
    count: "int | None" = None,
    retries: "int | None" = None,
    user_timeout: "int | None" = None,
    replay: "bool | None" = None,
    skip: "Iterable[str] | None" = None,
) -> bool:
    """Patch every watched HTTP library, now or when imported; returns False if disabled.

    Arguments override the ``KEEPALIVE_PATCH_*`` environment (see ``config.TABLE``) and raise
    ``ValueError`` when out of bounds.  Calling again changes the settings for clients made
    afterwards; the classes are still wrapped only once.
    """
    from keepalive_patch import config

    explicit = {
        "idle": idle,
        "interval": interval,
        "count": count,
        "retries": retries,
        "user_timeout": user_timeout,
        "replay": replay,
        "skip": skip,
    }
    config.set_explicit(explicit)
    if _disabled():
        return False
    if skip is not None:
        integrations.unpatch_all()  # patched again below, but for what is skipped now
    integrations.install(integrations.patch_imported, integrations.watched_modules())
    return True


def _disabled() -> bool:
    """``KEEPALIVE_PATCH_DISABLE``, failing closed (``config.disabled`` says why)."""
    return os.environ.get(_DISABLE_VAR, "").strip().lower() not in _ENABLED_WORDS


def remove() -> None:
    """Undo ``apply()``: restore the original methods and stop watching imports."""
    from keepalive_patch import config

    integrations.uninstall()
    integrations.unpatch_all()
    config.set_explicit({})


def is_applied() -> bool:
    """True between ``apply()`` (or ``import keepalive_patch``) and ``remove()``."""
    return integrations.is_installed()


def settings() -> "Settings":
    """The settings in force: defaults, then environment, then ``apply()`` arguments."""
    from keepalive_patch import sockopts

    return sockopts.in_force().settings


def socket_options() -> "list[SocketOption]":
    """The keepalive options this host accepts, as ``(level, optname, value)`` triples."""
    from keepalive_patch import sockopts

    return list(sockopts.in_force().options)


if not _disabled():
    integrations.install(integrations.patch_imported, integrations.watched_modules())
