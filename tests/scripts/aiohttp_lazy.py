"""``import keepalive_patch`` loads neither aiohttp nor its integration; importing aiohttp patches
``TCPConnector`` without loading wrapt, which waits for the first connector (or connect).

Run as ``python aiohttp_lazy.py``; exits non-zero (an ``AssertionError``) if any of it fails.
"""

import sys

import keepalive_patch  # noqa: F401

OURS = "keepalive_patch.integrations.aiohttp"
assert not {"aiohttp", OURS, "wrapt"} & set(sys.modules), sorted(sys.modules)

import aiohttp  # noqa: E402

assert OURS in sys.modules and "wrapt" not in sys.modules

from keepalive_patch.integrations.aiohttp import wrapped  # noqa: E402

assert [cls for cls, _, _ in wrapped()] == [aiohttp.TCPConnector], wrapped()
