"""One module per HTTP library, each behind one contract of three functions.

- ``patch(module)`` is called right after a module the integration watches has been imported
  (and again on ``reload``): it wraps what that module needs, once (calling it again changes
  nothing), and never raises for a layout it does not know (it logs once and leaves it alone).
- ``unpatch()`` undoes everything it did: the exact originals back, or ours switched off where
  another wrapper covers them.
- ``wrapped()`` lists ``(class, attribute, original)`` for every method it wraps now: all that
  ``check`` and the tests may ask of an integration beside the two above.

Every module exports exactly these (``__all__``), and ``tests/unit/test_integrations.py`` holds
each one in the registry to them.  Which modules each integration watches, and which library each
serves (the name ``KEEPALIVE_PATCH_SKIP`` takes), is ``keepalive_patch.WATCHED``, the registry: it
sits in the package's ``__init__`` with the post-import finder, since both must be loaded at
interpreter start and every module loaded then costs about 1 % of a bare start.  Adding a library
means adding its file here and its line in ``WATCHED``.
"""
