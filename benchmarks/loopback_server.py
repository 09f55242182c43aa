"""A tiny HTTP/1.1 server on 127.0.0.1 that closes every connection after one answer.

Prints its port on the first line, then serves until stdin closes (so it never outlives run.py).
"""

from __future__ import annotations

import socket
import sys
import threading

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
