"""A host whose HTTP library takes no ``socket_options`` (httpx < 0.25), run with warnings on.

Usage: ``retries_only_host.py LIBRARY``, meant for ``python -X dev -W error``.  Everything the
``keepalive_patch`` logger says goes to stderr as ``keepalive_patch LEVEL message``.  One sync
and one async request to a loopback server started here; prints, as JSON, for each
``[body, SO_KEEPALIVE of the live socket, connect retries of the client's pool]``.
"""

import asyncio
import importlib
import json
import logging
import socket
import sys
from typing import Any

from http_app import live_socket, serving

handler = logging.StreamHandler()  # everything keepalive-patch says, on stderr
handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
logging.getLogger("keepalive_patch").addHandler(handler)
logging.getLogger("keepalive_patch").setLevel(logging.DEBUG)

import keepalive_patch  # noqa: E402, F401

lib = importlib.import_module(sys.argv[1])


def live(response: Any) -> int:
    return live_socket(response).getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)


async def async_request(url: str) -> list[Any]:
    # ``-X dev`` makes asyncio report every loop step over 0.1 s on stderr; the first request's
    # lazy work (the CA bundle, anyio's backend imported) takes that long on a busy machine.
    # This host is judged on what keepalive-patch says, not on the speed of the machine.
    asyncio.get_running_loop().slow_callback_duration = 10.0
    async with lib.AsyncClient() as client:
        response = await client.get(url)
        return [response.text, live(response), client._transport._pool._retries]


with serving() as url:
    with lib.Client() as client:
        response = client.get(url)
        sync = [response.text, live(response), client._transport._pool._retries]
    print(json.dumps([sync, asyncio.run(async_request(url))]))
