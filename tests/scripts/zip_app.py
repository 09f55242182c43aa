"""An app whose httpx is imported from a zip (zipapp, PEX, shiv): is it patched?

Run as ``python zip_app.py ZIP LIBRARY``: puts ZIP first on ``sys.path``, imports
keepalive_patch and then LIBRARY, builds a transport and prints, as JSON, where LIBRARY came
from, the transport pool's socket options and retries, and what ``is_applied()`` says.
"""

import importlib
import json
import sys

archive, name = sys.argv[1], sys.argv[2]
sys.path.insert(0, archive)

import keepalive_patch  # noqa: E402

library = importlib.import_module(name)
pool = library.HTTPTransport()._pool
print(
    json.dumps(
        {
            "file": library.__file__,
            "loader": type(library.__loader__).__name__,
            "socket_options": [
                list(option) for option in getattr(pool, "_socket_options", None) or []
            ],
            "retries": pool._retries,
            "applied": keepalive_patch.is_applied(),
        }
    )
)
