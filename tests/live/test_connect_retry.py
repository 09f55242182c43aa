"""The connect retry's costs, and where each library stops: the figures README's "What the
connect retry does" quotes.

- A connect that times out is waited out twice: a listener whose accept queue is full drops the
  SYNs, and ``watch_connects`` counts the attempts (the ``socket.connect`` audit event).
- A name lookup that fails is made twice: ``failing_lookups`` counts the lookups, and fails them,
  at the ``socket.getaddrinfo`` audit event, before the resolver is asked (no query leaves the
  machine).
- A failed TLS handshake (the client does not trust the server's certificate) is dialled again
  by httpx, not by requests: the loopback TLS server counts the connections that came to it.
- urllib3's ``WARNING Retrying (...)`` about our retry stays out of the application's logs (an
  application's own ``Retry`` still logs it); the ``keepalive_patch`` logger says it at DEBUG.

Elapsed times are checked only as "about twice": each attempt must wait out its timeout (a lower
bound), and the upper bounds only rule out one more attempt.
"""

from __future__ import annotations

import importlib
import io
import logging
import pickle
import ssl
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Callable

import pytest
from support.connects import failing_lookups, full_backlog, watch_connects
from support.faults import raised, with_and_without_shim
from support.origins import CountingOrigin
from support.proxies import OriginServer

import keepalive_patch

requests = pytest.importorskip("requests")

#: The connect timeout README's figures are for.
CONNECT_TIMEOUT = 1.0
#: A name in a reserved top-level domain (RFC 6761); its lookups never reach a resolver here.
NOWHERE = "keepalive-patch-retry.test"

pytestmark = pytest.mark.usefixtures("no_proxy_env")


#: When the last GET below was sent (after its client was built, which is not timed).
sent: list[float] = []


def requests_get(url: str) -> None:
    with requests.Session() as session:
        sent.append(time.monotonic())
        session.get(url, timeout=(CONNECT_TIMEOUT, 5))


def httpx_get(lib: ModuleType) -> Callable[[str], None]:
    def get(url: str) -> None:
        with lib.Client(timeout=lib.Timeout(5.0, connect=CONNECT_TIMEOUT)) as client:
            sent.append(time.monotonic())
            client.get(url)

    return get


@pytest.fixture(params=["requests", "httpx", "httpx2"])
def get(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """One GET with a 1 s connect timeout, by requests or by an httpx (skipped if absent)."""
    if request.param == "requests":
        return requests_get
    return httpx_get(pytest.importorskip(request.param))


# -- a connect timeout: waited out twice --------------------------------------------------------


def test_a_connect_timeout_is_waited_out_twice(get: Callable[[str], None]) -> None:
    """``timeout=(1.0, 5)`` to a silent listener: ``ConnectTimeout`` after 2.0 s, not 1.0 s."""

    def attempt() -> tuple[BaseException, int, float]:
        with CountingOrigin(listen=False, backlog=0) as origin, full_backlog(origin.listener):
            with watch_connects(origin.address) as connects:
                error = raised(lambda: get(origin.url))
                elapsed = time.monotonic() - sent[-1]
            assert origin.requests == []
            return error, connects.count, elapsed

    (error, count, elapsed), (unpatched, unpatched_count, unpatched_elapsed) = (
        with_and_without_shim(attempt)
    )
    assert (count, unpatched_count) == (2, 1)
    # Each attempt waits out the whole timeout: the lower bounds are the figures; the upper ones
    # only say "not one more attempt", with room for a loaded machine.
    assert 2 * CONNECT_TIMEOUT <= elapsed < 3 * CONNECT_TIMEOUT
    assert CONNECT_TIMEOUT <= unpatched_elapsed < 2 * CONNECT_TIMEOUT
    assert type(error) is type(unpatched)
    assert "Timeout" in type(error).__name__


# -- a failed name lookup: made twice -------------------------------------------------------------


def test_a_failed_name_lookup_is_made_twice(get: Callable[[str], None]) -> None:
    def attempt() -> tuple[BaseException, int]:
        with failing_lookups(NOWHERE) as lookups:
            error = raised(lambda: get(f"http://{NOWHERE}:80/"))
        return error, lookups.count

    (error, count), (unpatched, unpatched_count) = with_and_without_shim(attempt)
    assert (count, unpatched_count) == (2, 1)
    assert type(error) is type(unpatched)


# -- a failed TLS handshake: dialled again by httpx, not by requests -------------------------------


@pytest.fixture
def untrusted_tls_origin(server_tls: ssl.SSLContext) -> Iterator[OriginServer]:
    """A TLS origin whose self-signed certificate no client here trusts by default."""
    with OriginServer(tls=server_tls) as server:
        yield server


def handshakes(get: Callable[[str], None], server: OriginServer) -> tuple[BaseException, int]:
    """GET from ``server``: the exception and the connections (handshakes) it received."""
    before = len(server.peers)
    error = raised(lambda: get(server.url))
    assert server.requests == [], "no request ever got through"
    return error, len(server.peers) - before


@pytest.mark.parametrize("name", ["httpx", "httpx2"])
def test_httpx_dials_a_failed_tls_handshake_again(
    name: str, untrusted_tls_origin: OriginServer
) -> None:
    """httpcore >= 0.17 retries ``start_tls`` with the connect; 0.16 (httpx 0.23) retries the
    TCP connect alone, so there the failed handshake is not dialled again."""
    lib = pytest.importorskip(name)
    (error, count), (unpatched, unpatched_count) = with_and_without_shim(
        lambda: handshakes(httpx_get(lib), untrusted_tls_origin)
    )
    core = importlib.import_module("httpcore" if name == "httpx" else "httpcore2")
    retried = name == "httpx2" or not core.__version__.startswith("0.16.")
    assert (count, unpatched_count) == ((2 if retried else 1), 1)
    assert type(error) is type(unpatched) is lib.ConnectError
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)


def test_requests_does_not_dial_a_failed_tls_handshake_again(
    untrusted_tls_origin: OriginServer,
) -> None:
    """urllib3 counts an ``SSLError`` as an "other" error, and our retry sets ``other=0``."""
    (error, count), (unpatched, unpatched_count) = with_and_without_shim(
        lambda: handshakes(requests_get, untrusted_tls_origin)
    )
    assert (count, unpatched_count) == (1, 1)
    assert type(error) is type(unpatched) is requests.exceptions.SSLError


# -- urllib3's WARNING about our retry: not in the application's logs ------------------------------


class AppLogging:
    """An application's logging, as ``logging.basicConfig(level=WARNING)`` sets it up: a handler
    on the root logger, and nothing set on urllib3's loggers."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.root = logging.getLogger()

    def __enter__(self) -> AppLogging:
        self.level = self.root.level
        self.root.addHandler(self.handler)
        self.root.setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc: object) -> None:
        self.root.removeHandler(self.handler)
        self.root.setLevel(self.level)

    @property
    def text(self) -> str:
        return self.stream.getvalue()


def refused_then_served(session: Any) -> None:
    """GET from a port that refuses the first connect and accepts the second."""
    with CountingOrigin(listen=False) as origin:

        def before(attempt: int) -> None:
            if attempt == 2:
                origin.start_listening()

        with watch_connects(origin.address, before) as connects:
            assert session.get(origin.url).text == "ok"
        assert connects.count == 2


def test_our_retry_leaves_no_warning_in_the_apps_logs(caplog: pytest.LogCaptureFixture) -> None:
    with AppLogging() as app, requests.Session() as session:
        refused_then_served(session)
    assert app.text == "", "nothing at all: as unpatched, where nothing is retried"
    with caplog.at_level(logging.DEBUG, logger="keepalive_patch"), requests.Session() as session:
        refused_then_served(session)
    [said] = [r for r in caplog.records if r.name == "keepalive_patch"]
    assert said.levelno == logging.DEBUG
    assert said.getMessage().startswith("requests: connect retried: Retrying (Retry(total=0")


@pytest.mark.parametrize("patched", [True, False])
def test_the_apps_own_retry_still_logs_its_warning(patched: bool) -> None:
    if not patched:
        keepalive_patch.remove()
    retry = requests.adapters.Retry(total=1, connect=1, read=False)
    with AppLogging() as app, requests.Session() as session:
        session.mount("http://", requests.adapters.HTTPAdapter(max_retries=retry))
        refused_then_served(session)
    [line] = app.text.splitlines()
    assert line.startswith("WARNING urllib3.connectionpool Retrying (Retry(total=0, connect=0")


def test_an_unpickled_adapter_retries_and_urllib3_logs_it_as_anyones() -> None:
    """The mark is an object's identity, which ``pickle`` does not keep (README says so)."""
    adapter = pickle.loads(pickle.dumps(requests.adapters.HTTPAdapter()))
    with AppLogging() as app, requests.Session() as session:
        session.mount("http://", adapter)
        refused_then_served(session)
    [line] = app.text.splitlines()
    assert line.startswith("WARNING urllib3.connectionpool Retrying (Retry(total=0, connect=0")


def test_the_filter_goes_with_remove() -> None:
    pool_logger = logging.getLogger("urllib3.connectionpool")
    assert len(pool_logger.filters) == 1
    keepalive_patch.remove()
    assert pool_logger.filters == []
    keepalive_patch.apply()
    assert len(pool_logger.filters) == 1
