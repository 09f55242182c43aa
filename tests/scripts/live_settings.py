"""``import keepalive_patch, LIBRARY``; one request to a loopback server started here.

Usage: ``live_settings.py LIBRARY``.  Prints, as JSON, the keepalive options read with
``getsockopt`` from the live connection: what the ``KEEPALIVE_PATCH_*`` environment asked for.
"""

import importlib
import json
import sys

from http_app import serving, sync_request

import keepalive_patch  # noqa: F401

lib = importlib.import_module(sys.argv[1])
with serving() as url:
    print(json.dumps(sync_request(lib, url)["options"]))
