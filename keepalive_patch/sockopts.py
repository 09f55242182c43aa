"""The keepalive socket options: which this platform has, which its kernel accepts, and how they
meet the caller's own.

Every option sits behind its own ``hasattr`` check, so one module serves Linux, macOS, Windows and
the BSDs; tests hand in a facade of another platform's ``socket`` module instead of the real one.
"""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Any, NamedTuple, Tuple  # noqa: UP035 - a runtime alias on 3.9

from keepalive_patch import config
from keepalive_patch._log import WARNING, log_once
from keepalive_patch._wrapping import CallerError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from types import ModuleType

#: One ``(level, optname, value)`` triple, as ``setsockopt`` takes it.
SocketOption = Tuple[int, int, int]  # noqa: UP006

#: The names ``keepalive_options`` may use, for logs and ``keepalive-patch check``.
OPTION_NAMES = (
    "SO_KEEPALIVE",
    "TCP_KEEPIDLE",
    "TCP_KEEPALIVE",
    "TCP_KEEPINTVL",
    "TCP_KEEPCNT",
    "TCP_USER_TIMEOUT",
)
#: The options that time keepalive (``TCP_KEEPALIVE`` is macOS's name for the idle time).
TIMING_NAMES = ("TCP_KEEPIDLE", "TCP_KEEPALIVE", "TCP_KEEPINTVL", "TCP_KEEPCNT")


def keepalive_options(settings: config.Settings, sock: ModuleType = socket) -> list[SocketOption]:
    """The options that turn keepalive on with ``settings``' timings."""
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
    # Opt-in only: besides bounding retransmissions to a dead peer, Linux >= 5.11 also aborts a
    # live peer that keeps its receive window closed longer than this.
    if hasattr(sock, "TCP_USER_TIMEOUT") and settings.user_timeout > 0:
        options.append((tcp, sock.TCP_USER_TIMEOUT, settings.user_timeout))
    return options


class Probe(NamedTuple):
    """Options the kernel accepted, the ones it rejected (with why), and whether a probe ran."""

    accepted: list[SocketOption]
    rejected: list[tuple[SocketOption, str]]
    probed: bool


def probe(options: Sequence[SocketOption], sock: ModuleType = socket) -> Probe:
    """Try each option on a throwaway TCP socket and keep those the kernel accepts.

    Sandboxes, WSL1 and old Windows builds reject some options; passing one on would turn every
    connection attempt into a connect error.  Whatever one option raises only drops that option.
    If no socket can be made at all, no option is offered (``probed`` is False, so the caller
    tries again later).
    """
    try:
        probe_socket = sock.socket(sock.AF_INET, sock.SOCK_STREAM)
    except OSError:
        try:
            probe_socket = sock.socket(sock.AF_INET6, sock.SOCK_STREAM)
        except OSError:
            return Probe([], [], probed=False)
    accepted: list[SocketOption] = []
    rejected: list[tuple[SocketOption, str]] = []
    with probe_socket:
        for option in options:
            try:
                probe_socket.setsockopt(*option)
            except Exception as exc:  # OSError, and OverflowError / TypeError for odd values
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                rejected.append((option, reason))
            else:
                accepted.append(option)
    return Probe(accepted, rejected, probed=True)


class InForce(NamedTuple):
    """The settings in force and the keepalive options to set on every TCP connection."""

    settings: config.Settings
    options: list[SocketOption]
    rejected: list[tuple[SocketOption, str]]
    probed: bool


_lock = threading.Lock()
#: (settings generation, what is in force): replaced whole; read without the lock.
_cache: tuple[int, InForce] | None = None


def in_force() -> InForce:
    """The settings and probed options; recomputed after ``config.set_explicit``.  Never raises.

    A probe that fails as a whole offers no options (and is tried again next time); the other
    settings, ``retries`` among them, stay in force.
    """
    cached = _cache
    if cached is not None and cached[0] == config.generation():
        return cached[1]
    return _compute()


def _compute() -> InForce:
    global _cache
    with _lock:
        generation = config.generation()
        settings = config.current()
        try:
            result = probe(keepalive_options(settings))
        except Exception:
            log_once("probe", WARNING, "could not probe keepalive options", exc_info=True)
            result = Probe([], [], probed=False)
        if result.rejected:
            names = ", ".join(
                f"{option_name(opt[0], opt[1])}={opt[2]} ({why})" for opt, why in result.rejected
            )
            log_once("rejected:" + names, WARNING, "this kernel rejects %s; not setting it", names)
        state = InForce(settings, result.accepted, result.rejected, result.probed)
        if not result.probed:
            log_once("noprobe", WARNING, "could not open a socket to probe keepalive options")
        else:
            _cache = (generation, state)
        return state


def read_once(given: Any) -> list[Any] | tuple[Any, ...] | None:
    """The caller's ``socket_options`` as a sequence we may read as often as we like.

    A list or tuple (or ``None``) is returned as it is; anything else (a generator) is read here,
    once, and what reading it raises is the caller's own error: it is raised as
    ``CallerError``, which the wrappers hand to the caller as without the shim, since the
    generator is spent and calling the original again could not reproduce it.
    """
    if given is None or isinstance(given, (list, tuple)):
        return given
    try:
        return list(given)
    except Exception as exc:
        raise CallerError(exc) from exc


def merge(
    given: Iterable[Any] | None, ours: Sequence[SocketOption], sock: ModuleType = socket
) -> list[Any]:
    """The caller's options (read once) with ours added by the keepalive policy.

    Keepalive is one policy, and the caller's wins whole:

    - nothing given → ours;
    - ``SO_KEEPALIVE`` set to 0 → theirs alone: they switched keepalive off;
    - any timing option set (``TCP_KEEPIDLE``, macOS ``TCP_KEEPALIVE``, ``TCP_KEEPINTVL``,
      ``TCP_KEEPCNT``) → theirs, plus none of our timings: only ``SO_KEEPALIVE=1`` if they
      left it out (timings do nothing while keepalive is off: they asked for keepalive), and
      ``TCP_USER_TIMEOUT``;
    - otherwise (no keepalive option, or only ``SO_KEEPALIVE=1``) → theirs plus ours.

    ``TCP_USER_TIMEOUT`` (opt-in) is added unless they set it or switched keepalive off.  Options
    unrelated to keepalive (``TCP_NODELAY``, buffers, ...) never change the decision.  An
    exception raised while reading ``given`` (a caller's generator) is theirs and propagates.
    """
    if given is None:
        return list(ours)
    theirs = list(given)
    set_by_them: dict[tuple[Any, Any], Any] = {}
    for option in theirs:
        if isinstance(option, (tuple, list)) and len(option) >= 3:
            set_by_them[option[0], option[1]] = option[2]
    keepalive_key = (sock.SOL_SOCKET, sock.SO_KEEPALIVE)
    if keepalive_key in set_by_them and not set_by_them[keepalive_key]:
        return theirs
    tcp = getattr(sock, "IPPROTO_TCP", 6)
    timing = {(tcp, getattr(sock, name)) for name in TIMING_NAMES if hasattr(sock, name)}
    theirs_timed = not timing.isdisjoint(set_by_them)
    # With their timings, ours adds only what switches keepalive on and the user timeout.
    also_timed = {keepalive_key, (tcp, getattr(sock, "TCP_USER_TIMEOUT", None))}
    for option in ours:
        key = (option[0], option[1])
        if key in set_by_them or (theirs_timed and key not in also_timed):
            continue
        theirs.append(option)
    return theirs


def apply_to(live: socket.socket, options: Iterable[SocketOption]) -> None:
    """Set ``options`` on a connected socket; one the kernel rejects is skipped, not raised."""
    for option in options:
        try:
            live.setsockopt(*option)
        except (OSError, OverflowError, TypeError, ValueError):
            log_once(
                f"apply:{option}",
                WARNING,
                "could not set %s=%d on a connection; left as it was",
                option_name(option[0], option[1]),
                option[2],
            )


def option_name(level: int, optname: int, sock: ModuleType = socket) -> str:
    """A readable name such as ``TCP_KEEPIDLE`` for an option triple's level and name."""
    for name in OPTION_NAMES:
        is_socket_level = name.startswith("SO_")
        if (level == sock.SOL_SOCKET) == is_socket_level and getattr(sock, name, None) == optname:
            return name
    return f"{level}:{optname}"


def read_back(
    live: socket.socket, options: Iterable[SocketOption]
) -> list[tuple[SocketOption, int | None]]:
    """Each option next to the value ``getsockopt`` reads from ``live`` (``None`` if unreadable).

    ``SO_KEEPALIVE`` reads back as any non-zero value on some platforms; callers compare with that
    in mind.
    """
    values: list[tuple[SocketOption, int | None]] = []
    for option in options:
        try:
            values.append((option, live.getsockopt(option[0], option[1])))
        except OSError:
            values.append((option, None))
    return values
