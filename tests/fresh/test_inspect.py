"""``keepalive-patch inspect PID``: a running process's connections, read from outside it.

The targets are real processes started here and left running: ``scripts/idle_clients.py``
(idle httpx, requests and aiohttp connections to its own loopback server) plain, under
``keepalive-patch run``, and with a caller's own 60/60/5 policy; ``scripts/socket_holder.py``
(the standard library alone: IPv4, IPv6 and IPv4-mapped connections); ``sleep``.  Each Python
target prints what ``getsockopt`` reads inside it, and ``inspect`` must report exactly that.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import importlib.util
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.libs import retries_only_reason, takes_socket_options
from support.procs import REPO, SCRIPTS, clean_env, expected, run_python

from keepalive_patch import processes

LAUNCHER = str(Path(sys.executable).with_name("keepalive-patch"))
INSPECT = [sys.executable, "-m", "keepalive_patch", "inspect"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
#: Real uid root, effective (and file-system) uid nobody, no capabilities: /proc/PID/fd of a
#: process of nobody's may be read (file-system credentials), pidfd_getfd may not (real ones).
HALF_NOBODY = [
    "setpriv",
    "--ruid=0",
    "--euid=65534",
    "--rgid=0",
    "--egid=65534",
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
]
POLICY_60_60_5 = {
    "SO_KEEPALIVE": 1,
    "TCP_KEEPIDLE": 60,
    "TCP_KEEPINTVL": 60,
    "TCP_KEEPCNT": 5,
    "TCP_USER_TIMEOUT": 0,
}

#: What idle_clients.py connects with here.
LIBRARIES = sorted(n for n in ("httpx", "requests", "aiohttp") if importlib.util.find_spec(n))
#: httpx < 0.25 takes no socket_options: under ``run`` its connection gets the retry alone.
RETRIES_ONLY = [
    importlib.import_module(name)
    for name in LIBRARIES
    if name == "httpx" and not takes_socket_options(importlib.import_module(name))
]
every_connection_kept_alive = pytest.mark.skipif(
    bool(RETRIES_ONLY), reason=retries_only_reason(RETRIES_ONLY[0]) if RETRIES_ONLY else ""
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="inspect reads /proc: Linux only"
)


class Target:
    """A running process started here; ``view`` is what it printed of its own sockets."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            command,
            env=clean_env() if env is None else env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        line = self.process.stdout.readline()
        if not line:  # it ended early: say why
            error = self.process.stderr.read()
            self.stop()
            raise AssertionError(f"{command} printed nothing:\n{error}")
        self.view: dict[str, Any] = json.loads(line)
        self.pid: int = self.view["pid"]

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()  # type: ignore[union-attr]
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str] | None = None) -> Iterator[Target]:
    target = Target(command, env)
    try:
        yield target
    finally:
        target.stop()


def idle_clients(*prefix: str, own: bool = False) -> list[str]:
    return [*prefix, sys.executable, str(SCRIPTS / "idle_clients.py")] + (
        ["--own-policy"] if own else []
    )


@pytest.fixture(scope="module")
def plain() -> Iterator[Target]:
    with running(idle_clients()) as target:
        yield target


@pytest.fixture(scope="module")
def patched() -> Iterator[Target]:
    with running(idle_clients(LAUNCHER, "run", "--")) as target:
        yield target


@pytest.fixture(scope="module")
def own_policy() -> Iterator[Target]:
    with running(idle_clients(LAUNCHER, "run", "--", own=True)) as target:
        yield target


@pytest.fixture(scope="module")
def holder() -> Iterator[Target]:
    with running([sys.executable, str(SCRIPTS / "socket_holder.py")]) as target:
        yield target


def inspect(
    *arguments: str,
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
    command: list[str] = INSPECT,
) -> subprocess.CompletedProcess[str]:
    """Run ``inspect``; it never writes a traceback, whatever happens."""
    full = [*(prefix or []), *command, *arguments]
    result = run_python(full, clean_env() if env is None else env, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def inspect_json(
    *arguments: str,
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
    command: list[str] = INSPECT,
) -> tuple[int, dict[str, Any]]:
    result = inspect("--json", *arguments, prefix=prefix, env=env, command=command)
    report: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, report


def by_local(report: dict[str, Any], pid: int) -> dict[tuple[str, int], dict[str, Any]]:
    """The process's connections by local address (host, port)."""
    (process,) = [p for p in report["processes"] if p["pid"] == pid]
    return {(c["local"]["host"], c["local"]["port"]): c for c in process["connections"]}


def assert_matches(target: Target, report: dict[str, Any], read_by: str = "getsockopt") -> None:
    """Each of the target's client connections is listed as it sees it, outbound and judged;
    no other connection is outbound (the server ends are inbound)."""
    rows = by_local(report, target.pid)
    seen = target.view["connections"]
    assert seen, "the target holds connections"
    for name, own in seen.items():
        row = rows[(own["local"][0], own["local"][1])]
        assert [row["remote"]["host"], row["remote"]["port"]] == own["remote"], name
        assert (row["state"], row["direction"], row["judged"]) == ("ESTABLISHED", "outbound", True)
        assert row["loopback"] is True, name
        assert row["read_by"] == read_by, name
        if read_by == "getsockopt":
            assert row["options"] == own["options"], name
            assert row["keepalive"] is bool(own["options"]["SO_KEEPALIVE"]), name
    outbound = {local for local, row in rows.items() if row["direction"] == "outbound"}
    assert outbound == {(c["local"][0], c["local"][1]) for c in seen.values()}


# -- what getsockopt reads -------------------------------------------------------------------


def test_unpatched_target_has_no_keepalive(plain: Target) -> None:
    assert sorted(plain.view["connections"]) == LIBRARIES
    for name, own in plain.view["connections"].items():
        assert own["options"]["SO_KEEPALIVE"] == 0, name
    status, report = inspect_json(str(plain.pid))
    assert status == processes.MISSING == 1
    assert_matches(plain, report)
    (process,) = report["processes"]
    count = len(plain.view["connections"])
    assert (process["outbound_established"], process["kept_alive"]) == (count, 0)
    assert report["summary"].startswith(f"FAIL: {count} of {count} established outbound")
    for own in plain.view["connections"].values():
        assert f"{own['local'][0]}:{own['local'][1]} -> " in report["summary"]


def test_target_under_run_is_kept_alive(patched: Target) -> None:
    assert sorted(patched.view["connections"]) == LIBRARIES
    retries_only = [lib.__name__ for lib in RETRIES_ONLY]
    for name, own in patched.view["connections"].items():
        if name in retries_only:
            assert own["options"]["SO_KEEPALIVE"] == 0, name
        else:
            assert own["options"] == expected(), name
    status, report = inspect_json(str(patched.pid))
    assert_matches(patched, report)
    if retries_only:
        assert status == 1
        return
    assert status == processes.OK == 0
    assert report["ok"] is True
    count = len(LIBRARIES)
    assert report["summary"] == (
        f"OK: every established outbound connection of PID {patched.pid} has keepalive on "
        f"({count}, {count} to loopback)."
    )


def test_callers_own_policy_is_reported_as_set(own_policy: Target) -> None:
    for name, own in own_policy.view["connections"].items():
        assert own["options"] == POLICY_60_60_5, name
    status, report = inspect_json(str(own_policy.pid))
    assert status == 0
    assert_matches(own_policy, report)


@every_connection_kept_alive
def test_text_report(plain: Target, patched: Target) -> None:
    result = inspect(str(patched.pid))
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"PID {patched.pid}: ") and "idle_clients.py" in lines[0]
    assert "read with getsockopt on a duplicate of each socket (pidfd_getfd)" in lines[1]
    for own in patched.view["connections"].values():
        local = f"{own['local'][0]}:{own['local'][1]}"
        (line,) = [line for line in lines if f" {local} -> " in line]
        assert line.split()[:2] == ["OK", "outbound"]
        assert "ESTABLISHED loopback" in line and line.endswith("[getsockopt]")
        assert "SO_KEEPALIVE=1 TCP_KEEPIDLE=30 TCP_KEEPINTVL=10 TCP_KEEPCNT=3" in line
    assert lines[-1].startswith("OK: every established outbound connection")
    result = inspect(str(plain.pid))
    assert result.returncode == 1
    count = len(LIBRARIES)
    assert result.stdout.splitlines()[-1].startswith(f"FAIL: {count} of {count} established")


def test_server_ends_and_listeners_are_apart(patched: Target) -> None:
    _, report = inspect_json(str(patched.pid))
    (process,) = report["processes"]
    inbound = [c for c in process["connections"] if c["direction"] == "inbound"]
    clients = {tuple(c["local"]) for c in patched.view["connections"].values()}
    assert {(c["remote"]["host"], c["remote"]["port"]) for c in inbound} == clients
    assert not any(c["judged"] for c in inbound)
    assert all(c["keepalive"] is False for c in inbound), "the stdlib server sets nothing"
    server = {(c["remote"][0], c["remote"][1]) for c in patched.view["connections"].values()}
    listening = {(c["local"]["host"], c["local"]["port"]) for c in process["listening"]}
    assert listening == server
    assert process["listening"][0]["state"] == "LISTEN"


def test_every_address_kind(holder: Target) -> None:
    """IPv4, IPv6 and IPv4-mapped addresses as the process itself names them."""
    status, report = inspect_json(str(holder.pid))
    assert_matches(holder, report)
    assert status == 1, "ipv4 plain and ipv4-mapped have no keepalive"
    rows = by_local(report, holder.pid)
    families = {
        name: rows[(own["local"][0], own["local"][1])]["family"]
        for name, own in holder.view["connections"].items()
    }
    assert families["ipv4 keepalive"] == families["ipv4 plain"] == "ipv4"
    if "ipv6" in families:
        assert families["ipv6"] == families["ipv4-mapped"] == "ipv6"
    (process,) = report["processes"]
    listening = sorted([c["local"]["host"], c["local"]["port"]] for c in process["listening"])
    assert listening == sorted(holder.view["listening"])


def test_several_pids_worst_status_wins(plain: Target, own_policy: Target) -> None:
    status, report = inspect_json(str(own_policy.pid), str(plain.pid), str(own_policy.pid))
    assert status == 1
    assert [p["pid"] for p in report["processes"]] == [own_policy.pid, plain.pid]
    assert [p["status"] for p in report["processes"]] == [0, 1]


# -- the /proc fallback ----------------------------------------------------------------------


def proc_rows(target: Target, report: dict[str, Any]) -> list[dict[str, Any]]:
    assert_matches(target, report, read_by="proc")
    rows = by_local(report, target.pid)
    return [rows[(own["local"][0], own["local"][1])] for own in target.view["connections"].values()]


@pytest.mark.parametrize("forced_by", ["flag", "env"])
def test_fallback_reads_the_keepalive_timer(
    forced_by: str, plain: Target, own_policy: Target
) -> None:
    arguments = ["--proc-only"] if forced_by == "flag" else []
    env = clean_env(**({processes.PROC_ONLY_VAR: "1"} if forced_by == "env" else {}))
    status, report = inspect_json(*arguments, str(own_policy.pid), env=env)
    assert status == 0
    for row in proc_rows(own_policy, report):
        assert row["options"] is None and row["fallback_reason"] == "--proc-only"
        assert row["timer"]["kind"] == "keepalive" and row["keepalive"] is True
        assert 0 <= row["timer"]["fires_in"] <= 60, "at most the idle time (60 s) away"
    status, report = inspect_json(*arguments, str(plain.pid), env=env)
    assert status == 1
    for row in proc_rows(plain, report):
        assert row["timer"] == {"kind": "none", "fires_in": None} and row["keepalive"] is False


@every_connection_kept_alive
def test_fallback_under_run(patched: Target) -> None:
    status, report = inspect_json("--proc-only", str(patched.pid))
    assert status == 0
    for row in proc_rows(patched, report):
        assert row["timer"]["kind"] == "keepalive" and row["keepalive"] is True
        assert 0 <= row["timer"]["fires_in"] <= 30, "at most our idle time (30 s) away"


def test_fallback_text_says_how_it_was_read(own_policy: Target) -> None:
    result = inspect("--proc-only", str(own_policy.pid))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[1] == f"  read with /proc/{own_policy.pid}/net/tcp{{,6}} timers: --proc-only"
    for own in own_policy.view["connections"].values():
        (line,) = [line for line in lines if f" {own['local'][0]}:{own['local'][1]} -> " in line]
        assert "keepalive timer fires in " in line and line.endswith("[proc]")
        fires_in = float(line.split("keepalive timer fires in ")[1].split()[0])
        assert 0 <= fires_in <= 60, "the caller's idle time (60 s) at most"


# -- as another user -------------------------------------------------------------------------


@dataclass
class Copy:
    """A world-readable copy of the package and of socket_holder.py, and a Python ``nobody``
    can run them with (no site-packages: the standard library and the copy alone)."""

    root: Path
    python: str

    def env(self) -> dict[str, str]:
        return clean_env(PYTHONPATH=str(self.root))

    def holder(self) -> list[str]:
        return [self.python, "-S", str(self.root / "socket_holder.py")]

    def inspect(self) -> list[str]:
        return [self.python, "-S", "-m", "keepalive_patch", "inspect"]


def nobodys_python() -> str:
    """This interpreter, or another one, that the user nobody may run (>= 3.9)."""
    candidates = [sys.executable, os.path.realpath(sys.executable)]
    candidates += [f"{d}/python3" for d in ("/usr/local/bin", "/usr/bin") if Path(d).is_dir()]
    failures = []
    for python in dict.fromkeys(candidates):
        probe = [*NOBODY, python, "-S", "-c", "import os; os.pidfd_open"]
        result = subprocess.run(probe, capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return python
        failures.append(f"{python}: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    pytest.skip("the user nobody can run no Python 3.9+ here: " + "; ".join(failures))


@pytest.fixture(scope="module")
def as_nobody() -> Iterator[Copy]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run processes as the user nobody")
    python = nobodys_python()
    root = Path(tempfile.mkdtemp(prefix="keepalive-inspect-"))
    try:
        shutil.copytree(REPO / "keepalive_patch", root / "keepalive_patch")
        shutil.copy(SCRIPTS / "socket_holder.py", root)
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
        yield Copy(root, python)
    finally:
        shutil.rmtree(root)


@pytest.fixture(scope="module")
def nobodys_holder(as_nobody: Copy) -> Iterator[Target]:
    with running([*NOBODY, *as_nobody.holder()], as_nobody.env()) as target:
        yield target


def test_same_user_reads_with_getsockopt(as_nobody: Copy, nobodys_holder: Target) -> None:
    def run(*arguments: str) -> tuple[int, dict[str, Any]]:
        return inspect_json(
            *arguments, prefix=NOBODY, env=as_nobody.env(), command=as_nobody.inspect()
        )

    status, report = run(str(nobodys_holder.pid))
    assert status == 1
    assert_matches(nobodys_holder, report)
    status, report = run("--proc-only", str(nobodys_holder.pid))
    assert status == 1
    rows = proc_rows(nobodys_holder, report)
    assert [row["keepalive"] for row in rows] == [
        bool(own["options"]["SO_KEEPALIVE"]) for own in nobodys_holder.view["connections"].values()
    ]


def test_fallback_where_pidfd_getfd_is_refused(as_nobody: Copy, nobodys_holder: Target) -> None:
    """/proc/PID/fd may be read (file-system uid) but pidfd_getfd is refused (real uid)."""
    env, command = as_nobody.env(), as_nobody.inspect()
    status, report = inspect_json(
        str(nobodys_holder.pid), prefix=HALF_NOBODY, env=env, command=command
    )
    assert status == 1
    for row in proc_rows(nobodys_holder, report):
        assert row["fallback_reason"].startswith("pidfd_getfd not permitted (needs ptrace rights")
        own = [
            c
            for c in nobodys_holder.view["connections"].values()
            if c["local"][1] == row["local"]["port"]
        ]
        assert row["keepalive"] is bool(own[0]["options"]["SO_KEEPALIVE"])
    result = inspect(str(nobodys_holder.pid), prefix=HALF_NOBODY, env=env, command=command)
    assert "timers: pidfd_getfd not permitted" in result.stdout.splitlines()[1]


def test_another_users_process_is_not_permitted(as_nobody: Copy, holder: Target) -> None:
    command = as_nobody.inspect()
    result = inspect(str(holder.pid), prefix=NOBODY, env=as_nobody.env(), command=command)
    assert result.returncode == processes.UNREADABLE == 4
    assert result.stdout == ""
    assert result.stderr == (
        f"keepalive-patch inspect: PID {holder.pid}: not permitted to read /proc/{holder.pid}/fd "
        "(needs ptrace read rights over the process: root, or the same user as a dumpable "
        "process)\n"
    )


# -- without wrapt, from a copy of the package ----------------------------------------------


def pythons_without_wrapt() -> list[str]:
    """This interpreter with no site-packages (``-S``), and pyenv's 3.9 where it is installed."""
    found = [sys.executable]
    found += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.9*/bin/python"))
    return found


@pytest.mark.parametrize("python", pythons_without_wrapt())
def test_runs_from_a_bare_copy_without_wrapt(
    python: str, own_policy: Target, tmp_path: Path
) -> None:
    shutil.copytree(REPO / "keepalive_patch", tmp_path / "keepalive_patch")
    env = clean_env(PYTHONPATH=str(tmp_path))
    no_wrapt = run_python([python, "-S", "-c", "import wrapt"], env, check=False)
    assert "No module named 'wrapt'" in no_wrapt.stderr
    command = [python, "-S", "-m", "keepalive_patch", "inspect", "--json", str(own_policy.pid)]
    result = run_python(command, env, check=False)
    assert result.returncode == 0, result.stderr
    assert_matches(own_policy, json.loads(result.stdout))


# -- processes that are not what was expected, and bad input ---------------------------------


def gone_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_no_such_process() -> None:
    pid = gone_pid()
    status, report = inspect_json(str(pid))
    assert status == 4
    assert report["errors"] == [f"PID {pid}: no such process"]
    result = inspect(str(pid))
    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr == f"keepalive-patch inspect: PID {pid}: no such process\n"


def test_one_unreadable_pid_among_others(own_policy: Target) -> None:
    pid = gone_pid()
    result = inspect(str(own_policy.pid), str(pid))
    assert result.returncode == 4
    assert result.stdout.splitlines()[-1].startswith("OK: every established outbound connection")
    assert result.stderr == f"keepalive-patch inspect: PID {pid}: no such process\n"


def test_process_exits_while_being_read(tmp_path: Path) -> None:
    """The target is killed (and reaped) between the listing of its descriptors and the rest."""
    fifo = tmp_path / "pause"
    os.mkfifo(fifo)
    with running([sys.executable, str(SCRIPTS / "socket_holder.py")]) as target:
        env = clean_env(**{processes.PAUSE_VAR: str(fifo)})
        reader = subprocess.Popen(
            [*INSPECT, str(target.pid)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while True:  # opening the write end succeeds once inspect waits at the read end
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:
                assert exc.errno == errno.ENXIO and time.monotonic() < deadline
                time.sleep(0.05)
        target.process.kill()
        target.process.wait()
        os.close(writer)
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 4
    assert out == b""
    assert err.decode() == f"keepalive-patch inspect: PID {target.pid} exited while being read\n"


def test_zombie() -> None:
    process = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        result = inspect(str(process.pid))
    finally:
        process.wait()
    assert result.returncode == 4
    assert result.stderr == (
        f"keepalive-patch inspect: PID {process.pid} has exited (a zombie its parent has not "
        "reaped yet)\n"
    )


def test_thread_id(patched: Target) -> None:
    tids = sorted(int(tid) for tid in os.listdir(f"/proc/{patched.pid}/task"))
    tid = next(tid for tid in tids if tid != patched.pid)
    result = inspect(str(tid))
    assert result.returncode == 4
    assert result.stderr == (
        f"keepalive-patch inspect: PID {tid} is a thread of process {patched.pid}, not a "
        f"process: inspect {patched.pid}\n"
    )


def test_a_process_without_sockets() -> None:
    with subprocess.Popen(["sleep", "30"]) as sleeper:
        try:
            result = inspect(str(sleeper.pid))
        finally:
            sleeper.kill()
    assert result.returncode == 0
    assert result.stdout == (
        f"PID {sleeper.pid}: sleep 30\n"
        "  TCP connections: none\n"
        "\n"
        f"OK: PID {sleeper.pid} holds no established outbound TCP connection to judge.\n"
    )


def test_a_non_python_process_with_a_connection() -> None:
    """``sleep`` holding a connection that bash opened (``/dev/tcp``) before exec-ing it."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash here to open a connection without Python")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        script = f"exec 3<>/dev/tcp/127.0.0.1/{port} && exec sleep 30"
        with subprocess.Popen([bash, "-c", script]) as sleeper:
            try:
                listener.settimeout(30)
                accepted, peer = listener.accept()
                with accepted:
                    deadline = time.monotonic() + 30
                    while "sleep" not in Path(f"/proc/{sleeper.pid}/cmdline").read_text():
                        assert time.monotonic() < deadline
                        time.sleep(0.02)
                    status, report = inspect_json(str(sleeper.pid))
            finally:
                sleeper.kill()
    assert status == 1
    (process,) = report["processes"]
    assert process["command"] == "sleep 30"
    (row,) = process["connections"]
    assert (row["local"]["port"], row["remote"]["port"]) == (peer[1], port)
    assert (row["direction"], row["read_by"], row["keepalive"]) == ("outbound", "getsockopt", False)
    with socket.socket() as fresh:
        assert row["options"]["TCP_KEEPIDLE"] == fresh.getsockopt(
            socket.IPPROTO_TCP, socket.TCP_KEEPIDLE
        )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "the following arguments are required: PID"),
        (["abc"], "argument PID: not a process ID: 'abc'"),
        (["0"], "argument PID: not a process ID: '0'"),
        (["-1"], "argument PID: not a process ID: '-1'"),
        (["1.5"], "argument PID: not a process ID: '1.5'"),
        (["1", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors(arguments: list[str], message: str) -> None:
    result = inspect(*arguments)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == f"keepalive-patch inspect: error: {message}"


def test_no_proc() -> None:
    """In a mount namespace where /proc is an empty tmpfs."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        pytest.skip("needs root and unshare to hide /proc in a mount namespace")
    hide = "mount -t tmpfs none /proc && exec " + " ".join(INSPECT) + " 1"
    result = run_python([unshare, "--mount", "sh", "-c", hide], clean_env(), check=False)
    assert "Traceback" not in result.stderr
    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr == (
        "keepalive-patch inspect: no /proc here: inspect reads /proc (mount procfs)\n"
    )
