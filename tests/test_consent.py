from __future__ import annotations

import time
from dataclasses import replace

import pytest
from itsdangerous import URLSafeTimedSerializer

from consent_gateway import metrics
from consent_gateway.config import Config, PolicyConfig
from consent_gateway.consent import DAY_SECONDS, ConsentCodec, ConsentRecord
from consent_gateway.signing import CONSENT_SALT
from tests.conftest import TEST_SECRET_KEYS


@pytest.fixture
def codec() -> ConsentCodec:
    return ConsentCodec(Config(), TEST_SECRET_KEYS)


def record(**choices: bool) -> ConsentRecord:
    base = {"analytics": False, "marketing": False, "preferences": False}
    return ConsentRecord(consent_id="c1", choices={**base, **choices}, policy_version="1", given_at=int(time.time()))


def test_round_trip(codec: ConsentCodec) -> None:
    original = replace(record(analytics=True), vendors={"youtube": True})
    decoded = codec.decode(codec.encode(original))
    assert decoded is not None
    assert decoded.consent_id == "c1"
    assert decoded.choices == {
        "analytics": True, "session-replay": False, "marketing": False, "preferences": False, "unclassified": False
    }
    assert decoded.vendors == {"youtube": True}


def test_acceptance_lives_13_months_and_refusal_6() -> None:
    config = Config()
    assert record(analytics=True).max_age_seconds(config) == 395 * DAY_SECONDS
    assert record().max_age_seconds(config) == 182 * DAY_SECONDS


def test_forged_cookie_is_no_consent_and_counted(codec: ConsentCodec) -> None:
    forged = URLSafeTimedSerializer("not-our-key" * 4, salt=CONSENT_SALT).dumps(record(analytics=True).to_payload())
    assert codec.decode(forged) is None
    assert codec.decode("garbage") is None
    assert metrics.value("consent_cookie_rejected_total", reason="bad_signature") == 2


def test_a_refusal_expires_after_6_months_an_acceptance_after_13(codec: ConsentCodec) -> None:
    refusal = codec.encode(record())
    acceptance = codec.encode(record(analytics=True))
    seven_months = time.time() + 213 * DAY_SECONDS
    assert codec.decode(refusal, now=seven_months) is None
    assert codec.decode(acceptance, now=seven_months) is not None
    assert codec.decode(acceptance, now=time.time() + 400 * DAY_SECONDS) is None
    assert metrics.value("consent_cookie_rejected_total", reason="expired") == 2


def test_future_dated_cookie_is_no_consent(codec: ConsentCodec) -> None:
    token = codec.encode(record(analytics=True))
    assert codec.decode(token, now=time.time() - 3600) is None
    assert metrics.value("consent_cookie_rejected_total", reason="future") == 1


def test_new_policy_version_asks_again() -> None:
    old = ConsentCodec(Config(), TEST_SECRET_KEYS).encode(record(analytics=True))
    newer = ConsentCodec(replace(Config(), policy=PolicyConfig(version="2")), TEST_SECRET_KEYS)
    assert newer.decode(old) is None
    assert metrics.value("consent_cookie_rejected_total", reason="old_policy") == 1


def test_malformed_payload_is_no_consent(codec: ConsentCodec) -> None:
    token = codec.signer.dumps({"id": 3, "c": "yes"})
    assert codec.decode(token) is None
    assert metrics.value("consent_cookie_rejected_total", reason="malformed") == 1


def test_categories_added_since_the_choice_are_not_granted(codec: ConsentCodec) -> None:
    token = codec.signer.dumps({"id": "c1", "c": {"analytics": 1, "gone": 1}, "v": {}, "p": "1", "g": 0})
    decoded = codec.decode(token)
    assert decoded is not None
    assert decoded.choices == {
        "analytics": True, "session-replay": False, "marketing": False, "preferences": False, "unclassified": False
    }


def test_verified_values_are_cached_until_they_expire(codec: ConsentCodec) -> None:
    token = codec.encode(record())
    first = codec.decode(token)
    assert codec.decode(token) is first
    assert codec.decode(token, now=time.time() + 200 * DAY_SECONDS) is None
