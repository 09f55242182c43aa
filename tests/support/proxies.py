"""An HTTP origin, an HTTP proxy and a SOCKS5 proxy on loopback, each a ``LoopbackServer``.

Each runs on daemon threads, serves until ``close()`` (they are context managers), bounds every
blocking call with a timeout, and refuses to connect anywhere but loopback.  The proxies record
the client address of every connection they accept (``peers``), so a test can check that the
socket it inspects really is the client->proxy one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path

from support.servers import IO_TIMEOUT, LoopbackServer

HEAD_LIMIT = 64 * 1024


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect_loopback(host: str, port: int) -> socket.socket:
    """Connect upstream, but only to loopback: these test proxies never reach out."""
    if not is_loopback(host):
        raise PermissionError(f"test proxy refuses non-loopback target {host}:{port}")
    return socket.create_connection((host, port), timeout=IO_TIMEOUT)


def read_head(sock: socket.socket) -> bytes:
    """Read up to and including the blank line that ends an HTTP head (b"" on EOF)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return b""
        data += chunk
        if len(data) > HEAD_LIMIT:
            raise ValueError("HTTP head too long")
    return data


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("peer closed mid-message")
        data += chunk
    return data


def relay(left: socket.socket, right: socket.socket) -> None:
    """Copy bytes both ways until either side closes (or IO_TIMEOUT of silence)."""

    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    other = threading.Thread(target=pump, args=(right, left), daemon=True)
    other.start()
    pump(left, right)
    other.join(IO_TIMEOUT)


class OriginServer(LoopbackServer):
    """Answers every request on a keep-alive connection with ``200 ok`` (TLS if given one)."""

    body = b"ok"

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.requests: list[bytes] = []
        super().__init__()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/"

    def handle(self, conn: socket.socket) -> None:
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True)
            self.track(conn)
        while True:
            head = read_head(conn)
            if not head:
                return
            self.requests.append(head.split(b"\r\n", 1)[0])
            if not self.answer(conn):
                return

    def answer(self, conn: socket.socket) -> bool:
        """Send the whole answer to one request; ``False`` ends the connection."""
        conn.sendall(self.head() + self.body)
        return True

    def head(self) -> bytes:
        """The status line and headers of every answer, announcing ``body``."""
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(
            self.body
        )


class HTTPProxyServer(LoopbackServer):
    """An HTTP proxy: ``CONNECT host:port`` tunnels; ``GET http://host:port/...`` forwards.

    A forwarded connection stays bound to its first origin (enough for tests).  ``requests``
    holds each request line the proxy received.
    """

    def __init__(self, backlog: int = 16, listen: bool = True) -> None:
        self.requests: list[bytes] = []
        super().__init__(backlog, listen)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def handle(self, conn: socket.socket) -> None:
        head = read_head(conn)
        if not head:
            return
        request_line, _, rest = head.partition(b"\r\n")
        self.requests.append(request_line)
        method, target, version = request_line.decode("latin-1").split(" ", 2)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = connect_loopback(host.strip("[]"), int(port))
            self.track(upstream)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            relay(conn, upstream)
            return
        if not target.startswith("http://"):
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        authority, slash, path = target[len("http://") :].partition("/")
        host, _, port = authority.rpartition(":")
        upstream = connect_loopback(host.strip("[]"), int(port or 80))
        self.track(upstream)
        upstream.sendall(f"{method} {slash}{path} {version}\r\n".encode("latin-1") + rest)
        relay(conn, upstream)


class Socks5ProxyServer(LoopbackServer):
    """A SOCKS5 proxy (RFC 1928), no authentication, CONNECT only; ``targets`` records each."""

    def __init__(self, listen: bool = True) -> None:
        self.targets: list[tuple[str, int]] = []
        super().__init__(listen=listen)

    @property
    def url(self) -> str:
        return f"socks5://{self.host}:{self.port}"

    def handle(self, conn: socket.socket) -> None:
        version, count = recv_exactly(conn, 2)
        methods = recv_exactly(conn, count)
        if version != 5 or 0 not in methods:
            conn.sendall(b"\x05\xff")
            return
        conn.sendall(b"\x05\x00")
        version, command, _, address_type = recv_exactly(conn, 4)
        if address_type == 1:
            host = socket.inet_ntop(socket.AF_INET, recv_exactly(conn, 4))
        elif address_type == 4:
            host = socket.inet_ntop(socket.AF_INET6, recv_exactly(conn, 16))
        else:
            host = recv_exactly(conn, recv_exactly(conn, 1)[0]).decode("idna")
        (port,) = struct.unpack("!H", recv_exactly(conn, 2))
        self.targets.append((host, port))
        if command != 1 or not is_loopback(host):
            conn.sendall(b"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00")  # not allowed
            return
        upstream = connect_loopback(host, port)
        self.track(upstream)
        bound_host, bound_port = upstream.getsockname()[:2]
        conn.sendall(
            b"\x05\x00\x00\x01" + socket.inet_aton(bound_host) + struct.pack("!H", bound_port)
        )
        relay(conn, upstream)


def make_server_tls(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 (needs openssl).

    Clients in these tests do not verify it: what is under test is the TCP socket beneath.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
