"""Settings from defaults, environment and explicit overrides; bad values never raise."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import keepalive_patch
from keepalive_patch import config


def test_defaults() -> None:
    settings = config.resolve({})
    assert settings.as_dict() == {
        "idle": 30,
        "interval": 10,
        "count": 3,
        "retries": 1,
        "user_timeout": 0,
        "replay": True,
        "skip": frozenset(),
    }
    assert settings.budget == 60
    assert settings.suggested_user_timeout == 60_000
    assert set(settings.sources.values()) == {"default"}


def test_environment_and_overrides() -> None:
    env = {
        "KEEPALIVE_PATCH_IDLE": "5",
        "KEEPALIVE_PATCH_INTERVAL": " 2 ",
        "KEEPALIVE_PATCH_COUNT": "4",
        "KEEPALIVE_PATCH_RETRIES": "0",
    }
    settings = config.resolve(env, {"count": 6}, source="flag")
    assert (settings.idle, settings.interval, settings.count, settings.retries) == (5, 2, 6, 0)
    assert settings.user_timeout == 0, "opt-in only"
    assert settings.suggested_user_timeout == (5 + 2 * 6) * 1000, "the budget, as a suggestion"
    assert settings.sources == {
        "idle": "env",
        "interval": "env",
        "count": "flag",
        "retries": "env",
        "user_timeout": "default",
        "replay": "default",
        "skip": "default",
    }


def test_user_timeout_zero_turns_it_off() -> None:
    assert config.resolve({"KEEPALIVE_PATCH_USER_TIMEOUT": "0"}).user_timeout == 0
    assert config.resolve({"KEEPALIVE_PATCH_USER_TIMEOUT": "1234"}).user_timeout == 1234


@pytest.mark.parametrize(
    ("var", "raw", "default"),
    [
        ("KEEPALIVE_PATCH_IDLE", "0", "30"),
        ("KEEPALIVE_PATCH_IDLE", "32768", "30"),
        ("KEEPALIVE_PATCH_INTERVAL", "ten", "10"),
        ("KEEPALIVE_PATCH_COUNT", "128", "3"),
        ("KEEPALIVE_PATCH_COUNT", "2.5", "3"),
        ("KEEPALIVE_PATCH_RETRIES", "-1", "1"),
        ("KEEPALIVE_PATCH_USER_TIMEOUT", "soon", "0 ms"),
        ("KEEPALIVE_PATCH_REPLAY", "maybe", "on"),
    ],
)
def test_bad_environment_value_logs_once_and_uses_default(
    var: str, raw: str, default: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="keepalive_patch"):
        first = config.resolve({var: raw})
        second = config.resolve({var: raw})
    assert first == second == config.resolve({})
    [record] = caplog.records
    message = record.getMessage()
    assert var in message
    assert repr(raw) in message
    assert f"using the default {default}" in message


def test_bounds_are_inclusive() -> None:
    env = {
        "KEEPALIVE_PATCH_IDLE": "32767",
        "KEEPALIVE_PATCH_INTERVAL": "1",
        "KEEPALIVE_PATCH_COUNT": "127",
    }
    settings = config.resolve(env)
    assert (settings.idle, settings.interval, settings.count) == (32767, 1, 127)


@pytest.mark.parametrize("word", ["1", "true", "YES", " on ", "y", "maybe", "disable", "2"])
def test_disable_words(word: str) -> None:
    """The off switch fails closed: anything but the enabled words disables."""
    assert config.disabled({"KEEPALIVE_PATCH_DISABLE": word})


@pytest.mark.parametrize("word", ["", "  ", "0", "false", "No", "off", " OFF "])
def test_enable_words(word: str) -> None:
    assert not config.disabled({"KEEPALIVE_PATCH_DISABLE": word})


@pytest.mark.parametrize(
    "overrides",
    [{"idle": 0}, {"interval": 40000}, {"count": 0}, {"retries": True}, {"user_timeout": "1"}],
)
def test_apply_rejects_bad_explicit_values(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be an integer"):
        keepalive_patch.apply(**overrides)  # type: ignore[arg-type]


def test_apply_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    keepalive_patch.remove()
    monkeypatch.setenv("KEEPALIVE_PATCH_DISABLE", "1")
    assert keepalive_patch.apply() is False
    assert not keepalive_patch.is_applied()


def test_start_path_spells_the_disable_rule_like_config() -> None:
    assert keepalive_patch._DISABLE_VAR == config.DISABLE_VAR
    assert keepalive_patch._ENABLED_WORDS == config.ENABLED_WORDS


def test_readme_configuration_table_is_the_settings_table() -> None:
    """README shows ``config.markdown_table()`` verbatim: one table, no drift."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert config.markdown_table() in readme


def test_every_setting_has_an_apply_keyword_a_field_and_flags() -> None:
    import inspect

    from keepalive_patch import cli

    names = [row.name for row in config.TABLE]
    assert list(inspect.signature(keepalive_patch.apply).parameters) == names
    assert list(inspect.signature(config.Settings).parameters)[: len(names)] == names
    for command in ("run", "check"):
        parser = cli.build_parser()
        sub = parser.parse_args([command, "--", "x"] if command == "run" else [command])
        for row in config.TABLE:
            assert hasattr(sub, row.name), (command, row.flag)


def test_apply_skip_now_unpatches_what_it_names() -> None:
    httpx = pytest.importorskip("httpx")
    assert httpx.HTTPTransport()._pool._retries == 1
    keepalive_patch.apply(skip=["httpx"])
    assert httpx.HTTPTransport()._pool._retries == 0
    keepalive_patch.apply(skip=[])
    assert httpx.HTTPTransport()._pool._retries == 1
