"""``inspect``'s reading of the kernel's words: the timer column, loopback peers, the platform.

Live processes are read in ``tests/fresh/test_inspect.py``; here are the cases no live socket
here can show (a peer off the machine, another platform, a timer that is not pending now).
"""

from __future__ import annotations

import io
import json
import os

import pytest

from keepalive_patch import processes

TICKS = os.sysconf("SC_CLK_TCK")


def test_keepalive_timer() -> None:
    timer = processes.timer_of(f"02:{30 * TICKS:08X}")
    assert (timer.kind, timer.fires_in) == ("keepalive", 30.0)


@pytest.mark.parametrize(
    ("column", "kind", "keepalive"),
    [
        ("00:00000000", "none", False),
        ("01:00000014", "retransmit", None),  # data in flight hides the keepalive timer
        ("02:00000014", "keepalive", True),
        ("04:00000014", "zero-window-probe", None),
    ],
)
def test_what_each_timer_says_of_keepalive(column: str, kind: str, keepalive: bool | None) -> None:
    row = processes.Row(
        family=2,
        local=("10.0.0.2", 40000),
        remote=("10.0.0.1", 443),
        state="ESTABLISHED",
        timer=processes.timer_of(column),
        inode=1,
    )
    connection = processes.Connection(fd=3, row=row, direction="outbound")
    assert (row.timer.kind, connection.keepalive) == (kind, keepalive)
    assert connection.loopback is False


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2001:db8::1", False),
    ],
)
def test_loopback_peers(host: str, loopback: bool) -> None:
    assert processes.is_loopback(host) is loopback


def test_pidfd_getfd_number() -> None:
    if os.uname().machine in ("x86_64", "aarch64", "armv7l", "riscv64", "s390x", "ppc64le"):
        assert processes.pidfd_getfd_number() == 438


@pytest.mark.parametrize("as_json", [False, True])
def test_linux_only(monkeypatch: pytest.MonkeyPatch, as_json: bool) -> None:
    """Another platform's ``sys.platform`` (none can run here): one line, status 4."""
    monkeypatch.setattr("sys.platform", "darwin")
    out, err = io.StringIO(), io.StringIO()
    assert processes.run([1], as_json=as_json, out=out, err=err) == 4
    message = "inspect is Linux-only (it reads /proc and uses pidfd_getfd); this is darwin"
    assert err.getvalue() == f"keepalive-patch inspect: {message}\n"
    if as_json:
        assert json.loads(out.getvalue())["errors"] == [message]
    else:
        assert out.getvalue() == ""
