"""The visitor's choice as it lives in the signed `cg_consent` cookie.

The cookie holds a compact JSON payload signed with a timestamp (the time of the choice). An acceptance is
kept about 13 months, a refusal about 6 (CNIL); a choice made under an older policy version is no choice
at all. Anything wrong with a cookie means "no consent" and is counted, never an error.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import metrics
from .config import Config
from .signing import CONSENT_SALT, BadSignature, FutureSignature, TimedSigner

DAY_SECONDS = 24 * 3600
_CACHE_SIZE = 4096


def new_consent_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    consent_id: str
    #: every optional category → granted (required categories are implied)
    choices: Mapping[str, bool]
    #: vendors the visitor chose by name → granted
    vendors: Mapping[str, bool] = field(default_factory=dict)
    policy_version: str = ""
    #: epoch seconds of the choice
    given_at: int = 0
    gpc: bool = False

    @property
    def is_acceptance(self) -> bool:
        """Anything granted: kept 13 months. Nothing granted: a refusal, kept 6 months."""
        return any(self.choices.values()) or any(self.vendors.values())

    def max_age_seconds(self, config: Config) -> int:
        days = config.cookie.accept_max_age_days if self.is_acceptance else config.cookie.refuse_max_age_days
        return days * DAY_SECONDS

    def to_payload(self) -> dict[str, Any]:
        return {
            "id": self.consent_id,
            "c": {k: int(v) for k, v in self.choices.items()},
            "v": {k: int(v) for k, v in self.vendors.items()},
            "p": self.policy_version,
            "g": int(self.gpc),
        }

    def to_json(self) -> dict[str, Any]:
        """The public shape answered by the API."""
        return {
            "consent_id": self.consent_id,
            "choices": dict(self.choices),
            "vendors": dict(self.vendors),
            "policy_version": self.policy_version,
            "given_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.given_at)),
        }


class ConsentCodec:
    """Signs records into cookie values and reads them back, with a small cache of verified values.

    Verifying an HMAC on every page view is needless work: a cookie value that verified once maps to the
    same record until it expires, so verified values are cached (bounded, least recently used out).
    """

    def __init__(self, config: Config, secret_keys: list[str]) -> None:
        self.config = config
        self.signer = TimedSigner(secret_keys, CONSENT_SALT, clock_skew_seconds=config.cookie.clock_skew_seconds)
        self._categories = frozenset(c.id for c in config.categories if not c.required)
        self._cache: OrderedDict[str, tuple[ConsentRecord, float]] = OrderedDict()

    def encode(self, record: ConsentRecord) -> str:
        return self.signer.dumps(record.to_payload())

    def decode(self, value: str, *, now: float | None = None) -> ConsentRecord | None:
        """The record in a cookie value, or None (counted) when it is forged, expired, malformed or stale."""
        now = time.time() if now is None else now
        cached = self._cache.get(value)
        if cached is not None:
            record, expires_at = cached
            if now <= expires_at:
                self._cache.move_to_end(value)
                return record
            del self._cache[value]
        verified, reason = self._verify(value, now)
        if verified is None:
            metrics.inc("consent_cookie_rejected_total", reason=reason)
            return None
        record = verified
        expires_at = record.given_at + record.max_age_seconds(self.config) + self.config.cookie.clock_skew_seconds
        self._cache[value] = (record, expires_at)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return record

    def consent_id_of(self, value: str) -> str | None:
        """The consent id of an authentic cookie value even when its choice no longer counts (older policy
        version): the next choice keeps the id, so the visitor's history stays in one piece."""
        longest = max(self.config.cookie.accept_max_age_days, self.config.cookie.refuse_max_age_days)
        try:
            payload, _ = self.signer.loads(value, max_age_seconds=longest * DAY_SECONDS)
        except BadSignature:
            return None
        consent_id = payload.get("id") if isinstance(payload, dict) else None
        return consent_id if isinstance(consent_id, str) and 0 < len(consent_id) <= 64 else None

    def _verify(self, value: str, now: float) -> tuple[ConsentRecord | None, str]:
        longest = max(self.config.cookie.accept_max_age_days, self.config.cookie.refuse_max_age_days)
        try:
            payload, signed_at = self.signer.loads(value, max_age_seconds=longest * DAY_SECONDS, now=now)
        except FutureSignature:
            return None, "future"
        except BadSignature as exc:
            return None, "expired" if "old" in str(exc) else "bad_signature"
        record = self._record_from(payload, signed_at)
        if record is None:
            return None, "malformed"
        if record.policy_version != self.config.policy.version:
            return None, "old_policy"
        if now - record.given_at > record.max_age_seconds(self.config) + self.config.cookie.clock_skew_seconds:
            return None, "expired"
        return record, ""

    def _record_from(self, payload: Any, signed_at: int) -> ConsentRecord | None:
        if not isinstance(payload, dict):
            return None
        consent_id, choices, vendors = payload.get("id"), payload.get("c"), payload.get("v", {})
        policy = payload.get("p")
        if not (isinstance(consent_id, str) and isinstance(choices, dict) and isinstance(vendors, dict)):
            return None
        if not isinstance(policy, str):
            return None
        return ConsentRecord(
            consent_id=consent_id,
            # categories the site no longer has are dropped; ones added since count as not granted
            choices={c: bool(choices.get(c, 0)) for c in sorted(self._categories)},
            vendors={str(k): bool(v) for k, v in vendors.items()},
            policy_version=policy,
            given_at=signed_at,
            gpc=bool(payload.get("g", 0)),
        )
