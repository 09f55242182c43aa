"""The loopback servers every other test server builds on.

- ``Handler`` / ``UnixHTTPServer``: a keep-alive HTTP/1.1 answer, on TCP and on a Unix socket,
  run by ``running`` (a ``socketserver`` server on a daemon thread) or ``http_loopback``;
- ``serving``: a bare loopback listener for tests that script each connection themselves;
- ``LoopbackServer``: the base of the origins and proxies (``proxies``, ``origins``,
  ``dying_servers``): one thread per connection, peers recorded, every blocking call bounded.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Callable

#: No blocking call in these servers waits longer than this many seconds.
IO_TIMEOUT = 10.0


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers every request with a small body on a keep-alive HTTP/1.1 connection."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, Any]:
        request, _ = super().get_request()
        return request, ("uds", 0)  # BaseHTTPRequestHandler wants a (host, port) address


@contextlib.contextmanager
def serving(handle: Callable[[socket.socket, threading.Event], None]) -> Iterator[str]:
    """A loopback TCP server handing each connection to ``handle(conn, stop)`` in its own thread;
    yields its ``http://`` base URL. On exit ``stop`` is set and every connection closed."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)
            threading.Thread(target=handle, args=(conn, stop), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        for conn in accepted:
            conn.close()


@contextlib.contextmanager
def running(server: socketserver.BaseServer) -> Iterator[None]:
    """``server`` answering on a daemon thread for the block, then shut down and closed."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(IO_TIMEOUT)


class _QuietHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients closing mid-stream are expected


@contextlib.contextmanager
def http_loopback(handler: type[http.server.BaseHTTPRequestHandler] = Handler) -> Iterator[str]:
    """A threaded HTTP/1.1 server on 127.0.0.1 answering with ``handler``; yields its base URL."""
    server = _QuietHTTPServer(("127.0.0.1", 0), handler)
    with running(server):
        yield f"http://127.0.0.1:{server.server_address[1]}/"


class LoopbackServer:
    """Accepts on 127.0.0.1 and hands each connection to ``handle`` on its own daemon thread."""

    def __init__(self, backlog: int = 16, listen: bool = True) -> None:
        self.backlog = backlog
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.host, self.port = self.listener.getsockname()[:2]
        #: Client (host, port) of every accepted connection, in order.
        self.peers: list[tuple[str, int]] = []
        self.errors: list[BaseException] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._per_connection = threading.local()
        self._stopping = threading.Event()
        self._accepting = threading.Event()
        if listen:
            self.start_listening()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def start_listening(self) -> None:
        """Listen now (with ``listen=False`` the port is bound but connections are refused)."""
        if not self._accepting.is_set():
            self.listener.listen(self.backlog)
            self._accepting.set()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            if not self._accepting.wait(0.05):
                continue
            try:
                conn, peer = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn.settimeout(IO_TIMEOUT)
            with self._lock:
                self.peers.append(peer[:2])
                self._open.add(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        self._per_connection.extra = []
        try:
            self.handle(conn)
        except (OSError, ValueError, ConnectionError, ssl.SSLError) as exc:
            if not self._stopping.is_set():
                self.errors.append(exc)
        finally:
            for sock in [conn, *self._per_connection.extra]:
                with self._lock:
                    self._open.discard(sock)
                sock.close()

    def track(self, sock: socket.socket) -> None:
        """Close ``sock`` with this connection, or when the server closes (upstreams, TLS)."""
        self._per_connection.extra.append(sock)
        with self._lock:
            self._open.add(sock)

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() on Linux
        self._acceptor.join(IO_TIMEOUT)
        self.listener.close()
        with self._lock:
            still_open = list(self._open)
        for sock in still_open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._acceptor.join(IO_TIMEOUT)
        for thread in self._threads:
            thread.join(IO_TIMEOUT)

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
