"""The failures keepalive-patch exists for, reproduced on real kernels in network namespaces.

Every client runs in its own process inside the client namespace (the hook is process-wide), so
the hook-on and hook-off runs of every scenario and library run side by side; one module-scoped
fixture launches all selected runs, lets them send together once all have started up, and the
tests only check what happened.  Times come from CLOCK_MONOTONIC, which the test process and the
clients share: lower bounds are taken from the client's go (its timers cannot start earlier),
upper bounds from what the server or router saw.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import platform
import re
import select
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
#: The other HTTP stacks the shim covers, each as an application would use it.
OTHERS = ["requests-sync", "urllib3-sync", "aiohttp-async"]
INSTALLED = {lib: importlib.import_module(lib) for lib in LIBS if importlib.util.find_spec(lib)}
#: Scenarios that only keepalive options can pass; httpx < 0.25 gets retries only.
KEEPALIVE_SCENARIOS = {"nat", "waiting", "upload", "stall"}
#: The error each library raises when its own read timeout fires (a name in the error's MRO).
READ_TIMEOUT = {
    "httpx": "ReadTimeout",
    "httpx2": "ReadTimeout",
    "requests": "ReadTimeout",
    "urllib3": "ReadTimeoutError",
    "aiohttp": "ServerTimeoutError",
}

IDLE, INTERVAL, COUNT = 1, 1, 3
BUDGET = IDLE + INTERVAL * COUNT  # seconds until keepalive gives up on a silent peer
#: TCP_USER_TIMEOUT is not set by default; the scenarios that need it opt in to this many seconds.
USER_TIMEOUT = BUDGET
OPT_IN = {"KEEPALIVE_PATCH_USER_TIMEOUT": str(USER_TIMEOUT * 1000)}
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
UPLOAD_SEEN = 512 * 1024  # the path dies once the flow has carried this much
OWN_TIMEOUT = 8.0  # how long after the path died the upload test waits for an error
STALL = 10.0  # the stall scenario's server reads nothing of the body for this long, then answers
STALL_BYTES = 16 * 1024 * 1024  # > the socket buffers: the server's receive window closes
CONNECT_TIMEOUT = 0.5  # < the kernel's 1 s SYN retransmission: a dropped SYN is the library's
START_LIMIT = 120.0  # all clients have started up (imports, client built) within this
HARD_LIMIT = 40.0  # no client process runs longer than this after the go
TIMEOUT_SLOP = 0.5  # timers fire late, never early (measured from the client's go)


class Run:
    """One client process: its spec, the server endpoint it talks to, and its result."""

    def __init__(
        self,
        topology: Topology,
        endpoint: Endpoint,
        spec: dict[str, Any],
        env: dict[str, str],
        label: str,
    ) -> None:
        self.endpoint = endpoint
        self.spec = spec
        self.label = label
        self.own_timeout: float | None = spec.pop("own_timeout", None)
        #: The TCP_USER_TIMEOUT (ms) this run's settings ask for: 0 = not set, the default.
        self.user_timeout_ms = int(env.get("KEEPALIVE_PATCH_USER_TIMEOUT", "0"))
        self.result: dict[str, Any] = {}
        self.stderr = ""
        self._early = ""  # what it printed before the go
        self.proc = subprocess.Popen(
            topology.client_command([sys.executable, CLIENT_SCRIPT, json.dumps(spec)]),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self, deadline: float) -> None:
        """Read until the client says it is built (or exits, or time is up)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()  # raw reads: the text wrapper would buffer past "ready"
        while '"ready"' not in self._early:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            self._early += chunk.decode()

    def go(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):  # a client that already died is collected later
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()  # left open: communicate() closes it

    def collect(self) -> None:
        out, self.stderr = self.proc.communicate(timeout=10)
        self.result = {"outcome": "crashed"}
        for line in (self._early + out).splitlines():
            if line.startswith("{"):
                self.result.update(json.loads(line))

    def kill(self, why: str) -> None:
        now = time.monotonic()
        self.proc.kill()
        self.collect()
        if "t_end" in self.result:  # it had reported its outcome, just not exited yet
            self.result["exit"] = f"killed {now - self.result['t_end']:.2f} s after its report"
        else:
            self.result.update(outcome="killed", why=why, t_end=now)

    @property
    def lib(self) -> str:
        return str(self.spec["lib"])

    @property
    def patched(self) -> bool:
        return bool(self.result.get("socket_options"))

    def raised(self, name: str) -> bool:
        """Whether the client failed with an error that is (a subclass of) class ``name``."""
        return self.result.get("outcome") == "error" and name in self.result["error_types"]

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
            f"{self.lib} {self.spec['mode']} hook={self.label}: "
            f"{what}; {self.since(r.get('t_go')):.2f} s after the go, "
            f"{self.since(e.t_request):.2f} s after the server got the request"
            + ("" if e.t_event is None else f", {self.since(e.t_event):.2f} s after the event")
            + f"; connections={e.connections} requests={e.requests} received={e.received}"
            + f"; server errors={e.errors}"
            + f"; retries={r.get('retries')} socket_options={r.get('socket_options')}"
            + f"; live sockets={r.get('live')} stalled={e.stalled}"
            + (f"; {r['exit']}" if "exit" in r else "")
        )


def _env(hook: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPALIVE_PATCH_")}
    env.update(HOOK_ENV if hook else {"KEEPALIVE_PATCH_DISABLE": "1"})
    env.update(extra or {})
    return env


def _integrated(lib: str) -> bool:
    """Whether this keepalive_patch has an integration that watches ``lib``."""
    try:
        from keepalive_patch import WATCHED
    except ImportError:
        return False
    return any(
        module == lib or module.startswith(lib + ".")
        for modules in WATCHED.values()
        for module in modules
    )


def skip_reason(scenario: str, variant: str) -> str | None:
    """Why ``scenario`` cannot run with ``variant``'s library here, or None."""
    lib = variant.split("-")[0]
    if importlib.util.find_spec(lib) is None:
        return f"{lib} is not installed"
    if lib in LIBS:
        if scenario in KEEPALIVE_SCENARIOS and not takes_socket_options(INSTALLED[lib]):
            return retries_only_reason(INSTALLED[lib])
    elif not _integrated(lib):
        return f"this keepalive_patch has no integration that watches {lib}"
    return None


#: Which libraries each scenario runs with, and the runs of each: label -> (hook, extra env).
SCENARIO_VARIANTS = {
    "nat": VARIANTS + OTHERS,
    "waiting": VARIANTS,
    "upload": VARIANTS,
    "stall": VARIANTS,
    "refused": [*VARIANTS, "requests-sync"],
    "dropped": ["requests-sync"],
    "double": VARIANTS + OTHERS,
}
ON, OFF, OPTED_IN = "on", "off", "on-user-timeout"
LABELS: dict[str, tuple[bool, dict[str, str]]] = {
    ON: (True, {}),
    OFF: (False, {}),
    OPTED_IN: (True, OPT_IN),
}
SCENARIO_LABELS = {"upload": (OPTED_IN, ON, OFF), "stall": (ON, OPTED_IN)}


def _launch(topology: Topology, servers: Servers, scenario: str) -> dict[tuple[str, ...], Run]:
    runs: dict[tuple[str, ...], Run] = {}

    def blackhole(endpoint: Endpoint) -> None:
        topology.blackhole(endpoint.port)
        endpoint.t_event = time.monotonic()  # the path is dead from here on at the latest

    for variant in SCENARIO_VARIANTS[scenario]:
        if skip_reason(scenario, variant):
            continue
        lib, mode = variant.split("-")
        for label in SCENARIO_LABELS.get(scenario, (ON, OFF)):
            hook, extra = LABELS[label]
            spec: dict[str, Any] = {"lib": lib, "mode": mode, "hook": hook}
            if scenario == "nat":
                endpoint = servers.add("answer", delay=SILENCE)
                # urllib3 retries a GET's read timeout 3 times by default; one is enough here.
                spec.update(read_timeout=NAT_READ_TIMEOUT, no_retries=True)
            elif scenario == "waiting":
                endpoint = servers.add("hold", on_request=blackhole)
                spec["read_timeout"] = WAIT_READ_TIMEOUT
            elif scenario == "upload":
                endpoint = servers.add("drain")
                topology.die_after(endpoint.port, UPLOAD_SEEN)
                spec.update(upload=UPLOAD_BYTES, timeout=60.0, read_timeout=60.0)
                spec.update(write_timeout=60.0, own_timeout=OWN_TIMEOUT)
            elif scenario == "stall":
                endpoint = servers.add("answer", stall=STALL)
                topology.patient(endpoint.port)  # only TCP can end this flow, not the NAT
                spec.update(upload=STALL_BYTES, timeout=30.0, read_timeout=30.0)
                spec.update(write_timeout=30.0)
            elif scenario == "refused":
                endpoint = servers.add("answer")
                topology.refuse_first_connect(endpoint.port)
            elif scenario == "dropped":
                endpoint = servers.add("answer")
                topology.drop_first_connect(endpoint.port)
                spec["timeout"] = CONNECT_TIMEOUT
            elif scenario == "double":
                endpoint = servers.add("close")
                spec["post"] = True
            else:
                raise AssertionError(scenario)
            spec["url"] = f"http://{topology.server_addr}:{endpoint.port}/{scenario}"
            runs[(scenario, variant, label)] = Run(
                topology, endpoint, spec, _env(hook, extra), label
            )
    return runs


def _start(runs: list[Run]) -> None:
    """Let every client send its request at once, when all have started up."""
    deadline = time.monotonic() + START_LIMIT
    for run in runs:
        run.wait_ready(deadline)
    for run in runs:
        run.go()


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
                run.kill(f"the test's own timeout, {now - event:.2f} s after the path died")
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
    "test_zero_window_stall_survives_defaults": "stall",
    "test_zero_window_stall_user_timeout": "stall",
    "test_retry_after_refused_connect": "refused",
    "test_retry_after_dropped_syn": "dropped",
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
    times = [time.monotonic()]
    try:
        try:
            topology.up()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot build the namespace topology here: {exc}")
        times.append(time.monotonic())
        with topology.batched():  # the clients send nothing before the go
            for scenario in sorted(selected):
                launched.update(_launch(topology, servers, scenario))
        times.append(time.monotonic())
        _start(list(launched.values()))
        times.append(time.monotonic())
        _wait(list(launched.values()))
        times.append(time.monotonic())
        up, launch, start, ran = (b - a for a, b in zip(times, times[1:]))
        sys.stderr.write(
            f"\ne2e: namespaces up in {up:.1f} s; {len(launched)} clients launched in"
            f" {launch:.1f} s, built in {start:.1f} s, ran in {ran:.1f} s\n"
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
            "status": run.result.get("status"),
            "error": run.result.get("error"),
            "message": run.result.get("message"),
            "since_go": run.since(run.result.get("t_go")),
            "since_request": run.since(run.endpoint.t_request),
            "since_event": run.since(run.endpoint.t_event),
            "budget": BUDGET,
            "user_timeout_ms": run.user_timeout_ms,
        }
        for (scenario, variant, label), run in runs.items()
    ]
    Path(path).write_text(json.dumps(rows, indent=1))


def _pick(runs: dict[tuple[str, ...], Run], scenario: str, variant: str, label: str) -> Run:
    reason = skip_reason(scenario, variant)
    if reason:
        pytest.skip(reason)
    return runs[(scenario, variant, label)]


def _check_hook(run: Run, live: bool = False) -> None:
    """Hook on: keepalive options where the library takes them (httpx: and retries=1); off:
    neither.  With ``live`` (connections that last seconds) the client must have read the
    options back from its socket to the server; the last read of each socket counts (async
    httpcore sets them just after connecting)."""
    hook = bool(run.spec["hook"])
    keepalive = hook and (run.lib not in LIBS or takes_socket_options(INSTALLED[run.lib]))
    if run.lib in LIBS:  # httpx's pool says what it will use before it connects
        assert (run.patched, run.result.get("retries")) == (keepalive, 1 if hook else 0), (
            "hook state not as intended: " + run.describe()
        )
    if not live:
        return
    sockets = run.result.get("live", [])
    assert sockets, "no live socket to the server was read back: " + run.describe()
    want = {"SO_KEEPALIVE": 0, "TCP_USER_TIMEOUT": 0}
    if keepalive:
        want = {
            "SO_KEEPALIVE": 1,
            "TCP_KEEPIDLE": IDLE,
            "TCP_KEEPINTVL": INTERVAL,
            "TCP_KEEPCNT": COUNT,
            "TCP_USER_TIMEOUT": run.user_timeout_ms,
        }
    for options in sockets:
        got = {name: options[name] for name in want}
        assert got == want, f"live socket options {got}, wanted {want}: " + run.describe()


@pytest.mark.parametrize("variant", VARIANTS + OTHERS)
def test_nat_idle_drop(runs: dict[tuple[str, ...], Run], variant: str) -> None:
    """The bug: a NAT forgets the idle flow, the late answer is dropped, the client hangs."""
    on, off = _pick(runs, "nat", variant, ON), _pick(runs, "nat", variant, OFF)
    _check_hook(on, live=True)
    _check_hook(off, live=True)
    assert on.result.get("status") == 200, "keepalive should hold the NAT open: " + on.describe()
    assert off.raised(READ_TIMEOUT[off.lib]), "expected a read timeout: " + off.describe()
    assert off.since(off.result.get("t_go")) >= NAT_READ_TIMEOUT - TIMEOUT_SLOP, off.describe()


@pytest.mark.parametrize("variant", VARIANTS)
def test_dead_peer_while_waiting(runs: dict[tuple[str, ...], Run], variant: str) -> None:
    """The path dies while the client waits for an answer: keepalive notices within its budget."""
    on, off = _pick(runs, "waiting", variant, ON), _pick(runs, "waiting", variant, OFF)
    _check_hook(on, live=True)
    _check_hook(off, live=True)
    assert on.result.get("outcome") == "error", on.describe()
    # Python >= 3.10 makes ETIMEDOUT a TimeoutError, which httpcore maps to ReadTimeout; the
    # timing (well before WAIT_READ_TIMEOUT) is what shows the kernel gave up, not the timer.
    assert on.since(on.endpoint.t_event) <= BUDGET + SLACK, (
        f"not detected within the {BUDGET} s keepalive budget + {SLACK} s: " + on.describe()
    )
    assert off.raised("ReadTimeout"), off.describe()
    assert off.since(off.result.get("t_go")) >= WAIT_READ_TIMEOUT - TIMEOUT_SLOP, off.describe()


@pytest.mark.parametrize("variant", VARIANTS)
def test_dead_peer_during_upload(runs: dict[tuple[str, ...], Run], variant: str) -> None:
    """Unacknowledged data in flight: keepalive never probes; only TCP_USER_TIMEOUT ends it, and
    only where the user opted in (``KEEPALIVE_PATCH_USER_TIMEOUT``); the defaults leave it to
    the caller's own write timeout, as without the shim."""
    opted = _pick(runs, "upload", variant, OPTED_IN)
    others = [_pick(runs, "upload", variant, label) for label in (ON, OFF)]
    for run in (opted, *others):
        _check_hook(run, live=True)
        assert 0 < run.endpoint.received < UPLOAD_SEEN, "path not dead mid-body: " + run.describe()
    assert opted.result.get("outcome") == "error", opted.describe()
    assert opted.since(opted.endpoint.t_event) <= USER_TIMEOUT + SLACK, (
        f"not detected within TCP_USER_TIMEOUT {USER_TIMEOUT} s + {SLACK} s: " + opted.describe()
    )
    for run in others:
        assert run.result.get("outcome") == "killed", (
            "expected no error before the test's own timeout: " + run.describe()
        )


def _check_stalled(run: Run) -> None:
    """The server's receive window really was closed: when the stall ended, the client still
    had body bytes it could not send, though the server's kernel held unread ones."""
    assert run.endpoint.stalled is not None, "the stall never ended: " + run.describe()
    received, queued, length = run.endpoint.stalled
    assert queued > 0, run.describe()
    assert received + queued < length, "the whole body fitted in the buffers: " + run.describe()


@pytest.mark.parametrize("variant", VARIANTS)
def test_zero_window_stall_survives_defaults(
    runs: dict[tuple[str, ...], Run], variant: str
) -> None:
    """A live server that stops reading the body for STALL s (zero window; it ACKs every probe)
    and then answers: with the shim's defaults the upload succeeds, as it does without it."""
    run = _pick(runs, "stall", variant, ON)
    _check_hook(run, live=True)
    assert run.result.get("status") == 200, "a working upload must still work: " + run.describe()
    assert run.since(run.endpoint.t_event) >= STALL, run.describe()
    _check_stalled(run)


@pytest.mark.parametrize("variant", VARIANTS)
def test_zero_window_stall_user_timeout(runs: dict[tuple[str, ...], Run], variant: str) -> None:
    """Why TCP_USER_TIMEOUT is opt-in: since Linux 5.11 it also aborts a connection whose live
    peer keeps its receive window closed longer than the timeout.  (The abort comes about the
    timeout after the first window probe, which waits one retransmission timeout.)"""
    opted = _pick(runs, "stall", variant, OPTED_IN)
    if _kernel() < (5, 11):
        pytest.skip(f"Linux {platform.release()} < 5.11: TCP_USER_TIMEOUT ignores zero windows")
    _check_hook(opted, live=True)
    assert opted.result.get("outcome") == "error", opted.describe()
    # At least the timeout after the go (the window closed after it), before the stall ended.
    assert opted.since(opted.result.get("t_go")) >= USER_TIMEOUT - TIMEOUT_SLOP, (
        f"aborted before TCP_USER_TIMEOUT ({USER_TIMEOUT} s) could: " + opted.describe()
    )
    assert opted.since(opted.endpoint.t_event) < STALL, (
        "expected the abort before the stall ended: " + opted.describe()
    )
    assert opted.endpoint.requests == 0, "the server got the whole body: " + opted.describe()


def _kernel() -> tuple[int, ...]:
    numbers = re.findall(r"\d+", platform.release())[:2]
    return tuple(int(n) for n in numbers)


CONNECT_ERROR = {"httpx": "ConnectError", "httpx2": "ConnectError", "requests": "ConnectionError"}


@pytest.mark.parametrize("variant", [*VARIANTS, "requests-sync"])
def test_retry_after_refused_connect(runs: dict[tuple[str, ...], Run], variant: str) -> None:
    """A refused first connect is retried once with the hook and fails without."""
    on, off = _pick(runs, "refused", variant, ON), _pick(runs, "refused", variant, OFF)
    _check_hook(on)
    _check_hook(off)
    assert on.result.get("status") == 200, "expected the retry to succeed: " + on.describe()
    assert (on.endpoint.connections, on.endpoint.requests) == (1, 1), on.describe()
    assert off.raised(CONNECT_ERROR[off.lib]), off.describe()
    assert off.endpoint.connections == 0, off.describe()


@pytest.mark.parametrize("variant", ["requests-sync"])
def test_retry_after_dropped_syn(runs: dict[tuple[str, ...], Run], variant: str) -> None:
    """The first SYN is lost and the connect timeout (shorter than the kernel's own SYN
    retransmission) fires: the hook's connect retry succeeds, the request is sent once."""
    on, off = _pick(runs, "dropped", variant, ON), _pick(runs, "dropped", variant, OFF)
    _check_hook(on)
    _check_hook(off)
    assert on.result.get("status") == 200, "expected the retry to succeed: " + on.describe()
    assert (on.endpoint.connections, on.endpoint.requests) == (1, 1), on.describe()
    assert off.raised("ConnectTimeout"), off.describe()
    assert off.endpoint.connections == 0, off.describe()


@pytest.mark.parametrize("variant", VARIANTS + OTHERS)
def test_no_double_submit(runs: dict[tuple[str, ...], Run], variant: str) -> None:
    """A request that was sent is never sent again, even when the server closes without answer."""
    for label in (ON, OFF):
        run = _pick(runs, "double", variant, label)
        _check_hook(run)
        assert run.result.get("outcome") == "error", run.describe()
        assert run.endpoint.requests == 1, (
            "the server must see exactly one request: " + run.describe()
        )
        assert run.endpoint.connections == 1, run.describe()
