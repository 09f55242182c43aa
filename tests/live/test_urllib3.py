"""urllib3 (1.26 and 2.x): keepalive options read back from live loopback sockets.

Every connection urllib3 opens -- direct, to an HTTP proxy (forwarding and CONNECT), through a
SOCKS proxy -- is read with ``getsockopt`` from the live client socket, found by the address the
server (or proxy) saw.  ``TCP_NODELAY`` is read too: urllib3's own default, which must stay.
"""

from __future__ import annotations

import inspect
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from support.client_sockets import nodelay_of, options_of
from support.faults import break_sockopts, offer_extra_option
from support.libs import original_of, wrapped_classes
from support.origins import CountingOrigin
from support.procs import run_script
from support.proxies import HTTPProxyServer, OriginServer, Socks5ProxyServer
from support.sockets import expected, kernel_defaults

import keepalive_patch
from keepalive_patch.integrations import urllib3 as integration

urllib3 = pytest.importorskip("urllib3")

MAJOR = int(urllib3.__version__.split(".")[0])
TCP = socket.IPPROTO_TCP
NODELAY = (TCP, socket.TCP_NODELAY, 1)
KEEPALIVE_ON = (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
KEEPALIVE_OFF = (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
NONE = "CERT_NONE"
#: The CONNECT tests talk TLS to a self-signed origin; urllib3 warns about that, rightly.
insecure = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture
def origin() -> Iterator[CountingOrigin]:
    with CountingOrigin() as server:
        yield server


@pytest.fixture
def tls_origin(server_tls: ssl.SSLContext) -> Iterator[OriginServer]:
    with OriginServer(tls=server_tls) as server:
        yield server


def get(manager: Any, url: str) -> None:
    """One GET that leaves its connection open in the pool."""
    response = manager.request("GET", url, retries=False)
    assert response.status == 200
    assert response.data == b"ok"


def body_of(connection: Any) -> bytes:
    """GET / on a bare connection (urllib3 2.x answers with its own preloaded response)."""
    connection.request("GET", "/")
    response = connection.getresponse()
    body = getattr(response, "data", None)
    return bytes(response.read() if body is None else body)


def theirs(**changes: int) -> dict[str, int]:
    """A socket with only the caller's keepalive policy: the kernel's defaults plus theirs."""
    return {**kernel_defaults(), **changes}


# -- every kind of connection ------------------------------------------------------------------


def test_pool_manager_connection_gets_keepalive(origin: CountingOrigin) -> None:
    with urllib3.PoolManager() as manager:
        get(manager, origin.url)
        assert options_of(origin.peers[-1]) == expected()
        assert nodelay_of(origin.peers[-1]) == 1, "urllib3's own default stays"


def test_connection_pool_and_top_level_request_get_keepalive(origin: CountingOrigin) -> None:
    with urllib3.HTTPConnectionPool(origin.host, origin.port) as pool:
        get(pool, "/")
        assert options_of(origin.peers[-1]) == expected()
    if MAJOR >= 2:  # urllib3.request(), with its module-level pool manager
        assert urllib3.request("GET", origin.url).status == 200
        assert len(origin.peers) == 2


@insecure
def test_https_connection_gets_keepalive(tls_origin: OriginServer) -> None:
    with urllib3.PoolManager(cert_reqs=NONE) as manager:
        get(manager, tls_origin.url)
        assert options_of(tls_origin.peers[-1]) == expected()
        assert nodelay_of(tls_origin.peers[-1]) == 1


def test_proxy_forwarding_client_to_proxy_socket(origin: CountingOrigin) -> None:
    with HTTPProxyServer() as proxy, urllib3.ProxyManager(proxy.url) as manager:
        get(manager, origin.url)
        assert proxy.requests[-1].startswith(b"GET http://127.0.0.1:")  # forwarded, no tunnel
        assert options_of(proxy.peers[-1]) == expected()
        # urllib3 gives proxy connections no options of its own ([]: Nagle stays on).
        assert nodelay_of(proxy.peers[-1]) == 0


@insecure
def test_proxy_connect_tunnel_client_to_proxy_socket(tls_origin: OriginServer) -> None:
    with HTTPProxyServer() as proxy, urllib3.ProxyManager(proxy.url, cert_reqs=NONE) as manager:
        get(manager, tls_origin.url)
        assert proxy.requests[-1].startswith(b"CONNECT 127.0.0.1:")
        assert options_of(proxy.peers[-1]) == expected()


def socks_manager(proxy: Socks5ProxyServer, **kwargs: Any) -> Any:
    pytest.importorskip("socks", reason="urllib3.contrib.socks needs PySocks")
    from urllib3.contrib.socks import SOCKSProxyManager

    return SOCKSProxyManager(proxy.url, **kwargs)


def test_socks_proxy_client_to_proxy_socket(origin: CountingOrigin) -> None:
    with Socks5ProxyServer() as proxy, socks_manager(proxy) as manager:
        get(manager, origin.url)
        assert proxy.targets == [origin.address]
        assert options_of(proxy.peers[-1]) == expected()
        assert nodelay_of(proxy.peers[-1]) == 1


def test_apply_overrides_reach_the_socket(origin: CountingOrigin) -> None:
    keepalive_patch.apply(idle=7, interval=2, count=4, user_timeout=9_000)
    with urllib3.PoolManager() as manager:
        get(manager, origin.url)
        assert options_of(origin.peers[-1]) == {
            "SO_KEEPALIVE": 1,
            "TCP_KEEPIDLE": 7,
            "TCP_KEEPINTVL": 2,
            "TCP_KEEPCNT": 4,
            "TCP_USER_TIMEOUT": 9_000,
        }


def test_unpatched_socket_has_no_keepalive(origin: CountingOrigin) -> None:
    """The control: the same request without the shim gets the kernel defaults."""
    keepalive_patch.remove()
    with urllib3.PoolManager() as manager:
        get(manager, origin.url)
        assert options_of(origin.peers[-1]) == kernel_defaults()
        assert nodelay_of(origin.peers[-1]) == 1


# -- the caller wins -------------------------------------------------------------------------

CALLER_CASES = {
    "absent": ({}, expected(), 1),
    "empty list": ({"socket_options": []}, expected(), 0),
    "explicit None": ({"socket_options": None}, theirs(), 0),
    "unrelated only": ({"socket_options": [NODELAY]}, expected(), 1),
    "tuple": ({"socket_options": (NODELAY,)}, expected(), 1),
    "keepalive off": ({"socket_options": [NODELAY, KEEPALIVE_OFF]}, theirs(), 1),
    "bare keepalive": ({"socket_options": [KEEPALIVE_ON]}, expected(), 0),
    "own timings": (
        {"socket_options": [KEEPALIVE_ON, (TCP, socket.TCP_KEEPIDLE, 77)]},
        theirs(SO_KEEPALIVE=1, TCP_KEEPIDLE=77),
        0,
    ),
    "own timing alone": (  # a timing does nothing with keepalive off: they asked for it on
        {"socket_options": [(TCP, socket.TCP_KEEPIDLE, 77)]},
        theirs(SO_KEEPALIVE=1, TCP_KEEPIDLE=77),
        0,
    ),
    "own timing, keepalive off": (
        {"socket_options": [(TCP, socket.TCP_KEEPIDLE, 77), KEEPALIVE_OFF]},
        theirs(TCP_KEEPIDLE=77),
        0,
    ),
}


@pytest.mark.parametrize(
    ("kwargs", "want", "nodelay"), list(CALLER_CASES.values()), ids=list(CALLER_CASES)
)
def test_caller_socket_options_win(
    origin: CountingOrigin, kwargs: dict[str, Any], want: dict[str, int], nodelay: int
) -> None:
    with urllib3.PoolManager(**kwargs) as manager:
        get(manager, origin.url)
        assert options_of(origin.peers[-1]) == want
        assert nodelay_of(origin.peers[-1]) == nodelay


def test_a_list_changed_in_place_is_merged_anew(origin: CountingOrigin) -> None:
    """Merged lists are remembered by their contents, never by identity."""
    mine = [KEEPALIVE_ON]
    with urllib3.PoolManager(socket_options=mine) as manager:
        get(manager, origin.url)
        assert options_of(origin.peers[-1]) == expected()
        mine.append((TCP, socket.TCP_KEEPIDLE, 77))
        manager.clear()  # the next request needs a new connection
        get(manager, origin.url)
        assert len(origin.peers) == 2
        assert options_of(origin.peers[-1]) == theirs(SO_KEEPALIVE=1, TCP_KEEPIDLE=77)
    assert mine == [KEEPALIVE_ON, (TCP, socket.TCP_KEEPIDLE, 77)], "the caller's list untouched"


def test_unhashable_options_are_merged_too(origin: CountingOrigin) -> None:
    """An option given as a list (PoolManager cannot key its pools by such, a pool can)."""
    with urllib3.HTTPConnectionPool(origin.host, origin.port, socket_options=[[*NODELAY]]) as pool:
        get(pool, "/")
        assert options_of(origin.peers[-1]) == expected()
        assert nodelay_of(origin.peers[-1]) == 1


@pytest.mark.parametrize("kind", ["forwarding proxy", "socks proxy"])
def test_explicit_none_through_a_proxy_is_left_alone(origin: CountingOrigin, kind: str) -> None:
    proxy: Any = HTTPProxyServer() if kind == "forwarding proxy" else Socks5ProxyServer()
    with proxy:
        if kind == "forwarding proxy":
            manager = urllib3.ProxyManager(proxy.url, socket_options=None)
        else:
            manager = socks_manager(proxy, socket_options=None)
        with manager:
            get(manager, origin.url)
            assert options_of(proxy.peers[-1]) == theirs()


def test_user_timeout_is_added_unless_the_caller_set_it(origin: CountingOrigin) -> None:
    keepalive_patch.apply(user_timeout=5_000)
    own_timeout = [(TCP, socket.TCP_USER_TIMEOUT, 7_000)]
    with urllib3.PoolManager(socket_options=own_timeout) as manager:
        get(manager, origin.url)
        assert options_of(origin.peers[-1]) == expected(TCP_USER_TIMEOUT=7_000)


def test_generator_options_are_read_once(origin: CountingOrigin) -> None:
    """A caller's generator: read once, when the connection first connects (where urllib3 reads
    it), left in the attribute as given, and what it gave kept for a reconnect."""
    reads = []

    def mine() -> Iterator[tuple[int, int, int]]:
        reads.append(1)
        yield NODELAY

    given = mine()
    connection = urllib3.connection.HTTPConnection(origin.host, origin.port, socket_options=given)
    try:
        assert connection.socket_options is given
        assert reads == []
        assert body_of(connection) == b"ok"
        assert options_of(origin.peers[-1]) == expected()
        assert nodelay_of(origin.peers[-1]) == 1
        assert connection.socket_options is given
        connection.close()
        assert body_of(connection) == b"ok"  # a reconnect: the same options, nothing read again
        assert len(origin.peers) == 2
        assert options_of(origin.peers[-1]) == expected()
        assert nodelay_of(origin.peers[-1]) == 1
        assert len(reads) == 1
    finally:
        connection.close()


def test_generator_switching_keepalive_off_holds_on_reconnect(origin: CountingOrigin) -> None:
    connection = urllib3.connection.HTTPConnection(
        origin.host, origin.port, socket_options=iter([KEEPALIVE_OFF])
    )
    try:
        for connections in (1, 2):
            assert body_of(connection) == b"ok"
            assert len(origin.peers) == connections
            assert options_of(origin.peers[-1]) == theirs()
            connection.close()
    finally:
        connection.close()


def test_pool_manager_reads_an_iterator_itself(origin: CountingOrigin) -> None:
    """``PoolManager`` reads ``socket_options`` to key its pools before any connection exists:
    its connections get an exhausted iterator, so no option of the caller's -- unpatched none at
    all, patched ours (README says "read once" for ``HTTPConnectionPool`` / ``HTTPConnection``
    only)."""
    for patched in (True, False):
        if not patched:
            keepalive_patch.remove()
        with urllib3.PoolManager(socket_options=iter([KEEPALIVE_OFF, NODELAY])) as manager:
            get(manager, origin.url)
            assert options_of(origin.peers[-1]) == (expected() if patched else theirs())
            assert nodelay_of(origin.peers[-1]) == 0
    with urllib3.HTTPConnectionPool(
        origin.host, origin.port, socket_options=iter([KEEPALIVE_OFF, NODELAY])
    ) as pool:  # a pool hands the iterator to its connection: the caller's options are set
        keepalive_patch.apply()
        get(pool, "/")
        assert options_of(origin.peers[-1]) == theirs()
        assert nodelay_of(origin.peers[-1]) == 1


def test_generator_error_reaches_the_caller(origin: CountingOrigin) -> None:
    """The caller's own exception, as without the shim (there it surfaces on connect)."""

    def broken() -> Iterator[tuple[int, int, int]]:
        raise LookupError("the caller's own")
        yield NODELAY  # pragma: no cover

    def attempt() -> None:
        with urllib3.PoolManager(socket_options=broken()) as manager:
            manager.request("GET", origin.url, retries=False)

    with pytest.raises(LookupError, match="the caller's own"):
        attempt()
    keepalive_patch.remove()
    with pytest.raises(LookupError, match="the caller's own"):
        attempt()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_generator_error_reaches_the_caller_from_connect(origin: CountingOrigin) -> None:
    """Given to a connection, the generator is read at the first connect, patched or not
    (unpatched, urllib3 leaves the socket it made for it unclosed: the warning filtered)."""

    def broken() -> Iterator[tuple[int, int, int]]:
        raise LookupError("the caller's own")
        yield NODELAY  # pragma: no cover

    for patched in (True, False):
        if not patched:
            keepalive_patch.remove()
        connection = urllib3.connection.HTTPConnection(
            origin.host, origin.port, socket_options=broken()
        )
        with pytest.raises(LookupError, match="the caller's own"):
            connection.connect()
        connection.close()
    assert origin.peers == []


def test_options_assigned_after_construction_are_theirs(origin: CountingOrigin) -> None:
    connection = urllib3.connection.HTTPConnection(origin.host, origin.port)
    connection.socket_options = [KEEPALIVE_OFF]
    try:
        assert body_of(connection) == b"ok"
        assert options_of(origin.peers[-1]) == theirs()
    finally:
        connection.close()


# -- what a caller reads back ---------------------------------------------------------------------

READ_BACK_CASES = {
    "absent": ({}, [NODELAY], expected(), 1),
    "empty list": ({"socket_options": []}, [], expected(), 0),
    "explicit None": ({"socket_options": None}, None, theirs(), 0),
    "keepalive off": ({"socket_options": [KEEPALIVE_OFF]}, [KEEPALIVE_OFF], theirs(), 0),
    "tuple": ({"socket_options": (NODELAY,)}, (NODELAY,), expected(), 1),
}


@pytest.mark.parametrize(
    ("kwargs", "stored", "want", "nodelay"),
    list(READ_BACK_CASES.values()),
    ids=list(READ_BACK_CASES),
)
def test_socket_options_read_back_as_urllib3_set_them(
    origin: CountingOrigin, kwargs: dict[str, Any], stored: Any, want: dict[str, int], nodelay: int
) -> None:
    """urllib3's own ``test_HTTPSConnection_default_socket_options``: the attribute is what
    urllib3 stored, before and after connecting, while the live socket carries the options."""
    connection = urllib3.connection.HTTPConnection(origin.host, origin.port, **kwargs)
    try:
        assert connection.socket_options == stored
        assert type(connection.socket_options) is type(stored)
        assert body_of(connection) == b"ok"
        assert options_of(origin.peers[-1]) == want
        assert nodelay_of(origin.peers[-1]) == nodelay
        assert connection.socket_options == stored
        assert type(connection.socket_options) is type(stored)
    finally:
        connection.close()


@insecure
def test_https_and_pool_connections_read_back_as_urllib3_set_them(
    tls_origin: OriginServer,
) -> None:
    with urllib3.HTTPSConnectionPool(tls_origin.host, tls_origin.port, cert_reqs=NONE) as pool:
        connection = pool._get_conn()
        assert connection.socket_options == [NODELAY]
        pool._put_conn(connection)
        get(pool, "/")
        assert options_of(tls_origin.peers[-1]) == expected()
        connection = pool._get_conn()
        assert connection.sock is not None, "the connection that served the GET"
        assert connection.socket_options == [NODELAY]
        pool._put_conn(connection)
    assert urllib3.connection.HTTPSConnection("example.invalid").socket_options == [NODELAY]


def test_http2_connection_reads_back_as_urllib3_set_it() -> None:
    """urllib3's own ``test_http2_connection::test_default_socket_options``."""
    http2 = pytest.importorskip("urllib3.http2.connection", reason="urllib3 >= 2.3 with h2")
    assert http2.HTTP2Connection("example.invalid").socket_options == [NODELAY]


def test_socks_connection_reads_back_as_urllib3_set_it(origin: CountingOrigin) -> None:
    with Socks5ProxyServer() as proxy, socks_manager(proxy) as manager:
        get(manager, origin.url)
        assert options_of(proxy.peers[-1]) == expected()
        pool = manager.connection_from_url(origin.url)
        connection = pool._get_conn()
        assert connection.sock is not None, "the connection that served the GET"
        assert connection.socket_options == [NODELAY]
        pool._put_conn(connection)


# -- subclasses of HTTPConnection --------------------------------------------------------------


def via(connection_class: type, origin: CountingOrigin) -> dict[str, int]:
    """GET through a pool whose connections are ``connection_class``; the live options."""

    class Pool(urllib3.HTTPConnectionPool):
        ConnectionCls = connection_class

    with Pool(origin.host, origin.port) as pool:
        get(pool, "/")
        return options_of(origin.peers[-1])


def test_subclass_without_init_is_patched(origin: CountingOrigin) -> None:
    class Plain(urllib3.connection.HTTPConnection):
        pass

    assert via(Plain, origin) == expected()


def test_subclass_passing_its_own_options_to_super(origin: CountingOrigin) -> None:
    class Own(urllib3.connection.HTTPConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["socket_options"] = [KEEPALIVE_ON]
            super().__init__(*args, **kwargs)

    class Off(urllib3.connection.HTTPConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "socket_options": None})

    assert via(Own, origin) == expected()
    assert via(Off, origin) == theirs()


def test_subclass_default_socket_options_as_urllib3_reads_them(origin: CountingOrigin) -> None:
    """urllib3 1.26 falls back to the instance's ``default_socket_options``; 2.x binds the
    base class's list in its signature.  Whichever list urllib3 stores, the policy applies."""

    class Quiet(urllib3.connection.HTTPConnection):
        default_socket_options: ClassVar[list[tuple[int, int, int]]] = [KEEPALIVE_OFF]

    stored = Quiet(origin.host, origin.port).socket_options  # the hook leaves it as urllib3 set it
    assert via(Quiet, origin) == (theirs() if stored == [KEEPALIVE_OFF] else expected())


def test_subclass_making_its_own_socket_from_socket_options(origin: CountingOrigin) -> None:
    """A subclass that replaces ``_new_conn`` (address pinning, SSRF guards) but passes
    ``self.socket_options`` on as urllib3 does gets the options too."""

    class Pinned(urllib3.connection.HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return urllib3.util.connection.create_connection(
                (origin.host, origin.port), socket_options=self.socket_options
            )

    assert via(Pinned, origin) == expected()


@insecure
def test_https_subclass_is_patched(tls_origin: OriginServer) -> None:
    class Tls(urllib3.connection.HTTPSConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)

    class Pool(urllib3.HTTPSConnectionPool):
        ConnectionCls = Tls

    with Pool(tls_origin.host, tls_origin.port, cert_reqs=NONE) as pool:
        get(pool, "/")
        assert options_of(tls_origin.peers[-1]) == expected()


# -- containment, removal, idempotence -----------------------------------------------------------


def test_internal_failure_leaves_the_connection_as_urllib3_made_it(
    origin: CountingOrigin, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    break_sockopts(monkeypatch, "in_force")
    with caplog.at_level(logging.WARNING, logger="keepalive_patch"):
        first = urllib3.connection.HTTPConnection("127.0.0.1", 1)
        second = urllib3.connection.HTTPConnection("127.0.0.1", 1, socket_options=[NODELAY])
        with urllib3.PoolManager() as manager:
            get(manager, origin.url)
            assert options_of(origin.peers[-1]) == kernel_defaults()
    assert first.socket_options == urllib3.connection.HTTPConnection.default_socket_options
    assert second.socket_options == [NODELAY]
    failures = [r for r in caplog.records if "failed to add keepalive" in r.getMessage()]
    assert len(failures) == 1, "logged once, not per connection"


def test_internal_failure_keeps_what_a_generator_gave(
    origin: CountingOrigin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generator is spent by then: the connection still gets what it gave."""
    connection = urllib3.connection.HTTPConnection(
        origin.host, origin.port, socket_options=iter([KEEPALIVE_OFF, NODELAY])
    )
    break_sockopts(monkeypatch, "in_force")
    try:
        assert body_of(connection) == b"ok"
        assert options_of(origin.peers[-1]) == theirs()
        assert nodelay_of(origin.peers[-1]) == 1
    finally:
        connection.close()


def test_probe_drops_rejected_option_end_to_end(
    origin: CountingOrigin, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An option this kernel refuses (TCP_KEEPIDLE=0 is EINVAL on Linux) is dropped and logged,
    never turned into a failed connect."""
    offer_extra_option(monkeypatch, (TCP, socket.TCP_KEEPIDLE, 0))
    with caplog.at_level(logging.WARNING, logger="keepalive_patch"):
        keepalive_patch.apply()
        with urllib3.PoolManager() as manager:
            get(manager, origin.url)
            assert options_of(origin.peers[-1])["TCP_KEEPIDLE"] == 30
    assert any("TCP_KEEPIDLE=0" in r.getMessage() for r in caplog.records)


WRAPPED = [urllib3.connection.HTTPConnection, urllib3.connection.HTTPSConnection]


def test_remove_restores_the_exact_original(origin: CountingOrigin) -> None:
    originals = {cls: original_of(integration, cls, "connect") for cls in WRAPPED}
    keepalive_patch.remove()
    for cls, original in originals.items():
        assert cls.__dict__["connect"] is original
        assert inspect.isfunction(original)
    assert wrapped_classes(integration) == []
    keepalive_patch.apply()
    with urllib3.PoolManager() as manager:
        get(manager, origin.url)
        assert options_of(origin.peers[-1]) == expected()


def test_patch_is_idempotent() -> None:
    integration.patch(urllib3.connection)
    keepalive_patch.apply()
    for cls in WRAPPED:
        connect = cls.__dict__["connect"]
        assert inspect.isfunction(connect.__wrapped__), "exactly one layer of wrapping"
    assert wrapped_classes(integration) == WRAPPED


def test_skip_leaves_urllib3_alone(origin: CountingOrigin) -> None:
    """Only the library's name skips it (a module name is unknown: ``live/test_skip.py``)."""
    keepalive_patch.apply(skip=["urllib3"])
    assert wrapped_classes(integration) == []
    with urllib3.PoolManager() as manager:
        get(manager, origin.url)
        assert options_of(origin.peers[-1]) == kernel_defaults()


def test_only_the_two_connects_are_wrapped() -> None:
    """Every other connection class inherits one of them or reaches it through ``super()``:
    wrapping more would merge twice; ``__init__`` is left alone."""
    assert wrapped_classes(integration) == WRAPPED
    for cls in WRAPPED:
        assert not hasattr(cls.__dict__["__init__"], "__wrapped__")


def test_loaded_lazily_after_urllib3() -> None:
    """Importing the package loads no urllib3 integration; importing urllib3 does, and wrapt
    waits for the first connect."""
    run_script("urllib3_lazy.py")
