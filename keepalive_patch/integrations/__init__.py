"""The registry of integrations, and the post-import finder that hands each its library.

An integration is one module here, ``keepalive_patch.integrations.<name>``, with two functions
(dd-trace-py's contract): ``patch(module)``, called right after a module it watches has been
imported (and again on ``reload``; it must be idempotent), and ``unpatch()``, which undoes
everything.  Adding a library means adding its file and its line in ``WATCHED``; nothing else.

This module is the start-up path, with ``keepalive_patch/__init__.py``; it imports nothing
beyond ``sys`` and ``_thread``, and explains the finder in comments (docstrings are loaded at
interpreter start, comments are not).
"""

import _thread
import sys

# Start-up path: no ``typing`` (~6 ms) and no ``__future__``; annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any, Callable

    Callback = Callable[[ModuleType], None]


# -- the registry ----------------------------------------------------------------------------------

#: integration -> the modules whose import makes the finder call its ``patch(module)``.
WATCHED = {
    "httpx": ("httpx", "httpx2"),  # transports: keepalive options and retries
    "httpcore": ("httpcore", "httpcore2"),  # proxy pools: the same on the client->proxy socket
    "urllib3": ("urllib3.connection",),  # every connection: keepalive options (requests, botocore)
    "requests": ("requests.adapters",),  # HTTPAdapter: one connect retry
    "aiohttp": ("aiohttp",),  # TCPConnector: keepalive options on every connection it opens
}


def watched_modules() -> "list[str]":
    """Every module name the finder watches."""
    return [module for modules in WATCHED.values() for module in modules]


def known_names() -> "list[str]":
    """What ``KEEPALIVE_PATCH_SKIP`` accepts: integration names and the module names they watch."""
    return sorted(set(WATCHED).union(watched_modules()))


def patch_imported(module: "object") -> None:
    """The finder's callback: hand ``module`` to each integration watching it, unless skipped."""
    import importlib

    from keepalive_patch import config

    name = getattr(module, "__name__", "")
    skip = config.current().skip
    for integration, modules in WATCHED.items():
        if name in modules and integration not in skip and name not in skip:
            importlib.import_module(f"{__name__}.{integration}").patch(module)


def unpatch_all() -> None:
    """Undo every integration that has patched something (loaded ones only: others did not)."""
    import sys

    for integration in WATCHED:
        loaded = sys.modules.get(f"{__name__}.{integration}")
        if loaded is not None:
            loaded.unpatch()


# -- the post-import finder ------------------------------------------------------------------------

# The finder is a minimal cousin of ``wrapt.importer``: a ``sys.meta_path`` finder that lets
# the real finders locate a watched module, then wraps the loader they return so that a callback
# runs right after the module body has executed.  Step by step:
#
# - ``find_spec`` is asked first for every import.  For a watched name it asks the other finders
#   on ``sys.meta_path`` (marking the name on this thread, so that another hook finder asking
#   the meta path again does not loop back into us), and swaps the spec's loader for ours.
# - Our loader's ``exec_module`` first puts the real loader back on the module and its spec,
#   then executes the module with it and calls the callback.  Putting it back matters: code such
#   as ``importlib.resources`` and ``pkgutil`` look at ``module.__loader__`` and must see the
#   real one.  As wrapt's ``_self_set_loader`` does, we restore ``__loader__`` only where it is
#   ours or unset (a loader that sets its own keeps it), and tolerate read-only modules.
# - A loader with no ``exec_module`` (Python 3.9's ``zipimporter``: zipapp, PEX, shiv) only has
#   the legacy ``load_module``; importlib then calls ``load_module`` on whatever ``spec.loader``
#   is, so we hand it a legacy wrapper that calls the real one and then the callback.  Without
#   it a library imported from a zip would be silently left unpatched.
#
# Each module loaded at interpreter start costs about 1 % of a bare start, which is why the
# registry and the finder share this one module.


class PostImportFinder:
    """Finds nothing itself: it decorates the spec another finder returns for a watched name."""

    def __init__(self, names: "Collection[str]", callback: "Callback") -> None:
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
        if spec is None or spec.loader is None:
            return spec
        if hasattr(spec.loader, "exec_module"):
            spec.loader = _CallbackLoader(spec.loader, self.callback)  # type: ignore[assignment]
        elif hasattr(spec.loader, "load_module"):
            spec.loader = _LegacyCallbackLoader(spec.loader, self.callback)  # type: ignore[assignment]
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
        _restore_loader(module, self, self._loader)
        self._loader.exec_module(module)
        run_callback(self._callback, module)

    def __getattr__(self, name: str) -> "Any":
        return getattr(self._loader, name)


class _LegacyCallbackLoader:
    """For loaders with only ``load_module``: it runs, then the callback."""

    def __init__(self, loader: "Any", callback: "Callback") -> None:
        self._loader = loader
        self._callback = callback

    def load_module(self, fullname: str) -> "ModuleType":
        module: ModuleType = self._loader.load_module(fullname)
        _restore_loader(module, self, self._loader)
        run_callback(self._callback, module)
        return module

    def __getattr__(self, name: str) -> "Any":
        return getattr(self._loader, name)


def _restore_loader(module: "ModuleType", ours: object, real: "Any") -> None:
    """Put the real loader back where we stand (or nothing stands), as wrapt does."""
    if getattr(module, "__loader__", None) in (None, ours):
        try:  # noqa: SIM105 - contextlib is not loaded at interpreter start
            module.__loader__ = real
        except AttributeError:  # a module type with read-only attributes: leave it
            pass
    spec = getattr(module, "__spec__", None)
    if spec is not None and getattr(spec, "loader", None) is ours:
        spec.loader = real


def run_callback(callback: "Callback", module: "ModuleType") -> None:
    """Call ``callback(module)``; a failure is logged once and never reaches the importer."""
    try:
        callback(module)
    except Exception:
        from keepalive_patch._log import WARNING, log_once

        log_once(
            "hook:" + module.__name__,
            WARNING,
            "keepalive-patch could not patch %s; it runs unpatched",
            module.__name__,
            exc_info=True,
        )


_lock = _thread.RLock()
_finder: "PostImportFinder | None" = None


def install(callback: "Callback", names: "Collection[str]") -> None:
    """Run ``callback`` for each of ``names`` now if imported, else as soon as it is imported.

    Installing again replaces the callback and the names (one finder, one callback, always).
    """
    global _finder
    with _lock:
        if _finder is None:
            _finder = PostImportFinder(names, callback)
            sys.meta_path.insert(0, _finder)
        else:
            _finder.names, _finder.callback = frozenset(names), callback
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
