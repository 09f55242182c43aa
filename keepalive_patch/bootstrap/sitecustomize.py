"""keepalive-patch's start-up hook, run because this directory is on ``PYTHONPATH``.

``keepalive-patch run`` (or ``PYTHONPATH=$(python -m keepalive_patch path)``) puts this directory
first on the path.  Importing ``keepalive_patch`` applies the patch (unless
``KEEPALIVE_PATCH_DISABLE`` is set); then the next ``sitecustomize`` on the path runs as usual.
Written so that any interpreter inheriting ``PYTHONPATH`` can read it; before 3.9 it does nothing.
"""

import sys

if sys.version_info >= (3, 9):  # noqa: UP036 - read by any interpreter on PYTHONPATH
    try:
        from keepalive_patch import _sitecustomize
    except ModuleNotFoundError as exc:
        if exc.name != "keepalive_patch":
            raise
        # An interpreter that cannot see the environment this directory belongs to (say a
        # system Python started by the app, or a fleet's bundle directory): use the package
        # beside us without leaving that environment on its path, and lend it wrapt from the
        # same place (see ``_lend``).
        import os

        home = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        sys.path.insert(0, home)
        try:
            from keepalive_patch import _sitecustomize
        finally:
            del sys.path[0]
        from keepalive_patch import _lend

        _lend.lend_wrapt(home)
    _sitecustomize.chain(__file__)
