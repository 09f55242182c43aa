"""An app on an httpx without SOCKS support (``pip install httpx``, no socksio).

httpcore then defines stand-in ``SOCKSProxy`` classes; keepalive-patch must not warn about
them.  Every record the ``keepalive_patch`` logger emits at WARNING or above goes to stderr.
"""

import logging
import sys

sys.modules["socksio"] = None  # type: ignore[assignment]  # as if not installed

logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")

import keepalive_patch  # noqa: E402, F401

name = sys.argv[1]
library = __import__(name)
core = __import__(name.replace("httpx", "httpcore"))
with library.Client() as client:
    client.build_request("GET", "http://127.0.0.1/")
try:
    core.SOCKSProxy("socks5://127.0.0.1:1080")
except RuntimeError:
    print("stand-in")  # httpcore's own "socksio is not installed" error
