"""``keepalive-patch check``: the report, its exit status, and the live read-back it relies on.

Where httpx < 0.25 is installed (no ``socket_options``: retries only), its connections must be
reported as failing with that reason and the exit status must be 1: keepalive is not in force.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from support.libs import installed_libraries, takes_socket_options, version_of
from support.procs import clean_env, run_python
from support.servers import serving

import keepalive_patch
from keepalive_patch import check, config, known_names

CHECK = [sys.executable, "-m", "keepalive_patch", "check"]
LIBS = installed_libraries()
#: (library, transport) of every connection check makes here: each installed library whose
#: integration is registered.
ALL_CONNECTIONS = [(lib.__name__, mode) for lib in LIBS for mode in ("sync", "async")] + [
    (name, mode)
    for name, mode, options_from in (
        ("requests", "sync", "urllib3"),
        ("urllib3", "sync", "urllib3"),
        ("aiohttp", "async", "aiohttp"),
    )
    if options_from in known_names() and importlib.util.find_spec(name) is not None
]
#: Installed libraries whose transports take no socket_options (httpx 0.23 / 0.24).
RETRIES_ONLY = {lib.__name__: version_of(lib) for lib in LIBS if not takes_socket_options(lib)}
#: ``check``'s status with the patch working as designed: 1 while keepalive cannot be in force.
STATUS = 1 if RETRIES_ONLY else 0


def check_json(*arguments: str, **env: str) -> tuple[int, dict[str, Any], str]:
    result = run_python([*CHECK, "--json", *arguments], clean_env(**env), check=False)
    report: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, report, result.stderr


def option_values(connection: dict[str, Any]) -> dict[str, int]:
    return {item["name"]: item["actual"] for item in connection["options"]}


#: The connect retries each library's connections report: httpx pools and requests adapters
#: get ours; urllib3 and aiohttp keep their own policies (no number to report).
GETS_RETRIES = {"httpx", "httpx2", "requests"}


def assert_as_designed(connection: dict[str, Any], **values: int) -> None:
    """A connection made with the patch applied: keepalive options, or retries only, saying so."""
    live = option_values(connection)
    assert connection["status"] in (200, 204) and connection["error"] is None
    retries = values.pop("retries", 1)
    assert connection["retries"] == (retries if connection["library"] in GETS_RETRIES else None)
    if connection["library"] in RETRIES_ONLY:
        assert connection["ok"] is False and connection["takes_socket_options"] is False
        assert connection["note"] == (
            f"{RETRIES_ONLY[connection['library']]} takes no socket_options (httpx < 0.25): "
            "retries only"
        )
        assert live["SO_KEEPALIVE"] == 0 and live.get("TCP_USER_TIMEOUT", 0) == 0
    else:
        assert connection["ok"] is True
        if "httpx" in connection["library"]:
            assert connection["takes_socket_options"] is True
        assert connection["note"] is None
        assert {name: live[name] for name in values} == values


def test_default_check_passes_on_loopback() -> None:
    status, report, _ = check_json()
    assert status == STATUS and report["ok"] is (STATUS == 0)
    assert report["applied"] is True and report["disabled_by"] is None
    assert report["target"].endswith("(loopback server started by check)")
    assert [(c["library"], c["transport"]) for c in report["connections"]] == ALL_CONNECTIONS
    for connection in report["connections"]:
        assert connection["status"] == 200
        assert_as_designed(connection, SO_KEEPALIVE=1, TCP_KEEPIDLE=30)
    assert {name: item["source"] for name, item in report["settings"].items()} == dict.fromkeys(
        ["idle", "interval", "count", "retries", "user_timeout", "replay", "skip"], "default"
    )
    assert report["settings"]["user_timeout"]["value"] == 0, "opt-in only"
    assert report["dropped"] == []
    for name in ("httpx", "httpcore", "wrapt"):
        assert report["versions"][name]
    for lib in LIBS:
        assert report["versions"][lib.__name__] == lib.__version__


def test_sources_distinguish_env_and_flag() -> None:
    status, report, _ = check_json(
        "--idle", "7", "--user-timeout", "4000", KEEPALIVE_PATCH_COUNT="5"
    )
    assert status == STATUS
    settings = report["settings"]
    assert settings["idle"] == {"value": 7, "source": "flag"}
    assert settings["count"] == {"value": 5, "source": "env"}
    assert settings["user_timeout"] == {"value": 4000, "source": "flag"}
    assert settings["interval"] == {"value": 10, "source": "default"}
    for connection in report["connections"]:
        assert_as_designed(connection, TCP_KEEPIDLE=7, TCP_KEEPCNT=5, TCP_USER_TIMEOUT=4000)


def test_bad_environment_value_is_reported_as_a_warning() -> None:
    status, report, _ = check_json(KEEPALIVE_PATCH_IDLE="soon")
    assert status == STATUS
    assert report["settings"]["idle"] == {"value": 30, "source": "default"}
    assert any("KEEPALIVE_PATCH_IDLE='soon'" in message for message in report["warnings"])


def test_disabled_fails_and_says_why() -> None:
    status, report, _ = check_json(KEEPALIVE_PATCH_DISABLE="1")
    assert status == 1 and report["ok"] is False
    assert report["disabled_by"] == "KEEPALIVE_PATCH_DISABLE"
    for connection in report["connections"]:
        assert not connection["ok"]
        assert connection["retries"] == (0 if connection["library"] in GETS_RETRIES else None)
        assert option_values(connection)["SO_KEEPALIVE"] == 0
    human = run_python(CHECK, clean_env(KEEPALIVE_PATCH_DISABLE="1"), check=False)
    assert human.returncode == 1
    assert "DISABLED by KEEPALIVE_PATCH_DISABLE" in human.stdout
    if len(RETRIES_ONLY) < len(LIBS):
        assert "SO_KEEPALIVE=0 (expected 1)" in human.stdout
        assert human.stdout.rstrip().endswith("(see above).")


#: Each skip name and the connections it leaves alone: requests' sockets are urllib3's, and
#: ``requests`` leaves only its connect retry.
LEFT_ALONE = {
    "httpx": {"httpx"},
    "httpx2": {"httpx2"},
    "urllib3": {"urllib3", "requests"},
    "requests": set(),
    "aiohttp": {"aiohttp"},
}


@pytest.mark.parametrize("name", sorted(LEFT_ALONE))
def test_skip_is_named_in_the_verdict_and_leaves_exactly_its_library(name: str) -> None:
    """Skipping on purpose is status 0 with the library named; every other one is checked."""
    if RETRIES_ONLY:
        pytest.skip("the OK verdict needs every installed httpx to take socket_options")
    status, report, _ = check_json(KEEPALIVE_PATCH_SKIP=name)
    assert status == 0 and report["ok"] is True
    assert report["left_alone"] == {name: config.SKIP_LEAVES[name]}
    for connection in report["connections"]:
        if connection["library"] in LEFT_ALONE[name]:
            assert connection["outcome"] == "skipped", connection
        else:
            assert connection["outcome"] == "ok", connection
            expected_retries = 0 if name == "requests" == connection["library"] else 1
            if connection["library"] in GETS_RETRIES:
                assert connection["retries"] == expected_retries, connection
    human = run_python(CHECK, clean_env(KEEPALIVE_PATCH_SKIP=name), check=False)
    assert human.returncode == 0
    lines = human.stdout.rstrip().splitlines()
    assert lines[-2].startswith("OK: every connection keepalive-patch was left to patch")
    assert lines[-2].endswith(f"left alone on purpose: {name}.")
    assert lines[-1] == f"Left alone (KEEPALIVE_PATCH_SKIP): {config.SKIP_LEAVES[name]}"


@pytest.mark.parametrize("spelling", ["urllib3.connection", "httpcore", "requests.adapters"])
def test_a_module_name_in_skip_is_unknown_and_leaves_everything_patched(spelling: str) -> None:
    """Only library names are accepted: a module name is warned about and switches nothing off."""
    status, report, _ = check_json(KEEPALIVE_PATCH_SKIP=spelling)
    assert status == STATUS and report["left_alone"] == {}
    assert all(c["outcome"] != "skipped" for c in report["connections"])
    assert any(spelling in message for message in report["warnings"]), report["warnings"]


def test_given_url_is_used_with_progress_on_stderr(http_url: str) -> None:
    url = http_url + "path"
    status, report, stderr = check_json(url)
    assert status == STATUS
    assert report["target"] == url
    assert [c["status"] for c in report["connections"]] == [200] * len(ALL_CONNECTIONS)
    for connection in report["connections"]:
        assert_as_designed(connection, SO_KEEPALIVE=1)
    for lib, mode in ALL_CONNECTIONS:
        assert f"connecting to {url} with {lib} ({mode})" in stderr


def test_unreachable_url_is_a_failed_request_not_missing_options() -> None:
    with socket.socket() as unused:  # a loopback port nobody listens on
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/"
    status, report, _ = check_json(url)
    assert status == check.FAILED == 3
    assert report["outcome"] == "failed"
    assert {c["outcome"] for c in report["connections"]} == {"failed"}
    for connection in report["connections"]:
        kind, _, reason = connection["error"].partition(": ")
        assert kind.endswith(
            ("ConnectError", "ConnectionError", "ClientConnectorError", "MaxRetryError")
        )
        assert reason.strip(), connection
    human = run_python([*CHECK, url], clean_env(), check=False)
    assert human.returncode == 3
    assert "REQUEST FAILED  ConnectError: " in human.stdout
    assert "lack the keepalive options" not in human.stdout


def test_human_report_names_everything() -> None:
    if RETRIES_ONLY or len(LIBS) < 2:
        pytest.skip("the OK report needs httpx >= 0.25 and httpx2 installed")
    result = run_python([*CHECK, "--interval", "4"], clean_env())
    text = result.stdout
    for expected in (
        "Python ",
        "httpx2 ",
        "wrapt ",
        "Patch: applied",
        "interval      4 s        flag",
        "idle          30 s       default",
        "TCP_KEEPINTVL     4",
        "Dropped: none",
        "httpx2  async  OK    SO_KEEPALIVE=1 TCP_KEEPIDLE=30 TCP_KEEPINTVL=4",
        "OK: every installed library",
    ):
        assert expected in text, expected
    assert result.stderr == ""  # no progress noise for the built-in loopback server


@pytest.fixture
def restore_settings() -> Iterator[None]:
    yield
    config.set_explicit({})


def test_only_installed_libraries_are_checked(
    monkeypatch: pytest.MonkeyPatch, restore_settings: None
) -> None:
    monkeypatch.setitem(sys.modules, "httpx2", None)  # as if not installed
    out, err = io.StringIO(), io.StringIO()
    assert check.run(None, {}, as_json=True, out=out, err=err) == (
        1 if "httpx" in RETRIES_ONLY else 0
    )
    report = json.loads(out.getvalue())
    assert [c["library"] for c in report["connections"] if "httpx" in c["library"]] == [
        "httpx",
        "httpx",
    ]
    assert keepalive_patch.is_applied()


def test_nothing_installed_is_a_failure(
    monkeypatch: pytest.MonkeyPatch, restore_settings: None
) -> None:
    for name in ("httpx", "httpx2", "requests", "urllib3", "aiohttp"):
        monkeypatch.setitem(sys.modules, name, None)
    out = io.StringIO()
    assert check.run(None, {}, out=out, err=io.StringIO()) == 1
    assert "no HTTP library keepalive-patch covers is installed" in out.getvalue()
    assert "FAIL: nothing to check" in out.getvalue()


def test_flags_in_process_are_flag_sourced(restore_settings: None) -> None:
    out = io.StringIO()
    assert check.run(None, {"retries": 2}, as_json=True, out=out, err=io.StringIO()) == STATUS
    report = json.loads(out.getvalue())
    assert report["settings"]["retries"] == {"value": 2, "source": "flag"}
    for connection in report["connections"]:
        assert_as_designed(connection, retries=2)


def test_retries_only_library_fails_and_says_why() -> None:
    """httpx < 0.25: the request works and gets the retry, but keepalive is not in force."""
    if not RETRIES_ONLY:
        pytest.skip("every installed library takes socket_options (httpx >= 0.25, httpx2)")
    status, report, _ = check_json()
    assert status == 1 and report["ok"] is False
    for connection in report["connections"]:
        assert_as_designed(connection)
    assert any("injecting retries only" in message for message in report["warnings"])
    human = run_python(CHECK, clean_env(), check=False)
    assert human.returncode == 1
    assert "OK:" not in human.stdout
    for library, version in RETRIES_ONLY.items():
        lines = [line for line in human.stdout.splitlines() if line.startswith(f"  {library} ")]
        assert len(lines) == 2  # sync and async
        for line in lines:
            assert f"FAIL  {version} takes no socket_options (httpx < 0.25): retries only" in line
            assert "(retries=1); SO_KEEPALIVE=0 " in line
            assert "(expected" not in line  # nothing was expected of the socket
        assert (
            f"FAIL: keepalive is not in force for {version}: its transports take no "
            "socket_options (httpx < 0.25), so only the connect retry is applied; "
            "httpx >= 0.25 gets keepalive."
        ) in human.stdout


def misbehaving_server(reply: bytes | None) -> contextlib.AbstractContextManager[str]:
    """A loopback server that reads a request and sends ``reply`` (``None``: never answers)."""

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(2)
        with contextlib.suppress(OSError):
            conn.recv(65536)
            if reply is not None:
                conn.sendall(reply)
                conn.close()

    return serving(serve)


def test_a_silent_server_is_bounded_by_timeout_and_every_error_has_a_reason() -> None:
    import time

    with misbehaving_server(None) as url:
        started = time.monotonic()
        status, report, _ = check_json(url, "--timeout", "2")
        elapsed = time.monotonic() - started
    assert elapsed < 2 + 8, "the whole command is bounded (plus interpreter start-up)"
    assert status == check.FAILED
    assert report["outcome"] == "failed"
    for connection in report["connections"]:
        assert connection["outcome"] == "failed"
        kind, _, reason = connection["error"].partition(": ")
        assert kind and reason.strip(), connection["error"]


def test_garbage_reply_is_a_failed_request() -> None:
    with misbehaving_server(b"garbage\r\n\r\n") as url:
        status, report, _ = check_json(url, "--timeout", "5")
    assert status == check.FAILED
    for connection in report["connections"]:
        kind, _, reason = connection["error"].partition(": ")
        assert kind and reason.strip(), connection["error"]


def test_timeout_flag_is_validated() -> None:
    result = run_python([*CHECK, "--timeout", "0"], clean_env(), check=False)
    assert result.returncode == 2
    assert "--timeout" in result.stderr
