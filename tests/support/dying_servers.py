"""Loopback origins whose keep-alive connections die on a chosen request, counting every request.

``DyingServer`` (HTTP/1.1, plain or TLS) answers the first ``answered`` requests of each
connection (a test may change ``answered`` while it runs), then reads the next request whole --
head and body -- and kills the connection without answering: with FIN (``close="fin"``), with
RST (``"rst"``: ``SO_LINGER`` 0), after the response head and half the body (``"mid-body"``),
after part of the response head (``"partial-head"``: ``HTTP/1.1 200 OK\r\nContent-Le``), after
an interim ``100 Continue`` (``"1xx"``), or it never answers at all (``"hang"``, for timeouts).
``DyingH2Server`` does the same over HTTP/2 (cleartext, prior knowledge; what it answered before
is sent first), can say GOAWAY for the very stream it was sent (``"goaway"``), or send a
``100`` informational header block on it and close (``"1xx"``).

``seen`` is the server's own record, one ``Seen`` per request read whole, in order: which
connection it came on, method, headers, body, whether it was answered, and how many responses
the server had sent on that connection when it read the request.  A test proves a replay (or its
absence) by these counts, not by what the client believes.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import struct
import threading
import time

import h11

from support.servers import LoopbackServer

#: ``SO_LINGER`` on, 0 seconds: ``close()`` sends RST instead of FIN.
LINGER_ZERO = struct.pack("ii", 1, 0)


@dataclasses.dataclass(frozen=True)
class Seen:
    """One request as the server read it whole."""

    #: 1 for the first connection the server accepted, 2 for the next, ...
    connection: int
    method: str
    target: str
    #: Header names lower-cased.
    headers: dict[str, str]
    body: bytes
    answered: bool
    #: Responses the server had sent on this connection when it read this request: 0 means the
    #: client sent it on a connection that had not returned a response (a fresh one).
    replies_before: int = 0


class _Counting(LoopbackServer):
    """Numbers connections and keeps ``seen``; subclasses serve one connection each."""

    def __init__(self, answered: int, close: str, closes: tuple[str, ...]) -> None:
        if close not in closes:
            raise ValueError(f"close must be one of {closes}, got {close!r}")
        self.answered = answered
        self.close_how = close
        self.seen: list[Seen] = []
        self._count_lock = threading.Lock()
        self._connections = 0
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def next_connection(self) -> int:
        with self._count_lock:
            self._connections += 1
            return self._connections

    def sent(self, method: str) -> list[Seen]:
        """The requests with ``method`` the server read, in order."""
        return [seen for seen in self.seen if seen.method == method]

    def connections_of(self, method: str) -> list[int]:
        """The connection of each ``method`` request, in order: ``[1, 1, 2]`` is a replay."""
        return [seen.connection for seen in self.sent(method)]

    def record(self, connection: int, method: bytes, target: bytes, headers: object, body: bytes,
               answered: bool, replies_before: int) -> None:  # fmt: skip
        pairs = [(bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1"))
                 for k, v in headers]  # type: ignore[attr-defined]  # fmt: skip
        self.seen.append(Seen(connection, method.decode(), target.decode(), dict(pairs), body,
                              answered, replies_before))  # fmt: skip

    @staticmethod
    def reset(conn: socket.socket) -> None:
        """Make the coming ``close()`` send RST, as a crashed or impatient peer does."""
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)

    @staticmethod
    def hold(conn: socket.socket) -> None:
        """Never answer: block until the client gives up or the server closes."""
        while conn.recv(65536):
            pass


class DyingServer(_Counting):
    """HTTP/1.1 origin (TLS if given a context) whose connections die after ``answered``."""

    body = b"0123456789" * 10

    def __init__(
        self,
        answered: int = 1,
        close: str = "fin",
        tls: ssl.SSLContext | None = None,
        delay: float = 0.0,
    ) -> None:
        self.tls = tls
        #: Seconds to wait before each answer (so that concurrent requests overlap).
        self.delay = delay
        super().__init__(answered, close, ("fin", "rst", "mid-body", "partial-head", "1xx", "hang"))

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/"

    def handle(self, conn: socket.socket) -> None:
        number = self.next_connection()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True)
            self.track(conn)
        protocol = h11.Connection(h11.SERVER)
        served = 0
        try:
            while True:
                request = self._read_request(conn, protocol)
                if request is None:
                    return
                head, body = request
                answer = served < self.answered
                self.record(number, head.method, head.target, head.headers, body, answer, served)
                if not answer:
                    self._die(conn, protocol)
                    return
                served += 1
                time.sleep(self.delay)
                self._respond(conn, protocol, b"" if head.method == b"HEAD" else self.body)
                protocol.start_next_cycle()
        except h11.ProtocolError as exc:
            self.errors.append(exc)

    def _read_request(
        self, conn: socket.socket, protocol: h11.Connection
    ) -> tuple[h11.Request, bytes] | None:
        """The next request, head and whole body; ``None`` when the client closed."""
        head: h11.Request | None = None
        body = b""
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                protocol.receive_data(conn.recv(65536))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return head, body
            elif isinstance(event, h11.ConnectionClosed):
                return None

    def _respond(self, conn: socket.socket, protocol: h11.Connection, body: bytes,
                 complete: bool = True) -> None:  # fmt: skip
        headers = [(b"content-length", str(len(self.body)).encode())]
        conn.sendall(protocol.send(h11.Response(status_code=200, headers=headers)) or b"")
        if complete:
            conn.sendall(protocol.send(h11.Data(data=body)) or b"")
            conn.sendall(protocol.send(h11.EndOfMessage()) or b"")
        else:
            conn.sendall(body[: len(body) // 2])

    def _die(self, conn: socket.socket, protocol: h11.Connection) -> None:
        if self.close_how == "rst":
            self.reset(conn)
        elif self.close_how == "mid-body":
            self._respond(conn, protocol, self.body, complete=False)
        elif self.close_how == "partial-head":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
        elif self.close_how == "1xx":
            interim = h11.InformationalResponse(status_code=100, headers=[])
            conn.sendall(protocol.send(interim) or b"")
        elif self.close_how == "hang":
            self.hold(conn)


class DyingH2Server(_Counting):
    """HTTP/2 origin (cleartext, prior knowledge) whose connections die after ``answered``.

    ``"goaway"`` answers the dying request's stream with GOAWAY naming that very stream as the
    last one processed, then closes: the server says it may have acted on it.  ``"1xx"`` sends
    a ``100`` informational header block on that stream, then closes.  Before it dies, the
    answers to streams it read in the same batch are sent (``"fin"``, ``"1xx"``).
    """

    def __init__(self, answered: int = 1, close: str = "fin") -> None:
        super().__init__(answered, close, ("fin", "rst", "goaway", "1xx"))

    def handle(self, conn: socket.socket) -> None:
        import h2.config
        import h2.connection
        import h2.events

        number = self.next_connection()
        protocol = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        protocol.initiate_connection()
        conn.sendall(protocol.data_to_send())
        served = replies = 0  # answers made; answers sent on the wire
        heads: dict[int, list[tuple[bytes, bytes]]] = {}
        bodies: dict[int, bytes] = {}
        while True:
            data = conn.recv(65536)
            if not data:
                return
            for event in protocol.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    heads[event.stream_id] = [(bytes(k), bytes(v)) for k, v in event.headers]
                elif isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
                    protocol.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    stream = event.stream_id
                    pseudo = dict(heads[stream])
                    answer = served < self.answered
                    self.record(number, pseudo[b":method"], pseudo[b":path"], heads[stream],
                                bodies.get(stream, b""), answer, replies)  # fmt: skip
                    if not answer:
                        if self.close_how == "rst":
                            self.reset(conn)
                        elif self.close_how == "goaway":
                            protocol.close_connection(last_stream_id=stream)
                        elif self.close_how == "1xx":
                            protocol.send_headers(stream, [(":status", "100")])
                        if self.close_how != "rst":
                            conn.sendall(protocol.data_to_send())
                        return
                    served += 1
                    protocol.send_headers(stream, [(":status", "200"), ("content-length", "2")])
                    protocol.send_data(stream, b"ok", end_stream=True)
            conn.sendall(protocol.data_to_send())
            replies = served
