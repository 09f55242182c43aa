"""Print, as a JSON list, the modules ``import keepalive_patch`` adds to a fresh interpreter.

Nothing else is imported before it (``json`` comes after), so every module it pulls in shows.
"""

import sys

BEFORE = set(sys.modules)

import keepalive_patch  # noqa: E402, F401

ADDED = sorted(set(sys.modules) - BEFORE)

import json  # noqa: E402

print(json.dumps(ADDED))
