"""The idle keep-alive race, unpatched vs patched, on one schedule: a row of ``run.py``.

    python benchmarks/replay_race.py server IDLE_MS RTT_MS        # prints its port, serves
    python benchmarks/replay_race.py client LIB PORT COUNT SEED IDLE_MS RTT_MS [--hook]

The server closes a keep-alive connection that has been idle for ``IDLE_MS``, as servers and
load balancers do.  On a real network a request sent in the last round trip before that close
crosses the server's FIN on the wire: the client reused a connection it could not yet know was
closing, and gets ``RemoteProtocolError`` / ``ReadError``.  Loopback has a round trip of tens of
microseconds, so the server *emulates* ``RTT_MS``: a request whose first byte arrives in the
last ``RTT_MS`` before the idle deadline is read whole and the connection closed without an
answer -- exactly what the client would see from a server whose FIN was already on its way.
Without a request, the connection is closed (FIN) at the deadline itself.

The client sends ``COUNT`` GETs on one ``Client``, one at a time, each after a pause drawn from
``SEED`` uniformly in [IDLE - 4 RTT, IDLE + 2 RTT]: the same schedule unpatched and patched.
Every GET carries its number in ``X-Seq``; the server's own record (``GET /stats`` on a new
connection) says which requests it dropped, so a replayed request is known by the server's
count, not by the client's guess.  The client prints one JSON object.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import random
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from loopback_server import running

HERE = Path(__file__).resolve().parent
#: The defaults run.py uses: requests per run, the idle close, the emulated round trip, the seed.
COUNT, IDLE_MS, RTT_MS, SEED = 200, 20.0, 2.0, 20240611

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RaceServer:
    """Keep-alive HTTP/1.1 server that closes idle connections after ``idle`` seconds."""

    def __init__(self, idle: float, rtt: float) -> None:
        self.idle = idle
        self.rtt = rtt
        self.lock = threading.Lock()
        #: X-Seq of each request answered, and of each read whole and dropped unanswered.
        self.answered: list[int] = []
        self.dropped: list[int] = []
        self.connections = 0

    def serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            with self.lock:
                self.connections += 1
            last = time.monotonic()
            first = True
            while True:
                left = self.idle - (time.monotonic() - last)
                if not first and (left <= 0 or not select.select([conn], [], [], left)[0]):
                    return  # idle deadline: FIN
                arrived = time.monotonic() - last
                head = self.read_head(conn)
                if head is None:
                    return
                if head.startswith(b"GET /stats "):
                    with self.lock:
                        body = json.dumps(
                            {
                                "answered": self.answered,
                                "dropped": self.dropped,
                                "connections": self.connections - 1,
                            }
                        ).encode()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                    return
                seq = self.seq_of(head)
                if not first and arrived > self.idle - self.rtt:
                    with self.lock:
                        self.dropped.append(seq)
                    return  # the close crossed this request on the (emulated) wire
                conn.sendall(OK)
                with self.lock:
                    self.answered.append(seq)
                last = time.monotonic()
                first = False

    @staticmethod
    def read_head(conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        return data

    @staticmethod
    def seq_of(head: bytes) -> int:
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"x-seq":
                return int(value)
        return -1


def run_server(idle: float, rtt: float) -> None:
    """Print the port, serve until stdin closes (so the server never outlives its parent)."""
    server = RaceServer(idle, rtt)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=server.serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()
    listener.close()


def schedule(count: int, seed: int, idle: float, rtt: float) -> list[float]:
    """The pause before each request: the same list for the unpatched and the patched run."""
    rng = random.Random(seed)
    return [rng.uniform(idle - 4 * rtt, idle + 2 * rtt) for _ in range(count)]


def run_client(lib_name: str, port: int, pauses: list[float]) -> dict[str, object]:
    """Send the GETs; report errors, per-request latency and the server's record."""
    lib = importlib.import_module(lib_name)
    url = f"http://127.0.0.1:{port}/"
    errors: dict[str, int] = {}
    latency: dict[int, float] = {}
    with lib.Client(timeout=10) as client:
        client.get(url, headers={"X-Seq": "-1"})  # warm up: a kept-alive connection to reuse
        for seq, pause in enumerate(pauses):
            time.sleep(pause)
            start = time.perf_counter()
            try:
                client.get(url, headers={"X-Seq": str(seq)}).raise_for_status()
            except lib.TransportError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            latency[seq] = time.perf_counter() - start
    with lib.Client(timeout=10) as client:
        stats = client.get(url + "stats").json()
    dropped = set(stats["dropped"])
    return {
        "errors": errors,
        "dropped": len(dropped),
        "connections": stats["connections"],
        "normal": [t for seq, t in latency.items() if seq not in dropped],
        "replayed": [t for seq, t in latency.items() if seq in dropped],
    }


def measure(
    python: str, lib: str, env: dict[str, str], cwd: str, count: int = COUNT
) -> dict[str, dict[str, Any]]:
    """One unpatched and one patched run of the same schedule, each against a fresh server."""
    timing = [str(IDLE_MS), str(RTT_MS)]
    results = {}
    for name, hook in (("unpatched", []), ("patched", ["--hook"])):
        server = [python, str(HERE / "replay_race.py"), "server", *timing]
        with running(server, env, cwd) as port:
            client = [python, str(HERE / "replay_race.py"), "client", lib, port, str(count)]
            done = subprocess.run(
                [*client, str(SEED), *timing, *hook],
                capture_output=True, text=True, check=True, timeout=300, env=env, cwd=cwd,
            )  # fmt: skip
            results[name] = json.loads(done.stdout)
    return results


def main() -> None:
    args = sys.argv[1:]
    if "--hook" in args:
        args.remove("--hook")
        import keepalive_patch  # noqa: F401
    if args[0] == "server":
        run_server(float(args[1]) / 1e3, float(args[2]) / 1e3)
        return
    lib_name, port, count, seed = args[1], int(args[2]), int(args[3]), int(args[4])
    idle, rtt = float(args[5]) / 1e3, float(args[6]) / 1e3
    with contextlib.redirect_stdout(sys.stderr):  # only our JSON on stdout
        result = run_client(lib_name, port, schedule(count, seed, idle, rtt))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
