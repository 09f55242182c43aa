"""``import keepalive_patch`` and ``LIBRARY`` as a host would; print, as JSON, what the shim did.

Usage: ``shim_state.py LIBRARY``.  ``applied``: ``keepalive_patch.is_applied()``; ``init``: the
type of what stands in ``HTTPTransport.__init__`` (``function`` when untouched); ``retries``:
the connect retries of a transport built with no arguments; ``wrapt``: whether building it
loaded wrapt.  The settings come from the ``KEEPALIVE_PATCH_*`` environment.
"""

import importlib
import json
import sys

import keepalive_patch

lib = importlib.import_module(sys.argv[1])
applied = keepalive_patch.is_applied()
init = type(lib.HTTPTransport.__dict__["__init__"]).__name__
retries = lib.HTTPTransport()._pool._retries
print(
    json.dumps(
        {"applied": applied, "init": init, "retries": retries, "wrapt": "wrapt" in sys.modules}
    )
)
