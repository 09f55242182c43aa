"""botocore: keepalive options on its urllib3 sockets, its own socket options merged by the policy,
its own retry policy untouched.

botocore hands urllib3 a list of its own: ``[]`` from a bare ``URLLib3Session``, ``[TCP_NODELAY]``
from a client, plus ``SO_KEEPALIVE=1`` with ``Config(tcp_keepalive=True)``.  Clients talk to a
loopback origin through ``endpoint_url`` with made-up credentials; nothing leaves the machine.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from support.client_sockets import nodelay_of, options_of
from support.connects import watch_connects
from support.origins import CountingOrigin, response
from support.proxies import HTTPProxyServer
from support.sockets import expected, kernel_defaults

import keepalive_patch

botocore = pytest.importorskip("botocore")
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.httpsession import URLLib3Session  # noqa: E402
from botocore.session import get_session  # noqa: E402

TCP = socket.IPPROTO_TCP
KEEPALIVE_ON = (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
KEEPALIVE_OFF = (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
#: What DynamoDB's ListTables answers: a JSON body botocore parses.
TABLES = response(
    body=b'{"TableNames": []}', headers=[("Content-Type", "application/x-amz-json-1.0")]
)


@pytest.fixture(autouse=True)
def _no_aws_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No configuration or credentials of this machine's user reach the clients."""
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "absent"))
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def origin() -> Iterator[CountingOrigin]:
    with CountingOrigin([TABLES]) as server:
        yield server


def send(session: Any, url: str) -> None:
    answer = session.send(AWSRequest(method="GET", url=url).prepare())
    assert answer.status_code == 200


def theirs(**changes: int) -> dict[str, int]:
    return {**kernel_defaults(), **changes}


def client(url: str, **config: Any) -> Any:
    return get_session().create_client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
        config=Config(**config),
    )


def test_urllib3_session_gets_keepalive(origin: CountingOrigin) -> None:
    session = URLLib3Session()
    try:
        send(session, origin.url)
        assert options_of(origin.peers[-1]) == expected()
        assert nodelay_of(origin.peers[-1]) == 0, "botocore's own [] : no TCP_NODELAY"
    finally:
        session.close()


@pytest.mark.parametrize("tcp_keepalive", [None, True, False])
def test_client_gets_keepalive(origin: CountingOrigin, tcp_keepalive: bool | None) -> None:
    """botocore's ``[TCP_NODELAY]``, with ``SO_KEEPALIVE=1`` under ``tcp_keepalive=True``: either
    way the keepalive policy gives it our timings, and its TCP_NODELAY stays."""
    made = client(origin.url, tcp_keepalive=tcp_keepalive)
    try:
        assert made.list_tables()["TableNames"] == []
        assert origin.request_lines() == [b"POST / HTTP/1.1"]
        assert options_of(origin.peers[-1]) == expected()
        assert nodelay_of(origin.peers[-1]) == 1
    finally:
        made.close()


@pytest.mark.parametrize(
    ("options", "want"),
    [
        ([KEEPALIVE_OFF], theirs()),
        ([KEEPALIVE_ON, (TCP, socket.TCP_KEEPIDLE, 77)], theirs(SO_KEEPALIVE=1, TCP_KEEPIDLE=77)),
        ([KEEPALIVE_ON], expected()),
    ],
    ids=["keepalive off", "own timings", "bare keepalive"],
)
def test_caller_socket_options_win(
    origin: CountingOrigin, options: list[tuple[int, int, int]], want: dict[str, int]
) -> None:
    session = URLLib3Session(socket_options=options)
    try:
        send(session, origin.url)
        assert options_of(origin.peers[-1]) == want
    finally:
        session.close()


def test_proxy_socket_gets_keepalive(origin: CountingOrigin) -> None:
    with HTTPProxyServer() as proxy:
        session = URLLib3Session(proxies={"http": proxy.url})
        try:
            send(session, origin.url)
            assert proxy.requests[-1].startswith(b"GET http://")
            assert options_of(proxy.peers[-1]) == expected()
        finally:
            session.close()


def test_unpatched_control(origin: CountingOrigin) -> None:
    keepalive_patch.remove()
    made = client(origin.url)
    try:
        made.list_tables()
        assert options_of(origin.peers[-1]) == kernel_defaults()
    finally:
        made.close()


def count_connects(attempt: Any) -> tuple[type[BaseException], int]:
    """Call ``attempt(url)`` against a port that never listens: the error and the connects."""
    refusing = CountingOrigin(listen=False)
    with refusing, watch_connects(refusing.address) as connects, pytest.raises(Exception) as caught:
        attempt(refusing.url)
    return type(caught.value), connects.count


def test_botocore_keeps_its_own_retry_policy() -> None:
    """botocore asks urllib3 for no retries and retries itself (``standard`` mode counts its
    attempts its own way); the shim adds none of either."""

    def bare(url: str) -> None:
        send(URLLib3Session(), url)

    def standard_two_attempts(url: str) -> None:
        client(url, retries={"mode": "standard", "max_attempts": 2}).list_tables()

    patched = [count_connects(bare), count_connects(standard_two_attempts)]
    keepalive_patch.remove()
    unpatched = [count_connects(bare), count_connects(standard_two_attempts)]
    assert patched == unpatched, "the same connects, the same error, as without the shim"
    assert patched[0][1] == 1, "URLLib3Session: urllib3 told not to retry"
    assert patched[0][0] is botocore.exceptions.EndpointConnectionError
