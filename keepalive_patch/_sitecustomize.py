"""Interpreter-start glue shared by every ``sitecustomize`` this project ships.

Python imports only the first ``sitecustomize`` on ``sys.path``, so putting ours first would hide
Debian's, a virtualenv's or the user's own.  Ours therefore runs the next one down the path itself,
the way ``site`` would have: registered as ``sitecustomize``, executed exactly once, and any
exception left to ``site`` to report.  Only what a bare interpreter has already loaded is imported
here (``sys``, ``os`` and the frozen import machinery).
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

MODULE_NAME = "sitecustomize"

#: Absolute paths of the ``sitecustomize`` files run through ``chain``: no file ever runs twice.
_ran: "set[str]" = set()


def chain(own_file: str) -> None:
    """Run the ``sitecustomize`` that ``own_file`` (one of ours) hides from Python, if any.

    Called from our ``sitecustomize`` after the patch has been applied.  Afterwards
    ``sys.modules["sitecustomize"]`` is that other module, so ``import sitecustomize`` anywhere
    returns it and ``site`` reports its errors exactly as it would without us.
    """
    own = os.path.abspath(own_file)
    _ran.add(own)
    spec = find_next(os.path.dirname(own), sys.path)
    if spec is None or spec.origin is None or os.path.abspath(spec.origin) in _ran:
        return
    _ran.add(os.path.abspath(spec.origin))
    _execute(spec)


def find_next(own_dir: str, path: "Sequence[str]") -> "ModuleSpec | None":
    """The spec of the first ``sitecustomize`` in ``path`` after the entry ``own_dir``.

    Every entry naming ``own_dir`` (relative or absolute) is skipped.  If ``own_dir`` is not on the
    path at all, the whole path is searched.
    """
    absolute = [
        os.path.abspath(entry or os.curdir) if isinstance(entry, str) else "" for entry in path
    ]
    start = absolute.index(own_dir) + 1 if own_dir in absolute else 0
    rest = [entry for entry, where in zip(path[start:], absolute[start:]) if where != own_dir]
    spec: ModuleSpec | None = _path_finder().find_spec(MODULE_NAME, rest)
    if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
        return None
    return spec


def _execute(spec: "ModuleSpec") -> None:
    """Import ``spec`` as ``sitecustomize`` the way the import system does, errors included."""
    module = _module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException:
        # A module that fails to import is not left in sys.modules.
        if sys.modules.get(MODULE_NAME) is module:
            del sys.modules[MODULE_NAME]
        raise


def _path_finder() -> "Any":
    # The frozen import machinery is always loaded; ``importlib.machinery`` costs 1-2 ms.
    frozen = sys.modules.get("_frozen_importlib_external")
    if frozen is not None:
        return frozen.PathFinder
    import importlib.machinery  # not CPython

    return importlib.machinery.PathFinder


def _module_from_spec(spec: "ModuleSpec") -> "ModuleType":
    frozen = sys.modules.get("_frozen_importlib")
    if frozen is not None:
        module: ModuleType = frozen.module_from_spec(spec)
        return module
    import importlib.util  # not CPython

    return importlib.util.module_from_spec(spec)
