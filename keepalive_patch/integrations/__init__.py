"""One module per HTTP library, each behind dd-trace-py's contract of two functions.

``patch(module)`` is called right after a module the integration watches has been imported (and
again on ``reload``; it must be idempotent); ``unpatch()`` undoes everything it did.  Which
modules each integration watches, and which library each serves (the name
``KEEPALIVE_PATCH_SKIP`` takes), is ``keepalive_patch.WATCHED``, the registry: it sits in the
package's ``__init__`` with the post-import finder, since both must be loaded at interpreter
start and every module loaded then costs about 1 % of a bare start.  Adding a library means
adding its file here and its line in ``WATCHED``.
"""
