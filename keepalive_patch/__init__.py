"""keepalive-patch: TCP keepalive and one connect retry for every httpx / httpx2 transport.

``import keepalive_patch`` is enough: from then on every ``HTTPTransport`` and
``AsyncHTTPTransport`` the process builds gets keepalive socket options and ``retries=1``
unless the caller set them, and so do the connections its proxy pools open to the proxy.
At interpreter start only this module and ``hooks`` are loaded; the rest, and wrapt, follow
httpx / httpcore into the process.
"""

import os

from keepalive_patch import hooks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from keepalive_patch.config import Settings

__all__ = ["Settings", "__version__", "apply", "is_applied", "remove", "settings", "socket_options"]
__version__ = "0.1.0"

#: ``config.DISABLE_VAR``, spelled out here so that an ordinary start never loads ``config``:
#: every module on the start-up path costs ~0.1 ms of a ~10 ms interpreter start.
_DISABLE_VAR = "KEEPALIVE_PATCH_DISABLE"


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
) -> bool:
    """Patch httpx and httpx2 transports, now or when imported; returns False if disabled.

    Arguments override the ``KEEPALIVE_PATCH_*`` environment (seconds; ``user_timeout`` in ms,
    0 turns it off; ``retries=0`` leaves retries alone).  Calling again changes the settings for
    transports made afterwards; the classes are still wrapped only once.
    """
    overrides = {
        "idle": idle,
        "interval": interval,
        "count": count,
        "retries": retries,
        "user_timeout": user_timeout,
    }
    from keepalive_patch import config

    for name, value in overrides.items():
        if value is not None:
            config.check_value(name, value)
    if _disabled():
        return False
    config.configure(overrides)
    hooks.install(_patch_imported)
    return True


def _disabled() -> bool:
    if _DISABLE_VAR not in os.environ:
        return False
    from keepalive_patch import config

    return config.is_disabled(os.environ)


def _patch_imported(module: "ModuleType") -> None:
    """httpx / httpx2: wrap the transports; httpcore / httpcore2: wrap the proxy pools."""
    if module.__name__ in hooks.CORE_TARGETS:
        from keepalive_patch import proxies

        proxies.patch_module(module)
    else:
        from keepalive_patch import patch

        patch.patch_module(module)


def remove() -> None:
    """Undo ``apply()``: restore the original ``__init__`` objects and stop watching imports."""
    from keepalive_patch import config, patch, proxies

    hooks.uninstall()
    patch.unpatch_all()
    proxies.unpatch_all()
    config.configure({})


def is_applied() -> bool:
    """True between ``apply()`` (or ``import keepalive_patch``) and ``remove()``."""
    return hooks.is_installed()


def settings() -> "Settings":
    """The settings in force: defaults, then environment, then ``apply()`` arguments."""
    from keepalive_patch import patch

    return patch.current()[0]


def socket_options() -> "list[tuple[int, int, int]]":
    """The keepalive options this host accepts, as ``(level, optname, value)`` triples."""
    from keepalive_patch import patch

    return list(patch.current()[1].accepted)


if not _disabled():
    hooks.install(_patch_imported)
