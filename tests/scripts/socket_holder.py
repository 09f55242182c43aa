"""A service of the standard library alone, holding TCP connections of each address kind.

Usage: ``socket_holder.py``.  Listens on 127.0.0.1 and, where the host has IPv6, on ``::``
(dual-stack) and ``::1``, then opens, and leaves idle:

- ``ipv4 keepalive``: to 127.0.0.1 with ``SO_KEEPALIVE`` 1 and ``TCP_KEEPIDLE`` 45;
- ``ipv4 plain``: to 127.0.0.1, nothing set;
- ``ipv6``: to ``::1`` with ``SO_KEEPALIVE`` 1 (IPv6 hosts only);
- ``ipv4-mapped``: an IPv6 socket to ``::ffff:127.0.0.1`` on the dual-stack listener (IPv6
  hosts only), nothing set.

It prints one line of JSON, ``{"pid": ..., "connections": {name: {"local": [host, port],
"remote": [host, port], "options": {name: value}}}, "listening": [[host, port], ...]}``, read
with ``getsockopt`` from its own sockets, and waits until its standard input is closed.  It
imports nothing from beside it, so it runs under ``-I`` and as another user from a copy.
"""

import json
import os
import socket
import sys
from typing import Any

NAMES = ("SO_KEEPALIVE", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT")


def view(sock: socket.socket) -> "dict[str, Any]":
    options = {}
    for name in NAMES:
        level = socket.SOL_SOCKET if name.startswith("SO_") else socket.IPPROTO_TCP
        options[name] = sock.getsockopt(level, getattr(socket, name))
    return {
        "local": list(sock.getsockname()[:2]),
        "remote": list(sock.getpeername()[:2]),
        "options": options,
    }


def main() -> None:
    held: list[socket.socket] = []
    clients: dict[str, socket.socket] = {}
    v4 = socket.create_server(("127.0.0.1", 0))
    held.append(v4)
    keepalive = socket.create_connection(v4.getsockname())
    keepalive.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    keepalive.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 45)
    clients["ipv4 keepalive"] = keepalive
    clients["ipv4 plain"] = socket.create_connection(v4.getsockname())
    if socket.has_dualstack_ipv6():
        dual = socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True)
        loop6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
        held += [dual, loop6]
        six = socket.create_connection(("::1", loop6.getsockname()[1]))
        six.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        clients["ipv6"] = six
        mapped = socket.socket(socket.AF_INET6)
        mapped.connect(("::ffff:127.0.0.1", dual.getsockname()[1]))
        clients["ipv4-mapped"] = mapped
    listeners = list(held)
    for listener in listeners:
        for _ in range(
            sum(1 for c in clients.values() if c.getpeername()[1] == listener.getsockname()[1])
        ):
            held.append(listener.accept()[0])
    report = {
        "pid": os.getpid(),
        "connections": {name: view(sock) for name, sock in clients.items()},
        "listening": [list(listener.getsockname()[:2]) for listener in listeners],
    }
    print(json.dumps(report), flush=True)
    sys.stdin.read()
    for sock in [*clients.values(), *held]:
        sock.close()


if __name__ == "__main__":
    main()
