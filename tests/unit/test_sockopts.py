"""Per-platform option sets (facades of other platforms' socket modules) and kernel probing."""

from __future__ import annotations

import socket
import types

import pytest

from keepalive_patch import sockopts as options
from keepalive_patch.config import defaults

SETTINGS = defaults(idle=30, interval=10, count=3, user_timeout=60_000)


def facade(**constants: int) -> types.ModuleType:
    """A stand-in ``socket`` module with just the constants another platform defines."""
    module = types.ModuleType("socket_facade")
    module.__dict__.update(constants)
    return module


# Values from each platform's headers (and CPython's socket module there).
MACOS = facade(
    SOL_SOCKET=0xFFFF, SO_KEEPALIVE=0x8, IPPROTO_TCP=6,
    TCP_KEEPALIVE=0x10, TCP_KEEPINTVL=0x101, TCP_KEEPCNT=0x102,
)  # fmt: skip
MACOS_PY39 = facade(
    SOL_SOCKET=0xFFFF, SO_KEEPALIVE=0x8, IPPROTO_TCP=6, TCP_KEEPINTVL=0x101, TCP_KEEPCNT=0x102
)
WINDOWS = facade(
    SOL_SOCKET=0xFFFF, SO_KEEPALIVE=0x8, IPPROTO_TCP=6,
    TCP_KEEPIDLE=3, TCP_KEEPINTVL=17, TCP_KEEPCNT=16,
)  # fmt: skip
OLD_WINDOWS = facade(SOL_SOCKET=0xFFFF, SO_KEEPALIVE=0x8, IPPROTO_TCP=6)
UNKNOWN = facade(SOL_SOCKET=1, SO_KEEPALIVE=9)


def test_linux() -> None:
    assert options.keepalive_options(SETTINGS) == [
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30),
        (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10),
        (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3),
        (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 60_000),
    ]


def test_linux_user_timeout_off() -> None:
    names = [
        options.option_name(level, name)
        for level, name, _ in options.keepalive_options(defaults(user_timeout=0))
    ]
    assert "TCP_USER_TIMEOUT" not in names


@pytest.mark.parametrize(
    ("platform", "wanted"),
    [
        (MACOS, [(0xFFFF, 0x8, 1), (6, 0x10, 30), (6, 0x101, 10), (6, 0x102, 3)]),
        (MACOS_PY39, [(0xFFFF, 0x8, 1), (6, 0x101, 10), (6, 0x102, 3)]),
        (WINDOWS, [(0xFFFF, 0x8, 1), (6, 3, 30), (6, 17, 10), (6, 16, 3)]),
    ],
    ids=[
        "macos_uses_tcp_keepalive_for_idle",
        "macos_before_python_310_has_no_idle_constant",
        "windows",
    ],
)
def test_platform_options(platform: types.ModuleType, wanted: list[options.SocketOption]) -> None:
    assert options.keepalive_options(SETTINGS, platform) == wanted


def test_old_windows_and_unknown_platforms_get_so_keepalive_only() -> None:
    assert options.keepalive_options(SETTINGS, OLD_WINDOWS) == [(0xFFFF, 0x8, 1)]
    assert options.keepalive_options(SETTINGS, UNKNOWN) == [(1, 9, 1)]


# -- the keepalive policy: the caller's options with ours ----------------------------------------

LINUX_OURS = options.keepalive_options(SETTINGS)
ON, OFF = (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1), (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
USER_TIMEOUT = LINUX_OURS[-1]
TCP = socket.IPPROTO_TCP


@pytest.mark.parametrize(
    "timing",
    [
        (TCP, socket.TCP_KEEPIDLE, 99),
        (TCP, socket.TCP_KEEPINTVL, 7),
        (TCP, socket.TCP_KEEPCNT, 2),
    ],
    ids=["idle", "interval", "count"],
)
def test_timings_alone_switch_keepalive_on(timing: options.SocketOption) -> None:
    """A caller who set a timing asked for keepalive: ``SO_KEEPALIVE=1``, none of our timings."""
    assert options.merge([timing], LINUX_OURS) == [timing, ON, USER_TIMEOUT]
    assert options.merge(iter([timing]), LINUX_OURS[:-1]) == [timing, ON]


def test_timings_with_keepalive_off_get_nothing_of_ours() -> None:
    idle = (TCP, socket.TCP_KEEPIDLE, 99)
    assert options.merge([idle, OFF], LINUX_OURS) == [idle, OFF]
    assert options.merge([OFF, idle], LINUX_OURS) == [OFF, idle]


def test_timings_with_their_own_keepalive_on_get_no_second_one() -> None:
    idle = (TCP, socket.TCP_KEEPIDLE, 99)
    assert options.merge([idle, ON], LINUX_OURS) == [idle, ON, USER_TIMEOUT]


def test_timings_alone_on_macos_switch_keepalive_on() -> None:
    """macOS names the idle time ``TCP_KEEPALIVE``: still a timing, not the switch."""
    ours = options.keepalive_options(SETTINGS, MACOS)
    idle = (6, 0x10, 99)
    assert options.merge([idle], ours, MACOS) == [idle, (0xFFFF, 0x8, 1)]


def test_timings_alone_where_the_kernel_rejected_so_keepalive() -> None:
    """Only what the probe accepted is ever added."""
    idle = (TCP, socket.TCP_KEEPIDLE, 99)
    assert options.merge([idle], LINUX_OURS[1:]) == [idle, USER_TIMEOUT]


@pytest.mark.parametrize(
    "given",
    [[], [ON], [OFF], [(TCP, socket.TCP_KEEPIDLE, 99)], [ON, (TCP, socket.TCP_KEEPCNT, 2)]],
    ids=["nothing", "bare on", "off", "a timing", "on and a timing"],
)
def test_merging_a_merged_list_again_adds_nothing(given: list[options.SocketOption]) -> None:
    """urllib3's hook may meet its own merged list (a ``connect`` reaching another)."""
    once = options.merge(given, LINUX_OURS)
    assert options.merge(once, LINUX_OURS) == once


def test_probe_keeps_what_the_kernel_accepts() -> None:
    wanted = options.keepalive_options(SETTINGS)
    result = options.probe(wanted)
    assert result.probed
    assert result.accepted == wanted
    assert result.rejected == []


def test_probe_drops_what_the_real_kernel_rejects() -> None:
    """Linux refuses TCP_KEEPIDLE=0 and TCP_KEEPCNT=0 with EINVAL: a real rejection, no mock."""
    good = (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    bad_idle = (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 0)
    bad_count = (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 0)
    result = options.probe([good, bad_idle, bad_count])
    assert result.accepted == [good]
    assert [option for option, _ in result.rejected] == [bad_idle, bad_count]
    assert all(why for _, why in result.rejected)


def test_probe_without_sockets_offers_nothing() -> None:
    """Where no socket can be made (a locked-down sandbox) nothing is injected."""

    def no_socket(*args: object) -> socket.socket:
        raise PermissionError(1, "Operation not permitted")

    locked = facade(AF_INET=2, AF_INET6=10, SOCK_STREAM=1)
    locked.socket = no_socket  # type: ignore[attr-defined]
    result = options.probe([(1, 9, 1)], locked)
    assert not result.probed
    assert result.accepted == []


def test_option_names() -> None:
    assert options.option_name(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == "TCP_KEEPIDLE"
    assert options.option_name(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == "SO_KEEPALIVE"
    assert options.option_name(6, 0x10, MACOS) == "TCP_KEEPALIVE"
    assert options.option_name(6, 999) == "6:999"


def test_read_back_from_live_socket() -> None:
    wanted = options.keepalive_options(SETTINGS)
    with socket.socket() as live:
        for option in wanted:
            live.setsockopt(*option)
        assert options.read_back(live, wanted) == [(option, option[2]) for option in wanted]
