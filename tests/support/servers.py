"""A keep-alive HTTP/1.1 handler for loopback servers, on TCP and on a Unix socket."""

from __future__ import annotations

import http.server
import socket
import socketserver
from typing import Any


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
