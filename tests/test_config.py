from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from consent_gateway.config import Config, default_config_path, load_config, parse_config
from consent_gateway.errors import ConfigError, ConfigErrors


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_equals_the_built_in_defaults() -> None:
    shipped = load_config(default_config_path())
    defaults = Config()
    for field in dataclasses.fields(Config):
        if field.name != "source":
            assert getattr(shipped, field.name) == getattr(defaults, field.name), field.name


def test_a_file_needs_only_the_keys_it_changes(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[cookie]\nname = "consent"\n[policy]\nversion = "7"\n'))
    assert config.cookie.name == "consent"
    assert config.policy.version == "7"
    assert config.cookie.accept_max_age_days == 395
    assert config.source == str(tmp_path / "gateway.toml")


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[gateway]\nprefix = "/_consent"\n\n[cookie]\nname = "x"\nlifetime = 3\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert error.key == "cookie.lifetime"
    assert error.file == str(path)
    assert error.line == 6
    assert "unknown key" in str(error) and "accept_max_age_days" in str(error)


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cookie\.accept_max_age_days: expected an integer, got a string"):
        load_config(write(tmp_path, '[cookie]\naccept_max_age_days = "13 months"\n'))


def test_boolean_is_not_an_integer() -> None:
    with pytest.raises(ConfigError, match="gateway.max_body_bytes"):
        parse_config({"gateway": {"max_body_bytes": True}})


def test_choice_values_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"privacy\.ip_mode: expected 'full' \| 'truncated' \| 'hashed'"):
        parse_config({"privacy": {"ip_mode": "anonymous"}})


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[cookie]\nname = \n"))
    assert caught.value.line == 2


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_categories_need_a_required_one() -> None:
    with pytest.raises(ConfigError, match="required"):
        parse_config({"categories": [{"id": "analytics"}]})


def test_vendor_tables_are_checked_against_the_vendor_shape() -> None:
    config = parse_config({"vendors": [{"id": "acme", "category": "analytics", "script_hosts": ["cdn.acme.test"]}]})
    assert config.vendors[0]["script_hosts"] == ("cdn.acme.test",)
    with pytest.raises(ConfigError, match=r"vendors\[0\]\.hosts: unknown key"):
        parse_config({"vendors": [{"id": "acme", "hosts": ["x"]}]})
    with pytest.raises(ConfigError, match=r"vendors\[0\]\.category: unknown category 'ads'"):
        parse_config({"vendors": [{"id": "acme", "category": "ads"}]})


def test_gpc_categories_must_exist() -> None:
    with pytest.raises(ConfigError, match="gateway.gpc_refuses"):
        parse_config({"gateway": {"gpc_refuses": ["advertising"]}})


def test_trusted_proxies_must_be_networks() -> None:
    assert parse_config({"gateway": {"trusted_proxies": ["10.0.0.0/8", "::1"]}}).gateway.trusted_proxies
    with pytest.raises(ConfigError, match=r"trusted_proxies\[1\]"):
        parse_config({"gateway": {"trusted_proxies": ["10.0.0.0/8", "proxy.local"]}})


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.cookie.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.banner.consent_mode_signals["analytics"] = ()  # type: ignore[index]


def test_embedded_store_lives_in_the_data_folder() -> None:
    config = parse_config({"gateway": {"data_dir": "var/consent"}})
    assert config.store_url == "sqlite:///var/consent/consent.db"
    assert str(config.spool_path) == "var/consent/spool"


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = '[gateway]\nprefix = "x"\n\n[banner]\nlanguages = "fr"\n\n[[vendors]]\ncategory = "analytics"\n'
    with pytest.raises(ConfigErrors) as caught:
        parse_config(tomllib.loads(text), source="site.toml", text=text)
    keys = [error.key for error in caught.value.errors]
    assert keys == ["banner.languages", "vendors[0].id", "gateway.prefix"]
    assert caught.value.key == "banner.languages"  # the first problem, for callers that read one
    assert str(caught.value).splitlines()[0].startswith("site.toml:5: banner.languages: expected an array")
