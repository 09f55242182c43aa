"""The ``keepalive-patch`` command: ``run``, ``path``, ``enable`` / ``disable``, ``bundle``,
``check`` and ``inspect``.

Imported only when the command runs, never at interpreter start, so it may use ``argparse`` and
friends freely.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any, Callable

import keepalive_patch
from keepalive_patch import config

PROG = "keepalive-patch"
PTH_NAME = "keepalive_patch.pth"
#: ``site`` executes lines starting with ``import``.  The import is guarded so that a file left
#: behind by ``pip uninstall keepalive-patch`` stays silent instead of erroring at every start.
PTH_CONTENT = (
    "# Written by `keepalive-patch enable`; `keepalive-patch disable` removes it.\n"
    'import sys; exec("try: import keepalive_patch\\nexcept ImportError: pass")\n'
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m keepalive_patch``."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``keepalive-patch check --json | head``): stop quietly, and keep
        # the interpreter's final flush of stdout from raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args.subparser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command_name == "run":
        command = list(args.command)
        if command[:1] == ["--"]:
            command = command[1:]
        if not command:
            args.subparser.error(
                "missing the command to run, e.g. keepalive-patch run -- python app.py"
            )
        return run(command, overrides(args))
    if args.command_name == "path":
        print(bootstrap_dir())
        return 0
    if args.command_name in ("enable", "disable"):
        return set_enabled(args.command_name == "enable", user=args.user)
    if args.command_name == "bundle":
        from keepalive_patch import bundle

        return bundle.run(args.directory, _listed(args.python), _listed(args.platform), args.wrapt)
    if args.command_name == "inspect":
        from keepalive_patch import processes

        return processes.run(args.pids, as_json=args.json, proc_only=args.proc_only)
    from keepalive_patch import check

    if args.url is not None and not args.url.lower().startswith(("http://", "https://")):
        args.subparser.error(f"URL must start with http:// or https://, got {args.url!r}")
    return check.run(args.url, overrides(args), as_json=args.json, timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; each subcommand's parser is kept as ``args.subparser``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="TCP keepalive for every HTTP client of a program (httpx, httpx2, requests / "
        "urllib3, botocore, aiohttp), without editing it.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {keepalive_patch.__version__}"
    )
    commands = parser.add_subparsers(dest="command_name", metavar="COMMAND")
    commands.required = True

    run_parser = commands.add_parser(
        "run",
        help="run a program with the patch applied (like ddtrace-run)",
        description="Run CMD with keepalive-patch's sitecustomize on PYTHONPATH, so every Python "
        "process it starts is patched.  Flags become KEEPALIVE_PATCH_* variables.",
        usage=f"{PROG} run [SETTING FLAGS] -- CMD [ARGS...]",
    )
    _add_setting_flags(run_parser)
    run_parser.add_argument(
        "command", nargs=argparse.REMAINDER, help="the program and its arguments"
    )

    commands.add_parser(
        "path",
        help="print the directory to put on PYTHONPATH",
        description="Print the directory holding keepalive-patch's sitecustomize.py: "
        "PYTHONPATH=$(python -m keepalive_patch path) python app.py",
    )
    for name, verb in (("enable", "write"), ("disable", "remove")):
        sub = commands.add_parser(
            name,
            help=f"{verb} a .pth file that patches every interpreter of this environment",
            description=f"{verb.capitalize()} {PTH_NAME} in this environment's site-packages "
            "(or the user site with --user).  Safe to repeat.",
        )
        sub.add_argument("--user", action="store_true", help="use the user site-packages directory")

    bundle_parser = commands.add_parser(
        "bundle",
        help="build one directory that patches every CPython 3.9+ (for images you do not own)",
        description="Build DIR (new or empty) holding keepalive-patch and wrapt, with wrapt's "
        "compiled extension for each CPython version and platform (pure Python for any "
        "other).  Set PYTHONPATH=DIR/keepalive_patch/bootstrap in any app process; nothing "
        "needs to be installed there.  Building fetches wrapt's wheels with pip (needs the "
        "network); running never does.",
    )
    bundle_parser.add_argument("directory", metavar="DIR", help="where to build (new or empty)")
    bundle_parser.add_argument(
        "--python",
        action="append",
        metavar="X.Y",
        help="CPython versions to carry compiled wrapt for, comma-separated or repeated "
        "(default: 3.9,3.10,3.11,3.12,3.13)",
    )
    bundle_parser.add_argument(
        "--platform",
        action="append",
        metavar="TAG",
        help="wheel platform tags, comma-separated or repeated (default: manylinux_2_28 and "
        "musllinux_1_2 for this machine's architecture)",
    )
    bundle_parser.add_argument(
        "--wrapt",
        metavar="VERSION",
        help="wrapt release to carry (default: the one installed here)",
    )

    check_parser = commands.add_parser(
        "check",
        help="show the settings and prove them on live connections",
        description="Print the versions, settings and socket options in force, then open a real "
        "connection with each installed library (to URL, or to a loopback server started here) "
        "and read the options back from the live socket.  Exit status: 0 when every "
        "connection carries them; 1 when some lack them (or the patch is disabled, or keepalive "
        "cannot be in force); 3 when only requests failed, so nothing could be read back.",
    )
    check_parser.add_argument(
        "url", nargs="?", metavar="URL", help="connect here instead of loopback"
    )
    check_parser.add_argument("--json", action="store_true", help="machine-readable output")
    check_parser.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="bound the whole check (default 10)",
    )
    _add_setting_flags(check_parser)

    inspect_parser = commands.add_parser(
        "inspect",
        help="show the keepalive state of a running process's TCP connections (Linux)",
        description="List each TCP connection of the running process PID with the keepalive "
        "options set on it, read with getsockopt on a duplicate of its socket (pidfd_getfd: "
        "root, or the same user where ptrace is allowed), or else from the keepalive timer in "
        "/proc/PID/net/tcp.  Changes nothing in the process.  Exit status: 0 when every "
        "established outbound connection has keepalive on; 1 when some do not; 4 when a "
        "process cannot be read (no such process, not permitted).",
    )
    inspect_parser.add_argument(
        "pids", nargs="+", type=_pid, metavar="PID", help="the process to inspect"
    )
    inspect_parser.add_argument("--json", action="store_true", help="machine-readable output")
    inspect_parser.add_argument(
        "--proc-only",
        action="store_true",
        help="never duplicate a socket: read only the timers in /proc/PID/net/tcp",
    )

    for sub in commands.choices.values():
        sub.set_defaults(subparser=sub)
    return parser


def _listed(values: list[str] | None) -> list[str] | None:
    """``--python 3.9,3.10 --python 3.13`` -> ``["3.9", "3.10", "3.13"]``; None if not given."""
    if not values:
        return None
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per row of ``config.TABLE``, named after it and helped by it."""
    group = parser.add_argument_group("settings (each overrides its KEEPALIVE_PATCH_* variable)")
    for setting in config.TABLE:
        group.add_argument(
            setting.flag,
            dest=setting.name,
            type=_parser_for(setting),
            metavar=setting.metavar,
            help=f"{setting.help} (default {setting.show(setting.default)}; {setting.env})",
        )


def _parser_for(setting: config.Setting) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return setting.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = setting.name  # argparse names the type in its error messages
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600, got {text!r}")
    return value


def _pid(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process ID: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a process ID: {text!r}")
    return value


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The setting flags given on the command line (``None`` for those left out)."""
    return {setting.name: getattr(args, setting.name) for setting in config.TABLE}


def bootstrap_dir() -> str:
    """The directory holding our ``sitecustomize.py`` (what ``path`` prints)."""
    from keepalive_patch import bootstrap

    return bootstrap.DIRECTORY


def child_environment(environ: dict[str, str], values: dict[str, Any]) -> dict[str, str]:
    """``environ`` with our bootstrap directory first on PYTHONPATH and the flags as variables."""
    env = dict(environ)
    ours = bootstrap_dir()
    existing = env.get("PYTHONPATH", "")
    kept = [entry for entry in existing.split(os.pathsep) if entry != ours] if existing else []
    env["PYTHONPATH"] = os.pathsep.join([ours, *kept])
    for name, value in values.items():
        if value is not None:
            setting = config.BY_NAME[name]
            env[setting.env] = setting.to_env(value)
    return env


def run(command: list[str], values: dict[str, Any]) -> int:
    """Replace this process with ``command`` (on Windows: run it and return its exit code)."""
    env = child_environment(dict(os.environ), values)
    for stream in (sys.stdout, sys.stderr):  # None when the launcher was started with it closed
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    if not command[0]:  # execvpe("") raises ValueError; a shell says "command not found"
        print(f"{PROG} run: command not found: {command[0]!r}", file=sys.stderr)
        return 127
    try:
        if sys.platform == "win32":  # no real exec there: the caller would see our exit early
            import subprocess

            return subprocess.call(command, env=env)
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        print(f"{PROG} run: command not found: {command[0]}", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"{PROG} run: permission denied: {command[0]}", file=sys.stderr)
        return 126
    except OSError as exc:
        print(f"{PROG} run: cannot run {command[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 126
    return 0  # pragma: no cover - execvpe does not return


def _hint(user: bool) -> str:
    """What may work instead when the .pth cannot be written: only what can work here."""
    import site

    if not user and site.ENABLE_USER_SITE:
        return " (try --user, or run it as the owner of this environment)"
    return " (run it as the owner of this environment)"


class _Refused(Exception):
    """An ``enable`` / ``disable`` that could not be done, with the reason for the user."""


def pth_directory(user: bool) -> str:
    """Where ``enable`` writes: this environment's site-packages, or the user site."""
    if user:
        import site

        if not site.ENABLE_USER_SITE:
            raise _Refused(
                "this interpreter does not read the user site-packages (a virtualenv, "
                "python -s or PYTHONNOUSERSITE); run it without --user"
            )
        return site.getusersitepackages()
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def set_enabled(enabled: bool, user: bool) -> int:
    """Write or remove the .pth file; report what was done, idempotently."""
    path = PTH_NAME
    try:
        path = os.path.join(pth_directory(user), PTH_NAME)
        message = _write_pth(path) if enabled else _remove_pth(path)
    except _Refused as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: cannot change {path}: {exc.strerror or exc}{_hint(user)}", file=sys.stderr)
        return 1
    print(message)
    return 0


def _write_pth(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as existing:
            if existing.read() == PTH_CONTENT:
                return f"already enabled: {path}"
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as new:
        new.write(PTH_CONTENT)
    os.replace(temporary, path)
    if not _loads_at_start():
        os.remove(path)
        raise _Refused(
            f"a new interpreter did not load keepalive_patch through {path}, so it was removed: "
            "install keepalive-patch into the environment whose site-packages holds the file "
            "(with --user: pip install --user keepalive-patch)"
        )
    return f"enabled: wrote {path}; every new {sys.executable} process is patched"


def _remove_pth(path: str) -> str:
    try:
        os.remove(path)
    except FileNotFoundError:
        return f"already disabled: {path} does not exist"
    return f"disabled: removed {path}"


def _loads_at_start() -> bool:
    """Whether a fresh interpreter of this environment imports keepalive_patch at start-up."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", config.DISABLE_VAR)}
    probe = "import sys; print('keepalive_patch' in sys.modules)"
    try:
        result = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.stdout.strip() == "True"
