"""``keepalive-patch check``: what the patch does on this host, proven on live connections.

Each installed HTTP stack (``PROBES``) makes a real request, to the given URL or to a loopback
server started here, and the keepalive options are read back with ``getsockopt`` from that
connection's own socket.  The outcome of each connection is one of:

- ``ok``: the socket carries every option in force;
- ``missing``: the request worked but the socket lacks options (exit status 1);
- ``retries-only``: httpx < 0.25 takes no ``socket_options``: only the connect retry applies
  (exit status 1: keepalive is not in force there);
- ``failed``: the request itself failed, so nothing could be read back (exit status 3 when no
  connection was ``missing``): a network or server problem, not the patch's.

``--timeout`` bounds the whole command: connections not done by then are reported as failed.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import platform
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import keepalive_patch
from keepalive_patch import _log, config, sockopts
from keepalive_patch.probes import Probe, available
from keepalive_patch.sockopts import SocketOption

DISTRIBUTIONS = ("httpx", "httpcore", "httpx2", "httpcore2", "urllib3", "requests", "aiohttp")
#: Exit statuses (2 is argparse's usage error).
OK, MISSING, FAILED = 0, 1, 3
#: The default ``--timeout``: what a person waits for.
TIMEOUT = 10.0


@dataclass(frozen=True)
class Reading:
    """One option as set in force next to what ``getsockopt`` read from the live socket."""

    option: SocketOption
    actual: int | None

    @property
    def name(self) -> str:
        return sockopts.option_name(self.option[0], self.option[1])

    @property
    def ok(self) -> bool:
        if self.actual is None:
            return False
        if self.option[:2] == (socket.SOL_SOCKET, socket.SO_KEEPALIVE):
            return bool(self.actual) == bool(self.option[2])  # any non-zero value on some OSes
        return self.actual == self.option[2]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.option[2],
            "expected": self.option[2],
            "actual": self.actual,
            "ok": self.ok,
        }


@dataclass
class Connection:
    """One request through one library: what its socket carried, or why there was none."""

    library: str
    transport: str
    status: int | None = None
    retries: int | None = None
    readings: list[Reading] = field(default_factory=list)
    error: str | None = None
    note: str | None = None
    takes_socket_options: bool | None = None

    #: Why no request was made: the library is named in ``KEEPALIVE_PATCH_SKIP``.
    skipped: str | None = None

    @property
    def outcome(self) -> str:
        if self.skipped is not None:
            return "skipped"
        if self.error is not None:
            return "failed"
        if self.note is not None:
            return "retries-only"
        if self.readings and all(reading.ok for reading in self.readings):
            return "ok"
        return "missing"

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "transport": self.transport,
            "outcome": self.outcome,
            "ok": self.ok,
            "status": self.status,
            "retries": self.retries,
            "error": self.error,
            "note": self.note,
            "takes_socket_options": self.takes_socket_options,
            "skipped": self.skipped,
            "options": [reading.to_json() for reading in self.readings],
        }


@dataclass
class Report:
    """Everything ``check`` found; ``to_json`` and ``render`` are its two views."""

    in_force: sockopts.InForce
    disabled: bool
    applied: bool
    target: str
    connections: list[Connection]
    warnings: list[str]

    @property
    def outcome(self) -> str:
        outcomes = {c.outcome for c in self.connections} - {"skipped"}
        if not outcomes:
            return "nothing"
        if outcomes == {"ok"}:
            return "ok"
        if outcomes & {"missing", "retries-only"}:
            return "missing"
        return "failed"

    @property
    def status(self) -> int:
        return {"ok": OK, "failed": FAILED}.get(self.outcome, MISSING)

    def to_json(self) -> dict[str, Any]:
        settings = self.in_force.settings
        return {
            "keepalive_patch": keepalive_patch.__version__,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "platform": platform.platform(),
            "versions": {name: _version(name) for name in (*DISTRIBUTIONS, "wrapt")},
            "applied": self.applied,
            "disabled_by": config.DISABLE_VAR if self.disabled else None,
            "settings": {
                row.name: {
                    "value": _plain(getattr(settings, row.name)),
                    "source": settings.sources.get(row.name, "default"),
                }
                for row in config.TABLE
            },
            "options": [_option_json(option) for option in self.in_force.options],
            "dropped": [
                dict(_option_json(option), reason=reason)
                for option, reason in self.in_force.rejected
            ],
            "warnings": self.warnings,
            "left_alone": {
                name: config.SKIP_LEAVES[name] for name in sorted(self.in_force.settings.skip)
            },
            "target": self.target,
            "connections": [connection.to_json() for connection in self.connections],
            "outcome": self.outcome,
            "ok": self.outcome == "ok",
        }

    def render(self) -> str:
        """The human-readable report."""
        data = self.to_json()
        versions = data["versions"]
        lines = [
            f"keepalive-patch {data['keepalive_patch']}",
            f"Python {data['python']} ({data['implementation']}, {data['executable']}) "
            f"on {data['platform']}",
            "Packages: "
            + ", ".join(
                f"{name} {version or 'not installed'}" for name, version in versions.items()
            ),
        ]
        if self.disabled:
            lines.append(
                f"Patch: DISABLED by {config.DISABLE_VAR} (nothing below is applied; any value "
                "but 0/false/no/off/empty disables)"
            )
        elif not self.applied and not keepalive_patch.wrapt_importable():
            lines.append(
                f"Patch: NOT APPLIED: this Python ({sys.executable}) cannot import wrapt, which "
                "every wrapper needs; install wrapt here, or use a directory built by "
                "'keepalive-patch bundle'"
            )
        else:
            lines.append("Patch: " + ("applied" if self.applied else "not applied"))
        lines += ["", "Settings (value, source):"]
        for row in config.TABLE:
            item = data["settings"][row.name]
            value = row.show(getattr(self.in_force.settings, row.name))
            lines.append(f"  {row.name:<13} {value:<10} {item['source']}")
        lines += ["", "Socket options this host accepts (set on every connection that takes them):"]
        lines += [f"  {o['name']:<17} {o['value']}" for o in data["options"]] or ["  none"]
        dropped = ", ".join(f"{d['name']}={d['value']} ({d['reason']})" for d in data["dropped"])
        lines.append("Dropped: " + (dropped or "none"))
        lines += [f"Warning: {message}" for message in self.warnings]
        lines += ["", f"Live connections to {self.target}, read back with getsockopt:"]
        if not self.connections:
            lines.append("  none: no HTTP library keepalive-patch covers is installed")
        lines += [_render_connection(connection) for connection in self.connections]
        lines.append("")
        lines += self._verdicts(versions)
        return "\n".join(lines) + "\n"

    def _verdicts(self, versions: Mapping[str, str | None]) -> list[str]:
        outcomes = [connection.outcome for connection in self.connections]
        skipped = sorted(self.in_force.settings.skip)
        lines = []
        if self.outcome == "ok":
            lines.append(
                "OK: every installed library's connections carry the keepalive options."
                if not skipped
                else "OK: every connection keepalive-patch was left to patch carries the "
                f"keepalive options; left alone on purpose: {', '.join(skipped)}."
            )
        elif self.outcome == "nothing":
            lines.append(
                "FAIL: nothing to check; install a library keepalive-patch covers "
                "(httpx, httpx2, requests, urllib3, aiohttp) or leave it out of "
                f"{config.BY_NAME['skip'].env}."
            )
        lines += [
            f"Left alone ({config.BY_NAME['skip'].env}): {config.SKIP_LEAVES[name]}"
            for name in skipped
        ]
        for library in sorted({c.library for c in self.connections if c.note}):
            lines.append(
                f"FAIL: keepalive is not in force for {library} {versions.get(library)}: its "
                "transports take no socket_options (httpx < 0.25), so only the connect retry is "
                "applied; httpx >= 0.25 gets keepalive."
            )
        if "missing" in outcomes:
            lines.append("FAIL: some connections lack the keepalive options (see above).")
        if "failed" in outcomes:
            lines.append(
                "REQUEST FAILED: some requests failed before their options could be read back "
                "(see above); that is the network or the server, not the patch."
            )
        return lines


def _render_connection(connection: Connection) -> str:
    label = f"  {connection.library:<7} {connection.transport:<6}"
    if connection.skipped is not None:
        return f"{label} SKIPPED  {connection.skipped}"
    if connection.error is not None:
        return f"{label} REQUEST FAILED  {connection.error}"
    verdict = "OK  " if connection.ok else "FAIL"
    if connection.note is not None:  # nothing was expected of the socket: show what it has
        shown = " ".join(f"{r.name}={r.actual}" for r in connection.readings)
        return f"{label} {verdict}  {connection.note} (retries={connection.retries}); {shown}"
    shown = " ".join(
        f"{r.name}={r.actual}" if r.ok else f"{r.name}={r.actual} (expected {r.option[2]})"
        for r in connection.readings
    )
    return f"{label} {verdict}  {shown or 'no options to compare'}"


def run(
    url: str | None,
    overrides: Mapping[str, Any],
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    timeout: float = TIMEOUT,
) -> int:
    """Gather the report, print it, and return the exit status (see the module docstring)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    report = gather(url, overrides, err, timeout)
    if as_json:
        json.dump(report.to_json(), out, indent=2)
        out.write("\n")
    else:
        out.write(report.render())
    return report.status


def gather(
    url: str | None, overrides: Mapping[str, Any], err: TextIO, timeout: float = TIMEOUT
) -> Report:
    """Everything ``check`` reports; never raises on configuration."""
    collector = _Collector()
    package_logger = _log.logger()
    package_logger.addHandler(collector)
    _log.forget()  # say again what was said before this handler listened
    try:
        if any(value is not None for value in overrides.values()):
            config.set_explicit(overrides, "flag")
        state = sockopts.in_force()
        target, connections = _connect_all(url, state.options, err, timeout)
    finally:
        package_logger.removeHandler(collector)
    return Report(
        in_force=state,
        disabled=config.disabled(),
        applied=keepalive_patch.is_applied(),
        target=target,
        connections=connections,
        warnings=collector.messages,
    )


class _Collector(logging.Handler):
    """Keeps the package's warnings (bad variables, rejected options) for the report."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _connect_all(
    url: str | None, expected: list[SocketOption], err: TextIO, timeout: float
) -> tuple[str, list[Connection]]:
    probes = available()
    if url is not None:
        return url, _within(timeout, probes, url, True, expected, err)
    with loopback_server() as loopback_url:
        connections = _within(timeout, probes, loopback_url, False, expected, None)
        return f"{loopback_url} (loopback server started by check)", connections


def _within(
    timeout: float,
    probes: list[Probe],
    url: str,
    trust_env: bool,
    expected: list[SocketOption],
    progress: TextIO | None,
) -> list[Connection]:
    """Run the probes on a worker thread and stop waiting at the deadline, whatever hangs."""
    deadline = time.monotonic() + timeout
    done: list[Connection] = []

    def work() -> None:
        for index, probe in enumerate(probes):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            share = remaining / (len(probes) - index)  # one hung server cannot starve the rest
            done.append(_connect(probe, url, trust_env, expected, progress, share))

    worker = threading.Thread(target=work, name="keepalive-patch-check", daemon=True)
    worker.start()
    worker.join(timeout)
    connections = list(done)
    for probe in probes[len(connections) :]:
        connections.append(
            Connection(
                probe.library,
                probe.transport,
                error=f"TimeoutError: not done within the --timeout of {timeout:g} s",
            )
        )
    return connections


def _connect(
    probe: Probe,
    url: str,
    trust_env: bool,
    expected: list[SocketOption],
    progress: TextIO | None,
    timeout: float,
) -> Connection:
    """One request through ``probe``; the options its socket carries, or why there were none."""
    connection = Connection(probe.library, probe.transport)
    if probe.options_from in config.current().skip:
        connection.skipped = f"left alone: {config.BY_NAME['skip'].env} names {probe.options_from}"
        return connection
    if progress is not None:
        progress.write(
            f"keepalive-patch check: connecting to {url} with {probe.library} "
            f"({probe.transport})...\n"
        )
        progress.flush()
    if probe.library in ("httpx", "httpx2"):
        import importlib

        from keepalive_patch.probes import takes_socket_options

        module = importlib.import_module(probe.library)
        connection.takes_socket_options = takes_socket_options(module)
        if not connection.takes_socket_options:
            connection.note = (
                f"{probe.library} {getattr(module, '__version__', '')} takes no socket_options "
                "(httpx < 0.25): retries only"
            )
    try:
        connection.status, connection.retries, values = probe.request(
            url, trust_env, expected, timeout
        )
        connection.readings = [Reading(option, actual) for option, actual in values]
    except Exception as exc:
        connection.error = describe(exc)
    return connection


def describe(exc: BaseException) -> str:
    """``Type: reason``, with a reason even where the exception has no message of its own
    (async timeouts): the first cause that has one, else the exception class's own summary."""
    reason = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    while not reason and cause is not None:
        text = str(cause).strip()
        reason = f"{type(cause).__name__}: {text}" if text else ""
        cause = cause.__cause__ or cause.__context__
    if not reason:
        doc = (type(exc).__doc__ or "").strip().splitlines()
        reason = doc[0].strip() if doc else "no reason given"
    return f"{type(exc).__name__}: {reason}"


# -- helpers ----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return sorted(value) if isinstance(value, frozenset) else value


def _option_json(option: SocketOption) -> dict[str, Any]:
    return {"name": sockopts.option_name(option[0], option[1]), "value": option[2]}


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"keepalive-patch check\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients closing mid-stream are expected


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """``server`` answering on a daemon thread for the block, then shut down and closed.

    Public for the test suite, which runs its loopback servers (TCP and Unix) the same way.
    """
    thread = threading.Thread(
        target=server.serve_forever, name="keepalive-patch-check", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def loopback_server(
    handler: type[http.server.BaseHTTPRequestHandler] = _Handler,
) -> Iterator[str]:
    """An HTTP/1.1 server on 127.0.0.1 (check's answer, or ``handler``'s); yields its base URL."""
    server = _Server(("127.0.0.1", 0), handler)
    with serving(server):
        yield f"http://127.0.0.1:{server.server_address[1]}/"
