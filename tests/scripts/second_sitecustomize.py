"""A host's own ``sitecustomize``, the one ours must chain to; tests copy it in as that name.

It appends ``ran applied=<was keepalive-patch applied when it ran>`` to the file named by
``SECOND_LOG``, and raises when ``SECOND_RAISE`` is set, as a broken one would.
"""

import os
import sys

_package = sys.modules.get("keepalive_patch")
with open(os.environ["SECOND_LOG"], "a") as log:
    log.write(f"ran applied={_package is not None and _package.is_applied()}\n")
if os.environ.get("SECOND_RAISE"):
    raise RuntimeError("boom from the second sitecustomize")
