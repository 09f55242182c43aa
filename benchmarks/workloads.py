"""In-process workloads, run by ``run.py`` in fresh interpreters: ``python workloads.py NAME ...``.

Each prints one JSON line: per-operation times in seconds.  The hook is on only when
``--hook`` is given: then ``keepalive_patch`` is imported first, as an application would.
``gets`` is the exception: it imports the hook and prints ``{"base": [...], "patched": [...]}``,
the two sides measured alternately in the same process.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any, Callable


def transports(lib_name: str, count: int) -> list[float]:
    """Time ``HTTPTransport()`` (the shim's per-transport work plus httpx's own, e.g. SSL)."""
    lib = importlib.import_module(lib_name)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        lib.HTTPTransport()
        times.append(time.perf_counter() - start)
    return times


def shared_context(lib_name: str, count: int, stand_in: str | None = None) -> list[float]:
    """Time ``HTTPTransport(verify=ctx)`` with one shared SSL context: the shim's own cost shows.

    Timed in batches of 100 (a single build is ~10 us, close to the clock's resolution).
    ``stand_in`` (hook off) puts one of ``STAND_INS`` where the hook's wrapper would be.
    """
    import ssl

    lib = importlib.import_module(lib_name)
    if stand_in is not None:
        STAND_INS[stand_in](lib.HTTPTransport)
    context = ssl.create_default_context()
    lib.HTTPTransport(verify=context)  # first use: probe, wrapt import
    times = []
    for _ in range(count // 100):
        start = time.perf_counter()
        for _ in range(100):
            lib.HTTPTransport(verify=context)
        times.append((time.perf_counter() - start) / 100)
    return times


def pass_through(cls: type) -> None:
    """The cheapest Python wrapper an ``__init__`` can have: it adds nothing, passes all on."""
    original = cls.__init__  # type: ignore[misc]

    def __init__(self: object, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[misc]


def our_defaults(cls: type) -> None:
    """No wrapper at all: the library's own ``__init__``, given the hook's ``retries`` and
    ``socket_options`` as its defaults (what the constructor costs with only our arguments)."""
    import keepalive_patch  # the options this host accepts, then the hook off again

    options = tuple(keepalive_patch.socket_options())
    retries = keepalive_patch.settings().retries
    keepalive_patch.remove()
    init = cls.__init__  # type: ignore[misc]
    names = init.__code__.co_varnames[: init.__code__.co_argcount]
    defaults = list(init.__defaults__)
    first = len(names) - len(defaults)
    defaults[names.index("retries") - first] = retries
    defaults[names.index("socket_options") - first] = options
    init.__defaults__ = tuple(defaults)


#: Reference points for the shared-context build, with the hook off: how low a wrapper can go.
STAND_INS: dict[str, Callable[[type], None]] = {
    "pass-through": pass_through,
    "our-defaults": our_defaults,
}

#: GETs per batch: batches alternate between the hook off and on (see ``alternating``).
BATCH = 10

#: A library's GET workload: open a client (a context manager), and time one GET on it.
Opener = Callable[[], Any]
TimedGet = Callable[[Any], float]


def alternating(
    open_client: Opener, timed_get: TimedGet, count: int, only: str | None = None
) -> dict[str, list[float]]:
    """Per-GET times with the hook off (``remove()``) and on (``apply()``), switched batch by
    batch in this one process (ABBA order), each side on a client built in its own state.

    Within one process the two sides share everything but the hook (CPU frequency, caches,
    where the allocator stands); across processes those alone moved medians by +-8 % here.
    Every GET opens a new connection (the server answers ``Connection: close``).  ``only``
    runs one side after the warm-up (for counting instructions, ``run.py``).
    """
    import keepalive_patch

    def switch(side: str) -> None:
        if (side == "patched") != keepalive_patch.is_applied():
            if side == "patched":
                keepalive_patch.apply()
            else:
                keepalive_patch.remove()

    times: dict[str, list[float]] = {"base": [], "patched": []}
    with contextlib.ExitStack() as stack:
        clients = {}
        for side in times:  # warm up: first-use costs (probe, wrapt import) are not per GET
            switch(side)
            clients[side] = stack.enter_context(open_client())
            timed_get(clients[side])
        for i in range(count // BATCH):
            for side in ("base", "patched") if i % 2 == 0 else ("patched", "base"):
                if only in (None, side):
                    switch(side)
                    times[side].extend(timed_get(clients[side]) for _ in range(BATCH))
    return times


def sync_gets(lib_name: str, port: int) -> tuple[Opener, TimedGet]:
    """httpx / httpx2 ``Client`` and ``requests.Session``: the shim's options are set on every
    socket the transport (urllib3's ``HTTPConnection``, for requests) opens."""
    lib = importlib.import_module(lib_name)
    url = f"http://127.0.0.1:{port}/"

    def timed_get(client: Any) -> float:
        start = time.perf_counter()
        client.get(url).raise_for_status()
        return time.perf_counter() - start

    return getattr(lib, "Session", None) or lib.Client, timed_get


def aiohttp_gets(lib_name: str, port: int) -> tuple[Opener, TimedGet]:
    """``sync_gets`` for aiohttp: ``ClientSession`` (default ``TCPConnector``) on one event
    loop, each GET timed inside it."""
    import asyncio

    lib = importlib.import_module(lib_name)
    url = f"http://127.0.0.1:{port}/"
    loop = asyncio.new_event_loop()

    @contextlib.contextmanager
    def open_client() -> Iterator[Any]:
        session = loop.run_until_complete(_started(lib.ClientSession))
        try:
            yield session
        finally:
            loop.run_until_complete(session.close())

    async def get(session: Any) -> float:
        start = time.perf_counter()
        async with session.get(url) as response:
            await response.read()
            response.raise_for_status()
        return time.perf_counter() - start

    return open_client, lambda session: loop.run_until_complete(get(session))


async def _started(factory: Callable[[], Any]) -> Any:
    """``factory()`` called inside the running loop (aiohttp wants one)."""
    return factory()


GETS = {"httpx": sync_gets, "httpx2": sync_gets, "requests": sync_gets, "aiohttp": aiohttp_gets}


def main() -> None:
    args = sys.argv[1:]
    hook = "--hook" in args
    if hook:
        args.remove("--hook")
    if hook or args[0] == "gets":  # ``gets`` switches it off and on itself
        import keepalive_patch  # noqa: F401
    name, lib_name, count = args[0], args[1], int(args[2])
    if name == "transport":
        times = transports(lib_name, count)
    elif name == "shared-context":
        times = shared_context(lib_name, count, args[3] if len(args) > 3 else None)
    elif name == "gets":
        only = args[4] if len(args) > 4 else None
        open_client, timed_get = GETS[lib_name](lib_name, int(args[3]))
        print(json.dumps(alternating(open_client, timed_get, count, only)))
        return
    else:
        raise SystemExit(f"unknown workload {name!r}")
    print(json.dumps(times))


if __name__ == "__main__":
    main()
