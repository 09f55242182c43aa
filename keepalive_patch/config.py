"""Settings: defaults, bounds, and how environment variables and explicit overrides combine.

Kept free of heavy imports (no ``typing``, ``dataclasses`` or ``logging`` at import time): it is
loaded at interpreter start when ``KEEPALIVE_PATCH_DISABLE`` is set, and by ``apply()``.
"""

import os

from keepalive_patch._log import log_once

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_PREFIX = "KEEPALIVE_PATCH_"
DISABLE_VAR = ENV_PREFIX + "DISABLE"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})

#: name -> (environment variable, default, lowest, highest).  ``user_timeout`` is in
#: milliseconds; its default ``None`` means "derived from the keepalive budget".
FIELDS: "dict[str, tuple[str, int | None, int, int]]" = {
    "idle": (ENV_PREFIX + "IDLE", 30, 1, 32767),
    "interval": (ENV_PREFIX + "INTERVAL", 10, 1, 32767),
    "count": (ENV_PREFIX + "COUNT", 3, 1, 127),
    "retries": (ENV_PREFIX + "RETRIES", 1, 0, 100),
    "user_timeout": (ENV_PREFIX + "USER_TIMEOUT", None, 0, 2**31 - 1),
}


class Settings:
    """What the shim injects, and where each value came from.

    ``sources`` maps each field to ``default``, ``env``, ``apply`` or ``flag``.
    """

    __slots__ = ("count", "idle", "interval", "retries", "sources", "user_timeout")

    def __init__(
        self,
        idle: int = 30,
        interval: int = 10,
        count: int = 3,
        retries: int = 1,
        user_timeout: "int | None" = None,
        sources: "dict[str, str] | None" = None,
    ) -> None:
        self.idle = idle
        self.interval = interval
        self.count = count
        self.retries = retries
        #: Milliseconds; by default long enough for the whole keepalive budget to run out.
        self.user_timeout = (
            (idle + interval * count) * 1000 if user_timeout is None else user_timeout
        )
        self.sources = dict.fromkeys(FIELDS, "default") if sources is None else sources

    @property
    def budget(self) -> int:
        """Seconds until keepalive declares an idle peer dead: idle + interval x count."""
        return self.idle + self.interval * self.count

    def as_dict(self) -> "dict[str, int]":
        return {name: getattr(self, name) for name in FIELDS}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.as_dict().items()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.as_dict().items())
        return f"Settings({fields})"


#: (generation, explicit overrides, their source): replaced whole, so readers never see a mix.
_configured: "tuple[int, Mapping[str, int | None], str]" = (0, {}, "apply")


def configure(overrides: "Mapping[str, int | None]", source: str = "apply") -> None:
    """Record explicit overrides (``apply()`` arguments, CLI flags) for the next ``resolve``."""
    global _configured
    _configured = (_configured[0] + 1, dict(overrides), source)


def configured() -> "tuple[int, Mapping[str, int | None], str]":
    """``(generation, overrides, source)``: the generation changes with every ``configure``."""
    return _configured


def is_disabled(environ: "Mapping[str, str]" = os.environ) -> bool:
    """True when ``KEEPALIVE_PATCH_DISABLE`` asks the shim to stay out entirely."""
    raw = environ.get(DISABLE_VAR)
    if raw is None:
        return False
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word not in FALSE_WORDS:
        log_once(
            "bad:" + DISABLE_VAR,
            30,
            "%s=%r is not one of 1/true/yes/on or 0/false/no/off; keepalive-patch stays enabled",
            DISABLE_VAR,
            raw,
        )
    return False


def check_value(name: str, value: object) -> int:
    """Validate one explicit setting; raise ``ValueError`` naming the setting and its bounds."""
    if name not in FIELDS:
        raise TypeError(f"unknown keepalive-patch setting {name!r}")
    _, _, low, high = FIELDS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def resolve(
    environ: "Mapping[str, str]" = os.environ,
    overrides: "Mapping[str, int | None] | None" = None,
    source: str = "apply",
) -> Settings:
    """Combine defaults, environment and explicit overrides (highest wins), never raising on env.

    A bad environment value is logged once, naming the variable, the value and the default used.
    """
    values: dict[str, int | None] = {}
    sources: dict[str, str] = {}
    for name, (var, default, low, high) in FIELDS.items():
        values[name], sources[name] = default, "default"
        raw = environ.get(var)
        if raw is not None and raw.strip():
            try:
                values[name], sources[name] = check_value(name, int(raw.strip())), "env"
            except ValueError:
                log_once(
                    f"bad:{var}={raw}",
                    30,
                    "%s=%r is not an integer from %d to %d; using the default %s",
                    var,
                    raw,
                    low,
                    high,
                    "idle + interval x count" if default is None else default,
                )
        if overrides and overrides.get(name) is not None:
            values[name], sources[name] = check_value(name, overrides[name]), source
    idle, interval, count, retries = (
        int(values[name] or 0) for name in ("idle", "interval", "count", "retries")
    )
    return Settings(idle, interval, count, retries, values["user_timeout"], sources)
