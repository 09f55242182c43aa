"""The integration contract (``keepalive_patch/integrations/__init__.py``), held over every
integration in the registry: exactly ``patch`` / ``unpatch`` / ``wrapped``; ``wrapped()`` tells
the truth about the classes; ``patch`` is idempotent and ``unpatch`` exact."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

import keepalive_patch

INTEGRATIONS = sorted({integration for integration, _ in keepalive_patch.WATCHED.values()})


def _modules_of(integration: str) -> list[ModuleType]:
    """The installed modules ``integration`` watches, imported."""
    found = []
    for module, (owner, _) in keepalive_patch.WATCHED.items():
        if owner != integration:
            continue
        try:
            found.append(importlib.import_module(module))
        except ImportError:
            continue
    return found


@pytest.fixture(params=INTEGRATIONS)
def integration(request: pytest.FixtureRequest) -> tuple[ModuleType, list[ModuleType]]:
    modules = _modules_of(str(request.param))
    if not modules:
        pytest.skip(f"nothing {request.param} watches is installed here")
    keepalive_patch.apply()  # every installed module patched: the state a host sees
    return importlib.import_module(f"keepalive_patch.integrations.{request.param}"), modules


def test_exports_exactly_the_contract(integration: tuple[ModuleType, list[ModuleType]]) -> None:
    module, _ = integration
    assert module.__all__ == ["patch", "unpatch", "wrapped"]
    assert all(callable(getattr(module, name)) for name in module.__all__)


def test_wrapped_is_what_the_classes_hold(
    integration: tuple[ModuleType, list[ModuleType]],
) -> None:
    module, _ = integration
    wrapped = module.wrapped()
    assert wrapped, "an installed library is wrapped"
    for cls, attribute, original in wrapped:
        assert cls.__dict__[attribute] is not original, (cls, attribute)
        assert getattr(cls.__dict__[attribute], "__wrapped__", None) is original


def test_patch_is_idempotent_and_unpatch_exact(
    integration: tuple[ModuleType, list[ModuleType]],
) -> None:
    module, watched = integration
    before = module.wrapped()
    holding = {(cls, name): cls.__dict__[name] for cls, name, _ in before}
    for library in watched:
        module.patch(library)
    assert module.wrapped() == before
    assert {(cls, name): cls.__dict__[name] for cls, name, _ in before} == holding
    module.unpatch()
    try:
        assert module.wrapped() == []
        for cls, attribute, original in before:
            assert cls.__dict__[attribute] is original, (cls, attribute)
    finally:
        keepalive_patch.remove()
        keepalive_patch.apply()
