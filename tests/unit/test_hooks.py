"""The post-import finder, on real modules written to a temporary directory."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Protocol

import pytest

import keepalive_patch as hooks


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("kp_target")]:
        del sys.modules[name]


def write_module(directory: Path, name: str, body: str = "VALUE = 1\n") -> None:
    (directory / f"{name}.py").write_text(body)
    importlib.invalidate_caches()


@pytest.fixture
def finder_for() -> Iterator[list[hooks.PostImportFinder]]:
    installed: list[hooks.PostImportFinder] = []
    yield installed
    for finder in installed:
        sys.meta_path.remove(finder)


def add_finder(
    installed: list[hooks.PostImportFinder], name: str, seen: list[ModuleType]
) -> hooks.PostImportFinder:
    finder = hooks.PostImportFinder([name], seen.append)
    sys.meta_path.insert(0, finder)
    installed.append(finder)
    return finder


class Watch(Protocol):
    """The ``watch`` fixture's function (a Protocol: its ``body`` has a default)."""

    def __call__(self, name: str, body: str = ...) -> list[ModuleType]: ...


@pytest.fixture
def watch(module_dir: Path, finder_for: list[hooks.PostImportFinder]) -> Watch:
    """``watch(name, body)``: write module ``name`` and put a finder for it first on
    ``sys.meta_path``; returns the list of the modules its hook is called with."""

    def watch(name: str, body: str = "VALUE = 1\n") -> list[ModuleType]:
        write_module(module_dir, name, body)
        seen: list[ModuleType] = []
        add_finder(finder_for, name, seen)
        return seen

    return watch


def test_callback_runs_after_module_body(watch: Watch) -> None:
    seen = watch("kp_target_a")
    module = importlib.import_module("kp_target_a")
    assert seen == [module]
    assert module.VALUE == 1
    importlib.import_module("kp_target_a")
    assert len(seen) == 1, "a cached import does not run the hook again"


def test_real_loader_is_restored(watch: Watch) -> None:
    watch("kp_target_b")
    module = importlib.import_module("kp_target_b")
    assert type(module.__loader__).__name__ == "SourceFileLoader"
    assert module.__spec__ is not None
    assert module.__spec__.loader is module.__loader__


def test_other_names_are_not_touched(
    module_dir: Path, finder_for: list[hooks.PostImportFinder]
) -> None:
    write_module(module_dir, "kp_target_c")
    seen: list[ModuleType] = []
    add_finder(finder_for, "kp_target_other", seen)
    importlib.import_module("kp_target_c")
    assert seen == []


def test_missing_module_still_raises(finder_for: list[hooks.PostImportFinder]) -> None:
    add_finder(finder_for, "kp_target_missing", [])
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("kp_target_missing")


def test_two_hook_finders_both_run_once(watch: Watch) -> None:
    """Another instrumenter's finder (ddtrace, wrapt, opentelemetry) may sit beside ours."""
    first = watch("kp_target_d")
    second = watch("kp_target_d")
    importlib.import_module("kp_target_d")
    assert len(first) == len(second) == 1


def test_wrapt_post_import_hook_beside_ours(watch: Watch) -> None:
    wrapt = pytest.importorskip("wrapt")
    theirs: list[ModuleType] = []
    wrapt.register_post_import_hook(theirs.append, "kp_target_w")
    ours = watch("kp_target_w")
    module = importlib.import_module("kp_target_w")
    assert ours == [module]
    assert theirs == [module]


def test_reload_runs_the_hook_again(watch: Watch) -> None:
    seen = watch("kp_target_e")
    module = importlib.import_module("kp_target_e")
    importlib.reload(module)
    assert len(seen) == 2


def test_failing_callback_is_logged_not_raised(
    module_dir: Path,
    finder_for: list[hooks.PostImportFinder],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_module(module_dir, "kp_target_f")

    def explode(module: ModuleType) -> None:
        raise RuntimeError("boom")

    finder = hooks.PostImportFinder(["kp_target_f"], explode)
    sys.meta_path.insert(0, finder)
    finder_for.append(finder)
    with caplog.at_level(logging.WARNING, logger="keepalive_patch"):
        module = importlib.import_module("kp_target_f")
    assert module.VALUE == 1
    assert "could not patch kp_target_f" in caplog.text


def test_failing_module_body_raises_its_own_error(watch: Watch) -> None:
    seen = watch("kp_target_g", "raise ImportError('their own')\n")
    with pytest.raises(ImportError, match="their own"):
        importlib.import_module("kp_target_g")
    assert seen == []


def test_install_runs_callback_for_already_imported() -> None:
    seen: list[ModuleType] = []
    hooks._uninstall()
    try:
        hooks._install(seen.append, names=("json",))
        import json

        assert seen == [json]
    finally:
        hooks._uninstall()
