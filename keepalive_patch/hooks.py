"""Post-import hooks: patch httpx / httpx2 the moment they are imported, not before.

A minimal cousin of ``wrapt.importer``: a ``sys.meta_path`` finder that lets the real finders
locate the module, then runs a callback right after the module body has executed.  It imports
nothing beyond ``sys`` and ``_thread`` so that installing it at interpreter start is free.
"""

import _thread
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any, Callable

    Callback = Callable[[ModuleType], None]

#: The libraries whose transports we patch.
TRANSPORT_TARGETS = ("httpx", "httpx2")
#: Their cores, whose proxy pools we patch (``keepalive_patch.proxies``).
CORE_TARGETS = ("httpcore", "httpcore2")
TARGETS = TRANSPORT_TARGETS + CORE_TARGETS


class PostImportFinder:
    """Finds nothing itself: it decorates the spec another finder returns for a watched name."""

    def __init__(self, names: "Sequence[str]", callback: "Callback") -> None:
        self.names = frozenset(names)
        self.callback = callback
        self._searching = _thread._local()

    def find_spec(
        self,
        fullname: str,
        path: "Sequence[str] | None" = None,
        target: "ModuleType | None" = None,
    ) -> "ModuleSpec | None":
        if fullname not in self.names or getattr(self._searching, fullname, False):
            return None
        setattr(self._searching, fullname, True)  # other hook finders may ask the meta path again
        try:
            spec = _find_with_others(self, fullname, path, target)
        finally:
            setattr(self._searching, fullname, False)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _CallbackLoader(spec.loader, self.callback)  # type: ignore[assignment]
        return spec


def _find_with_others(
    skip: object, fullname: str, path: "Sequence[str] | None", target: "ModuleType | None"
) -> "ModuleSpec | None":
    for finder in list(sys.meta_path):
        find_spec = getattr(finder, "find_spec", None)
        if finder is skip or find_spec is None:
            continue
        spec: ModuleSpec | None = find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None


class _CallbackLoader:
    """Runs the real loader, then the callback; any other attribute is the real loader's."""

    def __init__(self, loader: "Any", callback: "Callback") -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: "ModuleSpec") -> "ModuleType | None":
        create: Callable[[ModuleSpec], ModuleType | None] | None = getattr(
            self._loader, "create_module", None
        )
        return None if create is None else create(spec)

    def exec_module(self, module: "ModuleType") -> None:
        # Put the real loader back first: importlib.resources and friends look at it.
        module.__loader__ = self._loader
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = self._loader
        self._loader.exec_module(module)
        run_callback(self._callback, module)

    def __getattr__(self, name: str) -> "Any":
        return getattr(self._loader, name)


def run_callback(callback: "Callback", module: "ModuleType") -> None:
    """Call ``callback(module)``; a failure is logged once and never reaches the importer."""
    try:
        callback(module)
    except Exception:
        from keepalive_patch._log import log_once

        log_once(
            "hook:" + module.__name__,
            30,
            "keepalive-patch could not patch %s; it runs unpatched",
            module.__name__,
            exc_info=True,
        )


_lock = _thread.RLock()
_finder: "PostImportFinder | None" = None


def install(callback: "Callback", names: "Sequence[str]" = TARGETS) -> None:
    """Run ``callback`` for each of ``names`` now if imported, else as soon as it is imported."""
    global _finder
    with _lock:
        if _finder is None:
            _finder = PostImportFinder(names, callback)
            sys.meta_path.insert(0, _finder)
    for name in names:
        module = sys.modules.get(name)
        if module is not None:
            run_callback(callback, module)


def uninstall() -> None:
    """Remove the finder; modules imported from now on are left alone."""
    global _finder
    with _lock:
        if _finder is not None:
            if _finder in sys.meta_path:
                sys.meta_path.remove(_finder)
            _finder = None


def is_installed() -> bool:
    return _finder is not None
