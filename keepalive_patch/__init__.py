"""keepalive-patch: TCP keepalive and one connect retry for every HTTP client of a process.

``import keepalive_patch`` is enough: from then on every transport, connection pool and connector
of the libraries in ``WATCHED`` gets keepalive socket options (and httpx transports ``retries=1``)
unless the caller set them.

This module is the whole start-up path: the public API, the registry of integrations and the
post-import finder that serves it.  They share one module because each module loaded at
interpreter start costs about 1 % of a bare start; it imports nothing beyond what a bare
interpreter has loaded (``os``, ``sys``, ``_thread``), and explains the finder in comments
(docstrings are loaded at start, comments are not).  The rest of the package, and wrapt, follow
the HTTP libraries into the process.
"""

import _thread
import os
import sys

# Start-up path: no ``typing`` (~6 ms) and no ``__future__``; annotations are strings.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any, Callable

    from keepalive_patch.config import Settings
    from keepalive_patch.sockopts import SocketOption

    Callback = Callable[[ModuleType], None]

__all__ = ["Settings", "__version__", "apply", "is_applied", "remove", "settings", "socket_options"]
__version__ = "0.2.0"

# -- the public API --------------------------------------------------------------------------------

#: ``config.DISABLE_VAR`` and ``config.ENABLED_WORDS``, spelled out here so that an ordinary
#: start never loads ``config``.
_DISABLE_VAR = "KEEPALIVE_PATCH_DISABLE"
_ENABLED_WORDS = ("", "0", "false", "no", "off")


def __getattr__(name: str) -> "Any":
    """``keepalive_patch.Settings``, loaded on first use for the same reason."""
    if name == "Settings":
        from keepalive_patch.config import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def apply(
    *,
    idle: "int | None" = None,
    interval: "int | None" = None,
    count: "int | None" = None,
    retries: "int | None" = None,
    user_timeout: "int | None" = None,
    replay: "bool | None" = None,
    skip: "Iterable[str] | None" = None,
) -> bool:
    """Patch every watched HTTP library, now or when imported; returns ``is_applied()``
    (False if disabled, or if this interpreter cannot import wrapt).

    Arguments override the ``KEEPALIVE_PATCH_*`` environment (see ``config.TABLE``) and raise
    ``ValueError`` when out of bounds.  Calling again changes the settings for clients made
    afterwards; the classes are still wrapped only once.
    """
    from keepalive_patch import config

    explicit = {
        "idle": idle,
        "interval": interval,
        "count": count,
        "retries": retries,
        "user_timeout": user_timeout,
        "replay": replay,
        "skip": skip,
    }
    config.set_explicit(explicit)
    if _disabled():
        return False
    if skip is not None:
        _unpatch_all()  # patched again below, but for what is skipped now
    _install(_patch_imported, WATCHED)
    return wrapt_importable()


def _disabled() -> bool:
    """``KEEPALIVE_PATCH_DISABLE``, failing closed (``config.disabled`` says why)."""
    return os.environ.get(_DISABLE_VAR, "").strip().lower() not in _ENABLED_WORDS


def remove() -> None:
    """Undo ``apply()``: restore the original methods and stop watching imports."""
    from keepalive_patch import config

    _uninstall()
    _unpatch_all()
    config.set_explicit({})


def is_applied() -> bool:
    """True between ``apply()`` (or ``import keepalive_patch``) and ``remove()``, when this
    interpreter can import wrapt (without it nothing can be patched)."""
    return _finder is not None and wrapt_importable()


# Every wrapper is made with wrapt, which is imported only at the first client built (it costs
# ~20 ms).  Whether it *can* be imported is a spec lookup on ``sys.meta_path`` (no import), made
# when an HTTP library is patched or ``is_applied()`` is asked, never at interpreter start.  A
# success is kept; a failure is looked up again next time (the app may extend ``sys.path``),
# unless importing wrapt itself failed (``_wrapping`` sets ``_wrapt_failed`` then).
_wrapt_found = False
_wrapt_failed = False


def wrapt_importable() -> bool:
    """Whether this interpreter can import wrapt, and so patch anything at all."""
    global _wrapt_found
    if _wrapt_failed:
        return False
    if not _wrapt_found:
        _wrapt_found = _find_wrapt()
    return _wrapt_found


def _find_wrapt() -> bool:
    if sys.modules.get("wrapt") is not None:
        return True
    for finder in list(sys.meta_path):
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            if find_spec("wrapt", None) is not None:
                return True
        except Exception:  # a broken finder of someone else's: ask the next one
            continue
    return False


def settings() -> "Settings":
    """The settings in force: defaults, then environment, then ``apply()`` arguments."""
    from keepalive_patch import sockopts

    return sockopts.in_force().settings


def socket_options() -> "list[SocketOption]":
    """The keepalive options this host accepts, as ``(level, optname, value)`` triples."""
    from keepalive_patch import sockopts

    return list(sockopts.in_force().options)


# -- the registry of integrations (``keepalive_patch/integrations/``) ------------------------------

#: module -> (the integration whose ``patch(module)`` the finder calls once it is imported, the
#: library it serves: the name ``KEEPALIVE_PATCH_SKIP`` takes to leave exactly that library alone).
#: httpcore is httpx's engine: its proxy pools and replay serve httpx's requests, so skipping
#: httpx leaves them alone too (and httpcore2 goes with httpx2).
WATCHED = {
    "httpx": ("httpx", "httpx"),  # transports: keepalive options and retries
    "httpcore": ("httpcore", "httpx"),  # proxy pools (the client->proxy socket) and replay
    "httpx2": ("httpx", "httpx2"),
    "httpcore2": ("httpcore", "httpx2"),
    "urllib3.connection": ("urllib3", "urllib3"),  # every connection (requests, botocore...)
    "requests.adapters": ("requests", "requests"),  # HTTPAdapter: one connect retry
    "aiohttp": ("aiohttp", "aiohttp"),  # TCPConnector: options on every connection it opens
}


def known_names() -> "list[str]":
    """What ``KEEPALIVE_PATCH_SKIP`` accepts: the libraries, each name meaning one of them."""
    return sorted({library for _, library in WATCHED.values()})


def _patch_imported(module: "object") -> None:
    """The finder's callback: hand ``module`` to the integration watching it, unless skipped."""
    import importlib

    from keepalive_patch import config

    name = getattr(module, "__name__", "")
    watched = WATCHED.get(name)
    if watched is None or watched[1] in config.current().skip:
        return
    if not wrapt_importable():
        _say_no_wrapt(name)
        return
    importlib.import_module(f"{__name__}.integrations.{watched[0]}").patch(module)


def _say_no_wrapt(name: str) -> None:
    """One log line for the whole process: nothing is patched without wrapt."""
    from keepalive_patch._log import NO_WRAPT, WARNING, log_once

    log_once(
        NO_WRAPT,
        WARNING,
        "keepalive-patch cannot import wrapt with this Python (%s); %s and every other HTTP "
        "library run unpatched",
        sys.executable,
        name,
    )


def _unpatch_all() -> None:
    """Undo every integration that has patched something (loaded ones only: others did not)."""
    for integration in dict.fromkeys(integration for integration, _ in WATCHED.values()):
        loaded = sys.modules.get(f"{__name__}.integrations.{integration}")
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
        _run_callback(self._callback, module)

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
        _run_callback(self._callback, module)
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


def _run_callback(callback: "Callback", module: "ModuleType") -> None:
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


def _install(callback: "Callback", names: "Collection[str]") -> None:
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
            _run_callback(callback, module)


def _uninstall() -> None:
    """Remove the finder; modules imported from now on are left alone."""
    global _finder
    with _lock:
        if _finder is not None:
            if _finder in sys.meta_path:
                sys.meta_path.remove(_finder)
            _finder = None


if not _disabled():
    _install(_patch_imported, WATCHED)
