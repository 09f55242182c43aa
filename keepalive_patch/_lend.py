"""wrapt lent to an interpreter that borrows the package: loaded only then, never at an ordinary
start (each module loaded at start costs about 1 % of it); the comments below say how."""

import sys

from keepalive_patch._sitecustomize import _path_finder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

# An interpreter that inherits our ``PYTHONPATH`` but cannot import ``keepalive_patch`` (another
# virtualenv, a system Python, a fleet's bundle directory) borrows the package from the directory
# that holds it (``bootstrap/sitecustomize.py`` does that, without leaving the directory on
# ``sys.path``).  The package alone patches nothing: every wrapper is made with wrapt.  So the
# same directory also lends wrapt, and nothing else:
#
# - ``WraptLender`` is a ``sys.meta_path`` finder that answers for the top-level name ``wrapt``
#   only, by asking the ordinary path finder to look in that one directory.  The rest of that
#   directory (another environment's site-packages: its httpx, its requests...) stays invisible,
#   and ``wrapt.*`` submodules are found through ``wrapt.__path__`` as usual.
# - It is appended to ``sys.meta_path``, after the path finder: an interpreter with a wrapt of its
#   own imports that one, and ours is asked only when nothing else found it.
# - It costs nothing until ``wrapt`` is imported (keepalive-patch imports it at the first client
#   built) or looked up (``is_applied()`` asks whether it can be found).
# - A compiled extension built for another Python is simply not found: its file name carries its
#   ABI tag (``_wrappers.cpython-311-x86_64-linux-gnu.so``), which this interpreter's extension
#   suffixes do not match, so wrapt's ``from ._wrappers import ...`` fails with ``ImportError``
#   and wrapt uses its pure-Python implementation.  A directory holding the extension built for
#   each ABI (``keepalive-patch bundle``) gives every Python its own.
#
# Where wrapt cannot be found even so, the package says so: ``is_applied()`` is False, the HTTP
# libraries are left alone with one log line, and ``check`` reports it (``keepalive_patch``'s
# ``wrapt_importable``).

#: The name lent, and nothing else.
LENT = "wrapt"


class WraptLender:
    """Finds the top-level ``wrapt`` in ``directory``, and nothing else."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def find_spec(
        self,
        fullname: str,
        path: "Sequence[str] | None" = None,
        target: "ModuleType | None" = None,
    ) -> "ModuleSpec | None":
        if fullname != LENT or path is not None:
            return None
        spec: ModuleSpec | None = _path_finder().find_spec(fullname, [self.directory])
        return spec

    def __repr__(self) -> str:
        return f"WraptLender({self.directory!r})"


def lend_wrapt(directory: str) -> None:
    """Let this interpreter import ``wrapt`` from ``directory`` if it has none of its own."""
    if not any(isinstance(finder, WraptLender) for finder in sys.meta_path):
        sys.meta_path.append(WraptLender(directory))
