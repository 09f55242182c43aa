"""The peers' own test suites, run without and with the hook (gevent's model).

    python tests/peers/run.py urllib3   one peer, in this environment (nox -s "peers(urllib3)")
    python tests/peers/run.py --list    the table below
    python tests/peers/run.py --table   README's table, from the last run of each peer
    python tests/peers/run.py --audit-offline requests   as root: the off-root way sends nothing out

For one peer at its pinned version (``PEERS``, the one table): download its sdist (``pip download
--no-binary :all: --no-deps``), install the released wheel of the same version plus the test
dependencies its suite needs into *this* interpreter's environment (nox gives each peer a venv of
its own), drop the package's own source from the unpacked tree so the suite imports the wheel,
then run the suite twice with JUnit XML: once plain, once under ``keepalive-patch run --``.  The
comparison fails if any test passes plain and fails, errors, is skipped or times out (pytest-
timeout) hooked, unless ``known.toml`` names that test with a reason; such a test is first rerun
alone (``confirm``), and one that then fails plain too or passes hooked is reported as flaky.
A ``known.toml`` entry whose test no longer differs fails the run too: the entry must go.

Both runs prove their state: ``plugin/keepalive_peer_probe.py`` is loaded into each (``-p``), and
in every pytest process (xdist workers included) opens a loopback connection with the client
the table names (``probe``: the peer itself, or the client that carries it) and reads
``SO_KEEPALIVE`` back from the live socket.  A plain run showing 1 or a
hooked run showing 0 is refused: a hook that silently did not load cannot pass.

Network: the suites must not send a packet off the machine.  As root each run happens in a new
network namespace holding only loopback (``unshare -n``, set up by ``namespace_setup``), where
connects to outside addresses (urllib3's and requests' "tarpit" hosts) time out without leaving
it and DNS names do not resolve.  Everything is installed before entering it.  Off root,
``offline`` names the tests that reach out, and they are left out; a peer whose list has not been
drawn up (``offline=None``) runs only as root.

Why here (tests/peers/, a plain module) and not in noxfile.py: the same code runs from nox, from
``tests/peers/test_peers.py`` (CI, through nox) and by hand, and the peers are a kind of test
like the others in tests/.  Its work (sdists, unpacked trees, reports) goes to ``.nox/peers/``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORK = ROOT / ".nox" / "peers"
KNOWN = HERE / "known.toml"
PLUGIN_DIR = HERE / "plugin"
#: Per-test limit (pytest-timeout, signal method: a timeout is a failure in the XML) and a bound
#: on a whole run (a run killed there leaves no XML and fails).
TEST_TIMEOUT = 300
RUN_TIMEOUT = 60 * 60
#: Added to every peer's environment: the runner's tools, not the suite's.
RUNNER_DEPS = ("pytest-xdist", "pytest-timeout")


@dataclass(frozen=True)
class Peer:
    """One peer suite: what to install, what to run, how to prove the hook's state."""

    version: str
    #: The suite's own test dependencies (besides pytest and the released wheel itself).
    deps: tuple[str, ...]
    #: What to run, relative to the unpacked sdist.
    paths: tuple[str, ...]
    #: The package's import directories in the unpacked sdist, removed so tests import the wheel.
    source: tuple[str, ...] = ()
    #: The libraries the probe connects with (``keepalive_peer_probe.PROBES``).
    probe: tuple[str, ...] = ("urllib3",)
    #: Extra pytest arguments for both runs (``--ignore`` of what cannot run here, with reasons).
    args: tuple[str, ...] = ()
    #: Extra pytest arguments off root (no namespace): the tests that reach off the machine.
    #: None: not drawn up, so the suite runs only in a namespace (as root).
    offline: tuple[str, ...] | None = None
    #: pytest-xdist workers (1: the suite does not run under xdist).
    workers: int = 2
    #: In the reduced set CI runs.
    ci: bool = False
    #: The project on PyPI, where the table's key is not its name (a second version of a peer).
    project: str = ""


def httpx_peer(version: str, ci: bool = False, project: str = "") -> Peer:
    """httpx at ``version``: both releases' suites take the same dependencies and rules."""
    return Peer(
        version=version,
        # httpx's requirements.txt (not in the sdist) as far as its tests import it, at the
        # releases of its time: newer chardet guesses other encodings, newer uvicorn logs
        # access lines its logging tests do not expect, newer click deprecates what it uses.
        deps=(
            f"httpx[brotli,cli,http2,socks,zstd]=={version}",
            "chardet==5.2.0",
            "uvicorn==0.32.1",
            "click==8.1.8",
            "trustme",
            "trio",
            "anyio",
            "cryptography",
        ),
        paths=("tests",),
        source=("httpx",),
        probe=("httpx",),
        offline=("-m", "not network"),
        # its session-wide uvicorn server listens on the fixed port 8000: one process only
        workers=1,
        ci=ci,
        project=project,
    )


#: The one table: pinned versions, test dependencies and the rules of each suite.
PEERS: dict[str, Peer] = {
    "urllib3": Peer(
        version="2.8.0",
        # urllib3's dependency group "test" (its pyproject.toml), plus trustme / cryptography
        # from its "dev" group, which the TLS tests need.  Its HTTP/2 and proxy tests pin a
        # hypercorn fork from git (tool.uv.sources); PyPI's hypercorn stands in here.
        deps=(
            "anyio[trio]>=4.8.0",
            "h2>=4.1.0",
            "httpx>=0.28.1",
            "hypercorn>=0.15.0",
            "pysocks>=1.7.1",
            "pytest-socket>=0.7.0",
            "quart>=0.20.0",
            "quart-trio>=0.12.0",
            "trio>=0.27.0",
            "trustme>=1.2.1",
            "cryptography>=44.0.2",
            "idna>=3.10",
        ),
        paths=("test",),
        # No off-root list: its own "requires_network" marker is not enough (--audit-offline
        # still saw packets to its tarpit 240.0.0.0 and to the name server), so root only.
        ci=True,
    ),
    "requests": Peer(
        version="2.34.2",
        # requests' requirements-dev.txt (less pytest-cov and wheel), and its socks extra.
        deps=("pytest-httpbin==2.1.0", "httpbin~=0.10.0", "trustme", "PySocks"),
        paths=("tests",),
        offline=(
            # TARPIT = http://10.255.255.1
            "--deselect",
            "tests/test_requests.py::TestTimeout::test_connect_timeout",
            "--deselect",
            "tests/test_requests.py::TestTimeout::test_total_timeout_connect",
            # DNS queries: http://doesnotexist.google.com; a proxy "non-resolvable-address";
            # httpbin.org resolved here to go through a socks5:// (not socks5h://) proxy
            "-k",
            "not test_errors and not test_proxy_error and not test_use_proxy_from_environment",
        ),
        ci=True,
    ),
    "httpx": httpx_peer("0.28.1", ci=True),
    # What ``pip install httpx`` gives today (our test extra too).
    "httpx-0.29.0": httpx_peer("0.29.0", project="httpx"),
    "httpcore": Peer(
        version="1.0.9",
        deps=(
            "httpcore[asyncio,http2,socks,trio]==1.0.9",
            "pytest-httpbin",
            "pytest-trio",  # its trio tests' marker (--strict-markers)
            # the probe's client (httpcore alone takes socket options only from its caller)
            "httpx==0.28.1",
        ),
        paths=("tests",),
        source=("httpcore",),
        probe=("httpx",),
        # a benchmark against aiohttp / urllib3 with matplotlib plots, not a test
        args=("--ignore=tests/benchmark",),
    ),
    "aiohttp": Peer(
        version="3.14.5",
        # requirements/test.in and what it includes (less mypy, coverage and codspeed, the
        # maintainers' tools); pytest-cov because its pytest.ini loads it (``--no-cov`` below).
        deps=(
            "freezegun",
            "pkgconfig",
            "proxy.py>=2.4.4rc5",
            "pytest-cov",
            "pytest-mock",
            "setuptools-git",
            "gunicorn",
            "uvloop",
            "blockbuster",
            "isal",
            "python-on-whales",
            "trustme",
            "zlib_ng",
            "brotli",
        ),
        # The client side, which the hook patches (TCPConnector and all above it, proxies and
        # the resolver): the whole suite takes ~25 minutes a run here; paths=("tests",) runs it.
        paths=(
            "tests/test_client_connection.py",
            "tests/test_client_exceptions.py",
            "tests/test_client_fingerprint.py",
            "tests/test_client_functional.py",
            "tests/test_client_middleware.py",
            "tests/test_client_middleware_digest_auth.py",
            "tests/test_client_proto.py",
            "tests/test_client_request.py",
            "tests/test_client_response.py",
            "tests/test_client_session.py",
            "tests/test_client_ws.py",
            "tests/test_client_ws_functional.py",
            "tests/test_connector.py",
            "tests/test_proxy.py",
            "tests/test_proxy_functional.py",
            "tests/test_resolver.py",
        ),
        source=("aiohttp",),
        probe=("aiohttp",),
        args=("--no-cov",),
    ),
    "botocore": Peer(
        version="1.44.8",
        # requirements-dev.txt, as far as these tests need it
        deps=("jsonschema==4.23.0",),
        paths=("tests/unit", "tests/integration/test_client_http.py"),
        source=("botocore",),
    ),
    "openai": Peer(
        version="3.60.0",
        # its "dev" dependency group, as far as the tests import it, and its client extras
        deps=(
            "openai[aiohttp,realtime]==3.60.0",
            "pytest-asyncio>=1.4.0",
            "inline-snapshot>=0.28.0",
            "rich>=13.7.1",
            "trio>=0.22.2",
            "griffe>=1",
            "dirty-equals",
            "respx",
            "numpy",
            "google-auth",
            "cryptography",
            "opentelemetry-sdk",
            "time-machine",
            "hypothesis",
        ),
        paths=("tests",),
        probe=("httpx2",),
        # they need the SDK generator's mock server (prism), which is not available here
        args=("--ignore=tests/api_resources",),
    ),
    "anthropic": Peer(
        version="2.17.0",
        # its "dev" dependency group (less the type checkers and ruff) and its extras
        deps=(
            "anthropic[aiohttp,bedrock,vertex,mcp,webhooks]==2.17.0",
            "respx",
            "pytest-asyncio",
            "time-machine",
            "dirty-equals>=0.6.0",
            "hypothesis",
            "inline-snapshot>=0.28.0",
            "griffe>=1",
            "http-snapshot[httpx]==0.1.9",
            "rich>=13.7.1",
            "opentelemetry-sdk",
            "packaging",
        ),
        paths=("tests",),
        probe=("httpx2",),
        # as for openai: the mock server is not available here
        args=("--ignore=tests/api_resources",),
    ),
}


# ---------------------------------------------------------------------------------------------
# Preparing a peer


def title(name: str) -> str:
    """``project version`` of a peer, for people."""
    return f"{PEERS[name].project or name} {PEERS[name].version}"


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def fetch(name: str, peer: Peer, work: Path) -> Path:
    """The sdist unpacked afresh under ``work``, with the package's own source removed."""
    downloads = work / "sdists"
    downloads.mkdir(parents=True, exist_ok=True)
    found = [p for p in downloads.glob(f"{name}-{peer.version}.tar.gz")]
    if not found:
        pip(
            "download",
            "-q",
            "--no-binary",
            ":all:",
            "--no-deps",
            "-d",
            str(downloads),
            f"{name}=={peer.version}",
        )
        found = list(downloads.glob(f"{name}-{peer.version}.tar.gz"))
    if len(found) != 1:
        raise SystemExit(f"peers: no sdist {name}-{peer.version}.tar.gz in {downloads}")
    tree = work / f"{name}-{peer.version}"
    shutil.rmtree(tree, ignore_errors=True)
    with tarfile.open(found[0]) as archive:
        archive.extractall(work, filter="data")
    for source in peer.source:
        shutil.rmtree(tree / source)
    return tree


def install(name: str, peer: Peer) -> None:
    """The released wheel of the pinned version and the suite's dependencies, here."""
    pip(
        "install",
        "-q",
        "--only-binary",
        name,
        f"{name}=={peer.version}",
        *peer.deps,
        *RUNNER_DEPS,
    )


# ---------------------------------------------------------------------------------------------
# Running it both ways


def in_namespace() -> bool:
    """Whether the suites run in a network namespace of their own (root, ``unshare``, ``ip``)."""
    return os.geteuid() == 0 and bool(shutil.which("unshare")) and bool(shutil.which("ip"))


def namespace_setup() -> str:
    """The shell commands that make the new namespace's network, before the suite starts.

    Only loopback exists.  The default route points into it, so a connect to an outside address
    (the suites' "tarpit" hosts) sends its SYN into ``lo``, where the kernel drops it as not
    local: the connect times out silently, as the tests expect, and nothing leaves the
    namespace.  The resolver's name servers are made unreachable, so a name lookup fails at
    once instead of after the resolver's timeouts (a name server on loopback refuses anyway).
    """
    commands = ["ip link set lo up", "ip route add default dev lo"]
    for server in name_servers():
        if not server.startswith("127.") and ":" not in server:
            commands.append(f"ip route add unreachable {server}/32")
    return " && ".join(commands)


#: The off-root way audited (``--audit-offline``): loopback and the default route into it, as in
#: ``namespace_setup`` but with the name servers left routable (into ``lo`` too), and nftables
#: sets recording every destination outside loopback a packet was sent to.
AUDIT_SETUP = " && ".join(
    [
        "ip link set lo up",
        "ip route add default dev lo",
        "nft add table inet kp_audit",
        "nft add set inet kp_audit v4 '{ type ipv4_addr; flags dynamic; }'",
        "nft add set inet kp_audit v6 '{ type ipv6_addr; flags dynamic; }'",
        "nft add chain inet kp_audit out '{ type filter hook output priority 0; }'",
        "nft add rule inet kp_audit out ip daddr != 127.0.0.0/8 add @v4 '{ ip daddr }'",
        "nft add rule inet kp_audit out ip6 daddr != ::1 add @v6 '{ ip6 daddr }'",
    ]
)


def audit_offline(name: str) -> int:
    """Run ``name``'s suite plain the off-root way (its ``offline`` tests left out), as root in
    an audited namespace, and name every outside address it sent a packet to (none: the list
    is complete for this run)."""
    peer = PEERS[name]
    if peer.offline is None:
        print(f"peers: {name} has no list of the tests that reach out (offline=None)")
        return 2
    if not (in_namespace() and shutil.which("nft")):
        print("peers: --audit-offline needs root, unshare, ip and nft")
        return 2
    install(peer.project or name, peer)
    tree = fetch(peer.project or name, peer, WORK)
    out = WORK / "reports" / name
    out.mkdir(parents=True, exist_ok=True)
    sets = out / "audit.json"
    sets.unlink(missing_ok=True)
    run_suite(name, peer, tree, hooked=False, out=out, label="audit", audit=sets)
    if not sets.exists():
        print(f"peers: {title(name)}: the audit left no record")
        return 1
    outside = sorted(
        str(address)
        for item in json.loads(sets.read_text())["nftables"]
        for address in item.get("set", {}).get("elem", [])
    )
    if outside:
        print(f"peers: {title(name)} off root would send packets to: {', '.join(outside)}")
        return 1
    print(f"peers: {title(name)} off root: no packet to any address outside loopback")
    return 0


def name_servers() -> list[str]:
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        return []
    return [
        line.split()[1] for line in lines if line.startswith("nameserver") and len(line.split()) > 1
    ]


def keepalive_patch_command() -> str:
    command = Path(sys.executable).with_name("keepalive-patch")
    if not command.exists():
        raise SystemExit(f"peers: keepalive-patch is not installed beside {sys.executable}")
    return str(command)


@dataclass
class Run:
    """One run of a suite: its outcomes per test id, what its sockets showed, its time."""

    hooked: bool
    outcomes: dict[str, str]
    probes: dict[str, dict[str, object]]
    seconds: float
    returncode: int
    #: Whether it ran under pytest-xdist (a rerun of a few tests does not).
    parallel: bool = True


def run_suite(
    name: str,
    peer: Peer,
    tree: Path,
    hooked: bool,
    out: Path,
    only: list[str] | None = None,
    label: str = "",
    audit: Path | None = None,
) -> Run:
    """One run of the suite (``only``: just these node ids, one process), results in ``out``;
    ``audit``: run the off-root way in a namespace that records where packets went (``audit``)."""
    label = label or ("hooked" if hooked else "plain")
    junit = out / f"{label}.xml"
    probes = out / f"{label}-probes"
    shutil.rmtree(probes, ignore_errors=True)
    probes.mkdir(parents=True)
    junit.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        *(only if only is not None else peer.paths),
        "-p",
        "keepalive_peer_probe",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        f"--timeout={TEST_TIMEOUT}",
        "-q",
        "-rN",
        *(("-n", str(peer.workers)) if peer.workers > 1 and only is None else ()),
        *peer.args,
    ]
    if audit is not None or not in_namespace():
        assert peer.offline is not None  # check_peer and audit_offline refuse the others
        command += peer.offline
    if hooked:
        command = [keepalive_patch_command(), "run", "--", *command]
    if audit is not None:
        script = f'{AUDIT_SETUP} && "$@"; status=$?; nft -j list table inet kp_audit > {audit}'
        command = ["unshare", "-n", "sh", "-c", script + "; exit $status", "sh", *command]
    elif in_namespace():
        command = ["unshare", "-n", "sh", "-c", namespace_setup() + ' && exec "$@"', "sh", *command]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KEEPALIVE_PATCH_", "PYTEST_", "PYTHON"))
    }
    env["PYTHONPATH"] = str(PLUGIN_DIR)
    env["KEEPALIVE_PEER_PROBE"] = ",".join(peer.probe)
    env["KEEPALIVE_PEER_PROBE_DIR"] = str(probes)
    print(f"peers: {title(name)} {label}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    try:
        returncode = subprocess.run(command, cwd=tree, env=env, timeout=RUN_TIMEOUT).returncode
    except subprocess.TimeoutExpired:
        returncode = -1
    seconds = time.monotonic() - started
    return Run(
        hooked=hooked,
        outcomes=read_junit(junit) if junit.exists() else {},
        probes={p.stem: json.loads(p.read_text()) for p in sorted(probes.glob("*.json"))},
        seconds=seconds,
        returncode=returncode,
        parallel=only is None,
    )


#: Worst first: a test reported twice (a failing teardown after a pass) keeps its worst outcome.
ORDER = ("error", "failed", "skipped", "passed")


def read_junit(path: Path) -> dict[str, str]:
    """Outcome per test id (``classname::name``) from a JUnit XML file."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(path).iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("error", "failure", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                break
        previous = outcomes.get(test_id)
        if previous is None or ORDER.index(outcome) < ORDER.index(previous):
            outcomes[test_id] = outcome
    return outcomes


# ---------------------------------------------------------------------------------------------
# Judging


def known_differences(name: str) -> dict[str, str]:
    """``known.toml``'s entries for ``name``: test id -> reason."""
    # Python 3.11's; imported here so that noxfile.py can read PEERS on 3.10
    tomllib = importlib.import_module("tomllib")
    with KNOWN.open("rb") as file:
        table = tomllib.load(file)
    return {str(test): str(reason) for test, reason in table.get(name, {}).items()}


def run_label(run: Run) -> str:
    return "hooked" if run.hooked else "plain"


def state_errors(run: Run, peer: Peer) -> list[str]:
    """Why a run does not prove the state it claims (empty: it does)."""
    label = run_label(run)
    want = 1 if run.hooked else 0
    if "main" not in run.probes:
        return [f"{label}: the probe plugin wrote no report (was it loaded?)"]
    errors = []
    for process, report in run.probes.items():
        if report.get("keepalive_patch_loaded") is not run.hooked:
            errors.append(
                f"{label}: keepalive_patch is {'not ' if run.hooked else ''}loaded in pytest "
                f"process {process!r}"
            )
        sockets = report.get("so_keepalive")
        assert isinstance(sockets, dict)
        for library in peer.probe:
            value = sockets.get(library)
            if value != want:
                errors.append(
                    f"{label}: {library} socket in pytest process {process!r} shows "
                    f"SO_KEEPALIVE {value!r}, not {want}"
                )
    if peer.workers > 1 and run.parallel and len(run.probes) < 2:
        errors.append(f"{label}: no report from any pytest-xdist worker")
    return errors


def differences(known: dict[str, str], plain: Run, hooked: Run) -> tuple[list[str], list[str]]:
    """(candidates, notes): the tests passing plain and not hooked that ``known`` (test id ->
    reason) does not name, to be confirmed by a rerun, and what else changed, known
    differences and stale entries included."""
    candidates, notes, differing = [], [], set()
    for test_id, outcome in sorted(plain.outcomes.items()):
        other = hooked.outcomes.get(test_id, "missing")
        if outcome == "passed" and other != "passed":
            differing.add(test_id)
            if test_id in known:
                notes.append(
                    f"known difference: {test_id}: passed plain, {other} hooked ({known[test_id]})"
                )
            else:
                candidates.append(test_id)
        elif outcome != other and other != "missing":
            notes.append(f"{test_id}: {outcome} plain, {other} hooked")
    for test_id in sorted(set(known) - differing):
        notes.append(f"STALE: known.toml lists {test_id}, which no longer differs")
    return candidates, notes


def node_id(test_id: str, tree: Path) -> str:
    """The pytest node id of a JUnit ``classname::name`` (the longest dotted prefix that is a
    file of the tree is the module)."""
    classname, _, name = test_id.partition("::")
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        path = "/".join(parts[:cut]) + ".py"
        if (tree / path).is_file():
            return "::".join([path, *parts[cut:], name])
    raise ValueError(f"no module of {tree} holds {test_id}")


#: A difference counts when a rerun of the test alone passes plain and fails every one of these
#: hooked reruns; one that does not reproduce is reported as flaky, never dropped silently.
RERUNS = 3


def confirm(
    name: str, peer: Peer, tree: Path, out: Path, candidates: list[str]
) -> tuple[list[str], list[str], list[Run]]:
    """(confirmed differences, flaky ones, the reruns), rerunning ``candidates`` alone."""
    only = [node_id(test_id, tree) for test_id in candidates]
    plain = run_suite(name, peer, tree, hooked=False, out=out, only=only, label="rerun-plain")
    hooked = [
        run_suite(name, peer, tree, hooked=True, out=out, only=only, label=f"rerun-hooked-{n}")
        for n in range(1, RERUNS + 1)
    ]
    confirmed, flaky = [], []
    for test_id in candidates:
        seen = [run.outcomes.get(test_id, "missing") for run in (plain, *hooked)]
        line = f"{test_id}: passed plain, failing hooked; rerun alone: plain {seen[0]}, hooked "
        line += ", ".join(seen[1:])
        if seen[0] == "passed" and "passed" not in seen[1:]:
            confirmed.append(line)
        else:
            flaky.append(f"did not reproduce, flaky: {line}")
    return confirmed, flaky, [plain, *hooked]


def summary(plain: Run, hooked: Run) -> dict[str, int]:
    """Counts for the verdict and README's table; "both ways" counts a test once."""
    counts = {"tests": len(plain.outcomes)}
    for label, run in (("plain", plain), ("hooked", hooked)):
        for outcome in ORDER:
            counts[f"{label}_{outcome}"] = sum(1 for o in run.outcomes.values() if o == outcome)
    bad = ("failed", "error")
    both = [(o, hooked.outcomes.get(t, "missing")) for t, o in plain.outcomes.items()]
    counts["passed_both"] = sum(1 for a, b in both if a == b == "passed")
    counts["skipped_both"] = sum(1 for a, b in both if a == b == "skipped")
    counts["failing_both"] = sum(1 for a, b in both if a in bad and b in bad)
    return counts


def check_peer(name: str) -> int:
    """Run ``name``'s suite both ways here and judge; the exit status says the verdict."""
    peer = PEERS[name]
    if peer.offline is None and not in_namespace():
        print(
            f"peers: {name} runs only in a network namespace of its own (root, unshare, ip): "
            "the tests of its suite that reach off the machine are not listed"
        )
        return 2
    WORK.mkdir(parents=True, exist_ok=True)
    install(peer.project or name, peer)
    tree = fetch(peer.project or name, peer, WORK)
    out = WORK / "reports" / name
    out.mkdir(parents=True, exist_ok=True)
    plain = run_suite(name, peer, tree, hooked=False, out=out)
    hooked = run_suite(name, peer, tree, hooked=True, out=out)
    failures = state_errors(plain, peer) + state_errors(hooked, peer)
    for run in (plain, hooked):
        if not run.outcomes:
            failures.append(f"{run_label(run)} run left no results (exit {run.returncode})")
    candidates, notes = differences(known_differences(name), plain, hooked)
    failures += [note for note in notes if note.startswith("STALE")]
    if candidates:
        confirmed, flaky, reruns = confirm(name, peer, tree, out, candidates)
        failures += confirmed
        notes += flaky
        for run in reruns:
            failures += state_errors(run, peer)
    counts = summary(plain, hooked)
    record = {
        "peer": name,
        "version": peer.version,
        "namespace": in_namespace(),
        "plain_minutes": round(plain.seconds / 60, 1),
        "hooked_minutes": round(hooked.seconds / 60, 1),
        **counts,
        "failures": failures,
        "notes": notes,
    }
    (out / "summary.json").write_text(json.dumps(record, indent=1))
    for note in notes:
        print(f"peers: {name}: {note}")
    where = "in a loopback-only namespace" if in_namespace() else "off root, offline tests left out"
    times = f"{record['plain_minutes']} / {record['hooked_minutes']} min plain / hooked, {where}"
    if failures:
        print(f"peers: {title(name)}: {counts['tests']} tests, DIFFERENT ({times}):")
        for failure in failures:
            print(f"  {failure}")
        return 1
    known = sum(1 for note in notes if note.startswith("known difference"))
    but = f" but for {known} known differences (known.toml)" if known else ""
    print(
        f"peers: {title(name)}: {counts['tests']} tests, same outcome with and without "
        f"the hook{but} ({counts['passed_both']} passed, {counts['skipped_both']} skipped, "
        f"{counts['failing_both']} failing both ways; {times})"
    )
    return 0


def table() -> str:
    """README's table, from the last run of each peer (``.nox/peers/reports/*/summary.json``)."""
    rows = [
        "| peer | tests | passed both ways | skipped both ways | failing both ways | differences "
        "| minutes (plain / hooked) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in PEERS:
        path = WORK / "reports" / name / "summary.json"
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        # The counts from the run's own XML (older summaries lack some of them).
        runs = [
            Run(hooked, read_junit(path.with_name(f"{label}.xml")), {}, 0.0, 0)
            for hooked, label in ((False, "plain"), (True, "hooked"))
        ]
        record.update(summary(*runs))
        known = sum(1 for note in record["notes"] if note.startswith("known difference"))
        differing = len(record["failures"])
        verdict = f"{differing} (see the run)" if differing else "none"
        if known:
            verdict += f", {known} known"
        rows.append(
            f"| {title(name)} | {record['tests']} | {record['passed_both']} | "
            f"{record['skipped_both']} | {record['failing_both']} | {verdict} | "
            f"{record['plain_minutes']} / {record['hooked_minutes']} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("peer", nargs="?", choices=list(PEERS))
    parser.add_argument("--list", action="store_true", help="print the pinned peers and exit")
    parser.add_argument(
        "--table", action="store_true", help="print README's table from the last runs and exit"
    )
    parser.add_argument(
        "--audit-offline",
        action="store_true",
        help="as root: check that the off-root way (offline tests left out) sends no packet out",
    )
    args = parser.parse_args(argv)
    if args.audit_offline and args.peer:
        return audit_offline(args.peer)
    if args.table:
        print(table())
        return 0
    if args.list or args.peer is None:
        for name, peer in PEERS.items():
            print(f"{name}=={peer.version}{'  (CI)' if peer.ci else ''}")
        return 0
    return check_peer(args.peer)


if __name__ == "__main__":
    sys.exit(main())
