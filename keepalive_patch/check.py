"""``keepalive-patch check``: what the patch does on this host, proven on live connections.

For each installed library (httpx, httpx2) a sync and an async client open a real connection, to
the given URL or to a loopback server started here, and the options are read back with
``getsockopt`` from the connection's own socket.  A library whose transports take no
``socket_options`` (httpx < 0.25) gets only the connect retry: its connections are reported as
failing, with that reason, because keepalive is not in force there.
"""

import json
import logging
import platform
import sys

import keepalive_patch
from keepalive_patch import _log, config, sockopts

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Iterator, Mapping
    from typing import Any, TextIO

#: library -> the core library it is built on.
LIBRARIES = {"httpx": "httpcore", "httpx2": "httpcore2"}
DISTRIBUTIONS = ("httpx", "httpcore", "httpx2", "httpcore2", "wrapt")
TRANSPORTS = ("sync", "async")
UNITS = {"idle": "s", "interval": "s", "count": "", "retries": "", "user_timeout": "ms"}


def run(
    url: "str | None",
    overrides: "Mapping[str, int | None]",
    as_json: bool = False,
    out: "TextIO | None" = None,
    err: "TextIO | None" = None,
) -> int:
    """Gather the report, print it, and return the exit status (0 all good, 1 otherwise)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    report = gather(url, overrides, err)
    if as_json:
        json.dump(report, out, indent=2)
        out.write("\n")
    else:
        out.write(render(report))
    return 0 if report["ok"] else 1


def gather(
    url: "str | None", overrides: "Mapping[str, int | None]", err: "TextIO"
) -> "dict[str, Any]":
    """Everything ``check`` reports, as plain data (the ``--json`` output)."""
    warnings = _Collector()
    package_logger = _log.logger()
    package_logger.addHandler(warnings)
    _log.forget()  # say again what was said before this handler listened
    try:
        if any(value is not None for value in overrides.values()):
            config.set_explicit(overrides, "flag")
        probed = sockopts.in_force()
        settings = probed.settings
        report: dict[str, Any] = {
            "keepalive_patch": keepalive_patch.__version__,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "platform": platform.platform(),
            "versions": {name: _version(name) for name in DISTRIBUTIONS},
            "applied": keepalive_patch.is_applied(),
            "disabled_by": config.DISABLE_VAR if config.disabled() else None,
            "settings": {
                s.name: {
                    "value": _plain(getattr(settings, s.name)),
                    "source": settings.sources[s.name],
                }
                for s in config.TABLE
            },
            "options": [_option_dict(option) for option in probed.options],
            "dropped": [
                dict(_option_dict(option), reason=reason) for option, reason in probed.rejected
            ],
        }
        report["target"], report["connections"] = _connect_all(url, probed.options, err)
    finally:
        package_logger.removeHandler(warnings)
    report["warnings"] = warnings.messages
    report["ok"] = bool(report["connections"]) and all(c["ok"] for c in report["connections"])
    return report


def _plain(value: "Any") -> "Any":
    return sorted(value) if isinstance(value, frozenset) else value


def _version(distribution: str) -> "str | None":
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _option_dict(option: "tuple[int, int, int]") -> "dict[str, Any]":
    return {"name": sockopts.option_name(option[0], option[1]), "value": option[2]}


class _Collector(logging.Handler):
    """Keeps the package's warnings (bad variables, rejected options) for the report."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _connect_all(
    url: "str | None", expected: "list[tuple[int, int, int]]", err: "TextIO"
) -> "tuple[str, list[dict[str, Any]]]":
    installed = [name for name in LIBRARIES if _importable(name)]
    if url is not None:
        return url, [
            _connect(name, mode, url, True, expected, err)
            for name in installed
            for mode in TRANSPORTS
        ]
    with _loopback_server() as loopback_url:
        return f"{loopback_url} (loopback server started by check)", [
            _connect(name, mode, loopback_url, False, expected, None)
            for name in installed
            for mode in TRANSPORTS
        ]


def _importable(name: str) -> bool:
    import importlib.util

    return sys.modules.get(name) is not None or importlib.util.find_spec(name) is not None


def _connect(
    library: str,
    mode: str,
    url: str,
    trust_env: bool,
    expected: "list[tuple[int, int, int]]",
    progress: "TextIO | None",
) -> "dict[str, Any]":
    """One request through ``library``'s ``mode`` client; the options its socket carries."""
    result: dict[str, Any] = {
        "library": library,
        "transport": mode,
        "ok": False,
        "error": None,
        "note": None,
        "takes_socket_options": None,
    }
    if progress is not None:
        progress.write(f"keepalive-patch check: connecting to {url} with {library} ({mode})...\n")
        progress.flush()
    try:
        import importlib

        module = importlib.import_module(library)
        result["takes_socket_options"] = takes_socket_options(module)
        if not result["takes_socket_options"]:
            result["note"] = (
                f"{library} {getattr(module, '__version__', '')} takes no socket_options "
                "(httpx < 0.25): retries only"
            )
        if mode == "sync":
            status, retries, values = _request_sync(module, url, trust_env, expected)
        else:
            import asyncio

            status, retries, values = asyncio.run(_request_async(module, url, trust_env, expected))
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    result["status"] = status
    result["retries"] = retries
    result["options"] = [
        dict(_option_dict(option), expected=option[2], actual=actual, ok=_matches(option, actual))
        for option, actual in values
    ]
    result["ok"] = (
        result["takes_socket_options"]
        and bool(values)
        and all(item["ok"] for item in result["options"])
    )
    return result


def takes_socket_options(module: "Any") -> bool:
    """Whether ``module``'s transports can carry keepalive options at all (httpx >= 0.25)."""
    import inspect

    return "socket_options" in inspect.signature(module.HTTPTransport.__init__).parameters


def _pool_retries(client: "Any") -> "int | None":
    """The connect retries of the client's transport pool (httpcore keeps them private)."""
    retries = getattr(getattr(getattr(client, "_transport", None), "_pool", None), "_retries", None)
    return retries if isinstance(retries, int) else None


def _matches(option: "tuple[int, int, int]", actual: "int | None") -> bool:
    import socket

    if actual is None:
        return False
    if option[:2] == (socket.SOL_SOCKET, socket.SO_KEEPALIVE):
        return bool(actual) == bool(option[2])  # some platforms read back any non-zero value
    return actual == option[2]


TIMEOUT = 10.0


def _request_sync(
    module: "Any", url: str, trust_env: bool, expected: "list[tuple[int, int, int]]"
) -> "tuple[int, int | None, list[tuple[tuple[int, int, int], int | None]]]":
    """The status, the pool's retries and the options read back from the live socket."""
    with (
        module.Client(trust_env=trust_env, timeout=TIMEOUT) as client,
        client.stream("GET", url) as response,
    ):
        live = sockopts.read_back(_socket_of(response), expected)
        return response.status_code, _pool_retries(client), live


async def _request_async(
    module: "Any", url: str, trust_env: bool, expected: "list[tuple[int, int, int]]"
) -> "tuple[int, int | None, list[tuple[tuple[int, int, int], int | None]]]":
    async with (
        module.AsyncClient(trust_env=trust_env, timeout=TIMEOUT) as client,
        client.stream("GET", url) as response,
    ):
        live = sockopts.read_back(_socket_of(response), expected)
        return response.status_code, _pool_retries(client), live


def _socket_of(response: "Any") -> "socket.socket":
    stream = response.extensions.get("network_stream")
    live = None if stream is None else stream.get_extra_info("socket")
    if live is None:
        raise RuntimeError("the response does not expose its socket (network_stream)")
    return live  # type: ignore[no-any-return]


def _loopback_server() -> "Any":
    import contextlib
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = b"keepalive-patch check\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: "Any") -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: "Any", client_address: "Any") -> None:
            pass  # clients closing mid-stream are expected

    @contextlib.contextmanager
    def serving() -> "Iterator[str]":
        server = Server(("127.0.0.1", 0), Handler)
        thread = threading.Thread(
            target=server.serve_forever, name="keepalive-patch-check", daemon=True
        )
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)

    return serving()


def render(report: "Mapping[str, Any]") -> str:
    """The human-readable report."""
    lines = [f"keepalive-patch {report['keepalive_patch']}"]
    lines.append(
        f"Python {report['python']} ({report['implementation']}, {report['executable']}) "
        f"on {report['platform']}"
    )
    versions = report["versions"]
    lines.append(
        "Packages: "
        + ", ".join(f"{name} {versions[name] or 'not installed'}" for name in DISTRIBUTIONS)
    )
    if report["disabled_by"]:
        lines.append(f"Patch: DISABLED by {report['disabled_by']} (nothing below is applied)")
    else:
        lines.append("Patch: " + ("applied" if report["applied"] else "not applied"))
    lines.append("")
    lines.append("Settings (value, source):")
    for name, item in report["settings"].items():
        value = config.BY_NAME[name].show(item["value"])
        lines.append(f"  {name:<13} {value:<10} {item['source']}")
    lines.append("")
    lines.append("Socket options this host accepts (set on every transport that takes them):")
    for option in report["options"]:
        lines.append(f"  {option['name']:<17} {option['value']}")
    if not report["options"]:
        lines.append("  none")
    dropped = report["dropped"]
    lines.append(
        "Dropped: "
        + (", ".join(f"{d['name']}={d['value']} ({d['reason']})" for d in dropped) or "none")
    )
    for message in report["warnings"]:
        lines.append(f"Warning: {message}")
    lines.append("")
    lines.append(f"Live connections to {report['target']}, read back with getsockopt:")
    if not report["connections"]:
        lines.append("  none: neither httpx nor httpx2 is installed")
    for connection in report["connections"]:
        label = f"  {connection['library']:<7} {connection['transport']:<6}"
        if connection["error"]:
            lines.append(f"{label} FAIL  {connection['error']}")
            continue
        verdict = "OK  " if connection["ok"] else "FAIL"
        if connection["note"]:  # nothing was expected of the socket: show what it has
            shown = [f"{item['name']}={item['actual']}" for item in connection["options"]]
            text = f"{connection['note']} (retries={connection['retries']}); {' '.join(shown)}"
            lines.append(f"{label} {verdict}  {text}")
            continue
        shown = []
        for item in connection["options"]:
            text = f"{item['name']}={item['actual']}"
            shown.append(text if item["ok"] else f"{text} (expected {item['expected']})")
        lines.append(f"{label} {verdict}  {' '.join(shown) or 'no options to compare'}")
    lines.append("")
    retries_only = sorted({c["library"] for c in report["connections"] if c["note"]})
    others_failed = any(c["error"] or not (c["ok"] or c["note"]) for c in report["connections"])
    if report["ok"]:
        lines.append("OK: every installed library's connections carry the keepalive options.")
    elif not report["connections"]:
        lines.append("FAIL: nothing to check; install httpx or httpx2.")
    for library in retries_only:
        lines.append(
            f"FAIL: keepalive is not in force for {library} {versions[library]}: its transports "
            "take no socket_options (httpx < 0.25), so only the connect retry is applied; "
            "httpx >= 0.25 gets keepalive."
        )
    if others_failed:
        lines.append("FAIL: some connections lack the keepalive options (see above).")
    return "\n".join(lines) + "\n"
