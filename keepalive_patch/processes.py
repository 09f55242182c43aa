"""``keepalive-patch inspect PID``: the keepalive state of a running process's TCP connections.

``check`` proves what a new process would get; this reads a process that is running now, from
outside it, with nothing but the standard library (no HTTP library, no wrapt: it runs from a
bare copy of the package, e.g. ``kubectl exec POD -- python -m keepalive_patch inspect 1``).
Linux only: everything comes from ``/proc`` and two system calls.

How a process is read:

1. ``pidfd_open(PID)`` pins the process: if the PID is reused while we read, the pidfd still
   refers to the process we started with, and it turns readable when that process exits, which
   is how "exited while being read" is told apart from a clean read.
2. ``/proc/PID/fd`` maps each descriptor that is a socket (``readlink`` gives ``socket:[INODE]``)
   to its inode.  Reading it needs ptrace read access (root, or the same user and a dumpable
   process); without it nothing can be said about the process (status 4).
3. ``/proc/PID/net/tcp`` and ``tcp6`` (the process's own network namespace) give, per socket
   inode, the state, the addresses and the timer; rows whose inode is not one of the process's
   sockets are someone else's.  Their ``LISTEN`` rows also tell which connections were accepted
   (the local port is a listener's) rather than opened by the process.
4. For each TCP socket, ``pidfd_getfd(pidfd, fd)`` gives this process a duplicate of the
   target's descriptor (the same open socket, not a copy); ``getsockopt`` reads the keepalive
   options from it and it is closed at once.  Nothing in the target changes.  The call needs
   ptrace attach rights (root, or the same user where ``kernel.yama.ptrace_scope`` is 0) and
   Linux >= 5.6; seccomp profiles of container runtimes often refuse it without
   ``CAP_SYS_PTRACE``.
5. Where step 4 is refused or unavailable (or ``--proc-only``), the row is judged by what the
   kernel shows without it: the timer column of ``/proc/PID/net/tcp``.  See ``timer_of`` below.

An established connection the process opened ("outbound") is judged: keepalive is on when
``SO_KEEPALIVE`` is set (any timings: a caller's own policy counts), or, read from ``/proc``, when
its keepalive timer runs.  Accepted ("inbound") connections and listeners are listed, not judged.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import json
import os
import select
import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

#: Exit statuses, as ``check``'s: 0 every established outbound connection has keepalive on;
#: 1 some do not (or cannot be told from ``/proc``); 2 a usage error (argparse's);
#: 4 a process could not be read (no such process, not permitted, no ``/proc``, not Linux).
OK, MISSING, USAGE, UNREADABLE = 0, 1, 2, 4

#: ``(name, level, option)`` read from every duplicated socket, where this platform has them.
OPTIONS = [
    (
        name,
        socket.SOL_SOCKET if name.startswith("SO_") else socket.IPPROTO_TCP,
        getattr(socket, name),
    )
    for name in ("SO_KEEPALIVE", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT")
    if hasattr(socket, name)
]

#: The ``st`` column of ``/proc/net/tcp`` (``include/net/tcp_states.h``).
STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
}

#: Forces the ``/proc`` reading as ``--proc-only`` does, for tests; not a setting (it is not in
#: ``config.TABLE``, and nothing but a test should need it).
PROC_ONLY_VAR = "_KEEPALIVE_PATCH_INSPECT_PROC_ONLY"
#: Test hook: a FIFO opened (blocking until a writer comes) between listing a process's
#: descriptors and reading them, so a test can end the process at exactly that point.
PAUSE_VAR = "_KEEPALIVE_PATCH_INSPECT_PAUSE_FIFO"

Address = tuple[str, int]
Options = dict[str, int]


class Unreadable(Exception):
    """A process that cannot be read at all; the message is the one line the user sees."""


# -- pidfd_getfd -------------------------------------------------------------------------------

# pidfd_getfd(2) has no wrapper in Python (nor in older glibc), so it is called through
# syscall(3).  Since Linux 5.1 new system calls have one number on every architecture (438 for
# pidfd_getfd, 434 for pidfd_open), offset on the few that number their tables differently:
# alpha +110, the MIPS ABIs (o32 +4000, n64 +5000, n32 +6000), and x32 with its ABI bit.  The
# interpreter's own ABI (``sys.implementation._multiarch``, e.g. ``x86_64-linux-gnux32``) tells
# them apart where the kernel's machine name cannot (a 32-bit interpreter on a 64-bit kernel).
_PIDFD_GETFD = 438


def pidfd_getfd_number() -> int:
    """``pidfd_getfd``'s system call number for this interpreter's ABI."""
    machine = os.uname().machine
    abi = getattr(sys.implementation, "_multiarch", "")
    if machine == "alpha":
        return _PIDFD_GETFD + 110
    if machine.startswith("mips"):
        offset = 5000 if abi.endswith("abi64") else 6000 if abi.endswith("abin32") else 4000
        return _PIDFD_GETFD + offset
    if abi.endswith("gnux32"):
        return _PIDFD_GETFD | 0x40000000
    return _PIDFD_GETFD


@functools.cache
def _syscall() -> Any:
    """libc's ``syscall(3)``, loaded once."""
    import ctypes

    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall.restype = ctypes.c_long
    return syscall


def pidfd_getfd(pidfd: int, fd: int) -> int:
    """A descriptor of this process for the target's ``fd`` (close-on-exec); raises OSError."""
    import ctypes

    number = ctypes.c_long(pidfd_getfd_number())
    result = int(_syscall()(number, ctypes.c_int(pidfd), ctypes.c_int(fd), ctypes.c_uint(0)))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


# -- what is read ------------------------------------------------------------------------------


@dataclass
class Timer:
    """The timer column (``tr:tm->when``) of a ``/proc/net/tcp`` row."""

    kind: str
    #: Seconds until it fires (``None`` when no timer runs).
    fires_in: float | None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "fires_in": self.fires_in}


# The timer column of /proc/net/tcp is ``tr:when``: ``tr`` says which of the socket's timers is
# pending and ``when`` is the time until it fires in clock ticks (USER_HZ, os.sysconf
# "SC_CLK_TCK", 100 a second), in hex (net/ipv4/tcp_ipv4.c, get_tcp4_sock).  ``tr`` is
#   0  no timer pending;
#   1  the retransmit timer (also tail-loss probe / reordering timeout): data is in flight;
#   2  the socket's own timer, ``sk_timer``, which TCP uses only as the keepalive timer
#      (and, after a close, as the FIN_WAIT2 timer);
#   3  the TIME_WAIT timer (rows of timewait sockets, which no descriptor holds);
#   4  the zero-window probe timer.
# The kernel shows one timer: a pending retransmit or window probe hides the keepalive timer.
# So for an established connection: tr 2 means keepalive is on (it fires in ``when``: the idle
# time left, or the interval while probing); tr 0 means it is off (SO_KEEPALIVE arms the timer
# at once, and it stays armed while the option is on); tr 1 or 4 means it cannot be told now.
# The timings themselves (idle, interval, count) and TCP_USER_TIMEOUT are not shown.
_TIMER_KINDS = {0: "none", 1: "retransmit", 2: "keepalive", 3: "time-wait", 4: "zero-window-probe"}


def timer_of(column: str) -> Timer:
    """``Timer`` of a ``tr:when`` column, e.g. ``02:00000BB8`` (keepalive, fires in 30 s)."""
    active, _, when = column.partition(":")
    kind = _TIMER_KINDS.get(int(active, 16), f"timer {int(active, 16)}")
    if kind == "none":
        return Timer(kind, None)
    ticks = int(when, 16)
    if ticks >= 2**31:  # jiffies_delta_to_clock_t of an expiry already past: unsigned
        ticks = 0
    return Timer(kind, round(ticks / os.sysconf("SC_CLK_TCK"), 2))


@dataclass
class Row:
    """One line of ``/proc/PID/net/tcp{,6}``."""

    family: int
    local: Address
    remote: Address
    state: str
    timer: Timer
    inode: int


def _address(text: str, family: int) -> Address:
    # The kernel prints each 32-bit word of the address as a hex number in host byte order
    # (%08X of the raw word), and the port as a plain number.
    host, _, port = text.partition(":")
    words = [int(host[i : i + 8], 16) for i in range(0, len(host), 8)]
    raw = struct.pack(f"={len(words)}I", *words)
    return socket.inet_ntop(family, raw), int(port, 16)


def parse_table(text: str, family: int) -> list[Row]:
    """The rows of one ``/proc/net/tcp`` (``AF_INET``) or ``tcp6`` (``AF_INET6``) file."""
    rows = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        rows.append(
            Row(
                family=family,
                local=_address(fields[1], family),
                remote=_address(fields[2], family),
                state=STATES.get(int(fields[3], 16), f"state {int(fields[3], 16)}"),
                timer=timer_of(fields[5]),
                inode=int(fields[9]),
            )
        )
    return rows


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and their IPv4-mapped forms (``::ffff:127.0.0.1``)."""
    address = ipaddress.ip_address(host)
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


def _plain_host(host: str) -> str:
    """``::ffff:10.0.0.1`` as ``10.0.0.1`` (a dual-stack socket's view of an IPv4 peer)."""
    mapped = getattr(ipaddress.ip_address(host), "ipv4_mapped", None)
    return str(mapped) if mapped is not None else host


def show(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Connection:
    """One TCP socket of the process, with what could be read of its keepalive state."""

    fd: int
    row: Row
    #: ``outbound`` (opened by the process), ``inbound`` (accepted) or ``listening``.
    direction: str
    #: ``getsockopt`` (on a duplicate, from ``pidfd_getfd``) or ``proc`` (the timer column).
    read_by: str = "proc"
    #: What ``getsockopt`` read; empty when read from ``/proc``.
    options: Options = field(default_factory=dict)
    #: Why ``getsockopt`` was not used for this row.
    fallback_reason: str | None = None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.row.remote[0] if self.direction != "listening" else "::")

    @property
    def keepalive(self) -> bool | None:
        """On, off, or ``None``: cannot be told (read from ``/proc`` behind another timer)."""
        if self.read_by == "getsockopt":
            return bool(self.options.get("SO_KEEPALIVE"))
        if self.row.timer.kind == "keepalive":
            return True
        if self.row.timer.kind == "none":
            return False
        return None

    @property
    def judged(self) -> bool:
        """Whether this connection counts for the exit status: established and outbound."""
        return self.direction == "outbound" and self.row.state == "ESTABLISHED"

    def name(self) -> str:
        arrow = "<-" if self.direction == "inbound" else "->"
        return f"{show(self.row.local)} {arrow} {show(self.row.remote)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "fd": self.fd,
            "inode": self.row.inode,
            "family": "ipv6" if self.row.family == socket.AF_INET6 else "ipv4",
            "local": {"host": self.row.local[0], "port": self.row.local[1]},
            "remote": {"host": self.row.remote[0], "port": self.row.remote[1]},
            "state": self.row.state,
            "direction": self.direction,
            "loopback": self.loopback,
            "read_by": self.read_by,
            "fallback_reason": self.fallback_reason,
            "options": self.options or None,
            "timer": self.row.timer.to_json(),
            "keepalive": self.keepalive,
            "judged": self.judged,
        }


@dataclass
class Process:
    """One PID: its TCP sockets, or why it could not be read."""

    pid: int
    command: str = ""
    connections: list[Connection] = field(default_factory=list)
    error: str | None = None

    def judged(self) -> list[Connection]:
        return [c for c in self.connections if c.judged]

    def unprotected(self) -> list[Connection]:
        return [c for c in self.judged() if c.keepalive is not True]

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return "unreadable"
        return "missing" if self.unprotected() else "ok"

    @property
    def status(self) -> int:
        return {"ok": OK, "missing": MISSING}.get(self.outcome, UNREADABLE)

    def to_json(self) -> dict[str, Any]:
        judged = self.judged()
        return {
            "pid": self.pid,
            "command": self.command,
            "error": self.error,
            "outcome": self.outcome,
            "status": self.status,
            "outbound_established": len(judged),
            "kept_alive": sum(1 for c in judged if c.keepalive is True),
            "connections": [c.to_json() for c in self.connections if c.direction != "listening"],
            "listening": [c.to_json() for c in self.connections if c.direction == "listening"],
        }


# -- reading a process -------------------------------------------------------------------------


def _socket_fds(pid: int) -> dict[int, int]:
    """``{inode: fd}`` of the process's sockets (the lowest fd where several share one)."""
    directory = f"/proc/{pid}/fd"
    inodes: dict[int, int] = {}
    for name in os.listdir(directory):
        try:
            target = os.readlink(f"{directory}/{name}")
        except FileNotFoundError:
            continue  # closed since the listing
        if target.startswith("socket:["):
            inode = int(target[len("socket:[") : -1])
            fd = int(name)
            inodes[inode] = min(fd, inodes.get(inode, fd))
    return inodes


def _tables(pid: int) -> list[Row]:
    rows = []
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            with open(f"/proc/{pid}/net/{name}", encoding="ascii") as table:
                text = table.read()
        except FileNotFoundError:
            if name == "tcp6" and os.path.isdir(f"/proc/{pid}"):
                continue  # a kernel without IPv6
            raise
        rows += parse_table(text, family)
    return rows


def _direction(row: Row, listeners: list[Row]) -> str:
    """Accepted connections have a listener's local port (on its address or a wildcard)."""
    if row.state == "LISTEN":
        return "listening"
    host = _plain_host(row.local[0])
    for listener in listeners:
        if listener.local[1] == row.local[1] and _plain_host(listener.local[0]) in (
            host,
            "0.0.0.0",
            "::",
        ):
            return "inbound"
    return "outbound"


def _read_options(pidfd: int, fd: int, inode: int) -> Options:
    """``getsockopt`` on a duplicate of the target's ``fd``; the duplicate is closed at once."""
    dup = pidfd_getfd(pidfd, fd)
    try:
        sock = socket.socket(fileno=dup)  # takes the duplicate over: closed with it
    except OSError:
        os.close(dup)
        raise
    with sock:
        if os.fstat(dup).st_ino != inode:  # the fd was closed and reused since the listing
            raise OSError(errno.EBADF, "the descriptor now holds another file")
        return {name: sock.getsockopt(level, option) for name, level, option in OPTIONS}


def _why_not(exc: OSError) -> str:
    """Why ``pidfd_getfd`` could not be used, for the output."""
    if exc.errno == errno.EPERM:
        return (
            "pidfd_getfd not permitted (needs ptrace rights over the process: root, or the same "
            "user with kernel.yama.ptrace_scope 0; container seccomp profiles may refuse it)"
        )
    if exc.errno == errno.ENOSYS:
        return f"pidfd_getfd not available ({exc.strerror}; needs Linux >= 5.6)"
    return f"pidfd_getfd failed: {exc.strerror or exc}"


def _exited(pidfd: int) -> bool:
    """A pidfd turns readable when its process exits."""
    readable, _, _ = select.select([pidfd], [], [], 0)
    return bool(readable)


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().rstrip(b"\0").split(b"\0")
    except OSError:
        return ""
    return " ".join(word.decode(errors="replace") for word in words)


def _thread_group(pid: int) -> int | None:
    """The process a thread ID belongs to (``/proc`` answers for thread IDs too)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _pause_for_tests() -> None:
    fifo = os.environ.get(PAUSE_VAR)
    if fifo:
        with open(fifo, encoding="utf-8") as waiting:
            waiting.read()


def read_process(pid: int, proc_only: bool = False) -> Process:
    """Everything ``inspect`` says about ``pid``; never raises for a process that misbehaves."""
    process = Process(pid)
    try:
        _read_into(process, proc_only)
    except Unreadable as exc:
        process.error = str(exc)
        process.connections = []
    return process


def _read_into(process: Process, proc_only: bool) -> None:
    pid = process.pid
    group = _thread_group(pid)
    if group is not None and group != pid:
        raise Unreadable(
            f"PID {pid} is a thread of process {group}, not a process: inspect {group}"
        )
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except ProcessLookupError:
        raise Unreadable(f"PID {pid}: no such process") from None
    except OSError:
        pidfd = None  # Linux < 5.3: read /proc alone (the PID cannot be pinned)
    try:
        _read_pinned(process, pidfd, proc_only)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _read_pinned(process: Process, pidfd: int | None, proc_only: bool) -> None:
    pid = process.pid
    process.command = _command(pid)
    try:
        fds = _socket_fds(pid)
        _pause_for_tests()
        rows = _tables(pid)
    except PermissionError:
        raise Unreadable(
            f"PID {pid}: not permitted to read /proc/{pid}/fd (needs ptrace read rights over "
            "the process: root, or the same user as a dumpable process)"
        ) from None
    except (FileNotFoundError, ProcessLookupError):
        raise _gone(pid, pidfd) from None
    if _zombie(pid) or (pidfd is not None and _exited(pidfd)):
        raise _gone(pid, pidfd)
    listeners = [row for row in rows if row.state == "LISTEN"]
    reason = "--proc-only" if proc_only else None
    if reason is None and pidfd is None:
        reason = "pidfd_open not available (needs Linux >= 5.3)"
    for row in rows:
        fd = fds.get(row.inode)
        if fd is None or row.inode == 0:
            continue
        connection = Connection(fd, row, _direction(row, listeners))
        if reason is None and pidfd is not None:
            try:
                connection.options = _read_options(pidfd, fd, row.inode)
                connection.read_by = "getsockopt"
            except OSError as exc:
                if exc.errno == errno.ESRCH or _exited(pidfd):
                    raise _gone(pid, pidfd) from None
                if exc.errno == errno.EBADF:
                    continue  # closed while being read: it is no longer the process's
                connection.fallback_reason = _why_not(exc)
                if exc.errno in (errno.EPERM, errno.ENOSYS, errno.EACCES):
                    reason = connection.fallback_reason  # the same for every other socket
        else:
            connection.fallback_reason = reason
        process.connections.append(connection)
    if pidfd is not None and _exited(pidfd):
        raise _gone(pid, pidfd)
    process.connections.sort(key=lambda c: (c.direction != "outbound", c.direction, c.fd))


def _gone(pid: int, pidfd: int | None) -> Unreadable:
    """Why a process vanished: reaped, exited during the read, or a zombie all along."""
    if _zombie(pid):
        return Unreadable(f"PID {pid} has exited (a zombie its parent has not reaped yet)")
    if pidfd is None and not os.path.isdir(f"/proc/{pid}"):
        return Unreadable(f"PID {pid}: no such process (it may have exited while being read)")
    return Unreadable(f"PID {pid} exited while being read")


# -- the report --------------------------------------------------------------------------------


@dataclass
class Report:
    """What ``inspect`` found for every PID; ``to_json`` and ``render`` are its two views."""

    processes: list[Process]

    @property
    def status(self) -> int:
        """The worst of the processes': 4 over 1 over 0."""
        return max((p.status for p in self.processes), default=OK)

    def summary(self) -> str | None:
        """The verdict over every process that could be read (``None``: none could)."""
        read = [p for p in self.processes if p.error is None]
        if not read:
            return None
        judged = [c for p in read for c in p.judged()]
        bad = [(p, c) for p in read for c in p.unprotected()]
        pids = " ".join(str(p.pid) for p in read)
        if bad:
            names = ", ".join(
                (f"PID {p.pid} " if len(read) > 1 else "")
                + c.name()
                + ("" if c.keepalive is False else " (cannot tell: another timer is pending)")
                for p, c in bad
            )
            return (
                f"FAIL: {len(bad)} of {len(judged)} established outbound connections of PID "
                f"{pids} have no keepalive: {names}."
            )
        if not judged:
            return f"OK: PID {pids} holds no established outbound TCP connection to judge."
        loopback = sum(1 for c in judged if c.loopback)
        return (
            f"OK: every established outbound connection of PID {pids} has keepalive on "
            f"({len(judged)}" + (f", {loopback} to loopback" if loopback else "") + ")."
        )

    def errors(self) -> list[str]:
        return [p.error for p in self.processes if p.error is not None]

    def to_json(self) -> dict[str, Any]:
        from keepalive_patch import __version__

        return {
            "keepalive_patch": __version__,
            "processes": [p.to_json() for p in self.processes],
            "status": self.status,
            "ok": self.status == OK,
            "summary": self.summary(),
            "errors": self.errors(),
        }

    def render(self) -> str:
        """The human-readable report of the processes that could be read (errors go apart)."""
        lines = []
        for process in self.processes:
            if process.error is None:
                lines += [*_render_process(process), ""]
        summary = self.summary()
        if summary is not None:
            lines.append(summary)
        return "".join(line + "\n" for line in lines)


def _render_process(process: Process) -> list[str]:
    lines = [f"PID {process.pid}: {process.command or '(no command line)'}"]
    connections = [c for c in process.connections if c.direction != "listening"]
    listening = [c for c in process.connections if c.direction == "listening"]
    reasons = sorted({c.fallback_reason for c in process.connections if c.fallback_reason})
    if connections or listening:
        read_by = "getsockopt on a duplicate of each socket (pidfd_getfd)"
        if reasons:
            read_by = f"/proc/{process.pid}/net/tcp{{,6}} timers: " + "; ".join(reasons)
        lines.append(f"  read with {read_by}")
    lines.append("  TCP connections:" if connections else "  TCP connections: none")
    lines += ["    " + _render_connection(connection) for connection in connections]
    if listening:
        shown = ", ".join(show(c.row.local) for c in listening)
        lines.append(f"  Listening (not judged): {shown}")
    return lines


def _render_connection(connection: Connection) -> str:
    verdict = {True: "OK  ", False: "FAIL", None: "??  "}[connection.keepalive]
    if not connection.judged:
        verdict = "-   "
    loopback = " loopback" if connection.loopback else ""
    label = f"{verdict} {connection.direction:<8} {connection.name()}  {connection.row.state}"
    if connection.read_by == "getsockopt":
        shown = " ".join(f"{name}={value}" for name, value in connection.options.items())
    else:
        timer = connection.row.timer
        if timer.kind == "keepalive":
            shown = f"keepalive timer fires in {timer.fires_in:g} s"
        elif timer.kind == "none":
            shown = "no keepalive timer"
        else:
            shown = f"{timer.kind} timer pending: keepalive cannot be told"
    return f"{label}{loopback}  {shown}  [{connection.read_by}]"


def run(
    pids: list[int],
    as_json: bool = False,
    proc_only: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Read every PID, print the report, return the exit status (see ``OK`` ... above).

    A process that cannot be read gets one line on ``err``; ``--json`` carries it too.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    proc_only = proc_only or bool(os.environ.get(PROC_ONLY_VAR))
    problem = None
    if not sys.platform.startswith("linux"):
        problem = (
            f"inspect is Linux-only (it reads /proc and uses pidfd_getfd); this is {sys.platform}"
        )
    elif not os.path.isdir("/proc/self/fd"):
        problem = "no /proc here: inspect reads /proc (mount procfs)"
    if problem is not None:
        report = Report([Process(pid, error=problem) for pid in dict.fromkeys(pids)])
    else:
        report = Report([read_process(pid, proc_only) for pid in dict.fromkeys(pids)])
    for message in dict.fromkeys(report.errors()):
        err.write(f"keepalive-patch inspect: {message}\n")
    if as_json:
        json.dump(report.to_json(), out, indent=2)
        out.write("\n")
    else:
        out.write(report.render())
    return report.status
