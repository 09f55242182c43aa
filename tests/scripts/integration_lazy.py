"""When each integration module is loaded: after its library, never at ``import keepalive_patch``.

Usage: ``integration_lazy.py MODULE``, a module in ``keepalive_patch.WATCHED``.
Prints JSON: the integration modules loaded right after ``import keepalive_patch`` (``idle``)
and right after ``import MODULE`` (``after``), and whether that import loaded wrapt (``wrapt``:
it should wait for the first client built).
"""

import importlib
import json
import sys

import keepalive_patch  # noqa: F401

PREFIX = "keepalive_patch.integrations."


def integrations() -> list[str]:
    return sorted(name[len(PREFIX) :] for name in sys.modules if name.startswith(PREFIX))


idle = integrations()
importlib.import_module(sys.argv[1])
print(json.dumps({"idle": idle, "after": integrations(), "wrapt": "wrapt" in sys.modules}))
