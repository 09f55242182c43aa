"""Which keepalive socket options this platform has, and which of them its kernel accepts.

Every option sits behind its own ``hasattr`` check, so one module serves Linux, macOS, Windows and
the BSDs; tests hand in a facade of another platform's ``socket`` module instead of the real one.
"""

import socket

from keepalive_patch.config import Settings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

#: The names ``keepalive_options`` may use, for logs and ``keepalive-patch check``.
OPTION_NAMES = (
    "SO_KEEPALIVE",
    "TCP_KEEPIDLE",
    "TCP_KEEPALIVE",
    "TCP_KEEPINTVL",
    "TCP_KEEPCNT",
    "TCP_USER_TIMEOUT",
)


def keepalive_options(
    settings: Settings, sock: "ModuleType" = socket
) -> "list[tuple[int, int, int]]":
    """The ``(level, optname, value)`` triples that turn keepalive on with ``settings``' timings."""
    options = [(sock.SOL_SOCKET, sock.SO_KEEPALIVE, 1)]
    tcp = getattr(sock, "IPPROTO_TCP", 6)
    if hasattr(sock, "TCP_KEEPIDLE"):  # Linux, Windows >= 10 1709, the BSDs
        options.append((tcp, sock.TCP_KEEPIDLE, settings.idle))
    elif hasattr(sock, "TCP_KEEPALIVE"):  # macOS (Python >= 3.10) names the idle time this way
        options.append((tcp, sock.TCP_KEEPALIVE, settings.idle))
    if hasattr(sock, "TCP_KEEPINTVL"):
        options.append((tcp, sock.TCP_KEEPINTVL, settings.interval))
    if hasattr(sock, "TCP_KEEPCNT"):
        options.append((tcp, sock.TCP_KEEPCNT, settings.count))
    # Keepalive only probes an idle connection; with unacknowledged data in flight Linux
    # retransmits for ~15 minutes instead.  TCP_USER_TIMEOUT bounds that case too.
    if hasattr(sock, "TCP_USER_TIMEOUT") and settings.user_timeout > 0:
        options.append((tcp, sock.TCP_USER_TIMEOUT, settings.user_timeout))
    return options


class ProbeResult:
    """Options the kernel accepted, the ones it rejected (with why), and whether a probe ran."""

    __slots__ = ("accepted", "probed", "rejected")

    def __init__(
        self,
        accepted: "list[tuple[int, int, int]]",
        rejected: "list[tuple[tuple[int, int, int], str]]",
        probed: bool,
    ) -> None:
        self.accepted = accepted
        self.rejected = rejected
        self.probed = probed


def probe(options: "list[tuple[int, int, int]]", sock: "ModuleType" = socket) -> ProbeResult:
    """Try each option on a throwaway TCP socket and keep those the kernel accepts.

    Sandboxes, WSL1 and old Windows builds reject some options; passing one on to httpcore would
    turn every connection attempt into a ``ConnectError``.  If no socket can be made at all, no
    option is offered (``probed`` is False, so the caller can try again later).
    """
    try:
        probe_socket = sock.socket(sock.AF_INET, sock.SOCK_STREAM)
    except OSError:
        try:
            probe_socket = sock.socket(sock.AF_INET6, sock.SOCK_STREAM)
        except OSError:
            return ProbeResult([], [], probed=False)
    accepted: list[tuple[int, int, int]] = []
    rejected: list[tuple[tuple[int, int, int], str]] = []
    with probe_socket:
        for option in options:
            try:
                probe_socket.setsockopt(*option)
            except OSError as exc:
                rejected.append((option, exc.strerror or str(exc)))
            else:
                accepted.append(option)
    return ProbeResult(accepted, rejected, probed=True)


def option_name(level: int, optname: int, sock: "ModuleType" = socket) -> str:
    """A readable name such as ``TCP_KEEPIDLE`` for an option triple's level and name."""
    for name in OPTION_NAMES:
        is_socket_level = name.startswith("SO_")
        if (level == sock.SOL_SOCKET) == is_socket_level and getattr(sock, name, None) == optname:
            return name
    return f"{level}:{optname}"


def read_back(
    live: "socket.socket", options: "list[tuple[int, int, int]]"
) -> "list[tuple[tuple[int, int, int], int | None]]":
    """Each option next to the value ``getsockopt`` reads from ``live`` (``None`` if unreadable).

    ``SO_KEEPALIVE`` reads back as any non-zero value on some platforms; callers compare with that
    in mind.
    """
    values: list[tuple[tuple[int, int, int], int | None]] = []
    for option in options:
        try:
            values.append((option, live.getsockopt(option[0], option[1])))
        except OSError:
            values.append((option, None))
    return values
