"""Which HTTP libraries this environment has, and what each can take."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from types import ModuleType
from typing import Any

import pytest

from keepalive_patch.check_clients import takes_socket_options

__all__ = [
    "LIBRARIES",
    "MODES",
    "all_wrapped",
    "has_socket_factory",
    "installed_libraries",
    "original_of",
    "require_socket_options",
    "retries_only_reason",
    "takes_socket_options",
    "version_of",
    "wrapped_classes",
]

LIBRARIES = ("httpx", "httpx2")


def installed_libraries() -> tuple[ModuleType, ...]:
    """httpx and httpx2, as far as this environment has them."""
    return tuple(
        importlib.import_module(name) for name in LIBRARIES if importlib.util.find_spec(name)
    )


def version_of(lib: ModuleType) -> str:
    return f"{lib.__name__} {getattr(lib, '__version__', '(unknown version)')}"


def retries_only_reason(lib: ModuleType) -> str:
    """Why a test of keepalive options (or of their effect) cannot run with ``lib``."""
    return (
        f"{version_of(lib)} transports take no socket_options (httpx < 0.25): the shim gives "
        "them retries only, no keepalive options"
    )


def require_socket_options(lib: ModuleType) -> None:
    """Skip, saying exactly why, unless ``lib`` can carry keepalive options."""
    if not takes_socket_options(lib):
        pytest.skip(retries_only_reason(lib))


MODES = ("sync", "asyncio", "trio")


# -- what a test may ask an integration: its ``wrapped()`` (see ``keepalive_patch.integrations``)


def original_of(integration: Any, cls: type, attribute: str = "__init__") -> Any:
    """What ``cls.attribute`` was before ``integration`` wrapped it."""
    for wrapped_class, name, found in integration.wrapped():
        if wrapped_class is cls and name == attribute:
            return found
    raise LookupError(f"{integration.__name__} does not wrap {cls.__qualname__}.{attribute}")


def all_wrapped() -> list[tuple[type, str, Any]]:
    """``wrapped()`` of every integration in the registry that has been loaded."""
    import sys

    import keepalive_patch

    found = []
    for integration in dict.fromkeys(name for name, _ in keepalive_patch.WATCHED.values()):
        module = sys.modules.get(f"keepalive_patch.integrations.{integration}")
        if module is not None:
            found += module.wrapped()
    return found


def wrapped_classes(integration: Any) -> list[type]:
    """The classes ``integration`` wraps a method of now, in the order it wrapped them."""
    return list(dict.fromkeys(cls for cls, _, _ in integration.wrapped()))


def has_socket_factory(connector_class: type) -> bool:
    """Whether this aiohttp's ``TCPConnector`` takes ``socket_factory`` (aiohttp >= 3.12)."""
    return "socket_factory" in inspect.signature(connector_class).parameters
