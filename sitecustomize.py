"""Patch every httpx / httpx2 transport of a program by putting this checkout on its path.

    PYTHONPATH=/path/to/keepalive-patch python app.py

Importing ``keepalive_patch`` applies the patch (unless ``KEEPALIVE_PATCH_DISABLE`` is set); then
the next ``sitecustomize`` on the path runs as usual.  Not part of the installed package: an
installation uses ``keepalive_patch/bootstrap`` (``python -m keepalive_patch path``) instead.
"""

import sys

if sys.version_info >= (3, 9):  # noqa: UP036 - read by any interpreter on PYTHONPATH
    from keepalive_patch import _sitecustomize

    _sitecustomize.chain(__file__)
