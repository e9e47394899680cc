"""Password hashes and tokens: the forms the config accepts, and what a bad one does."""

from __future__ import annotations

from dataclasses import replace

import pytest

from consent_gateway.admin import build_admin_app, hash_password, verify_password
from consent_gateway.admin.auth import Authenticator, check_password_hash
from consent_gateway.config import AdminConfig, AdminUser, Config
from consent_gateway.errors import ConfigError
from consent_gateway.store import ConsentLog

from .conftest import API_TOKEN, SECRET_KEYS, scrypt_hash


def test_hash_password_makes_an_argon2id_hash_that_verifies() -> None:
    hashed = hash_password("s3cret passphrase")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "s3cret passphrase")
    assert not verify_password(hashed, "s3cret passphrasE")


def test_hash_password_scrypt_uses_the_documented_form() -> None:
    hashed = hash_password("s3cret passphrase", scheme="scrypt")
    scheme, n, r, p, salt, key = hashed.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**15), "8", "3")
    assert salt and key
    assert verify_password(hashed, "s3cret passphrase")
    assert not verify_password(hashed, "another")


def test_a_scrypt_hash_made_with_hashlib_alone_verifies() -> None:
    assert verify_password(scrypt_hash("hunter2 hunter2"), "hunter2 hunter2")


@pytest.mark.parametrize(
    "bad",
    ["plain-text-password", "scrypt$1000$8$1$c2FsdHNhbHQ$a2V5", "scrypt$1024$8$1$!!$!!", "$argon2id$garbage", ""],
)
def test_a_malformed_hash_never_matches_and_is_reported(bad: str) -> None:
    assert not verify_password(bad, "plain-text-password")
    assert check_password_hash(bad) is not None


def test_a_bad_hash_in_the_config_fails_at_start_naming_the_user(admin_config: Config, consent_log: ConsentLog) -> None:
    config = replace(admin_config, admin=AdminConfig(users=(AdminUser(name="eve", password_hash="letmein"),)))
    with pytest.raises(ConfigError) as caught:
        build_admin_app(config, consent_log, SECRET_KEYS, environ={})
    assert caught.value.key == "admin.users.eve.password_hash"


def test_a_short_admin_token_is_refused_at_start(admin_config: Config, consent_log: ConsentLog) -> None:
    with pytest.raises(ConfigError) as caught:
        build_admin_app(admin_config, consent_log, SECRET_KEYS, environ={"CONSENT_GATEWAY_ADMIN_TOKENS": "abc"})
    assert caught.value.key == "CONSENT_GATEWAY_ADMIN_TOKENS"


def test_tokens_match_exactly_and_are_named_without_their_value() -> None:
    auth = Authenticator({}, [API_TOKEN, "second-token-0123456789"])
    principal = auth.check_token(API_TOKEN)
    assert principal is not None and principal.via_token
    assert API_TOKEN not in principal.name and principal.name.startswith("token:")
    assert auth.check_token(API_TOKEN + "x") is None
    assert auth.check_token(API_TOKEN[:-1]) is None
    assert auth.check_token("") is None
