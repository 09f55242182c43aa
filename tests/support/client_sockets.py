"""Find this process's live client socket by its address, whatever library opened it.

A loopback server records the client address of every connection it accepts (``peers``); the
socket with that local address is the client's end.  It is found among the process's open file
descriptors and duplicated, so its options can be read with ``getsockopt`` without reaching into
any library's private attributes (urllib3 1.26 and 2.x, requests and botocore keep it in
different places).  Needs ``/proc/self/fd`` (Linux) or ``/dev/fd`` (macOS, the BSDs).
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Iterator

import pytest

from keepalive_patch.sockopts import SocketOption

from .sockets import read_options

_FD_DIRS = ("/proc/self/fd", "/dev/fd")


def _open_fds() -> list[int]:
    for directory in _FD_DIRS:
        with contextlib.suppress(OSError):
            return sorted(int(name) for name in os.listdir(directory) if name.isdigit())
    pytest.skip("cannot list this process's file descriptors (no /proc/self/fd or /dev/fd)")


@contextlib.contextmanager
def client_socket(local: tuple[str, int]) -> Iterator[socket.socket]:
    """A duplicate of the open TCP socket whose local address is ``local``; closed on exit
    (the original stays open)."""
    for fd in _open_fds():
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            dup = socket.socket(fileno=os.dup(fd))  # family and type read from the descriptor
        except OSError:
            continue
        with dup:
            try:
                name = dup.getsockname()
            except OSError:
                continue
            if dup.type == socket.SOCK_STREAM and isinstance(name, tuple) and name[:2] == local:
                yield dup
                return
    raise AssertionError(f"no open socket of this process has the local address {local}")


def options_of(local: tuple[str, int], options: list[SocketOption] | None = None) -> dict[str, int]:
    """``read_options`` of the live client socket whose local address is ``local``."""
    with client_socket(local) as sock:
        return read_options(sock, options)


def nodelay_of(local: tuple[str, int]) -> int:
    """``TCP_NODELAY`` of that socket: urllib3's own default option, which ours must not touch."""
    with client_socket(local) as sock:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
