"""What an httpx transport being built hands to the proxy pool it builds.

httpx builds a transport's proxy pool inside ``HTTPTransport.__init__`` and hands ``SOCKSProxy``
neither ``socket_options`` nor ``retries``, and ``HTTPProxy`` no ``retries``.  So while a
transport with a proxy is built, its final arguments (ours included) are set here, and the proxy
pool built inside that call (``integrations/httpcore.py``) reads them: the caller's explicit
values and the "``uds`` means no socket options" rule then hold for the client->proxy socket too.
A ``ContextVar`` is per thread and per task, restored on the way out (nested builds included),
and nothing of it outlives the constructor.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any, Optional

_transport: contextvars.ContextVar[Optional[Mapping[str, Any]]] = contextvars.ContextVar(  # noqa: UP045 - 3.9
    "keepalive_patch_transport_arguments", default=None
)


def building() -> Mapping[str, Any] | None:
    """The arguments (ours included) of the transport being built here, if any."""
    return _transport.get()


@contextlib.contextmanager
def handing_over(arguments: Mapping[str, Any]) -> Iterator[None]:
    """``building()`` is ``arguments`` for the block."""
    token = _transport.set(arguments)
    try:
        yield
    finally:
        _transport.reset(token)
