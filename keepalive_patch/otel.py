"""keepalive-patch as an OpenTelemetry instrumentation (the ``opentelemetry_instrumentor`` entry
point named ``keepalive_patch``).

``opentelemetry-instrument`` and the OpenTelemetry Operator start Python with OTel's own
``sitecustomize`` first on ``PYTHONPATH``, and it does not run the next one, so ours never runs
there.  But OTel loads every ``opentelemetry_instrumentor`` entry point it finds and calls
``instrument()`` on it: registered as one, keepalive-patch is applied wherever OTel
auto-instrumentation runs, in either launcher order, and ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
can name it (``keepalive_patch``).

Only OTel imports this module (it imports OpenTelemetry); nothing on keepalive-patch's own
start-up path does.  Instrumenting is ``import keepalive_patch``, which applies the patch with the
``KEEPALIVE_PATCH_*`` settings unless ``KEEPALIVE_PATCH_DISABLE`` is set; where the patch is
already in force (our ``sitecustomize`` ran first, or the app called ``apply()``), nothing is
done again and the settings in force are left as they are.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

import keepalive_patch


class KeepalivePatchInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Applies keepalive-patch; ``uninstrument()`` removes it."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # whichever HTTP libraries are there, or come later

    def instrument(self, **kwargs: Any) -> None:
        """As OTel's, without its warning when OTel finds this entry point twice (a bundle's
        ``bootstrap`` directory on ``PYTHONPATH`` next to an installed keepalive-patch)."""
        if not self.is_instrumented_by_opentelemetry:
            super().instrument(**kwargs)

    def _instrument(self, **kwargs: Any) -> None:
        # Importing the package applied it (unless disabled); a remove() before is undone here.
        if not keepalive_patch.is_applied() and not keepalive_patch._disabled():
            keepalive_patch.apply()

    def _uninstrument(self, **kwargs: Any) -> None:
        keepalive_patch.remove()
