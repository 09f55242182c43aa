"""Import keepalive-patch and an HTTP library in a given order, then judge the library's transports.

Usage: ``import_order.py LIBRARY STEP [STEP ...]``; the steps run in the order given:

``shim``
    ``import keepalive_patch``; the import applies the shim itself.
``shim-idle``
    ``import keepalive_patch`` with ``KEEPALIVE_PATCH_DISABLE=1`` set for the import only, so that
    nothing is applied yet and the ``apply`` / ``remove`` steps alone decide (the variable is
    dropped again right after the import: ``apply()`` reads it at each call).
``import``
    ``import LIBRARY``.
``apply`` / ``remove``
    ``keepalive_patch.apply()`` / ``keepalive_patch.remove()``.
``use``
    Build one transport of each class: the first one replaces the arming stub by wrapt's wrapper.
``reload``
    ``importlib.reload(LIBRARY)``.  Its transport classes live in submodules, so they stay.
``reload-deep``
    Reload the modules that define and use the transport classes, then ``LIBRARY``: the library
    now names new classes, which only the patch run on the reload can have wrapped.

Then one sync and one async request go to a loopback server started here, and a JSON report is
printed: ``applied`` (``is_applied()``), ``layers`` (per transport class, how many wrappers stand
between its ``__init__`` and the library's own function: 1 when patched once), ``originals``
(where those functions come from), ``renewed`` (whether the classes differ from those first
imported) and ``results`` (per connection, as ``http_app.py`` reports them).
"""

import asyncio
import importlib
import json
import os
import sys
from types import ModuleType
from typing import Any

from http_app import async_request, serving, sync_request

CLASSES = ("HTTPTransport", "AsyncHTTPTransport")


def library() -> ModuleType:
    return importlib.import_module(sys.argv[1])


def shim(idle: bool) -> None:
    if idle:
        os.environ["KEEPALIVE_PATCH_DISABLE"] = "1"
    import keepalive_patch  # noqa: F401

    os.environ.pop("KEEPALIVE_PATCH_DISABLE", None)


def deep_reload(lib: ModuleType) -> None:
    """Reload where the transports are defined, re-exported and used, then the library itself."""
    for name in ("_transports.default", "_transports", "_client"):
        module = sys.modules.get(f"{lib.__name__}.{name}")
        if module is not None:
            importlib.reload(module)
    importlib.reload(lib)


def innermost(cls: type) -> tuple[int, Any]:
    """How many ``__wrapped__`` links lead from ``cls.__init__`` to a function, and that one."""
    function, layers = cls.__dict__["__init__"], 0
    while hasattr(function, "__wrapped__") and layers < 10:
        function, layers = function.__wrapped__, layers + 1
    return layers, function


def shim_module() -> ModuleType:
    """``keepalive_patch`` as a shim step imported it: never imported here, the steps say when."""
    return sys.modules["keepalive_patch"]


def run(step: str, first: dict[str, type]) -> None:
    if step in ("shim", "shim-idle"):
        shim(idle=step == "shim-idle")
    elif step == "import":
        lib = library()
        first.update({name: getattr(lib, name) for name in CLASSES})
    elif step == "apply":
        shim_module().apply()
    elif step == "remove":
        shim_module().remove()
    elif step == "use":
        for name in CLASSES:
            getattr(library(), name)()
    elif step == "reload":
        importlib.reload(library())
    elif step == "reload-deep":
        deep_reload(library())
    else:
        raise SystemExit(f"unknown step {step!r}")


def main() -> None:
    first: dict[str, type] = {}
    for step in sys.argv[2:]:
        run(step, first)
    lib = library()
    classes = {name: getattr(lib, name) for name in CLASSES}
    walked = {name: innermost(cls) for name, cls in classes.items()}
    results: dict[str, dict[str, Any]] = {}
    with serving() as url:
        results[f"{lib.__name__} sync"] = sync_request(lib, url)
        results[f"{lib.__name__} async"] = asyncio.run(async_request(lib, url))
    report = {
        "applied": shim_module().is_applied(),
        "layers": {name: layers for name, (layers, _) in walked.items()},
        "originals": {name: function.__module__ for name, (_, function) in walked.items()},
        "renewed": any(classes[name] is not first[name] for name in CLASSES),
        "results": results,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
