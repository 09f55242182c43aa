"""``KEEPALIVE_PATCH_SKIP``: each name leaves exactly its library alone, whole, and nothing else.

Proven by what reaches the live socket, what the transport's pool was given, and what a dying
server counted (replay), for the skipped library and for its neighbours.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from types import ModuleType

import pytest
from support.dying_servers import DyingServer
from support.libs import installed_libraries, takes_socket_options

import keepalive_patch
from keepalive_patch import config, replay

#: Each httpx-like library and the httpcore-like library under it (httpx's engine: its proxy
#: pools and replay serve httpx's requests).
CORES = {"httpx": "httpcore", "httpx2": "httpcore2"}
LIBS = installed_libraries()

pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def skipping(request: pytest.FixtureRequest) -> Iterator[str]:
    name = str(request.param)
    keepalive_patch.apply(skip=[name])
    yield name
    keepalive_patch.apply(skip=[])


def _pool(lib: ModuleType) -> object:
    return lib.HTTPTransport()._pool


def _replays(lib: ModuleType) -> bool:
    """Whether a GET on a dead reused connection of ``lib`` was sent again (server's count)."""
    with DyingServer() as server, lib.Client() as client:
        client.get(server.url)
        with contextlib.suppress(lib.TransportError):
            client.get(server.url)
    return server.connections_of("GET") == [1, 1, 2]


def test_the_names_are_the_libraries_each_described_once() -> None:
    assert keepalive_patch.known_names() == sorted(config.SKIP_LEAVES)
    assert config.BY_NAME["skip"].bounds() == ", ".join(sorted(config.SKIP_LEAVES))


@pytest.mark.parametrize("skipping", sorted(lib.__name__ for lib in LIBS), indirect=True)
def test_skipping_an_httpx_leaves_it_whole_and_nothing_else(skipping: str) -> None:
    for lib in LIBS:
        core = importlib.import_module(CORES[lib.__name__])
        pool = _pool(lib)
        left_alone = lib.__name__ == skipping
        assert pool._retries == (0 if left_alone else 1), lib  # type: ignore[attr-defined]
        if takes_socket_options(lib):
            options = getattr(pool, "_socket_options", None)
            assert (options is None) is left_alone, (lib, options)
        if replay.supported(core):
            assert _replays(lib) is not left_alone, lib


def test_a_module_name_is_not_a_skip_name() -> None:
    """``httpcore`` once turned off httpx2's replay too; now it names nothing and skips nothing."""
    keepalive_patch.apply(skip=["httpcore", "urllib3.connection"])
    try:
        assert keepalive_patch.settings().skip == frozenset()
        for lib in LIBS:
            assert _pool(lib)._retries == 1  # type: ignore[attr-defined]
    finally:
        keepalive_patch.apply(skip=[])
