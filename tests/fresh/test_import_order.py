"""Import orders, each in a fresh interpreter: the transports are patched when they should be, once.

What dd-trace-py's ``PatchTestCase`` runs for every integration, for httpx and httpx2 (whichever
is installed): the library imported before or after ``apply()``, ``remove()`` in between,
``apply()`` again, ``remove()`` with nothing to undo, and ``importlib.reload``.  The program is
``scripts/import_order.py``; each scenario is the list of its steps.

``import keepalive_patch`` applies the shim by itself.  So that ``apply()`` and ``remove()``
alone decide, most scenarios start with ``shim-idle``: the package is imported with
``KEEPALIVE_PATCH_DISABLE=1`` set in the process for that import only (nothing is applied), and
the variable is dropped right after, before any ``apply()`` reads it.  The scenarios starting
with ``shim`` import it as a host does, applying on import.

Each scenario is judged on live connections (one sync and one async request to a loopback
server in the program: keepalive options read back with ``getsockopt``, the retries of the
client's pool) and on the classes themselves: patched means exactly one wrapper between each
transport's ``__init__`` and the library's own function, never two.

For every integration in the registry, ``scripts/integration_lazy.py`` shows it is loaded only
once a module it watches is imported, never by ``import keepalive_patch``, and not with wrapt.
"""

from __future__ import annotations

import importlib
import importlib.util
import json

import pytest
from support.libs import LIBRARIES, has_socket_factory, takes_socket_options
from support.procs import assert_patched, assert_unpatched, run_script

from keepalive_patch import WATCHED

INSTALLED = [name for name in LIBRARIES if importlib.util.find_spec(name) is not None]

#: id: (steps, whether the library ends up patched)
SCENARIOS = {
    # patched, whichever comes first
    "import-then-apply": (["shim-idle", "import", "apply"], True),
    "apply-then-import": (["shim-idle", "apply", "import"], True),
    "import-then-import-shim": (["import", "shim"], True),
    # removed before the library arrives: it is never patched
    "apply-remove-import": (["shim-idle", "apply", "remove", "import"], False),
    "shim-remove-import": (["shim", "remove", "import"], False),
    # remove() with nothing applied and nothing imported: no error, nothing patched
    "remove-before-anything": (["shim-idle", "remove", "import"], False),
    # applied again after remove(): patched once, from the stub or from the armed wrapper
    "import-apply-remove-apply": (["shim-idle", "import", "apply", "remove", "apply"], True),
    "armed-remove-apply": (["shim-idle", "import", "apply", "use", "remove", "apply"], True),
    # apply() twice changes settings only: still one layer
    "apply-twice": (["shim-idle", "import", "apply", "use", "apply"], True),
    # reload after patching: still patched, not twice; new classes get patched on the reload
    "reload": (["shim-idle", "import", "apply", "use", "reload"], True),
    "reload-deep": (["shim-idle", "import", "apply", "use", "reload-deep"], True),
    # reload after remove(): the hook is gone, nothing patches the library again
    "remove-reload": (["shim-idle", "import", "apply", "remove", "reload-deep"], False),
}


@pytest.mark.parametrize("library", INSTALLED)
@pytest.mark.parametrize(("steps", "patched"), SCENARIOS.values(), ids=list(SCENARIOS))
def test_import_order(library: str, steps: list[str], patched: bool) -> None:
    done = run_script("import_order.py", library, *steps, flags=["-W", "error"])
    report = json.loads(done.stdout)
    assert done.stderr == "", "no error, no warning, nothing logged"
    connections = [f"{library} sync", f"{library} async"]
    if patched:
        assert_patched(report, connections=connections)
    else:
        assert_unpatched(report, connections=connections)
    assert report["applied"] is patched
    assert report["layers"] == {"HTTPTransport": int(patched), "AsyncHTTPTransport": int(patched)}
    assert all(module.startswith(f"{library}.") for module in report["originals"].values())
    assert report["renewed"] is ("reload-deep" in steps), "reload-deep makes new classes"


#: (integration, a module it watches) for every watched module installed here.
WATCHING = [
    (integration, module)
    for module, (integration, _) in WATCHED.items()
    if importlib.util.find_spec(module.partition(".")[0]) is not None  # its package is here
]


@pytest.mark.parametrize(("integration", "module"), WATCHING, ids=[m for _, m in WATCHING])
def test_integration_loads_after_its_library(integration: str, module: str) -> None:
    """Principle 3, for every integration in the registry: ``import keepalive_patch`` loads none
    of them; importing a watched module loads its integration, and wrapt still waits."""
    done = run_script("integration_lazy.py", module, flags=["-W", "error"])
    report = json.loads(done.stdout)
    assert report["idle"] == []
    assert integration in report["after"]
    assert report["wrapt"] is False, "wrapt waits for the first client built"
    assert done.stderr == ""


def test_clients_built_before_the_import_keep_their_sockets_as_they_were() -> None:
    """README's rule, exactly: a client built before ``import keepalive_patch`` gets nothing
    where its options are fixed when it is built (httpx / httpx2 clients, aiohttp >= 3.12
    connectors), and the options where the library reads them per connection (a requests
    ``Session``, aiohttp < 3.12); every client built after gets them."""
    report = json.loads(run_script("built_before.py").stdout)
    assert report["applied"] is True
    keepalive = {  # httpx < 0.25 takes no socket_options: retries only, before or after
        name: int(takes_socket_options(importlib.import_module(name)))
        for name in report["after"]
        if name.startswith("httpx")
    }
    assert report["after"] == {name: keepalive.get(name, 1) for name in report["after"]}
    expected = {name: 0 for name in keepalive}
    if "requests" in report["before"]:
        expected["requests"] = 1
    if "aiohttp" in report["before"]:
        aiohttp = importlib.import_module("aiohttp")
        expected["aiohttp"] = 0 if has_socket_factory(aiohttp.TCPConnector) else 1
    assert report["before"] == expected
