"""Faults planted in ``keepalive_patch.sockopts`` to prove the shim contains its own failures,
and the same call with and without the shim to prove the caller sees what the library raises."""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any, Callable, TypeVar

import pytest

import keepalive_patch
from keepalive_patch import sockopts
from keepalive_patch.sockopts import SocketOption

T = TypeVar("T")


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("boom")


def break_sockopts(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``sockopts.<name>`` raise ``RuntimeError("boom")``: an internal failure of ours."""
    monkeypatch.setattr(sockopts, name, _boom)


def offer_extra_option(monkeypatch: pytest.MonkeyPatch, option: SocketOption) -> None:
    """Add ``option`` to the keepalive options the shim offers (call ``apply()`` after)."""
    real = sockopts.keepalive_options
    monkeypatch.setattr(sockopts, "keepalive_options", lambda settings: [*real(settings), option])


def raised(call: Callable[[], Any], kind: type[BaseException] = Exception) -> BaseException:
    """The exception ``call`` raises (it must raise a ``kind``)."""
    with pytest.raises(kind) as caught:
        call()
    return caught.value


def with_and_without_shim(attempt: Callable[[], T]) -> tuple[T, T]:
    """``attempt()`` with the shim applied, then again after ``keepalive_patch.remove()``."""
    patched = attempt()
    keepalive_patch.remove()
    return patched, attempt()


def warnings_from_patching_twice(
    patch: Callable[[ModuleType], None],
    module: ModuleType,
    marker: str,
    caplog: pytest.LogCaptureFixture,
) -> list[str]:
    """Patch ``module`` twice; the shim's WARNING messages that mention ``marker``."""
    with caplog.at_level(logging.WARNING, logger="keepalive_patch"):
        patch(module)
        patch(module)
    return [r.getMessage() for r in caplog.records if marker in r.getMessage()]
