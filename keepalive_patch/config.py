"""The settings: one table, and every view of it.

Each row of ``TABLE`` is a setting's whole record: its name, default, bounds, unit and help.  The
environment variable (``KEEPALIVE_PATCH_<NAME>``), the ``run`` / ``check`` flag (``--<name>``),
the validation of ``apply()`` arguments, the units ``check`` prints and README's configuration
table all come from it, as ``opentelemetry-instrument`` derives its flags from its variables.

Resolution never raises on the environment: a bad value is logged once and the default applies.
Explicit values (``apply()`` arguments, flags) are validated and raise ``ValueError``.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Union

import keepalive_patch
from keepalive_patch._log import WARNING, log_once

if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_PREFIX = "KEEPALIVE_PATCH_"
#: The emergency off switch; read by ``keepalive_patch/__init__.py`` at start (spelled out there).
DISABLE_VAR = ENV_PREFIX + "DISABLE"
#: The only values of ``DISABLE_VAR`` that leave the patch on: anything else turns it off.
ENABLED_WORDS = ("", "0", "false", "no", "off")
#: Words a switch setting reads as on / off.
ON_WORDS = ("1", "true", "yes", "on")
OFF_WORDS = ("0", "false", "no", "off")
#: The largest value ``setsockopt`` takes for an int option (a C int).
INT_MAX = 2**31 - 1

Value = Union[int, bool, "frozenset[str]"]


class Setting:
    """One row of the table; subclasses say how values are read and checked.

    Plain classes, not dataclasses: this module loads with the first HTTP library, and
    ``dataclasses`` (with the ``inspect`` it imports) would cost that import milliseconds.
    """

    __slots__ = ("default", "help", "name", "unit")
    #: What ``--help`` shows for the flag's value: a constant of each kind of setting
    #: (``Integer`` sets its own: ``MS`` for milliseconds).
    metavar = "N"

    def __init__(self, name: str, default: Any, help: str, unit: str = "") -> None:
        self.name = name
        self.default = default
        self.help = help
        self.unit = unit

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def bounds(self) -> str:
        """The accepted values, for messages and README."""
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        """A value from the environment or the command line; ``ValueError`` if it is bad."""
        raise NotImplementedError

    def check(self, value: object) -> Any:
        """An explicit value (``apply()``); ``ValueError`` naming the setting if it is bad."""
        raise NotImplementedError

    def show(self, value: Any) -> str:
        """``value`` with its unit, as ``check`` prints it."""
        return f"{value} {self.unit}".rstrip()

    def to_env(self, value: Any) -> str:
        """``value`` as its environment variable says it (``run`` passes flags on this way)."""
        return str(value)


class Integer(Setting):
    __slots__ = ("high", "low", "metavar")

    def __init__(
        self, name: str, default: int, help: str, unit: str, low: int, high: int = INT_MAX
    ) -> None:
        super().__init__(name, default, help, unit)
        self.low = low
        self.high = high
        self.metavar = "MS" if unit == "ms" else "N"

    def bounds(self) -> str:
        high = "2**31-1" if self.high == INT_MAX else str(self.high)
        return f"{self.low}-{high}"

    def parse(self, text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"{self.name}: not an integer: {text!r}") from None
        return self.check(value)

    def check(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{self.name} must be an integer, got {value!r}")
        if not self.low <= value <= self.high:
            raise ValueError(
                f"{self.name} must be an integer from {self.low} to {self.high}, got {value!r}"
            )
        return value


class Switch(Setting):
    __slots__ = ()
    metavar = "0|1"

    def bounds(self) -> str:
        return "/".join(ON_WORDS) + " or " + "/".join(OFF_WORDS)

    def parse(self, text: str) -> bool:
        word = text.strip().lower()
        if word in ON_WORDS:
            return True
        if word in OFF_WORDS:
            return False
        raise ValueError(f"{self.name} must be one of {self.bounds()}, got {text!r}")

    def check(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{self.name} must be True or False, got {value!r}")
        return value

    def show(self, value: Any) -> str:
        return "on" if value else "off"

    def to_env(self, value: Any) -> str:
        return "1" if value else "0"


#: What each ``KEEPALIVE_PATCH_SKIP`` name leaves alone: exactly one library, whole (the names
#: are those of the registry, ``keepalive_patch.known_names()``; README's table says the same).
SKIP_LEAVES = {
    "aiohttp": "aiohttp: the options on every TCPConnector connection",
    "httpx": "httpx: its transports' options and connect retry, its proxy connections and "
    "replay (httpcore, httpx's engine)",
    "httpx2": "httpx2: the same for httpx2 (and httpcore2)",
    "requests": "requests: its connect retry (its sockets are urllib3's: skip urllib3 for "
    "their options)",
    "urllib3": "urllib3: the options on every urllib3 connection, requests' and botocore's "
    "included",
}


class Names(Setting):
    """Comma-separated names; unknown ones are logged once and ignored, never an error.

    Ignoring is the safe way round: a misspelt name leaves that library patched, and ``check``
    shows the warning; it never switches anything off.
    """

    __slots__ = ()
    metavar = "NAMES"

    def bounds(self) -> str:
        return ", ".join(keepalive_patch.known_names())

    def parse(self, text: str) -> frozenset[str]:
        return self.check([name.strip() for name in text.split(",")])

    def check(self, value: object) -> frozenset[str]:
        if isinstance(value, str) or not all(isinstance(item, str) for item in value):  # type: ignore[attr-defined]
            raise ValueError(f"{self.name} must be a collection of names, got {value!r}")
        names = frozenset(item.strip().lower() for item in value if item.strip())  # type: ignore[attr-defined]
        known = names.intersection(keepalive_patch.known_names())
        if names - known:
            log_once(
                f"unknown:{self.name}:{','.join(sorted(names - known))}",
                WARNING,
                "%s names unknown libraries %s (ignored); known: %s",
                self.env,
                ", ".join(sorted(names - known)),
                self.bounds(),
            )
        return known

    def show(self, value: Any) -> str:
        return ",".join(sorted(value)) or "none"

    def to_env(self, value: Any) -> str:
        return ",".join(sorted(value))


TABLE: tuple[Setting, ...] = (
    Integer("idle", 30, "seconds of silence before the first keepalive probe", "s", 1, 32767),
    Integer("interval", 10, "seconds between keepalive probes", "s", 1, 32767),
    Integer("count", 3, "unanswered probes before the connection is dropped", "", 1, 127),
    Integer(
        "retries", 1, "connect retries for httpx / requests clients that set none; 0: leave them",
        "", 0, 100,
    ),
    Integer(
        "user_timeout", 0,
        "TCP_USER_TIMEOUT (Linux): ms sent data may stay unacknowledged; 0: not set",
        "ms", 0, INT_MAX,
    ),
    Switch(
        "replay", True,
        "send a safe request again when a reused httpx connection turns out dead; 0: never",
    ),
    Names("skip", frozenset(), "libraries to leave alone, comma-separated (e.g. aiohttp,urllib3)"),
)  # fmt: skip
BY_NAME = {setting.name: setting for setting in TABLE}


class Settings:
    """The values in force, immutable; ``sources`` says where each came from (default, env,
    apply, flag) and takes no part in comparisons."""

    __slots__ = (
        "count",
        "idle",
        "interval",
        "replay",
        "retries",
        "skip",
        "sources",
        "user_timeout",
    )

    idle: int
    interval: int
    count: int
    retries: int
    #: Milliseconds; 0 means the option is not set.
    user_timeout: int
    replay: bool
    skip: frozenset[str]
    sources: Mapping[str, str]

    def __init__(
        self,
        idle: int,
        interval: int,
        count: int,
        retries: int,
        user_timeout: int,
        replay: bool,
        skip: frozenset[str],
        sources: Mapping[str, str] | None = None,
    ) -> None:
        given = locals()
        for name in self.__slots__:
            object.__setattr__(self, name, given[name])
        object.__setattr__(self, "sources", dict(sources or {}))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Settings are immutable; cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.as_dict().items()))

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items()) + ")"

    @property
    def budget(self) -> int:
        """Seconds until keepalive declares an idle peer dead: idle + interval x count."""
        return self.idle + self.interval * self.count

    @property
    def suggested_user_timeout(self) -> int:
        """The ``user_timeout`` we recommend to those who opt in: the keepalive budget in ms."""
        return min(self.budget * 1000, INT_MAX)

    def as_dict(self) -> dict[str, Any]:
        return {setting.name: getattr(self, setting.name) for setting in TABLE}


def defaults(**changes: Any) -> Settings:
    """The table's defaults, with ``changes``: a starting point for code and tests."""
    values = {setting.name: setting.default for setting in TABLE}
    values.update(changes)
    return Settings(sources=dict.fromkeys(values, "default"), **values)


def disabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``KEEPALIVE_PATCH_DISABLE`` turns the shim off: fails closed.

    Any non-empty value other than 0 / false / no / off (any case, spaces ignored) disables:
    an emergency off switch must not be defeated by a typo.
    """
    return environ.get(DISABLE_VAR, "").strip().lower() not in ENABLED_WORDS


_lock = threading.Lock()
#: (generation, explicit values, their source): replaced whole, so readers never see a mix.
_explicit: tuple[int, Mapping[str, Any], str] = (0, {}, "apply")
#: (generation, settings) of the last resolution.
_resolved: tuple[int, Settings] | None = None


def set_explicit(values: Mapping[str, Any], source: str = "apply") -> None:
    """Validate and record explicit values (``None`` = not given) over the environment's.

    Raises ``ValueError`` for a bad value and ``TypeError`` for an unknown name, changing nothing.
    """
    global _explicit
    checked = {}
    for name, value in values.items():
        if name not in BY_NAME:
            raise TypeError(f"unknown keepalive-patch setting {name!r}")
        if value is not None:
            checked[name] = BY_NAME[name].check(value)
    with _lock:
        _explicit = (_explicit[0] + 1, checked, source)


def generation() -> int:
    """Changes with every ``set_explicit``: caches of anything derived from settings key on it."""
    return _explicit[0]


def resolve(
    environ: Mapping[str, str] = os.environ,
    explicit: Mapping[str, Any] | None = None,
    source: str = "apply",
) -> Settings:
    """Defaults, then the environment, then explicit values (highest wins); never raises."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in TABLE:
        values[setting.name], sources[setting.name] = setting.default, "default"
        raw = environ.get(setting.env)
        if raw is not None and raw.strip():
            try:
                values[setting.name], sources[setting.name] = setting.parse(raw), "env"
            except ValueError:
                log_once(
                    f"bad:{setting.env}={raw}",
                    WARNING,
                    "%s=%r is not %s; using the default %s",
                    setting.env,
                    raw,
                    setting.bounds(),
                    setting.show(setting.default),
                )
        if explicit and explicit.get(setting.name) is not None:
            values[setting.name], sources[setting.name] = explicit[setting.name], source
    return Settings(sources=sources, **values)


def current() -> Settings:
    """The settings in force, resolved once per ``set_explicit`` (the environment is read then)."""
    global _resolved
    resolved = _resolved
    generation_now, explicit, source = _explicit
    if resolved is not None and resolved[0] == generation_now:
        return resolved[1]
    settings = resolve(os.environ, explicit, source)
    _resolved = (generation_now, settings)
    return settings


def markdown_table() -> str:
    """README's configuration table, made from ``TABLE`` (a test keeps README in step)."""
    rows = [
        "| environment variable | `run` / `check` flag | meaning | default | accepted |",
        "| --- | --- | --- | --- | --- |",
        f"| `{DISABLE_VAR}` | | any value but `0`/`false`/`no`/`off`/empty: do nothing at all "
        "| off | |",
    ]
    for setting in TABLE:
        rows.append(
            f"| `{setting.env}` | `{setting.flag}` | {setting.help} "
            f"| {setting.show(setting.default)} | {setting.bounds()} |"
        )
    return "\n".join(rows) + "\n"
