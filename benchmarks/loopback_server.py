"""A tiny HTTP/1.1 server on 127.0.0.1 that closes every connection after one answer.

Prints its port on the first line, then serves until stdin closes (so it never outlives run.py).
``running`` starts such a server process (this one, or ``replay_race.py``'s) for the parent.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def serve(conn: socket.socket) -> None:
    with conn:
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        conn.sendall(RESPONSE)


def accept_forever(listener: socket.socket) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], cwd: str | None = None) -> Iterator[str]:
    """Start the server process ``argv``; yield the first line it prints (its port); stop it by
    closing its stdin, killing it if it lingers."""
    server = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=cwd
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        with contextlib.suppress(OSError):
            assert server.stdin is not None
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def main() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    print(listener.getsockname()[1], flush=True)
    threading.Thread(target=accept_forever, args=(listener,), daemon=True).start()
    sys.stdin.read()  # returns when the parent closes our stdin or exits
    listener.close()


if __name__ == "__main__":
    main()
