"""``mypy --strict`` and ruff are part of the test run, so ``pytest`` alone keeps them honest."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(command[0]) is None and not Path(sys.executable).with_name(command[0]).exists():
        pytest.skip(f"{command[0]} is not installed (pip install -e '.[test]' brings it)")
    tool = str(Path(sys.executable).with_name(command[0]))
    if not Path(tool).exists():
        tool = command[0]
    return subprocess.run(
        [tool, *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_mypy_strict() -> None:
    result = run_tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_lint() -> None:
    result = run_tool("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run_tool("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
