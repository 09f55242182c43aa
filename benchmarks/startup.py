"""Interpreter start-up cost of each zero-edit entry point, as a ratio to a bare interpreter.

    python benchmarks/startup.py [--runs N]

Times ``python -c pass`` N times per variant (interleaved, after writing .pyc files) in throwaway
virtualenvs of this interpreter and prints each median and its ratio to the bare one.  The
``-c "import keepalive_patch"`` row is the package's own import, without any entry point.  The
goal (brief, principle 3) is <= 1.05x.  Nothing here is asserted: it is measured and printed.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_venv(root: Path, install: bool) -> "tuple[str, Path]":
    """A pip-less virtualenv, with a copy of the package in its site-packages if ``install``."""
    venv.create(root, with_pip=False, symlinks=os.name != "nt")
    python = str(root / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    purelib = Path(sysconfig.get_paths("venv", vars={"base": str(root)})["purelib"])
    if install:
        shutil.copytree(REPO / "keepalive_patch", purelib / "keepalive_patch")
    return python, purelib


def timed(command: "list[str]", env: "dict[str, str]") -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per variant (default 40)")
    runs = parser.parse_args().runs
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEPALIVE_PATCH_", "PYTHON"))}
    with tempfile.TemporaryDirectory() as scratch:
        bare, _ = make_venv(Path(scratch, "bare"), install=False)
        installed, purelib = make_venv(Path(scratch, "installed"), install=True)
        enabled, _ = make_venv(Path(scratch, "enabled"), install=True)
        subprocess.run([enabled, "-m", "keepalive_patch", "enable"], env=env, check=True)
        bootstrap = str(purelib / "keepalive_patch" / "bootstrap")
        variants = {
            "bare interpreter": ([bare, "-c", "pass"], env),
            "installed, not enabled": ([installed, "-c", "pass"], env),
            "-c 'import keepalive_patch'": ([installed, "-c", "import keepalive_patch"], env),
            "PYTHONPATH=checkout": ([bare, "-c", "pass"], dict(env, PYTHONPATH=str(REPO))),
            "keepalive-patch run": ([installed, "-c", "pass"], dict(env, PYTHONPATH=bootstrap)),
            "keepalive-patch enable": ([enabled, "-c", "pass"], env),
        }
        for python in (bare, installed, enabled):  # write the .pyc files a real install has
            subprocess.run(
                [
                    python,
                    "-m",
                    "compileall",
                    "-q",
                    scratch,
                    str(REPO / "keepalive_patch"),
                    str(REPO / "sitecustomize.py"),
                ],
                env=env,
                check=False,
                capture_output=True,
            )
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(runs):
            for name, (command, variant_env) in variants.items():
                times[name].append(timed(command, variant_env))
    base = statistics.median(times["bare interpreter"])
    print(f"Python {sys.version.split()[0]}, {runs} runs each")
    print(f"{'variant':<28} {'median ms':>9} {'ratio':>6}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<28} {median * 1000:>9.2f} {median / base:>6.3f}")


if __name__ == "__main__":
    main()
