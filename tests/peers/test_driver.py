"""The peers driver's own checks (always run, seconds): the probe plugin reads the state of a live
socket in a real pytest run, plain and hooked, and the judge refuses what it must refuse."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from run import PEERS, PLUGIN_DIR, Run, differences, node_id, read_junit, state_errors

from keepalive_patch.check_clients import takes_socket_options

LIBRARIES = ("urllib3", "httpx", "httpx2", "aiohttp")


@pytest.mark.parametrize("hooked", [False, True], ids=["plain", "hooked"])
def test_probe_reads_so_keepalive_from_live_sockets(tmp_path: Path, hooked: bool) -> None:
    """A pytest session with the plugin (no tests: it probes at session start) reports each
    library's live socket: 0 plain, 1 under ``keepalive-patch run``."""
    installed = [name for name in LIBRARIES if _installed(name)]
    reports = tmp_path / "reports"
    reports.mkdir()
    (tmp_path / "empty").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEPALIVE_PATCH_", "PYTEST_"))}
    env.update(
        PYTHONPATH=str(PLUGIN_DIR),
        KEEPALIVE_PEER_PROBE=",".join(installed),
        KEEPALIVE_PEER_PROBE_DIR=str(reports),
    )
    command = [sys.executable, "-m", "pytest", "-p", "keepalive_peer_probe", "-p"]
    command += ["no:cacheprovider", "-q", str(tmp_path / "empty")]
    if hooked:
        launcher = shutil.which("keepalive-patch", path=str(Path(sys.executable).parent))
        assert launcher is not None
        command = [launcher, "run", "--", *command]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 5, result.stdout + result.stderr  # 5: no tests collected
    report = json.loads((reports / "main.json").read_text())
    assert report["keepalive_patch_loaded"] is hooked
    assert report["so_keepalive"] == dict.fromkeys(installed, int(hooked))


def _installed(name: str) -> bool:
    """Installed, and able to carry the options (httpx < 0.25 takes no socket_options)."""
    if importlib.util.find_spec(name) is None:
        return False
    return name not in ("httpx", "httpx2") or takes_socket_options(importlib.import_module(name))


def _run(hooked: bool, outcomes: dict[str, str], keepalive: int | None = None) -> Run:
    value = int(hooked) if keepalive is None else keepalive
    report = {"keepalive_patch_loaded": hooked, "so_keepalive": {"urllib3": value}}
    return Run(hooked, outcomes, {"main": report, "gw0": report}, 1.0, 0)


def test_a_hooked_run_whose_socket_shows_no_keepalive_is_refused() -> None:
    assert state_errors(_run(True, {}), PEERS["requests"]) == []
    assert state_errors(_run(False, {}), PEERS["requests"]) == []
    assert state_errors(_run(True, {}, keepalive=0), PEERS["requests"])
    assert state_errors(_run(False, {}, keepalive=1), PEERS["requests"])


def test_a_test_passing_plain_and_not_hooked_is_a_difference() -> None:
    plain = _run(False, {"t::a": "passed", "t::b": "passed", "t::c": "failed", "t::d": "passed"})
    hooked = _run(True, {"t::a": "passed", "t::b": "error", "t::c": "failed"})
    candidates, notes = differences({}, plain, hooked)
    assert candidates == ["t::b", "t::d"]  # d: missing from the hooked run
    assert notes == []
    candidates, notes = differences({"t::b": "why", "t::e": "gone"}, plain, hooked)
    assert candidates == ["t::d"]
    assert notes == [
        "known difference: t::b: passed plain, error hooked (why)",
        "STALE: known.toml lists t::e, which no longer differs",
    ]


def test_junit_ids_map_back_to_node_ids(tmp_path: Path) -> None:
    (tmp_path / "test" / "with_server").mkdir(parents=True)
    (tmp_path / "test" / "with_server" / "test_https.py").write_text("")
    test_id = "test.with_server.test_https.TestHTTPS::test_probe[a.b]"
    want = "test/with_server/test_https.py::TestHTTPS::test_probe[a.b]"
    assert node_id(test_id, tmp_path) == want


def test_junit_keeps_the_worst_outcome_of_a_test(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="t" name="a"/>'
        '<testcase classname="t" name="a"><error message="teardown"/></testcase>'
        '<testcase classname="t" name="b"><skipped/></testcase>'
        '<testcase classname="t" name="c"><failure message="x"/></testcase>'
        "</testsuite></testsuites>"
    )
    assert read_junit(path) == {"t::a": "error", "t::b": "skipped", "t::c": "failed"}
