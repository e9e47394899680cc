from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from consent_gateway.config import Config, GatewayConfig
from consent_gateway.errors import ConfigError
from consent_gateway.signing import BadSignature, FutureSignature, TimedSigner, generate_key, load_secret_keys

KEY_A = "a" * 40
KEY_B = "b" * 40


def test_round_trip_returns_value_and_signing_time() -> None:
    signer = TimedSigner([KEY_A], "purpose")
    before = int(time.time())
    value, signed_at = signer.loads(signer.dumps({"x": 1}))
    assert value == {"x": 1}
    assert before <= signed_at <= int(time.time())


def test_first_key_signs_and_every_key_verifies() -> None:
    token = TimedSigner([KEY_A], "purpose").dumps("v")
    rotated = TimedSigner([KEY_B, KEY_A], "purpose")
    assert rotated.loads(token)[0] == "v"
    assert TimedSigner([KEY_B], "purpose").loads(rotated.dumps("w"))[0] == "w"
    with pytest.raises(BadSignature):
        TimedSigner([KEY_A], "purpose").loads(rotated.dumps("w"))


def test_salt_separates_purposes() -> None:
    token = TimedSigner([KEY_A], "consent").dumps("v")
    with pytest.raises(BadSignature):
        TimedSigner([KEY_A], "admin-session").loads(token)


def test_clock_skew_is_tolerated_but_the_future_is_not() -> None:
    signer = TimedSigner([KEY_A], "purpose", clock_skew_seconds=300)
    token = signer.dumps("v")
    assert signer.loads(token, now=time.time() - 200)[0] == "v"
    with pytest.raises(FutureSignature):
        signer.loads(token, now=time.time() - 400)


def test_max_age_is_enforced_after_the_skew() -> None:
    signer = TimedSigner([KEY_A], "purpose", clock_skew_seconds=60)
    token = signer.dumps("v")
    assert signer.loads(token, max_age_seconds=100, now=time.time() + 150)[0] == "v"
    with pytest.raises(BadSignature):
        signer.loads(token, max_age_seconds=100, now=time.time() + 200)


def test_keys_come_from_the_environment_first_signing(tmp_path: Path) -> None:
    config = replace(Config(), gateway=GatewayConfig(data_dir=str(tmp_path)))
    keys = load_secret_keys(config, {"CONSENT_GATEWAY_SECRET_KEYS": f"{KEY_B}, {KEY_A}"})
    assert keys == [KEY_B, KEY_A]
    assert not (tmp_path / "secret.key").exists()


def test_short_keys_are_refused(tmp_path: Path) -> None:
    config = replace(Config(), gateway=GatewayConfig(data_dir=str(tmp_path)))
    with pytest.raises(ConfigError, match="CONSENT_GATEWAY_SECRET_KEYS"):
        load_secret_keys(config, {"CONSENT_GATEWAY_SECRET_KEYS": "short"})


def test_embedded_key_is_generated_once_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = replace(Config(), gateway=GatewayConfig(data_dir=str(tmp_path / "data")))
    first = load_secret_keys(config, {})
    assert "CONSENT_GATEWAY_SECRET_KEYS" in caplog.text
    assert load_secret_keys(config, {}) == first
    assert (tmp_path / "data" / "secret.key").stat().st_mode & 0o777 == 0o600


def test_generated_keys_are_long_and_distinct() -> None:
    assert len(generate_key()) >= 32
    assert generate_key() != generate_key()
