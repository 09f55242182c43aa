"""The OpenTelemetry instrumentor: registered, idempotent, and reversible."""

import sys
from importlib.metadata import entry_points

import pytest

import keepalive_patch

pytest.importorskip("opentelemetry.instrumentation.instrumentor")

from keepalive_patch.otel import KeepalivePatchInstrumentor


def test_registered_as_an_opentelemetry_instrumentor() -> None:
    if sys.version_info >= (3, 10):
        group = entry_points(group="opentelemetry_instrumentor")
    else:  # Python 3.9: a dict of groups
        group = entry_points().get("opentelemetry_instrumentor", [])
    found = [ep for ep in group if ep.name == "keepalive_patch"]
    assert [ep.load() for ep in found] == [KeepalivePatchInstrumentor]


def test_instrument_keeps_what_is_in_force_and_uninstrument_removes_it() -> None:
    keepalive_patch.apply(idle=42)
    instrumentor = KeepalivePatchInstrumentor()
    instrumentor.instrument()
    instrumentor.instrument()  # OTel finding the entry point twice: silent, nothing redone
    assert keepalive_patch.is_applied()
    assert keepalive_patch.settings().idle == 42  # not reset by a second apply()
    instrumentor.uninstrument()
    assert not keepalive_patch.is_applied()
    instrumentor.instrument()
    assert keepalive_patch.is_applied()
    instrumentor.uninstrument()
