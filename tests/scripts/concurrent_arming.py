"""Eight threads build the first transports of an HTTP library at once, in a fresh interpreter.

Usage: ``concurrent_arming.py LIBRARY SOCKET_OPTIONS``; ``SOCKET_OPTIONS`` is ``yes`` where the
library's transports take ``socket_options`` (httpx >= 0.25) and ``no`` where the shim gives
them retries only.  Prints JSON: whether wrapt was loaded before the first transport, how many
transports were made and how many of them were patched, and whether each transport class's
``__init__`` is a wrapt wrapper afterwards (the arming stub replaced exactly once).
"""

import importlib
import json
import sys
import threading
from typing import Any

import keepalive_patch  # noqa: F401

lib = importlib.import_module(sys.argv[1])
takes_socket_options = {"yes": True, "no": False}[sys.argv[2]]
wrapt_before = "wrapt" in sys.modules
barrier = threading.Barrier(8)
made: list[Any] = []


def build(cls: Any) -> None:
    barrier.wait(timeout=10)
    made.append(cls())


classes = [lib.HTTPTransport, lib.AsyncHTTPTransport]
threads = [threading.Thread(target=build, args=(cls,)) for cls in classes * 4]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(timeout=20)

import wrapt  # noqa: E402

print(
    json.dumps(
        {
            "wrapt_before_first_transport": wrapt_before,
            "made": len(made),
            "patched": sum(
                bool(getattr(t._pool, "_socket_options", None)) == takes_socket_options
                and t._pool._retries == 1
                for t in made
            ),
            "wrapped": [isinstance(c.__dict__["__init__"], wrapt.FunctionWrapper) for c in classes],
        }
    )
)
