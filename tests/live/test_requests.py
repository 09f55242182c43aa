"""requests: keepalive on its live sockets (through urllib3), and one retry of a failed connect.

The retry is judged by real sockets: ``watch_connects`` counts the process's connects to the
server's address (the ``socket.connect`` audit event, raised by the socket module itself), the
server counts the connections it accepted and every request it received.  "Refused, then
accepted" is a port that starts listening just before the second connect; "timed out, then
accepted" is a listener whose accept queue is full until then (Linux).
"""

from __future__ import annotations

import logging
import pickle
import ssl
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from support.client_sockets import options_of
from support.connects import Watcher, full_backlog, watch_connects
from support.faults import break_sockopts, raised, with_and_without_shim
from support.libs import original_of
from support.origins import CLOSE, OK, SILENT, CountingOrigin, response
from support.proxies import (
    HTTPProxyServer,
    LoopbackServer,
    OriginServer,
    Socks5ProxyServer,
    make_server_tls,
)
from support.sockets import expected, kernel_defaults

import keepalive_patch
from keepalive_patch.integrations import requests as integration

requests = pytest.importorskip("requests")
urllib3 = pytest.importorskip("urllib3")
Retry = requests.adapters.Retry
HTTPAdapter = requests.adapters.HTTPAdapter

#: requests' own default, as it builds it without ``max_retries``.
REQUESTS_DEFAULT = repr(Retry(0, read=False))
OURS = "Retry(total=1, connect=1, read=False, redirect=0, status=0)"


@pytest.fixture
def origin() -> Iterator[CountingOrigin]:
    with CountingOrigin() as server:
        yield server


def listen_on_second(server: LoopbackServer) -> Callable[[int], None]:
    """For ``watch_connects``: the first connect is refused, the second finds a listener."""

    def before(attempt: int) -> None:
        if attempt == 2:
            server.start_listening()

    return before


def session(**adapter_kwargs: Any) -> Any:
    """A ``Session``; with arguments, its adapters are built from them (as a caller would)."""
    made = requests.Session()
    if adapter_kwargs:
        for prefix in ("http://", "https://"):
            made.mount(prefix, HTTPAdapter(**adapter_kwargs))
    return made


# -- keepalive options, through urllib3 ---------------------------------------------------------


def test_session_socket_gets_keepalive(origin: CountingOrigin) -> None:
    with requests.Session() as s:
        assert s.get(origin.url).text == "ok"
        assert options_of(origin.peers[-1]) == expected()


def test_top_level_get_socket_gets_keepalive(origin: CountingOrigin) -> None:
    with requests.get(origin.url, stream=True) as answer:  # stream: the connection stays open
        assert answer.status_code == 200
        assert options_of(origin.peers[-1]) == expected()


def test_http_proxy_socket_gets_keepalive(origin: CountingOrigin) -> None:
    with HTTPProxyServer() as proxy, requests.Session() as s:
        assert s.get(origin.url, proxies={"http": proxy.url}).text == "ok"
        assert proxy.requests[-1].startswith(b"GET http://")
        assert options_of(proxy.peers[-1]) == expected()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_connect_tunnel_socket_gets_keepalive(tmp_path: Any) -> None:
    try:
        tls: ssl.SSLContext = make_server_tls(tmp_path)
    except FileNotFoundError:
        pytest.skip("openssl is not installed: no certificate for the TLS origin")
    with OriginServer(tls=tls) as tls_origin, HTTPProxyServer() as proxy, requests.Session() as s:
        answer = s.get(tls_origin.url, proxies={"https": proxy.url}, verify=False)
        assert answer.text == "ok"
        assert proxy.requests[-1].startswith(b"CONNECT ")
        assert options_of(proxy.peers[-1]) == expected()


def test_socks_proxy_socket_gets_keepalive(origin: CountingOrigin) -> None:
    pytest.importorskip("socks", reason="requests' SOCKS support needs PySocks")
    with Socks5ProxyServer() as proxy, requests.Session() as s:
        assert s.get(origin.url, proxies={"http": proxy.url}).text == "ok"
        assert proxy.targets == [origin.address]
        assert options_of(proxy.peers[-1]) == expected()


def test_unpatched_session_socket_has_no_keepalive(origin: CountingOrigin) -> None:
    keepalive_patch.remove()
    with requests.Session() as s:
        assert s.get(origin.url).text == "ok"
        assert options_of(origin.peers[-1]) == kernel_defaults()
        assert repr(s.get_adapter(origin.url).max_retries) == REQUESTS_DEFAULT


# -- the connect retry ---------------------------------------------------------------------------


def test_adapter_without_max_retries_gets_one_connect_retry() -> None:
    assert repr(HTTPAdapter().max_retries) == OURS
    assert repr(HTTPAdapter(5, 5).max_retries) == OURS, "positional, up to max_retries"
    assert repr(requests.Session().get_adapter("https://x").max_retries) == OURS
    retry = HTTPAdapter().max_retries
    assert retry.respect_retry_after_header is False
    assert retry.other == 0


def test_refused_connect_is_retried_and_nothing_is_sent_twice() -> None:
    with CountingOrigin(listen=False) as origin:
        watching = watch_connects(origin.address, listen_on_second(origin))
        with watching as connects, requests.Session() as s:
            answer = s.post(origin.url, data=b"the body")
        assert answer.text == "ok"
        assert connects.count == 2
        assert len(origin.peers) == 1, "one connection accepted"
        [request] = origin.requests
        assert request.startswith(b"POST / ") and request.endswith(b"\r\n\r\nthe body")


def test_timed_out_connect_is_retried() -> None:
    """The first SYN is dropped (full accept queue): its connect times out after 0.5 s; the
    queue is emptied before the second connect, which gets through."""
    with CountingOrigin(listen=False, backlog=0) as origin, full_backlog(origin.listener):

        def before(attempt: int) -> None:
            if attempt == 2:
                parked, _ = origin.listener.accept()  # frees the one slot, now
                parked.close()
                origin.start_listening()

        with watch_connects(origin.address, before) as connects, requests.Session() as s:
            started = time.monotonic()
            answer = s.get(origin.url, timeout=(0.5, 10))
            elapsed = time.monotonic() - started
        assert answer.text == "ok"
        assert connects.count == 2
        assert elapsed >= 0.5, "the first connect waited out its timeout"
        assert len(origin.peers) == 1
        assert len(origin.requests) == 1


def refused_twice(**adapter_kwargs: Any) -> tuple[BaseException, Watcher]:
    """GET from a port that never listens; the exception and the connects made."""
    origin = CountingOrigin(listen=False)
    with origin, watch_connects(origin.address) as connects, session(**adapter_kwargs) as s:
        error = raised(lambda: s.get(origin.url))
    return error, connects


def test_connect_failing_twice_raises_what_requests_raises_today() -> None:
    (error, connects), (unpatched, unpatched_connects) = with_and_without_shim(refused_twice)
    assert connects.count == 2
    assert unpatched_connects.count == 1
    assert type(error) is type(unpatched) is requests.exceptions.ConnectionError
    assert "Max retries exceeded" in str(error)


def test_connect_timing_out_twice_raises_connect_timeout_as_today() -> None:
    def attempt() -> tuple[BaseException, int]:
        with CountingOrigin(listen=False, backlog=0) as origin, full_backlog(origin.listener):
            with watch_connects(origin.address) as connects, requests.Session() as s:
                error = raised(lambda: s.get(origin.url, timeout=(0.3, 5)))
            assert origin.requests == []
            return error, connects.count

    (error, count), (unpatched, unpatched_count) = with_and_without_shim(attempt)
    assert (count, unpatched_count) == (2, 1)
    assert type(error) is type(unpatched) is requests.exceptions.ConnectTimeout


@pytest.mark.parametrize("kind", ["http", "socks5"])
def test_refused_connect_to_a_proxy_is_retried(origin: CountingOrigin, kind: str) -> None:
    if kind == "socks5":
        pytest.importorskip("socks", reason="requests' SOCKS support needs PySocks")
    proxy: Any = HTTPProxyServer(listen=False) if kind == "http" else Socks5ProxyServer(False)
    watching = watch_connects(proxy.address, listen_on_second(proxy))
    with proxy, watching as connects, requests.Session() as s:
        assert s.get(origin.url, proxies={"http": proxy.url}).text == "ok"
    assert connects.count == 2
    assert len(proxy.peers) == 1
    assert len(origin.requests) == 1


def test_proxy_refusing_twice_raises_proxy_error_as_today() -> None:
    def attempt() -> tuple[BaseException, int]:
        proxy = HTTPProxyServer(listen=False)
        with proxy, watch_connects(proxy.address) as connects, requests.Session() as s:
            error = raised(lambda: s.get("http://127.0.0.1:9/", proxies={"http": proxy.url}))
        return error, connects.count

    (error, count), (unpatched, unpatched_count) = with_and_without_shim(attempt)
    assert (count, unpatched_count) == (2, 1)
    assert type(error) is type(unpatched) is requests.exceptions.ProxyError


# -- what is not retried: requests' behaviour stays ------------------------------------------


def one_request(answers: list[Any], **get_kwargs: Any) -> tuple[Any, int]:
    """GET from an origin answering ``answers``: the response (or exception) and how many
    requests the origin received."""
    with CountingOrigin(answers) as origin, requests.Session() as s:
        try:
            outcome: Any = s.get(origin.url, **get_kwargs)
        except Exception as exc:
            outcome = exc
        return outcome, len(origin.requests)


@pytest.mark.parametrize(
    ("answers", "get_kwargs", "raised"),
    [
        ([CLOSE], {}, "ConnectionError"),
        ([SILENT], {"timeout": (5, 0.3)}, "ReadTimeout"),
    ],
    ids=["closed without an answer", "read timeout"],
)
def test_read_errors_are_not_retried(
    answers: list[Any], get_kwargs: dict[str, Any], raised: str
) -> None:
    error, received = one_request(answers, **get_kwargs)
    keepalive_patch.remove()
    unpatched, unpatched_received = one_request(answers, **get_kwargs)
    assert received == unpatched_received == 1
    assert type(error) is type(unpatched) is getattr(requests.exceptions, raised)


@pytest.mark.parametrize("status", ["413 Content Too Large", "429 Too Many Requests", "503 Busy"])
def test_retry_after_answers_are_returned_not_retried(status: str) -> None:
    """urllib3 retries these (after sleeping Retry-After) whenever its total is above 0; ours
    has a total of 1, and must not start doing so."""
    busy = response(status, b"busy", [("Retry-After", "2")])
    started = time.monotonic()
    answer, received = one_request([busy, OK])
    assert answer.status_code == int(status.split()[0])
    assert received == 1
    assert time.monotonic() - started < 2


def test_the_retry_after_hazard_is_real() -> None:
    """The control for the test above: a plain ``Retry(total=1, connect=1, read=False)`` does
    sleep and send the request again."""
    busy = response("503 Busy", b"busy", [("Retry-After", "1")])
    with CountingOrigin([busy, OK]) as origin:
        with session(max_retries=Retry(total=1, connect=1, read=False)) as s:
            assert s.get(origin.url).status_code == 200
        assert len(origin.requests) == 2


def test_redirects_stay_requests_own() -> None:
    moved = response("302 Found", b"", [("Location", "/next")])
    answer, received = one_request([moved, OK])
    assert answer.status_code == 200
    assert [r.status_code for r in answer.history] == [302]
    assert received == 2
    answer, received = one_request([moved, OK], allow_redirects=False)
    assert answer.status_code == 302
    assert received == 1


# -- explicit max_retries and the setting ---------------------------------------------------------


@pytest.mark.parametrize(
    "adapter_kwargs",
    [{"max_retries": 0}, {"max_retries": Retry(0, read=False)}],
    ids=["keyword 0", "Retry(0)"],
)
def test_explicit_max_retries_is_never_touched(adapter_kwargs: dict[str, Any]) -> None:
    error, connects = refused_twice(**adapter_kwargs)
    assert connects.count == 1
    assert type(error) is requests.exceptions.ConnectionError


def test_explicit_max_retries_positional_and_own_counts() -> None:
    assert repr(HTTPAdapter(10, 10, 0).max_retries) == REQUESTS_DEFAULT
    mine = Retry(total=2, connect=2)
    assert HTTPAdapter(max_retries=mine).max_retries is mine
    assert repr(HTTPAdapter(max_retries=3).max_retries) == repr(Retry.from_int(3))
    _, connects = refused_twice(max_retries=2)
    assert connects.count == 3, "their own policy: two retries"


def test_retries_setting() -> None:
    keepalive_patch.apply(retries=0)
    assert repr(HTTPAdapter().max_retries) == REQUESTS_DEFAULT
    keepalive_patch.apply(retries=3)
    assert repr(HTTPAdapter().max_retries) == OURS.replace("1", "3")
    error, connects = refused_twice()
    assert connects.count == 4
    assert type(error) is requests.exceptions.ConnectionError


def test_subclasses_calling_super() -> None:
    class Quiet(HTTPAdapter):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)

    class Own(HTTPAdapter):
        def __init__(self) -> None:
            super().__init__(max_retries=5)

    assert repr(Quiet().max_retries) == OURS
    assert repr(Quiet(max_retries=0).max_retries) == REQUESTS_DEFAULT
    assert repr(Own().max_retries) == repr(Retry.from_int(5))


def test_bad_arguments_raise_requests_own_error() -> None:
    with pytest.raises(TypeError) as patched_error:
        HTTPAdapter(no_such_argument=1)
    keepalive_patch.remove()
    with pytest.raises(TypeError) as original_error:
        HTTPAdapter(no_such_argument=1)
    assert str(patched_error.value) == str(original_error.value)


def test_adapters_pickle_with_their_retry(origin: CountingOrigin) -> None:
    restored = pickle.loads(pickle.dumps(requests.Session()))
    assert repr(restored.get_adapter(origin.url).max_retries) == OURS
    assert restored.get(origin.url).text == "ok"


def test_internal_failure_builds_requests_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    break_sockopts(monkeypatch, "in_force")
    with caplog.at_level(logging.WARNING, logger="keepalive_patch"):
        first, second = HTTPAdapter(), HTTPAdapter(max_retries=2)
        HTTPAdapter()
    assert repr(first.max_retries) == REQUESTS_DEFAULT
    assert repr(second.max_retries) == repr(Retry.from_int(2))
    failures = [r for r in caplog.records if "failed to prepare" in r.getMessage()]
    assert len(failures) == 1, "logged once, not per adapter"


def test_remove_restores_the_exact_original() -> None:
    original = original_of(integration, HTTPAdapter)
    keepalive_patch.remove()
    assert HTTPAdapter.__dict__["__init__"] is original
    assert repr(HTTPAdapter().max_retries) == REQUESTS_DEFAULT


def test_skip_requests_keeps_keepalive_from_urllib3(origin: CountingOrigin) -> None:
    keepalive_patch.apply(skip=["requests"])
    with requests.Session() as s:
        assert repr(s.get_adapter(origin.url).max_retries) == REQUESTS_DEFAULT
        assert s.get(origin.url).text == "ok"
        assert options_of(origin.peers[-1]) == expected()


def test_nothing_is_logged_by_us_on_ordinary_use(
    origin: CountingOrigin, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="keepalive_patch"), requests.Session() as s:
        assert s.get(origin.url).text == "ok"
    assert not [r for r in caplog.records if r.name.startswith("keepalive_patch")]
