"""One HTTP request from inside the client namespace; prints one JSON line describing the result.

Run as ``python _client.py '<json spec>'``.  The hook is on only if the spec says so: then
``keepalive_patch`` is imported before the HTTP library, exactly as an application would.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import time
from typing import Any


def describe(client: Any) -> dict[str, Any]:
    """What the transport the client built will use (for diagnostics in assertion messages)."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    options = getattr(pool, "_socket_options", None)
    return {
        "socket_options": [list(opt) for opt in options] if options else [],
        "retries": getattr(pool, "_retries", None),
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec["hook"]:
        import keepalive_patch  # noqa: F401  (applies on import)
    lib = importlib.import_module(spec["lib"])
    timeout = lib.Timeout(
        spec.get("timeout", 5.0),
        read=spec.get("read_timeout", 5.0),
        write=spec.get("write_timeout", 5.0),
    )
    content = bytes(spec["upload"]) if spec.get("upload") else None
    method = "POST" if spec.get("post") or content else "GET"
    if method == "POST" and content is None:
        content = b"order=1"
    result: dict[str, Any] = {"t_start": time.monotonic()}

    def announce(client: Any) -> None:
        # A line of its own before the request: a client killed while hanging still reports it.
        result.update(describe(client))
        print(json.dumps(describe(client)), flush=True)

    def request_sync() -> Any:
        with lib.Client(timeout=timeout) as client:
            announce(client)
            return client.request(method, spec["url"], content=content)

    async def request_async() -> Any:
        async with lib.AsyncClient(timeout=timeout) as client:
            announce(client)
            return await client.request(method, spec["url"], content=content)

    try:
        response = request_sync() if spec["mode"] == "sync" else asyncio.run(request_async())
        result.update(outcome="response", status=response.status_code)
    except Exception as exc:
        result.update(outcome="error", error=type(exc).__name__, message=str(exc)[:200])
    result["t_end"] = time.monotonic()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
