"""``python -m keepalive_patch``: the same command as the ``keepalive-patch`` script."""

import sys

from keepalive_patch.cli import main

if __name__ == "__main__":
    sys.exit(main())
