"""Count this process's connect attempts to an address, and make real connects fail on cue.

``watch_connects`` sees every ``connect`` through the ``socket.connect`` audit event, which
CPython's socket module raises itself right before the system call, whatever library called
it.  Its ``before`` callback runs at that moment, on the connecting thread: a test makes the
first attempt meet a port that is bound but not listening (refused), and starts listening
before the second, so "refused once, then accepted" needs no timing luck.

``failing_lookups`` counts this process's name lookups of one host name at the
``socket.getaddrinfo`` audit event, also raised by the socket module itself before it asks the
resolver, and fails each there with the ``gaierror`` a name that does not exist gets: the
resolver is never asked, so no query leaves the machine, and every library sees the real
``socket.getaddrinfo`` fail.

``full_backlog`` makes real connects time out instead: a listener with a backlog of 0 whose one
queue slot a parked connection holds; Linux drops further SYNs, and the client's connect times
out (its first SYN retransmission comes only after 1 s).  ``syn_sent_ports`` reads
``/proc/net/tcp`` for the attempts waiting there.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any, Callable

#: Audit hooks cannot be removed: one is installed once and serves the watchers active now.
_watchers: list[Watcher] = []
_installed = threading.Lock()
_hooked = False


class Watcher:
    """The connects made to ``address`` while active: ``attempts`` holds the thread of each."""

    def __init__(self, address: tuple[str, int], before: Callable[[int], None] | None) -> None:
        self.address = address
        self.before = before
        self.attempts: list[str] = []
        self.errors: list[BaseException] = []

    def seen(self) -> None:
        self.attempts.append(threading.current_thread().name)
        if self.before is not None:
            try:
                self.before(len(self.attempts))
            except Exception as exc:  # an audit hook that raises would abort the connect
                self.errors.append(exc)

    @property
    def count(self) -> int:
        return len(self.attempts)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.getaddrinfo" and _lookups:
        host = args[0].decode() if isinstance(args[0], bytes) else args[0]
        for lookups in list(_lookups):
            if host == lookups.host:
                lookups.count += 1
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return
    if event != "socket.connect" or not _watchers:
        return
    address = args[1]
    if not isinstance(address, tuple):
        return
    for watcher in list(_watchers):
        if tuple(address[:2]) == watcher.address:
            watcher.seen()


@contextlib.contextmanager
def watch_connects(
    address: tuple[str, int], before: Callable[[int], None] | None = None
) -> Iterator[Watcher]:
    """Record each connect to ``address``; ``before(n)`` runs just before the n-th one."""
    _install_hook()
    watcher = Watcher(address, before)
    _watchers.append(watcher)
    try:
        yield watcher
    finally:
        _watchers.remove(watcher)
    assert not watcher.errors, watcher.errors


def _install_hook() -> None:
    global _hooked
    with _installed:
        if not _hooked:
            sys.addaudithook(_audit)
            _hooked = True


class Lookups:
    """The lookups of ``host`` made while active, each failed as a name that does not exist."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.count = 0


_lookups: list[Lookups] = []


@contextlib.contextmanager
def failing_lookups(host: str) -> Iterator[Lookups]:
    """Count, and fail, every ``socket.getaddrinfo`` of ``host`` in this process."""
    _install_hook()
    lookups = Lookups(host)
    _lookups.append(lookups)
    try:
        yield lookups
    finally:
        _lookups.remove(lookups)


def syn_sent_ports(address: tuple[str, int]) -> list[int]:
    """Local ports of this host's IPv4 connects still waiting for an answer from ``address``."""
    host, port = address
    wanted = socket.inet_aton(host)[::-1].hex().upper() + f":{port:04X}"  # little-endian host
    ports = []
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[2] == wanted and fields[3] == "02":  # 02: SYN_SENT
                ports.append(int(fields[1].rpartition(":")[2], 16))
    return ports


@contextlib.contextmanager
def full_backlog(listener: socket.socket) -> Iterator[socket.socket]:
    """Fill the accept queue of ``listener`` (made to listen with a backlog of 0) with one
    parked connection, so that new connects to it time out until it is accepted."""
    if not sys.platform.startswith("linux"):
        import pytest

        pytest.skip("a full accept queue drops SYNs this way on Linux only")
    listener.listen(0)
    parked = socket.create_connection(listener.getsockname()[:2], timeout=5)
    with parked:
        yield parked
