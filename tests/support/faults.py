"""Faults planted in ``keepalive_patch.sockopts`` to prove the shim contains its own failures."""

from __future__ import annotations

from typing import Any

import pytest

from keepalive_patch import sockopts
from keepalive_patch.sockopts import SocketOption


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("boom")


def break_sockopts(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``sockopts.<name>`` raise ``RuntimeError("boom")``: an internal failure of ours."""
    monkeypatch.setattr(sockopts, name, _boom)


def offer_extra_option(monkeypatch: pytest.MonkeyPatch, option: SocketOption) -> None:
    """Add ``option`` to the keepalive options the shim offers (call ``apply()`` after)."""
    real = sockopts.keepalive_options
    monkeypatch.setattr(sockopts, "keepalive_options", lambda settings: [*real(settings), option])
