"""An HTTP/1.1 origin on loopback that counts every request it receives and answers from a script.

Retries are judged by what the server saw: ``requests`` holds each request (head and body) it
received, ``peers`` each connection it accepted.  ``answers`` says how to answer the first,
second, ... request (the last one repeats): raw response bytes, ``CLOSE`` (close without an
answer: a read error for the client), or ``SILENT`` (answer nothing until the client gives up:
a read timeout).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Union

from .proxies import recv_exactly
from .servers import LoopbackServer

CLOSE = "close"
SILENT = "silent"
Answer = Union[bytes, str]


def response(
    status: str = "200 OK", body: bytes = b"ok", headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    """A complete HTTP/1.1 response that keeps the connection open."""
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


OK = response()


class CountingOrigin(LoopbackServer):
    """Answers requests from ``answers`` on keep-alive connections; counts what arrives."""

    def __init__(
        self, answers: Sequence[Answer] = (OK,), listen: bool = True, backlog: int = 16
    ) -> None:
        self.answers = list(answers)
        #: Each request received, head and body, in order.
        self.requests: list[bytes] = []
        super().__init__(backlog=backlog, listen=listen)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def handle(self, conn: socket.socket) -> None:
        buffered = b""
        while True:
            while b"\r\n\r\n" not in buffered:  # a recv may bring the body along
                more = conn.recv(65536)
                if not more:
                    return
                buffered += more
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(buffered) < length:
                buffered += recv_exactly(conn, length - len(buffered))
            body, buffered = buffered[:length], buffered[length:]
            self.requests.append(head + b"\r\n\r\n" + body)
            answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
            if answer == CLOSE:
                return
            if answer == SILENT:
                while conn.recv(65536):  # until the client closes its end
                    pass
                return
            assert isinstance(answer, bytes)
            conn.sendall(answer)

    def request_lines(self) -> list[bytes]:
        return [request.split(b"\r\n", 1)[0] for request in self.requests]
