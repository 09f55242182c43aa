"""The public API, and what ``import keepalive_patch`` does to a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from support.libs import require_socket_options

import keepalive_patch

HEAVY = ["httpx", "httpx2", "httpcore", "httpcore2", "wrapt", "anyio"]


def run_python(code: str, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KEEPALIVE_PATCH_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, *flags, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )


def test_public_api() -> None:
    assert keepalive_patch.is_applied()
    assert keepalive_patch.settings().idle == 30
    assert keepalive_patch.socket_options()[0][2] == 1
    assert set(keepalive_patch.__all__) >= {"apply", "remove", "is_applied", "socket_options"}


def test_import_loads_nothing_heavy() -> None:
    """Only our own modules may appear: no HTTP library, no wrapt, no typing/logging/socket."""
    result = run_python(
        """
        import sys, json
        before = set(sys.modules)
        import keepalive_patch
        print(json.dumps(sorted(set(sys.modules) - before)))
        """
    )
    assert result.returncode == 0, result.stderr
    added = json.loads(result.stdout)
    assert all(name.startswith("keepalive_patch") for name in added), added


def test_http_library_import_triggers_the_patch() -> None:
    """Importing httpx arms its classes; wrapt is loaded by the first transport built."""
    result = run_python(
        f"""
        import sys, json
        import keepalive_patch
        idle = [m for m in {HEAVY!r} if m in sys.modules]
        import httpx
        armed = hasattr(httpx.HTTPTransport.__dict__["__init__"], "__wrapped__")
        wrapt_at_import = "wrapt" in sys.modules
        retries = httpx.HTTPTransport()._pool._retries
        print(json.dumps({{"idle": idle, "armed": armed, "wrapt_at_import": wrapt_at_import,
                          "wrapped": type(httpx.HTTPTransport.__dict__["__init__"]).__name__,
                          "retries": retries}}))
        """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "idle": [],
        "armed": True,
        "wrapt_at_import": False,
        "wrapped": "FunctionWrapper",
        "retries": 1,
    }


def test_library_imported_before_the_shim_is_patched_at_once() -> None:
    result = run_python(
        "import httpx, keepalive_patch; print(httpx.HTTPTransport()._pool._retries)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_environment_settings_reach_the_live_socket() -> None:
    require_socket_options(pytest.importorskip("httpx"))
    result = run_python(
        """
        import socket, threading, http.server, json
        import keepalive_patch, httpx
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def do_GET(self):
                self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
            def log_message(self, *a): pass
        server = http.server.HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=server.handle_request, daemon=True).start()
        with httpx.Client() as c:
            with c.stream("GET", f"http://127.0.0.1:{server.server_address[1]}/") as r:
                s = r.extensions["network_stream"].get_extra_info("socket")
                print(json.dumps([s.getsockopt(socket.IPPROTO_TCP, o) for o in
                    (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT,
                     socket.TCP_USER_TIMEOUT)]))
        server.server_close()
        """,
        "-W",
        "error",
        KEEPALIVE_PATCH_IDLE="5",
        KEEPALIVE_PATCH_INTERVAL="2",
        KEEPALIVE_PATCH_COUNT="4",
        KEEPALIVE_PATCH_USER_TIMEOUT="0",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [5, 2, 4, 0]
    assert result.stderr == "", "no warnings, no log output by default"


def test_disable_variable_leaves_everything_alone() -> None:
    result = run_python(
        """
        import sys, keepalive_patch, httpx
        print(keepalive_patch.is_applied(), type(httpx.HTTPTransport.__dict__["__init__"]).__name__,
              httpx.HTTPTransport()._pool._retries, "wrapt" in sys.modules)
        """,
        KEEPALIVE_PATCH_DISABLE="1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "function", "0", "False"]


def test_bad_environment_never_breaks_the_host() -> None:
    result = run_python(
        "import keepalive_patch, httpx; print(httpx.HTTPTransport()._pool._retries)",
        "-W",
        "error",
        KEEPALIVE_PATCH_IDLE="forever",
        KEEPALIVE_PATCH_COUNT="0",
        KEEPALIVE_PATCH_INTERVAL="32767",
        KEEPALIVE_PATCH_REPLAY="sometimes",
        KEEPALIVE_PATCH_SKIP="nosuchlib",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    assert result.stderr == ""


@pytest.mark.parametrize("word", ["y", "perhaps", "TRUE ", "2"])
def test_mistyped_opt_out_fails_closed(word: str) -> None:
    """An emergency off switch must not be defeated by a typo: any other value disables."""
    result = run_python(
        "import keepalive_patch, httpx\n"
        "print(keepalive_patch.is_applied(), httpx.HTTPTransport()._pool._retries)",
        KEEPALIVE_PATCH_DISABLE=word,
    )
    assert result.stdout.split() == ["False", "0"], result.stderr


def test_logger_has_a_null_handler_and_stdout_stays_clean() -> None:
    result = run_python(
        """
        import logging, keepalive_patch, httpx
        httpx.HTTPTransport()
        log = logging.getLogger("keepalive_patch")
        print([type(h).__name__ for h in log.handlers])
        """,
        KEEPALIVE_PATCH_IDLE="bad",  # something to log
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['NullHandler']"
    assert result.stderr == ""
