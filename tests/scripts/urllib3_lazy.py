"""``import keepalive_patch`` loads no urllib3 integration; importing urllib3 does, and wrapt waits
for the first connection to connect (not for one to be built).

Run as ``python urllib3_lazy.py``; exits non-zero (an ``AssertionError``) if any of it fails.
"""

import contextlib
import sys

import keepalive_patch  # noqa: F401

OURS = "keepalive_patch.integrations.urllib3"
assert OURS not in sys.modules

import urllib3  # noqa: E402

assert OURS in sys.modules
assert "wrapt" not in sys.modules, "wrapt waits for the first connection"
connection = urllib3.connection.HTTPConnection("127.0.0.1", 1)
assert "wrapt" not in sys.modules, "nor for a connection built"
with contextlib.suppress(Exception):  # port 1 on loopback: refused, after the wrapper ran
    connection.connect()
assert "wrapt" in sys.modules
