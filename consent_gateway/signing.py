"""Signing keys and the itsdangerous serializer behind every signed value.

One salt per purpose, so a value signed for one use can never be replayed as another. Keys come from
`CONSENT_GATEWAY_SECRET_KEYS` (comma-separated, the first signs, all verify); on the embedded default a key
is generated once into the data folder. itsdangerous wants its key list oldest first, newest (signing)
last, hence the reversal.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, BadTimeSignature, URLSafeTimedSerializer

from .config import Config
from .errors import ConfigError

SECRET_KEYS_ENV = "CONSENT_GATEWAY_SECRET_KEYS"  # noqa: S105 - a variable name, not a secret
KEY_FILE_NAME = "secret.key"
CONSENT_SALT = "consent-gateway.consent"
CONSENT_ID_SALT = "consent-gateway.consent-id"
ADMIN_SESSION_SALT = "consent-gateway.admin-session"
MIN_KEY_LENGTH = 32

logger = logging.getLogger("consent_gateway.signing")


def generate_key() -> str:
    return secrets.token_urlsafe(48)


def load_secret_keys(config: Config, environ: dict[str, str] | None = None) -> list[str]:
    """The signing keys, newest (signing) first."""
    environ = dict(os.environ) if environ is None else environ
    raw = environ.get(SECRET_KEYS_ENV, "").strip()
    if raw:
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        short = [i for i, k in enumerate(keys) if len(k) < MIN_KEY_LENGTH]
        if short:
            raise ConfigError(
                SECRET_KEYS_ENV,
                f"key #{short[0] + 1} is shorter than {MIN_KEY_LENGTH} characters; "
                "make one with `consent-gateway keys generate`",
                file="environment",
            )
        return keys
    return [_embedded_key(config.data_path)]


def _embedded_key(data_dir: Path) -> str:
    path = data_dir / KEY_FILE_NAME
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = generate_key()
        # O_EXCL: two processes starting together keep the first key written.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text(encoding="ascii").strip()
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
        logger.warning(
            "generated a signing key in %s; in production set %s (see `consent-gateway keys generate`)",
            path,
            SECRET_KEYS_ENV,
        )
    return key


class FutureSignature(BadTimeSignature):
    """The signature claims a time further in the future than the tolerated clock skew."""


class TimedSigner:
    """Signs JSON values with a timestamp; checks age and clock skew on the way back."""

    def __init__(self, secret_keys: Sequence[str], salt: str, *, clock_skew_seconds: int = 300) -> None:
        if not secret_keys:
            raise ConfigError(SECRET_KEYS_ENV, "at least one signing key is needed")
        self._serializer = URLSafeTimedSerializer(list(reversed(secret_keys)), salt=salt)
        self.clock_skew_seconds = clock_skew_seconds

    def dumps(self, value: Any) -> str:
        return self._serializer.dumps(value)

    def loads(self, token: str, *, max_age_seconds: int | None = None, now: float | None = None) -> tuple[Any, int]:
        """The value and its signing time (epoch seconds). Raises a `BadSignature` subclass when it fails."""
        value, signed_at = self._serializer.loads(token, return_timestamp=True)
        timestamp = int(signed_at.timestamp())
        age = (time.time() if now is None else now) - timestamp
        if age < -self.clock_skew_seconds:
            raise FutureSignature(f"signed {-age:.0f} s in the future")
        if max_age_seconds is not None and age > max_age_seconds + self.clock_skew_seconds:
            raise BadTimeSignature(f"signature is {age:.0f} s old (max {max_age_seconds})")
        return value, timestamp


__all__ = ["BadSignature", "FutureSignature", "TimedSigner", "generate_key", "load_secret_keys"]
