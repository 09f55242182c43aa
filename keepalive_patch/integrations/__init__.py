"""The registry: which integration patches which library, and the callback the finder runs.

An integration is one module here, ``keepalive_patch.integrations.<name>``, with two functions
(dd-trace-py's contract): ``patch(module)``, called right after a module it watches has been
imported (and again on ``reload``; it must be idempotent), and ``unpatch()``, which undoes
everything.  Adding a library means adding its file and its line in ``WATCHED``; nothing else.

This module is on the start-up path (the finder needs the watched names), so it is plain data
and small functions that import what they need when they run.
"""

#: integration -> the modules whose import makes the finder call its ``patch(module)``.
WATCHED = {
    "httpx": ("httpx", "httpx2"),  # transports: keepalive options and retries
    "httpcore": ("httpcore", "httpcore2"),  # proxy pools: the same on the client->proxy socket
    "urllib3": ("urllib3.connection",),  # every connection: keepalive options (requests, botocore)
    "requests": ("requests.adapters",),  # HTTPAdapter: one connect retry
    "aiohttp": ("aiohttp",),  # TCPConnector: keepalive options on every connection it opens
}


def watched_modules() -> "list[str]":
    """Every module name the finder watches."""
    return [module for modules in WATCHED.values() for module in modules]


def known_names() -> "list[str]":
    """What ``KEEPALIVE_PATCH_SKIP`` accepts: integration names and the module names they watch."""
    return sorted(set(WATCHED).union(watched_modules()))


def patch_imported(module: "object") -> None:
    """The finder's callback: hand ``module`` to each integration watching it, unless skipped."""
    import importlib

    from keepalive_patch import config

    name = getattr(module, "__name__", "")
    skip = config.current().skip
    for integration, modules in WATCHED.items():
        if name in modules and integration not in skip and name not in skip:
            importlib.import_module(f"{__name__}.{integration}").patch(module)


def unpatch_all() -> None:
    """Undo every integration that has patched something (loaded ones only: others did not)."""
    import sys

    for integration in WATCHED:
        loaded = sys.modules.get(f"{__name__}.{integration}")
        if loaded is not None:
            loaded.unpatch()
