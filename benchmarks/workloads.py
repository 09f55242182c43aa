"""In-process workloads, run by ``run.py`` in fresh interpreters: ``python workloads.py NAME ...``.

Each prints one JSON line: per-operation times in seconds.  The hook is on only when
``--hook`` is given: then ``keepalive_patch`` is imported first, as an application would.
"""

from __future__ import annotations

import importlib
import json
import sys
import time


def transports(lib_name: str, count: int) -> list[float]:
    """Time ``HTTPTransport()`` (the shim's per-transport work plus httpx's own, e.g. SSL)."""
    lib = importlib.import_module(lib_name)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        lib.HTTPTransport()
        times.append(time.perf_counter() - start)
    return times


def shared_context(lib_name: str, count: int) -> list[float]:
    """Time ``HTTPTransport(verify=ctx)`` with one shared SSL context: the shim's own cost shows.

    Timed in batches of 100 (a single build is ~10 us, close to the clock's resolution).
    """
    import ssl

    lib = importlib.import_module(lib_name)
    context = ssl.create_default_context()
    lib.HTTPTransport(verify=context)  # first use: probe, wrapt import
    times = []
    for _ in range(count // 100):
        start = time.perf_counter()
        for _ in range(100):
            lib.HTTPTransport(verify=context)
        times.append((time.perf_counter() - start) / 100)
    return times


def requests(lib_name: str, count: int, port: int) -> list[float]:
    """Time one request on a new connection each (the server answers ``Connection: close``)."""
    lib = importlib.import_module(lib_name)
    url = f"http://127.0.0.1:{port}/"
    times = []
    with lib.Client() as client:
        client.get(url)  # warm up: first-use costs (probe, imports) are not per-connection costs
        for _ in range(count):
            start = time.perf_counter()
            client.get(url).raise_for_status()
            times.append(time.perf_counter() - start)
    return times


def session_gets(lib_name: str, count: int, port: int) -> list[float]:
    """Time ``requests.Session().get`` on a new connection each (``Connection: close``): urllib3
    builds an ``HTTPConnection`` (the shim merges its options) and sets them on the socket."""
    lib = importlib.import_module(lib_name)
    url = f"http://127.0.0.1:{port}/"
    times = []
    with lib.Session() as session:
        session.get(url)  # warm up, as above
        for _ in range(count):
            start = time.perf_counter()
            session.get(url).raise_for_status()
            times.append(time.perf_counter() - start)
    return times


def aiohttp_requests(count: int, port: int) -> list[float]:
    """``requests`` for aiohttp: one ``ClientSession`` (default ``TCPConnector``), a new
    connection per GET (the server answers ``Connection: close``), timed inside one loop."""
    import asyncio

    import aiohttp

    url = f"http://127.0.0.1:{port}/"

    async def run() -> list[float]:
        times = []
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:  # warm up, as in ``requests``
                await response.read()
            for _ in range(count):
                start = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    response.raise_for_status()
                times.append(time.perf_counter() - start)
        return times

    return asyncio.run(run())


def main() -> None:
    args = sys.argv[1:]
    if "--hook" in args:
        args.remove("--hook")
        import keepalive_patch  # noqa: F401
    name, lib_name, count = args[0], args[1], int(args[2])
    if name == "transport":
        times = transports(lib_name, count)
    elif name == "shared-context":
        times = shared_context(lib_name, count)
    elif name == "request" and lib_name == "aiohttp":
        times = aiohttp_requests(count, int(args[3]))
    elif name == "request":
        times = requests(lib_name, count, int(args[3]))
    elif name == "session-get":  # requests
        times = session_gets(lib_name, count, int(args[3]))
    else:
        raise SystemExit(f"unknown workload {name!r}")
    print(json.dumps(times))


if __name__ == "__main__":
    main()
