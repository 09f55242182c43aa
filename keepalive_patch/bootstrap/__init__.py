"""The directory ``keepalive-patch run`` puts on ``PYTHONPATH``; it holds our ``sitecustomize``.

``python -m keepalive_patch path`` prints it.  Nothing here is imported at interpreter start:
Python finds ``sitecustomize.py`` in this directory as the top-level module ``sitecustomize``.
"""

import os

DIRECTORY = os.path.dirname(os.path.abspath(__file__))
