"""Next to the APM agents people already run: ``opentelemetry-instrument`` and ``ddtrace-run``.

Real agents (the test extra installs opentelemetry-distro with the httpx and requests
instrumentations, and ddtrace), each in both launcher orders and in its own injected
``PYTHONPATH`` layout beside a bundle: the app (``scripts/fleet_app.py``) reads keepalive back
from its live sockets, the server counts the replay, and the agent still does its job: OTel's
console exporter prints a span per request, ddtrace sets its patch marker and logs each span it
finishes.  Nothing leaves loopback: OTel exports to stdout, ddtrace's agent URL is a closed
loopback port.
"""

import importlib.util
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.others import app_venv, run_fleet_app
from support.procs import clean_env, expected

from keepalive_patch import bundle

pytestmark = pytest.mark.fleet

# Looked up, never imported here: importing ddtrace installs its import hooks in this process.
if not all(importlib.util.find_spec(name) for name in ("opentelemetry", "ddtrace")):
    pytest.skip("the test extra's agents are not installed", allow_module_level=True)

BIN = Path(sys.executable).parent
PYTHON = sys.executable
KEEPALIVE_RUN = [str(BIN / "keepalive-patch"), "run", "--"]
OTEL_RUN = [str(BIN / "opentelemetry-instrument")]
DDTRACE_RUN = [str(BIN / "ddtrace-run")]
#: OTel's spans go to stdout, and nothing else is exported.
OTEL_ENV = {
    "OTEL_TRACES_EXPORTER": "console",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "OTEL_SERVICE_NAME": "fleet-app",
}
#: A setting of ours that must survive whichever of us applies the patch first.
OURS = {"KEEPALIVE_PATCH_IDLE": "7"}
OTEL_ORDERS = {
    "keepalive-patch-run-first": [*KEEPALIVE_RUN, *OTEL_RUN, PYTHON],
    "opentelemetry-instrument-first": [*OTEL_RUN, *KEEPALIVE_RUN, PYTHON],
}
DDTRACE_ORDERS = {
    "keepalive-patch-run-first": [*KEEPALIVE_RUN, *DDTRACE_RUN, PYTHON],
    "ddtrace-run-first": [*DDTRACE_RUN, *KEEPALIVE_RUN, PYTHON],
}


def closed_loopback_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ddtrace_env() -> "dict[str, str]":
    """ddtrace on, its agent a closed loopback port, nothing else it would send."""
    port = closed_loopback_port()
    return {
        "DD_TRACE_AGENT_URL": f"http://127.0.0.1:{port}",
        "DD_AGENT_HOST": "127.0.0.1",
        "DD_DOGSTATSD_URL": f"udp://127.0.0.1:{port}",
        "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
        "DD_REMOTE_CONFIGURATION_ENABLED": "false",
        "DD_CRASHTRACKING_ENABLED": "false",
        "DD_TRACE_STARTUP_LOGS": "false",
        "DD_SERVICE": "fleet-app",
    }


def assert_keepalive(report: "dict[str, Any]", idle: int = 7) -> None:
    """Every library's live socket carries our options (``idle`` as set), retries are in force,
    and the server counted the replay."""
    want = expected(idle=idle)
    assert sorted(report["results"]) == ["aiohttp", "httpx", "requests"]
    for library, got in report["results"].items():
        assert got["options"] == {key: want[key] for key in got["options"]}, library
    assert report["results"]["httpx"]["retries"] == 1
    assert report["results"]["requests"]["retries"] == 1
    assert report["replay"] == {"requests": 3, "outcome": "ok"}
    assert report["shim"]["applied"] is True


def assert_unpatched(report: "dict[str, Any]") -> None:
    for library, got in report["results"].items():
        assert (got["options"]["SO_KEEPALIVE"], got["retries"]) == (0, 0), library


def otel_span_paths(stdout: str) -> "set[str]":
    """The request paths of the CLIENT spans OTel's console exporter printed."""
    urls = re.findall(r'"(?:http\.url|url\.full)": "http://127\.0\.0\.1:\d+(/\w+)"', stdout)
    return set(urls)


def ddtrace_span_paths(log: str) -> "set[str]":
    """The request paths of the spans ddtrace logged as finished (its DEBUG log)."""
    return set(re.findall(r"finishing span .*?'http\.url': 'http://127\.0\.0\.1:\d+(/\w+)'", log))


# -- OpenTelemetry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", sorted(OTEL_ORDERS))
def test_opentelemetry_instrument_in_either_order(order: str) -> None:
    report, result = run_fleet_app(OTEL_ORDERS[order], clean_env(**OTEL_ENV, **OURS))
    assert_keepalive(report)
    assert {"/httpx", "/requests", "/drop"} <= otel_span_paths(result.stdout)
    assert "Attempting to instrument while already instrumented" not in result.stderr


def test_opentelemetry_instrument_alone_applies_it_as_an_instrumentation() -> None:
    """keepalive-patch installed, only OTel's launcher: the entry point applies it."""
    report, result = run_fleet_app([*OTEL_RUN, PYTHON], clean_env(**OTEL_ENV, **OURS))
    assert_keepalive(report)
    assert {"/httpx", "/requests"} <= otel_span_paths(result.stdout)


def test_opentelemetry_disabled_instrumentations_can_name_it() -> None:
    """``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=keepalive_patch``: OTel leaves us out, and with
    OTel's sitecustomize first ours never runs (what was measured before the entry point)."""
    env = clean_env(**OTEL_ENV, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="keepalive_patch")
    report, result = run_fleet_app(OTEL_ORDERS["keepalive-patch-run-first"], env)
    assert_unpatched(report)
    assert {"/httpx", "/requests"} <= otel_span_paths(result.stdout)


@pytest.fixture(scope="module")
def app_here(tmp_path_factory: pytest.TempPathFactory) -> str:
    """This Python in a virtualenv with httpx, requests and aiohttp only (an app's image)."""
    return str(app_venv(sys.executable, tmp_path_factory.mktemp("app-here")))


def pip_target(root: Path, *packages: str) -> Path:
    """``pip install --target root packages``: how injected agents ship their directory."""
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "-q", "--target", str(root), *packages],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return root


def test_opentelemetry_operator_layout_beside_the_bundle(
    app_here: str, bundle_dir: Path, tmp_path: Path
) -> None:
    """The Operator's PYTHONPATH (its sitecustomize first, its packages next) and then ours, in
    an image that has neither OTel nor keepalive-patch nor wrapt: OTel finds the bundle's entry
    point, and the bundle's package and wrapt are borrowed."""
    otel = pip_target(
        tmp_path / "otel-auto-instrumentation-python",
        "opentelemetry-distro",
        "opentelemetry-instrumentation-httpx",
        "opentelemetry-instrumentation-requests",
    )
    path = [
        otel / "opentelemetry/instrumentation/auto_instrumentation",
        otel,
        bundle_dir / bundle.BOOTSTRAP,
    ]
    env = clean_env(PYTHONPATH=":".join(map(str, path)), **OTEL_ENV, **OURS)
    report, result = run_fleet_app([app_here], env)
    assert_keepalive(report)
    assert report["shim"]["file"] == str(bundle_dir / "keepalive_patch/__init__.py")
    assert {"/httpx", "/requests"} <= otel_span_paths(result.stdout)


# -- ddtrace ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", sorted(DDTRACE_ORDERS))
def test_ddtrace_run_in_either_order(order: str) -> None:
    report, result = run_fleet_app(DDTRACE_ORDERS[order], clean_env(**ddtrace_env(), **OURS))
    assert_keepalive(report)
    assert report["datadog_patch"] == {"httpx": True, "requests": True, "aiohttp": True}
    assert {"/httpx", "/requests", "/aiohttp"} <= ddtrace_span_paths(result.stderr)


def test_ddtrace_layout_beside_the_bundle(app_here: str, bundle_dir: Path, tmp_path: Path) -> None:
    """ddtrace installed into a directory of its own with its bootstrap first on PYTHONPATH (as
    ``ddtrace-run`` does), then ours, in an image without either."""
    ddtrace = pip_target(tmp_path / "ddtrace-lib", "ddtrace")
    path = [ddtrace / "ddtrace/bootstrap", ddtrace, bundle_dir / bundle.BOOTSTRAP]
    env = clean_env(PYTHONPATH=":".join(map(str, path)), **ddtrace_env(), **OURS)
    report, result = run_fleet_app([app_here], env)
    assert_keepalive(report)
    assert report["shim"]["file"] == str(bundle_dir / "keepalive_patch/__init__.py")
    assert report["datadog_patch"] == {"httpx": True, "requests": True, "aiohttp": True}
    assert {"/httpx", "/requests", "/aiohttp"} <= ddtrace_span_paths(result.stderr)
