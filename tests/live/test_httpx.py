"""The wrapper on real transports: options read back from live loopback sockets."""

from __future__ import annotations

import inspect
import logging
import socket
import sys
import threading
import types
from typing import Any

import pytest
from support.faults import break_sockopts, offer_extra_option, raised, with_and_without_shim
from support.libs import original_of, takes_socket_options
from support.sockets import expected, fetch, kernel_defaults, live_socket, read_options

import keepalive_patch
from keepalive_patch import sockopts
from keepalive_patch.integrations import httpcore as proxies
from keepalive_patch.integrations import httpx as patch

TCP = socket.IPPROTO_TCP


def test_default_client_gets_keepalive(
    keepalive_lib: types.ModuleType, mode: str, http_url: str
) -> None:
    [options] = fetch(keepalive_lib, mode, http_url)
    assert options == expected()
    assert options["SO_KEEPALIVE"] == 1
    assert options["TCP_KEEPIDLE"] == 30
    assert options["TCP_KEEPINTVL"] == 10
    assert options["TCP_KEEPCNT"] == 3
    assert options["TCP_USER_TIMEOUT"] == 0, "opt-in only: it can cut off a live, slow reader"


def test_explicit_transport_gets_keepalive(
    keepalive_lib: types.ModuleType, mode: str, http_url: str
) -> None:
    [options] = fetch(keepalive_lib, mode, http_url, transport_kwargs={"http2": False})
    assert options == expected()


def test_apply_overrides_reach_the_socket(keepalive_lib: types.ModuleType, http_url: str) -> None:
    keepalive_patch.apply(idle=7, interval=2, count=4, user_timeout=9_000)
    [options] = fetch(keepalive_lib, "sync", http_url)
    assert options == {
        "SO_KEEPALIVE": 1,
        "TCP_KEEPIDLE": 7,
        "TCP_KEEPINTVL": 2,
        "TCP_KEEPCNT": 4,
        "TCP_USER_TIMEOUT": 9_000,
    }


def test_unpatched_socket_has_no_keepalive(lib: types.ModuleType, http_url: str) -> None:
    """The control: the same request without the shim gets the kernel defaults."""
    keepalive_patch.remove()
    [options] = fetch(lib, "sync", http_url)
    assert options["SO_KEEPALIVE"] == 0
    assert options["TCP_USER_TIMEOUT"] == 0


def theirs(**changes: int) -> dict[str, int]:
    """A socket with only the caller's keepalive policy: the kernel's defaults plus theirs."""
    return {**kernel_defaults(), **changes}


def test_caller_keyword_options_win(
    keepalive_lib: types.ModuleType, mode: str, http_url: str
) -> None:
    """A caller's own timing is their keepalive policy: none of our timings is mixed in, and
    keepalive is switched on (a timing alone does nothing: they asked for keepalive)."""
    mine = [(TCP, socket.TCP_KEEPIDLE, 77), (TCP, socket.TCP_NODELAY, 1)]
    [options] = fetch(keepalive_lib, mode, http_url, transport_kwargs={"socket_options": mine})
    assert options == theirs(SO_KEEPALIVE=1, TCP_KEEPIDLE=77)
    mine = [(TCP, socket.TCP_KEEPIDLE, 77), (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)]
    [options] = fetch(keepalive_lib, mode, http_url, transport_kwargs={"socket_options": mine})
    assert options == theirs(TCP_KEEPIDLE=77), "switched off: nothing of ours at all"


def test_caller_tuple_options_win(keepalive_lib: types.ModuleType, http_url: str) -> None:
    """``SO_KEEPALIVE=0``: the caller switched keepalive off, and off it stays."""
    mine = ((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0),)
    [options] = fetch(keepalive_lib, "sync", http_url, transport_kwargs={"socket_options": mine})
    assert options == theirs()


def test_caller_with_bare_keepalive_gets_our_timings(
    keepalive_lib: types.ModuleType, http_url: str
) -> None:
    """``SO_KEEPALIVE=1`` alone (botocore's ``tcp_keepalive``) would idle 2 hours: ours apply."""
    mine = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    [options] = fetch(keepalive_lib, "sync", http_url, transport_kwargs={"socket_options": mine})
    assert options == expected()


def test_unrelated_caller_options_change_nothing(
    keepalive_lib: types.ModuleType, http_url: str
) -> None:
    mine = [(TCP, socket.TCP_NODELAY, 1), (socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)]
    [options] = fetch(keepalive_lib, "sync", http_url, transport_kwargs={"socket_options": mine})
    assert options == expected()


def test_user_timeout_opt_in_is_added_unless_caller_set_it_or_switched_off(
    keepalive_lib: types.ModuleType, http_url: str
) -> None:
    keepalive_patch.apply(user_timeout=12_000)
    timed = [(TCP, socket.TCP_KEEPIDLE, 77)]
    [options] = fetch(keepalive_lib, "sync", http_url, transport_kwargs={"socket_options": timed})
    assert options == theirs(SO_KEEPALIVE=1, TCP_KEEPIDLE=77, TCP_USER_TIMEOUT=12_000)
    own = [(TCP, socket.TCP_USER_TIMEOUT, 5_000)]
    [options] = fetch(keepalive_lib, "sync", http_url, transport_kwargs={"socket_options": own})
    assert options == expected(TCP_USER_TIMEOUT=5_000)
    off = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)]
    [options] = fetch(keepalive_lib, "sync", http_url, transport_kwargs={"socket_options": off})
    assert options == theirs()


def test_generator_options_are_materialized_once(
    keepalive_lib: types.ModuleType, mode: str, http_url: str
) -> None:
    """A one-shot generator would leave every connection after the first without options."""
    mine = (opt for opt in [(TCP, socket.TCP_KEEPCNT, 9)])
    limits = keepalive_lib.Limits(max_keepalive_connections=0)  # a new connection per request
    results = fetch(
        keepalive_lib,
        mode,
        http_url,
        transport_kwargs={"socket_options": mine, "limits": limits},
        requests=2,
    )
    assert results == [theirs(SO_KEEPALIVE=1, TCP_KEEPCNT=9)] * 2


#: httpx 0.28's (and httpx2's) positional order; 0.27 and older put ``trust_env`` after ``limits``.
ORDER_028 = [
    "verify", "cert", "trust_env", "http1", "http2", "limits",
    "proxy", "uds", "local_address", "retries", "socket_options",
]  # fmt: skip


def version_tuple(lib: types.ModuleType) -> tuple[int, ...]:
    return tuple(int(part) for part in lib.__version__.split(".")[:2])


def positional_call(lib: types.ModuleType, **given: Any) -> list[Any]:
    """Arguments for ``lib.HTTPTransport`` given positionally, in the INSTALLED signature's order,
    up to the last of ``given`` the signature has; the defaults fill the places before it."""
    parameters = list(inspect.signature(original_of(patch, lib.HTTPTransport)).parameters.values())
    parameters = parameters[1:]  # self
    names = [p.name for p in parameters]
    last = max(names.index(name) for name in given if name in names)
    for parameter in parameters[: last + 1]:
        assert parameter.kind is parameter.POSITIONAL_OR_KEYWORD, parameter
    return [given.get(p.name, p.default) for p in parameters[: last + 1]]


def test_installed_positional_order(lib: types.ModuleType) -> None:
    """The order the positional tests below rely on is the one the wrapper binds against."""
    names = list(inspect.signature(original_of(patch, lib.HTTPTransport)).parameters)[1:]
    if lib.__name__ == "httpx2" or version_tuple(lib) >= (0, 28):
        assert names[: len(ORDER_028)] == ORDER_028
    else:
        assert names.index("trust_env") > names.index("limits")


def test_caller_positional_options_and_retries_win(lib: types.ModuleType, http_url: str) -> None:
    """Positional arguments are bound against the installed signature (0.28 moved trust_env)."""
    mine = [(TCP, socket.TCP_KEEPINTVL, 5)]
    positional = positional_call(lib, retries=4, socket_options=mine)
    assert lib.HTTPTransport(*positional)._pool._retries == 4
    [options] = fetch(lib, "sync", http_url, transport_args=tuple(positional))
    if takes_socket_options(lib):
        assert positional[-1] is mine  # socket_options itself was passed positionally
        assert options == theirs(SO_KEEPALIVE=1, TCP_KEEPINTVL=5)
    else:
        assert options == kernel_defaults()


def test_positional_arguments_before_retries_get_it_injected(
    lib: types.ModuleType, http_url: str
) -> None:
    positional = positional_call(lib, local_address=None)  # everything up to retries
    assert lib.HTTPTransport(*positional)._pool._retries == 1
    assert lib.AsyncHTTPTransport(*positional)._pool._retries == 1
    [options] = fetch(lib, "sync", http_url, transport_args=tuple(positional))
    assert options == (expected() if takes_socket_options(lib) else kernel_defaults())


def test_retries_injected_unless_given(lib: types.ModuleType) -> None:
    # httpcore keeps no public accessor for the pool's retry count.
    assert lib.HTTPTransport()._pool._retries == 1
    assert lib.AsyncHTTPTransport()._pool._retries == 1
    assert lib.HTTPTransport(retries=0)._pool._retries == 0
    assert lib.AsyncHTTPTransport(retries=3)._pool._retries == 3


def test_retries_zero_setting_injects_nothing(lib: types.ModuleType) -> None:
    keepalive_patch.apply(retries=0)
    assert lib.HTTPTransport()._pool._retries == 0


def test_uds_gets_no_socket_options_but_answers(
    lib: types.ModuleType, mode: str, uds_path: str
) -> None:
    """TCP options on an AF_UNIX socket fail every request with errno 95; we must add none."""
    import asyncio

    if mode == "sync":
        transport = lib.HTTPTransport(uds=uds_path)
        assert getattr(transport._pool, "_socket_options", None) is None  # none before 0.25
        assert transport._pool._retries == 1
        with lib.Client(transport=transport) as client:
            assert client.get("http://local/").text == "ok"
        return

    async def main() -> str:
        async with lib.AsyncClient(transport=lib.AsyncHTTPTransport(uds=uds_path)) as client:
            return str((await client.get("http://local/")).text)

    if mode == "trio":
        import trio

        assert trio.run(main) == "ok"
    else:
        assert asyncio.run(main()) == "ok"


def test_env_proxy_mounts_are_patched(
    lib: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    for client in (lib.Client(), lib.AsyncClient()):
        mounts = [t for t in client._mounts.values() if t is not None]
        assert mounts, "the environment proxy should have produced mounted transports"
        for transport in mounts:
            # The transport got the options and handed them to its proxy pool; whether that
            # pool uses them on the client->proxy socket is tests/test_proxies.py's business.
            if takes_socket_options(lib):
                assert transport._pool._socket_options == keepalive_patch.socket_options()
            else:  # httpx < 0.25: the retry reaches the proxy pool through our backend
                backend = transport._pool._network_backend
                assert isinstance(backend, proxies.KeepaliveBackend)
                assert backend._retries == 1


def test_subclass_calling_super_is_patched(lib: types.ModuleType, http_url: str) -> None:
    class Custom(lib.HTTPTransport):  # type: ignore[name-defined,misc]
        def __init__(self, marker: str, **kwargs: Any) -> None:
            self.marker = marker
            super().__init__(**kwargs)

    class Plain(lib.HTTPTransport):  # type: ignore[name-defined,misc]
        pass

    for transport in (Custom("x"), Plain()):
        assert transport._pool._retries == 1
        with lib.Client(transport=transport) as client:
            response = client.get(http_url)
            options = read_options(live_socket(response))
            assert options == (expected() if takes_socket_options(lib) else kernel_defaults())


def test_bad_arguments_raise_httpx_own_error(lib: types.ModuleType) -> None:
    patched_error, original_error = with_and_without_shim(
        lambda: raised(lambda: lib.HTTPTransport(no_such_argument=1), TypeError)
    )
    assert str(patched_error) == str(original_error)


def test_internal_failure_falls_back_to_original(
    lib: types.ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    break_sockopts(monkeypatch, "in_force")
    with caplog.at_level(logging.WARNING, logger="keepalive_patch"):
        first = lib.HTTPTransport(retries=2)
        second = lib.HTTPTransport()
    assert first._pool._retries == 2
    assert second._pool._retries == 0  # nothing of ours: the original, called as it was
    assert getattr(second._pool, "_socket_options", None) is None
    failures = [r for r in caplog.records if "failed to prepare" in r.getMessage()]
    assert len(failures) == 1, "logged once, not per transport"


def test_remove_restores_exact_originals(lib: types.ModuleType, http_url: str) -> None:
    originals = {
        cls: original_of(patch, cls) for cls in (lib.HTTPTransport, lib.AsyncHTTPTransport)
    }
    keepalive_patch.remove()
    assert not keepalive_patch.is_applied()
    for cls, original in originals.items():
        assert cls.__dict__["__init__"] is original
        assert inspect.isfunction(original)
    [options] = fetch(lib, "sync", http_url)
    assert options == kernel_defaults()
    assert lib.HTTPTransport()._pool._retries == 0
    keepalive_patch.apply()
    [options] = fetch(lib, "sync", http_url)
    assert options == (expected() if takes_socket_options(lib) else kernel_defaults())
    assert lib.HTTPTransport()._pool._retries == 1


def test_remove_when_another_wrapper_sits_on_top(lib: types.ModuleType, http_url: str) -> None:
    """Restoring would drop the other wrapper too; ours must turn into a pass-through instead."""
    ours = lib.HTTPTransport.__dict__["__init__"]
    calls = []

    def other(self: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        ours(self, *args, **kwargs)

    lib.HTTPTransport.__init__ = other
    try:
        keepalive_patch.remove()
        assert lib.HTTPTransport.__dict__["__init__"] is other
        [options] = fetch(lib, "sync", http_url)
        assert options["SO_KEEPALIVE"] == 0
        assert calls
    finally:
        lib.HTTPTransport.__init__ = ours.__wrapped__


def test_apply_twice_wraps_once(lib: types.ModuleType) -> None:
    keepalive_patch.apply()
    keepalive_patch.apply(idle=5, retries=2)
    init = lib.HTTPTransport.__dict__["__init__"]
    assert inspect.isfunction(init.__wrapped__), "exactly one layer of wrapping"
    pool = lib.HTTPTransport()._pool
    assert pool._retries == 2  # the new settings are in force
    if takes_socket_options(lib):
        assert pool._socket_options[1][2] == 5


def test_concurrent_apply_wraps_once(lib: types.ModuleType) -> None:
    keepalive_patch.remove()
    barrier = threading.Barrier(8)

    def racer() -> None:
        barrier.wait(timeout=10)
        keepalive_patch.apply()

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    for cls in (lib.HTTPTransport, lib.AsyncHTTPTransport):
        assert inspect.isfunction(cls.__dict__["__init__"].__wrapped__)
    assert sys.meta_path.count(sys.meta_path[0]) == 1


def test_probe_drops_rejected_option_end_to_end(
    keepalive_lib: types.ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    http_url: str,
) -> None:
    """Offer an option this kernel refuses (TCP_KEEPIDLE=0 is EINVAL on Linux): it must be
    dropped and logged, never turned into a ConnectError on the request."""
    offer_extra_option(monkeypatch, (TCP, socket.TCP_KEEPIDLE, 0))
    with caplog.at_level(logging.WARNING, logger="keepalive_patch"):
        keepalive_patch.apply()
        [live] = fetch(keepalive_lib, "sync", http_url)
    assert live["TCP_KEEPIDLE"] == 30
    assert any("TCP_KEEPIDLE=0" in r.getMessage() for r in caplog.records)


# -- httpx < 0.25: no socket_options parameter, so retries only ------------------------------


def test_retries_only_requests_work_and_carry_nothing_of_ours(
    retries_only_lib: types.ModuleType, mode: str, http_url: str
) -> None:
    """Real requests succeed; their live sockets have exactly the kernel's defaults."""
    assert fetch(retries_only_lib, mode, http_url, requests=2) == [kernel_defaults()] * 2
    [options] = fetch(retries_only_lib, mode, http_url, transport_kwargs={"http2": False})
    assert options == kernel_defaults()


def test_retries_only_injects_retries_unless_given(retries_only_lib: types.ModuleType) -> None:
    lib = retries_only_lib
    assert lib.Client()._transport._pool._retries == 1
    assert lib.AsyncClient()._transport._pool._retries == 1
    assert lib.HTTPTransport(retries=0)._pool._retries == 0
    assert lib.AsyncHTTPTransport(retries=3)._pool._retries == 3
    keepalive_patch.apply(retries=2)
    assert lib.HTTPTransport()._pool._retries == 2


def test_retries_only_socket_options_argument_fails_as_in_httpx(
    retries_only_lib: types.ModuleType,
) -> None:
    """A caller passing socket_options to httpx < 0.25 gets httpx's own TypeError, unchanged."""
    mine = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    with pytest.raises(TypeError) as patched_error:
        retries_only_lib.HTTPTransport(socket_options=mine)
    keepalive_patch.remove()
    with pytest.raises(TypeError) as original_error:
        retries_only_lib.HTTPTransport(socket_options=mine)
    assert str(patched_error.value) == str(original_error.value)


def test_retries_only_note_is_logged_once(
    retries_only_lib: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    lib = retries_only_lib
    keepalive_patch.remove()
    with caplog.at_level(logging.DEBUG, logger="keepalive_patch"):
        keepalive_patch.apply()
        for _ in range(3):
            lib.HTTPTransport()
            lib.AsyncHTTPTransport()
            lib.Client()
        keepalive_patch.apply(idle=5)
    notes = [r for r in caplog.records if "retries only" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in notes] == [
        (
            logging.WARNING,
            f"{lib.__name__} transports take no socket_options (httpx < 0.25); "
            "injecting retries only",
        )
    ]


class _Fake027:
    """httpx 0.27's transport signature (trust_env after limits), recording what it receives."""

    def __init__(
        self,
        verify: Any = True,
        cert: Any = None,
        http1: bool = True,
        http2: bool = False,
        limits: Any = None,
        trust_env: bool = True,
        proxy: Any = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Any = None,
    ) -> None:
        self.received = dict(locals())
        del self.received["self"]


class _Fake024:
    """A transport with no socket_options parameter, as httpx < 0.25: only what the test below
    passes or reads (``uds``, ``retries``).  0.24's whole signature is 0.27's less
    ``socket_options`` (``_Fake027`` covers the positional order); the real 0.23 / 0.24 run in
    the nox matrix (the ``retries_only_lib`` tests)."""

    def __init__(self, uds: str | None = None, retries: int = 0) -> None:
        self.received = dict(locals())
        del self.received["self"]


def _fake_library(name: str, cls: type) -> types.ModuleType:
    module = types.ModuleType(name)
    module.HTTPTransport = type("HTTPTransport", (cls,), dict(cls.__dict__))  # type: ignore[attr-defined]
    module.AsyncHTTPTransport = type("AsyncHTTPTransport", (cls,), dict(cls.__dict__))  # type: ignore[attr-defined]
    return module


def test_binds_against_027_signature_positionally() -> None:
    module = _fake_library("fake027", _Fake027)
    patch.patch(module)
    ours = keepalive_patch.socket_options()
    mine = [(TCP, socket.TCP_KEEPCNT, 8)]
    # positional up to socket_options, in 0.27's order
    t = module.HTTPTransport(True, None, True, False, None, False, None, None, None, 2, mine)
    assert t.received["trust_env"] is False
    assert t.received["retries"] == 2
    assert t.received["socket_options"] == [*mine, (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)], (
        "their own timing: their keepalive policy, switched on"
    )
    # positional up to trust_env only: retries and options are added
    t = module.AsyncHTTPTransport(True, None, True, False, None, False)
    assert t.received["trust_env"] is False
    assert t.received["retries"] == 1
    assert t.received["socket_options"] == ours


def test_library_without_socket_options_gets_retries_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    module = _fake_library("fake024", _Fake024)
    with caplog.at_level(logging.WARNING, logger="keepalive_patch"):
        patch.patch(module)
        t = module.HTTPTransport()
        module.HTTPTransport(uds="/x")
    assert t.received["retries"] == 1
    assert "socket_options" not in t.received
    notes = [r for r in caplog.records if "retries only" in r.getMessage()]
    assert len(notes) == 1


SOL, KEEPALIVE = socket.SOL_SOCKET, socket.SO_KEEPALIVE
OURS = [
    (SOL, KEEPALIVE, 1),
    (TCP, socket.TCP_KEEPIDLE, 30),
    (TCP, socket.TCP_KEEPINTVL, 10),
    (TCP, socket.TCP_KEEPCNT, 3),
    (TCP, socket.TCP_USER_TIMEOUT, 60_000),
]


def test_merge_keepalive_is_one_policy() -> None:
    merge = sockopts.merge
    assert merge(None, OURS) == OURS
    nodelay = (TCP, socket.TCP_NODELAY, 1)
    assert merge([nodelay], OURS) == [nodelay, *OURS], "unrelated options change nothing"
    assert merge(((SOL, KEEPALIVE, 0),), OURS) == [(SOL, KEEPALIVE, 0)], "switched off: stays off"
    bare = (SOL, KEEPALIVE, 1)
    assert merge([bare], OURS) == [bare, *OURS[1:]], "bare SO_KEEPALIVE gets our timings"
    timed = [bare, (TCP, socket.TCP_KEEPIDLE, 60), (TCP, socket.TCP_KEEPCNT, 5)]
    assert merge(timed, OURS) == [*timed, OURS[-1]], "their timings: only TCP_USER_TIMEOUT added"
    own_timeout = (TCP, socket.TCP_USER_TIMEOUT, 1)
    assert merge([own_timeout], OURS) == [own_timeout, *OURS[:-1]]
    four = (TCP, socket.TCP_KEEPIDLE, None, 4)  # httpcore also takes (level, optname, None, len)
    assert merge([four], OURS) == [four, OURS[0], OURS[-1]]
