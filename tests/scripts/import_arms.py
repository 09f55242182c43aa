"""``import keepalive_patch``, then ``import LIBRARY``: the import arms the transports.

Usage: ``import_arms.py LIBRARY``.  Prints JSON: the modules ``import keepalive_patch`` added
while nothing else was imported (``modules_idle``), whether the library's
``HTTPTransport.__init__`` is wrapped right after its import (``armed``) and whether wrapt was
loaded by then (``wrapt_at_import``), then, after one transport was built, the type of what
stands in ``__init__`` (``wrapped``) and that transport's connect retries.
"""

import sys

BEFORE = set(sys.modules)

import keepalive_patch  # noqa: E402, F401

MODULES_IDLE = sorted(set(sys.modules) - BEFORE)

import importlib  # noqa: E402
import json  # noqa: E402

lib = importlib.import_module(sys.argv[1])
armed = hasattr(lib.HTTPTransport.__dict__["__init__"], "__wrapped__")
wrapt_at_import = "wrapt" in sys.modules
retries = lib.HTTPTransport()._pool._retries
print(
    json.dumps(
        {
            "modules_idle": MODULES_IDLE,
            "armed": armed,
            "wrapt_at_import": wrapt_at_import,
            "wrapped": type(lib.HTTPTransport.__dict__["__init__"]).__name__,
            "retries": retries,
        }
    )
)
