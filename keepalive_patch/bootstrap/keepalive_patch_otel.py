"""The OpenTelemetry entry point of a bundle (``keepalive-patch bundle``): ``keepalive_patch.otel``
for a Python that finds it through this directory on ``PYTHONPATH``.

Where OTel's ``sitecustomize`` comes first on ``PYTHONPATH`` (``opentelemetry-instrument``, the
OpenTelemetry Operator), ours never runs; OTel finds the ``opentelemetry_instrumentor`` entry point
that the bundle's ``keepalive_patch-*.dist-info`` here declares and imports this module.  It
borrows the package and wrapt from the bundle as our ``sitecustomize`` would, then hands OTel the
instrumentor.  Nothing imports it otherwise.
"""

try:
    import keepalive_patch  # noqa: F401 - installed in this environment, or borrowed already
except ModuleNotFoundError as exc:
    if exc.name != "keepalive_patch":
        raise
    import os
    import sys

    home = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, home)
    try:
        from keepalive_patch import _lend
    finally:
        del sys.path[0]
    _lend.lend_wrapt(home)

from keepalive_patch.otel import KeepalivePatchInstrumentor

__all__ = ["KeepalivePatchInstrumentor"]
