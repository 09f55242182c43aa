"""Which HTTP libraries this environment has, and what each can take."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

import pytest

from keepalive_patch.integrations.httpx import takes_socket_options

__all__ = [
    "LIBRARIES",
    "MODES",
    "installed_libraries",
    "require_socket_options",
    "retries_only_reason",
    "takes_socket_options",
    "version_of",
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
