"""The shim without wrapt: ``import wrapt`` fails, and transports are built untouched.

Usage: ``no_wrapt.py LIBRARY``.  Prints, as JSON, the ``socket_options`` and connect retries of
a transport built with ``retries=0`` (``[null, 0]``: nothing of ours, and no error).
"""

import importlib
import json
import sys

import keepalive_patch  # noqa: F401

lib = importlib.import_module(sys.argv[1])
sys.modules["wrapt"] = None  # type: ignore[assignment]  # import wrapt now raises ImportError
transport = lib.HTTPTransport(retries=0)
print(json.dumps([getattr(transport._pool, "_socket_options", None), transport._pool._retries]))
