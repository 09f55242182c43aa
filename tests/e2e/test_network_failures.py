"""The failures keepalive-patch exists for, reproduced on real kernels in network namespaces.

Every client runs in its own process inside the client namespace (the hook is process-wide), so
the hook-on and hook-off runs of every scenario and library run side by side; one module-scoped
fixture launches all selected runs at once and the tests only check what happened.  Times come
from CLOCK_MONOTONIC, which the test process and the clients share.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _netns import Endpoint, Servers, Topology, unavailable_reason
from support.libs import retries_only_reason, takes_socket_options

pytestmark = pytest.mark.e2e

CLIENT_SCRIPT = str(Path(__file__).with_name("_client.py"))
LIBS = ("httpx", "httpx2")
MODES = ("sync", "async")
VARIANTS = [f"{lib}-{mode}" for lib in LIBS for mode in MODES]
INSTALLED = {lib: importlib.import_module(lib) for lib in LIBS if importlib.util.find_spec(lib)}
#: Scenarios that only keepalive options can pass; httpx < 0.25 gets retries only.
KEEPALIVE_SCENARIOS = {"nat", "waiting", "upload"}

IDLE, INTERVAL, COUNT = 1, 1, 3
BUDGET = IDLE + INTERVAL * COUNT  # seconds until keepalive gives up on a silent peer
USER_TIMEOUT = BUDGET  # the opt-in TCP_USER_TIMEOUT the upload scenario sets: the budget
HOOK_ENV = {
    "KEEPALIVE_PATCH_IDLE": str(IDLE),
    "KEEPALIVE_PATCH_INTERVAL": str(INTERVAL),
    "KEEPALIVE_PATCH_COUNT": str(COUNT),
}
CONNTRACK_TIMEOUT = 3  # the router forgets an idle flow after this many seconds
SILENCE = 8.0  # the NAT scenario's server thinks this long before answering
NAT_READ_TIMEOUT = 10.0  # > SILENCE: without the NAT the answer would arrive in time
WAIT_READ_TIMEOUT = 8.0  # > BUDGET + SLACK: the hook-off client's only way out
SLACK = 1.5
UPLOAD_BYTES = 32 * 1024 * 1024  # more than any socket buffers hold: data stays unacknowledged
UPLOAD_SEEN = 512 * 1024  # the path dies once the server has read this much
OWN_TIMEOUT = 8.0  # how long after the blackhole the upload test waits for an error
HARD_LIMIT = 40.0  # no client process lives longer than this
TIMEOUT_SLOP = 0.5  # timers fire late, never early; allow for the time to start the client


class Run:
    """One client process: its spec, the server endpoint it talks to, and its result."""

    def __init__(
        self, topology: Topology, endpoint: Endpoint, spec: dict[str, Any], env: dict[str, str]
    ) -> None:
        self.endpoint = endpoint
        self.spec = spec
        self.own_timeout: float | None = spec.pop("own_timeout", None)
        self.result: dict[str, Any] = {}
        self.stderr = ""
        self.proc = subprocess.Popen(
            topology.client_command([sys.executable, CLIENT_SCRIPT, json.dumps(spec)]),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def collect(self) -> None:
        out, self.stderr = self.proc.communicate(timeout=10)
        self.result = {"outcome": "crashed"}
        for line in out.splitlines():
            if line.startswith("{"):
                self.result.update(json.loads(line))

    def kill(self, why: str) -> None:
        now = time.monotonic()
        self.proc.kill()
        self.collect()
        self.result.update(outcome="killed", why=why, t_end=now)

    @property
    def patched(self) -> bool:
        return bool(self.result.get("socket_options"))

    def since(self, start: float | None) -> float:
        return float("nan") if start is None else float(self.result.get("t_end", 0.0)) - start

    def describe(self) -> str:
        r, e = self.result, self.endpoint
        what = r.get("outcome")
        if what == "response":
            what = f"HTTP {r['status']}"
        elif what == "error":
            what = f"{r['error']}: {r['message']}"
        elif what == "killed":
            what = f"no error; killed ({r['why']})"
        else:
            what = f"{what}; stderr: {self.stderr[-600:]}"
        return (
            f"{self.spec['lib']} {self.spec['mode']} hook={'on' if self.spec['hook'] else 'off'}: "
            f"{what}; {self.since(e.t_request):.2f} s after the server got the request"
            + ("" if e.t_event is None else f", {self.since(e.t_event):.2f} s after the blackhole")
            + f"; connections={e.connections} requests={e.requests}"
            + f"; retries={r.get('retries')} socket_options={r.get('socket_options')}"
        )


def _env(hook: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPALIVE_PATCH_")}
    env.update(HOOK_ENV if hook else {"KEEPALIVE_PATCH_DISABLE": "1"})
    env.update(extra or {})
    return env


def skip_reason(scenario: str, variant: str) -> str | None:
    """Why ``scenario`` cannot run with ``variant``'s library here, or None."""
    lib = variant.split("-")[0]
    if lib not in INSTALLED:
        return f"{lib} is not installed"
    if scenario in KEEPALIVE_SCENARIOS and not takes_socket_options(INSTALLED[lib]):
        return retries_only_reason(INSTALLED[lib])
    return None


def _launch(topology: Topology, servers: Servers, scenario: str) -> dict[tuple[str, ...], Run]:
    runs: dict[tuple[str, ...], Run] = {}

    def blackhole(endpoint: Endpoint) -> None:
        endpoint.t_event = time.monotonic()
        topology.blackhole(endpoint.port)

    for variant in VARIANTS:
        if skip_reason(scenario, variant):
            continue
        lib, mode = variant.split("-")
        hooks: list[tuple[str, bool, dict[str, str]]] = [("on", True, {}), ("off", False, {})]
        if scenario == "upload":  # TCP_USER_TIMEOUT is opt-in: this scenario opts in
            hooks = [
                ("on", True, {"KEEPALIVE_PATCH_USER_TIMEOUT": str(USER_TIMEOUT * 1000)}),
                ("off", False, {}),
                ("on-no-user-timeout", True, {}),
            ]
        for label, hook, extra in hooks:
            spec: dict[str, Any] = {"lib": lib, "mode": mode, "hook": hook}
            if scenario == "nat":
                endpoint = servers.add("answer", delay=SILENCE)
                spec["read_timeout"] = NAT_READ_TIMEOUT
            elif scenario == "waiting":
                endpoint = servers.add("hold", on_request=blackhole)
                spec["read_timeout"] = WAIT_READ_TIMEOUT
            elif scenario == "upload":
                endpoint = servers.add(
                    "hold_upload", upload_threshold=UPLOAD_SEEN, on_request=blackhole
                )
                spec.update(upload=UPLOAD_BYTES, timeout=60.0, read_timeout=60.0)
                spec.update(write_timeout=60.0, own_timeout=OWN_TIMEOUT)
            elif scenario == "refused":
                endpoint = servers.add("answer")
                topology.refuse_first_connect(endpoint.port)
            elif scenario == "double":
                endpoint = servers.add("close")
                spec["post"] = True
            else:
                raise AssertionError(scenario)
            spec["url"] = f"http://{topology.server_addr}:{endpoint.port}/{scenario}"
            runs[(scenario, variant, label)] = Run(topology, endpoint, spec, _env(hook, extra))
    return runs


def _wait(runs: list[Run]) -> None:
    deadline = time.monotonic() + HARD_LIMIT
    pending = list(runs)
    while pending:
        now = time.monotonic()
        for run in list(pending):
            event = run.endpoint.t_event
            if run.proc.poll() is not None:
                run.collect()
            elif (
                run.own_timeout is not None and event is not None and now > event + run.own_timeout
            ):
                run.kill(f"the test's own timeout, {now - event:.2f} s after the blackhole")
            elif now > deadline:
                run.kill(f"hard limit of {HARD_LIMIT:.0f} s")
            else:
                continue
            pending.remove(run)
        time.sleep(0.05)


SCENARIOS = {
    "test_nat_idle_drop": "nat",
    "test_dead_peer_while_waiting": "waiting",
    "test_dead_peer_during_upload": "upload",
    "test_retry_after_refused_connect": "refused",
    "test_no_double_submit": "double",
}


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest) -> Iterator[dict[tuple[str, ...], Run]]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    selected = {
        SCENARIOS[item.originalname]
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname in SCENARIOS
    }
    topology = Topology(conntrack_timeout=CONNTRACK_TIMEOUT)
    servers = Servers(topology)
    launched: dict[tuple[str, ...], Run] = {}
    try:
        try:
            topology.up()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot build the namespace topology here: {exc}")
        for scenario in sorted(selected):
            launched.update(_launch(topology, servers, scenario))
        started = time.monotonic()
        _wait(list(launched.values()))
        sys.stderr.write(
            f"\ne2e: {len(launched)} clients ran in {time.monotonic() - started:.1f} s\n"
        )
        _report(launched)
        yield launched
    finally:
        for run in launched.values():
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait(timeout=10)
        servers.close()
        topology.down()


def _report(runs: dict[tuple[str, ...], Run]) -> None:
    """Write every run's measured times as JSON where ``KEEPALIVE_E2E_REPORT`` says (benchmarks)."""
    path = os.environ.get("KEEPALIVE_E2E_REPORT")
    if not path:
        return
    rows = [
        {
            "scenario": scenario,
            "variant": variant,
            "hook": label,
            "outcome": run.result.get("outcome"),
            "error": run.result.get("error"),
            "since_request": run.since(run.endpoint.t_request),
            "since_event": run.since(run.endpoint.t_event),
            "budget": BUDGET,
        }
        for (scenario, variant, label), run in runs.items()
    ]
    Path(path).write_text(json.dumps(rows, indent=1))


def _pick(runs: dict[tuple[str, ...], Run], scenario: str, variant: str, label: str) -> Run:
    reason = skip_reason(scenario, variant)
    if reason:
        pytest.skip(reason)
    return runs[(scenario, variant, label)]


def _check_hook(run: Run) -> None:
    """Hook on: retries=1, and keepalive options where the library takes them; off: neither."""
    hook = bool(run.spec["hook"])
    options = hook and takes_socket_options(INSTALLED[run.spec["lib"]])
    assert (run.patched, run.result.get("retries")) == (options, 1 if hook else 0), (
        "hook state not as intended: " + run.describe()
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_nat_idle_drop(runs: dict[tuple[str, ...], Run], variant: str) -> None:
    """The bug: a NAT forgets the idle flow, the late answer is dropped, the client hangs."""
    on, off = _pick(runs, "nat", variant, "on"), _pick(runs, "nat", variant, "off")
    _check_hook(on)
    _check_hook(off)
    assert on.result.get("status") == 200, "keepalive should hold the NAT open: " + on.describe()
    assert off.result.get("error") == "ReadTimeout", "expected a read timeout: " + off.describe()
    assert off.since(off.endpoint.t_request) >= NAT_READ_TIMEOUT - TIMEOUT_SLOP, off.describe()


@pytest.mark.parametrize("variant", VARIANTS)
def test_dead_peer_while_waiting(runs: dict[tuple[str, ...], Run], variant: str) -> None:
    """The path dies while the client waits for an answer: keepalive notices within its budget."""
    on, off = _pick(runs, "waiting", variant, "on"), _pick(runs, "waiting", variant, "off")
    _check_hook(on)
    _check_hook(off)
    assert on.result.get("outcome") == "error", on.describe()
    # Python >= 3.10 makes ETIMEDOUT a TimeoutError, which httpcore maps to ReadTimeout; the
    # timing (well before WAIT_READ_TIMEOUT) is what shows the kernel gave up, not the timer.
    assert on.since(on.endpoint.t_event) <= BUDGET + SLACK, (
        f"not detected within the {BUDGET} s keepalive budget + {SLACK} s: " + on.describe()
    )
    assert off.result.get("error") == "ReadTimeout", off.describe()
    assert off.since(off.endpoint.t_request) >= WAIT_READ_TIMEOUT - TIMEOUT_SLOP, off.describe()


@pytest.mark.parametrize("variant", VARIANTS)
def test_dead_peer_during_upload(runs: dict[tuple[str, ...], Run], variant: str) -> None:
    """Unacknowledged data in flight: keepalive never probes; only TCP_USER_TIMEOUT ends it."""
    on = _pick(runs, "upload", variant, "on")
    others = [_pick(runs, "upload", variant, x) for x in ("off", "on-no-user-timeout")]
    for run in (on, *others):
        _check_hook(run)
    assert on.endpoint.t_event is not None, "the upload never reached the server: " + on.describe()
    assert on.result.get("outcome") == "error", on.describe()
    assert on.since(on.endpoint.t_event) <= USER_TIMEOUT + SLACK, (
        f"not detected within TCP_USER_TIMEOUT {USER_TIMEOUT} s + {SLACK} s: " + on.describe()
    )
    for run in others:
        assert run.endpoint.t_event is not None, (
            "upload never reached the server: " + run.describe()
        )
        assert run.result.get("outcome") == "killed", (
            "expected no error before the test's own timeout: " + run.describe()
        )


@pytest.mark.parametrize("variant", VARIANTS)
def test_retry_after_refused_connect(runs: dict[tuple[str, ...], Run], variant: str) -> None:
    """A refused first connect is retried once with the hook (retries=1) and fails without."""
    on, off = _pick(runs, "refused", variant, "on"), _pick(runs, "refused", variant, "off")
    _check_hook(on)
    _check_hook(off)
    assert on.result.get("status") == 200, "expected the retry to succeed: " + on.describe()
    assert on.endpoint.connections == 1, on.describe()
    assert off.result.get("error") == "ConnectError", off.describe()
    assert off.endpoint.connections == 0, off.describe()


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_double_submit(runs: dict[tuple[str, ...], Run], variant: str) -> None:
    """A request that was sent is never sent again, even when the server closes without answer."""
    for label in ("on", "off"):
        run = _pick(runs, "double", variant, label)
        _check_hook(run)
        assert run.result.get("outcome") == "error", run.describe()
        assert run.endpoint.requests == 1, (
            "the server must see exactly one request: " + run.describe()
        )
        assert run.endpoint.connections == 1, run.describe()
