"""Build a fleet bundle (``keepalive-patch bundle DIR``) and run programs from it read-only.

``COMMAND`` is the command as README and ``deploy/Dockerfile`` spell it; ``build`` runs exactly
that, with the console script installed beside this interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

#: ``keepalive-patch bundle DIR``, as a user (and the init image's Dockerfile) types it.
COMMAND = ("keepalive-patch", "bundle")


def build(
    target: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``keepalive-patch bundle [extra] TARGET``; the result, whatever its exit status."""
    script = Path(sys.executable).with_name(COMMAND[0])
    return subprocess.run(
        [str(script), *COMMAND[1:], *extra, str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def tree(directory: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``directory``: size, modification time and mode, by relative path."""
    found = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = Path(root, name)
            stat = path.lstat()
            found[str(path.relative_to(directory))] = (stat.st_size, stat.st_mtime_ns, stat.st_mode)
    return found


def read_only(directory: Path, command: list[str]) -> list[str]:
    """``command`` with ``directory`` read-only for it (after ``chmod -R a-w``).

    Permission bits do not stop root, so as root the command also runs in a mount namespace of
    its own where ``directory`` is a read-only bind mount (``unshare``, skipped where missing).
    """
    subprocess.run(["chmod", "-R", "a-w", str(directory)], check=True)
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return command
    script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
    namespace = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
    return [*namespace, str(directory), *command]
