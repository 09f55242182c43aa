"""Build one transport of ``LIBRARY`` under the shim; print the handlers of its logger.

Usage: ``logger_handlers.py LIBRARY``.  A library must leave logging to the host: the
``keepalive_patch`` logger has only a ``NullHandler``, whatever it has to say.
"""

import importlib
import json
import logging
import sys

import keepalive_patch  # noqa: F401

lib = importlib.import_module(sys.argv[1])
lib.HTTPTransport()
print(json.dumps([type(h).__name__ for h in logging.getLogger("keepalive_patch").handlers]))
