"""The shortcuts of ``_wrapping`` and the httpx plan, held against what they stand in for.

``_plain_shape`` reads a plain function's parameters from its code object so that ``import
requests`` never loads ``inspect``; ``inspect.signature`` is the truth it must equal.  An httpx
transport plan's ``fast`` path hands a keyword-only call precomputed arguments; the full
``rewrite`` (binding + ``adjust``) is the truth it must equal, call shape by call shape.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

import pytest
from support.libs import all_wrapped, installed_libraries

import keepalive_patch
from keepalive_patch import _wrapping
from keepalive_patch.integrations.httpx import TRANSPORT_CLASSES, _TransportPlan


class Shapes:
    """Methods of every parameter shape ``InitPlan`` may meet."""

    def plain(self, a, b=1, *, c, d=2): ...
    def positional_only(self, a, /, b, c=3, *args, d, **kwargs): ...
    def anything(self, *args, **kwargs): ...
    def keywords(self, **kwargs): ...
    def varargs_and_named(self, a, *args, b=2): ...
    def nothing(self): ...
    def all_defaults(self, a=1, b=None, *, c=None): ...
    def only_self_positional(self, /, a, *, b): ...


def _real_inits() -> list[Callable[..., Any]]:
    """The originals of every method the integrations wrap here, HTTP libraries imported."""
    for module in keepalive_patch.WATCHED:
        try:
            importlib.import_module(module)
        except ImportError:
            continue
    return [original for _, _, original in all_wrapped()]


FUNCTIONS = [
    function
    for name, function in vars(Shapes).items()
    if inspect.isfunction(function) and not name.startswith("_")
]


@pytest.mark.parametrize("function", FUNCTIONS + _real_inits(), ids=lambda f: f.__qualname__)
def test_plain_shape_equals_what_inspect_reads(function: Callable[..., Any]) -> None:
    shape = _wrapping._plain_shape(function)
    if shape is None:  # not a plain function: InitPlan asks inspect itself
        assert not inspect.isfunction(function) or hasattr(function, "__wrapped__")
        return
    parameters = list(inspect.signature(function).parameters.values())[1:]  # less self
    assert shape == _wrapping._inspected_shape(inspect.Signature(parameters))


#: Keyword-only calls a transport may get: what ``Client()`` passes, and the rest.
CALLS: list[dict[str, Any]] = [
    {},
    {"verify": True, "cert": None, "trust_env": True, "http1": True, "http2": False},
    {"limits": None},
    {"retries": 0},
    {"retries": 3, "verify": False},
    {"socket_options": [(6, 1, 1)]},
    {"socket_options": None},
    {"uds": "/tmp/nowhere.sock"},
    {"local_address": "127.0.0.1"},
    {"no_such_argument": 1},
]


@pytest.mark.parametrize("lib", installed_libraries(), ids=lambda lib: lib.__name__)
@pytest.mark.parametrize("class_name", TRANSPORT_CLASSES)
@pytest.mark.parametrize("call", CALLS, ids=lambda call: ",".join(call) or "no arguments")
def test_the_fast_path_adds_what_the_full_plan_adds(
    lib: Any, class_name: str, call: dict[str, Any]
) -> None:
    cls = getattr(lib, class_name)
    original = next(o for c, a, o in all_wrapped() if c is cls and a == "__init__")
    plan = _TransportPlan(original, f"{lib.__name__}.{class_name}")
    fast = plan.fast(dict(call))
    if fast is None:  # a call the fast path does not take: rewrite alone decides it
        assert set(call) & {"retries", "socket_options", "uds", "no_such_argument"}, call
        return
    full = plan.rewrite((), dict(call))
    assert full is not None
    _, kwargs, _ = full
    assert {**fast, "socket_options": list(fast.get("socket_options", []))} == {
        **kwargs,
        "socket_options": list(kwargs.get("socket_options", [])),
    }
