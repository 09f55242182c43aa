"""A client -> NAT router -> server topology in three network namespaces this test run owns.

Addresses are private (10.231.0.0/16) and exist only on veth pairs inside these namespaces: no
packet can leave the machine.  The router masquerades, forgets idle TCP flows after a few seconds
and silently drops whatever it no longer recognises, like a cloud NAT gateway (flows to ports in
its ``patient`` set keep a realistic idle timeout instead).  Servers run as
threads of the test process; their listening sockets are created inside the server namespace
(``setns`` on the calling thread only), so everything else about them stays in-process.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from typing import Callable

CLIENT_ADDR = "10.231.1.2"
ROUTER_CLIENT_ADDR = "10.231.1.1"
ROUTER_SERVER_ADDR = "10.231.2.1"
SERVER_ADDR = "10.231.2.2"
PREFIX = "kap"  # namespaces are named kap<pid>-c / -r / -s
COMMAND_TIMEOUT = 10.0
CLONE_NEWNET = 0x40000000

ROUTER_RULES = """
table inet kap {
  set blackhole { type inet_service; }
  set patient { type inet_service; }
  # Flows to these ports are forgotten only after 120 s idle, like a real NAT's minutes.
  ct timeout patient {
    protocol tcp; l3proto ip; policy = { established: 120 };
  }
  chain prerouting {
    type filter hook prerouting priority filter;
    tcp dport @patient ct timeout set "patient";
  }
  chain input { type filter hook input priority 0; policy drop; }
  chain output { type filter hook output priority 0; policy drop; }
  chain forward {
    type filter hook forward priority 0; policy drop;
    tcp dport @blackhole drop
    tcp sport @blackhole drop
    ct state established,related accept
    ct state new iifname "r1" oifname "r2" tcp flags & (syn|ack) == syn accept
  }
  chain postrouting { type nat hook postrouting priority 100; oifname "r2" masquerade; }
}
"""
SERVER_RULES = """
table inet kap {
  chain input { type filter hook input priority 0; policy accept; }
}
"""


def unavailable_reason() -> str | None:
    """Why this machine cannot build the topology, or ``None`` if it can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux-only"
    if os.geteuid() != 0:
        return "needs root to create network namespaces (run as root, e.g. in CI)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"`{tool}` not found (apt-get install {package})"
    if not os.path.exists("/proc/thread-self/ns/net"):
        return "/proc/thread-self/ns/net is missing (kernel < 3.17 or no procfs)"
    return None


def _run(argv: list[str], stdin: str | None = None) -> str:
    done = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@contextlib.contextmanager
def entered(namespace: str) -> Iterator[None]:
    """Run the body with the *calling thread* in ``namespace``; sockets made there stay there."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


def remove_stale() -> None:
    """Delete namespaces left by earlier runs of this suite whose process is gone (kill -9)."""
    with contextlib.suppress(Exception):
        for line in _run(["ip", "netns", "list"]).splitlines():
            match = re.match(rf"^({PREFIX}(\d+)-[crs])\b", line)
            if match and not os.path.exists(f"/proc/{match.group(2)}"):
                _run(["ip", "netns", "del", match.group(1)])


class Topology:
    """client ns --veth-- router ns (NAT, short conntrack timeout) --veth-- server ns."""

    def __init__(self, conntrack_timeout: int) -> None:
        tag = f"{PREFIX}{os.getpid()}"
        self.client, self.router, self.server = f"{tag}-c", f"{tag}-r", f"{tag}-s"
        self.conntrack_timeout = conntrack_timeout
        self.server_addr = SERVER_ADDR
        self._created: list[str] = []
        self._batch: dict[str, list[str]] | None = None

    def up(self) -> None:
        remove_stale()
        for name in (self.client, self.router, self.server):
            _run(["ip", "netns", "add", name])
            self._created.append(name)
        c, r, s = self.client, self.router, self.server
        # Each veth pair is created directly inside the namespaces: the host sees nothing.
        _run(["ip", "-n", c, "link", "add", "c0", "type", "veth", "peer", "name", "r1", "netns", r])
        _run(["ip", "-n", r, "link", "add", "r2", "type", "veth", "peer", "name", "s0", "netns", s])
        for ns, dev, addr in (
            (c, "c0", CLIENT_ADDR),
            (r, "r1", ROUTER_CLIENT_ADDR),
            (r, "r2", ROUTER_SERVER_ADDR),
            (s, "s0", SERVER_ADDR),
        ):
            _run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev])
            _run(["ip", "-n", ns, "link", "set", dev, "up"])
        for ns in (c, r, s):
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        # Only the server subnet, via the router: no default route anywhere.
        _run(["ip", "-n", c, "route", "add", "10.231.2.0/24", "via", ROUTER_CLIENT_ADDR])
        self.sysctl(r, "net.ipv4.ip_forward", 1)
        _run(["ip", "netns", "exec", r, "nft", "-f", "-"], stdin=ROUTER_RULES)
        _run(["ip", "netns", "exec", s, "nft", "-f", "-"], stdin=SERVER_RULES)
        # Per-namespace conntrack knobs (kernel >= 4.x): forget established flows quickly and
        # never pick up a flow mid-stream, so late packets of a forgotten flow are dropped.
        self.sysctl(r, "net.netfilter.nf_conntrack_tcp_timeout_established", self.conntrack_timeout)
        self.sysctl(r, "net.netfilter.nf_conntrack_tcp_loose", 0)

    def sysctl(self, namespace: str, key: str, value: int) -> None:
        path = "/proc/sys/" + key.replace(".", "/")
        _run(["ip", "netns", "exec", namespace, "sh", "-c", f"echo {value} > {path}"])
        got = _run(["ip", "netns", "exec", namespace, "cat", path]).strip()
        if got != str(value):
            raise RuntimeError(f"{key} is {got} in {namespace}, wanted {value}")

    def down(self) -> None:
        for name in reversed(self._created):
            with contextlib.suppress(Exception):
                _run(["ip", "netns", "del", name])
        self._created.clear()

    def nft(self, namespace: str, *statements: str) -> None:
        """Apply nft ``statements`` in ``namespace`` now, or at the end of ``batched()``."""
        if self._batch is not None:
            self._batch.setdefault(namespace, []).extend(statements)
        else:
            _run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], stdin="\n".join(statements))

    @contextlib.contextmanager
    def batched(self) -> Iterator[None]:
        """Collect the rules the body adds and apply them with one ``nft`` per namespace (each
        ``ip netns exec`` costs a process; dozens of them are seconds on a busy machine)."""
        self._batch = {}
        try:
            yield
            batch, self._batch = self._batch, None
            for namespace, statements in batch.items():
                self.nft(namespace, *statements)
        finally:
            self._batch = None

    def blackhole(self, port: int) -> None:
        """From now on the router silently drops every packet to or from server ``port``."""
        self.nft(self.router, f"add element inet kap blackhole {{ {port} }}")

    def die_after(self, port: int, nbytes: int) -> None:
        """The router drops every packet to or from server ``port`` once the flow has carried
        ``nbytes`` (a quota the kernel counts: the path dies at that byte, with no delay)."""
        quota = f"dead{port}"
        self.nft(
            self.router,
            f"add quota inet kap {quota} {{ over {nbytes} bytes }}",
            f"insert rule inet kap forward tcp dport {port} quota name {quota} drop",
            f"insert rule inet kap forward tcp sport {port} quota name {quota} drop",
        )

    def patient(self, port: int) -> None:
        """New flows to server ``port`` get a long idle timeout in the router."""
        self.nft(self.router, f"add element inet kap patient {{ {port} }}")

    def drop_first_connect(self, port: int) -> None:
        """The server host silently drops the first SYN to ``port`` and accepts later ones."""
        self._first_syn(port, "drop")

    def refuse_first_connect(self, port: int) -> None:
        """The server host answers the first SYN to ``port`` with a RST, later ones normally."""
        self._first_syn(port, "reject with tcp reset")

    def _first_syn(self, port: int, verdict: str) -> None:
        self.nft(
            self.server,
            f"add rule inet kap input tcp dport {port} tcp flags & (syn|ack) == syn "
            f"quota until 80 bytes {verdict}",  # one 60-byte SYN fits, two do not
        )

    def listen(self, port: int) -> socket.socket:
        with entered(self.server):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((SERVER_ADDR, port))
        sock.listen(16)
        sock.settimeout(0.2)
        return sock

    def client_command(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.client, *argv]


class Endpoint:
    """One server port, one behaviour, and what the server saw there (monotonic clock)."""

    def __init__(
        self,
        sock: socket.socket,
        behaviour: str,
        stop: threading.Event,
        delay: float = 0.0,
        on_request: Callable[[Endpoint], None] | None = None,
        stall: float = 0.0,
    ) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.behaviour = behaviour
        self.delay = delay
        self.on_request = on_request
        self.stall = stall
        self.stop = stop
        self.connections = 0
        self.requests = 0
        self.t_request: float | None = None  # request fully received
        # Set by on_request (when the blackhole was in place), the start of a stall, or a
        # drain's last byte received.
        self.t_event: float | None = None
        self.received = 0  # body bytes a drain read
        # A stall's evidence: body bytes read before it, unread bytes queued when it ended, and
        # the Content-Length; the window was closed if the client could not send the rest.
        self.stalled: tuple[int, int, int] | None = None
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        try:
            with conn:
                head, body = self._read_head(conn)
                length = _content_length(head)
                if self.behaviour == "drain":
                    self._drain(conn, len(body))
                    return
                if self.stall:
                    self.t_event = time.monotonic()  # from here on the receive window fills
                    if self.stop.wait(self.stall):
                        return
                    self.stalled = (len(body), _unread(conn), length)
                got = len(body)
                while got < length and not self.stop.is_set():
                    got += len(self._recv(conn))
                with self._lock:
                    self.requests += 1
                    self.t_request = time.monotonic()
                if self.on_request is not None:
                    threading.Thread(target=self.on_request, args=(self,), daemon=True).start()
                self._respond(conn)
        except (OSError, ValueError) as exc:
            self.errors.append(repr(exc))

    def _drain(self, conn: socket.socket, received: int) -> None:
        """Read (and discard) all that arrives, so the receive window never closes; the time of
        the last byte is when the path died (the router's quota ran out)."""
        self.t_event, self.received = time.monotonic(), received
        while not self.stop.is_set():
            self.received += len(self._recv(conn))
            self.t_event = time.monotonic()

    def _recv(self, conn: socket.socket) -> bytes:
        while not self.stop.is_set():
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError("client closed")
            return chunk
        return b""

    def _read_head(self, conn: socket.socket) -> tuple[bytes, bytes]:
        data = b""
        while b"\r\n\r\n" not in data and not self.stop.is_set():
            data += self._recv(conn)
        head, _, body = data.partition(b"\r\n\r\n")
        return head, body

    def _respond(self, conn: socket.socket) -> None:
        if self.behaviour == "close":
            return  # bytes received, connection closed without a response
        if self.behaviour == "hold":
            # Keep reading (and discarding) so a window never closes before the blackhole.
            with contextlib.suppress(OSError):
                while not self.stop.is_set():
                    self._recv(conn)
            return
        if self.stop.wait(self.delay):
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


def _unread(conn: socket.socket) -> int:
    """Bytes the kernel holds for ``conn`` that the server has not read yet (SIOCINQ)."""
    return int(struct.unpack("i", fcntl.ioctl(conn.fileno(), termios.FIONREAD, b"\0" * 4))[0])


def _content_length(head: bytes) -> int:
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return int(match.group(1)) if match else 0


class Servers:
    """Every endpoint of one test run; ``close()`` stops them all."""

    def __init__(self, topology: Topology, first_port: int = 20000) -> None:
        self.topology = topology
        self.stop = threading.Event()
        self._next_port = first_port
        self.endpoints: list[Endpoint] = []

    def add(self, behaviour: str, **kwargs: object) -> Endpoint:
        port, self._next_port = self._next_port, self._next_port + 1
        endpoint = Endpoint(self.topology.listen(port), behaviour, self.stop, **kwargs)  # type: ignore[arg-type]
        self.endpoints.append(endpoint)
        return endpoint

    def close(self) -> None:
        self.stop.set()
        for endpoint in self.endpoints:
            with contextlib.suppress(OSError):
                endpoint.sock.close()
