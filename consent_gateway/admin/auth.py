"""Who may enter the dashboard: password hashes from the config, API tokens from the environment, and the
users and tokens an admin made from the dashboard (``admin/directory.py``), passed in as the stored
:class:`~consent_gateway.admin.directory.Directory` of the moment. The config wins on a name both hold.

Two password hash forms are accepted, so a site can pick what its tooling produces:

* argon2 (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``), the PHC string argon2-cffi writes — the default;
* scrypt, written ``scrypt$n$r$p$salt$hash`` with ``salt`` and ``hash`` in standard base64 (padding
  optional) and the key length taken from the decoded hash. Made with :mod:`hashlib` alone, e.g.
  ``hash_password("s3cret", scheme="scrypt")``.

An unknown user name costs the same work as a wrong password (a dummy hash of the same kind is checked), and
the caller answers both with the same text, so the login form does not tell which names exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from consent_gateway.admin.directory import EMPTY_DIRECTORY, Directory
from consent_gateway.admin.roles import Role
from consent_gateway.errors import ConfigError

#: Environment variable holding comma-separated admin API tokens (each used as ``Authorization: Bearer …``).
TOKENS_ENV: Final = "CONSENT_GATEWAY_ADMIN_TOKENS"
#: Shortest token accepted: a short token can be guessed faster than the rate limit notices.
MIN_TOKEN_LENGTH: Final = 16

#: scrypt defaults: one of the OWASP password storage cheat sheet's equivalent settings (N=2^15, r=8, p=3),
#: the one that needs 32 MiB per check rather than 128, so a burst of logins cannot eat the memory.
SCRYPT_N: Final = 2**15
SCRYPT_R: Final = 8
SCRYPT_P: Final = 3
_SCRYPT_SALT_BYTES: Final = 16
_SCRYPT_KEY_BYTES: Final = 32
#: Bounds that keep a hostile or mistyped config from asking for gigabytes per login.
_SCRYPT_MAX_MEMORY_BYTES: Final = 1024 * 1024 * 1024

_DEFAULT_ARGON2 = PasswordHasher()


def hash_password(password: str, *, scheme: str = "argon2") -> str:
    """Hash a password for ``[[admin.users]] password_hash``.

    :param password: the clear-text password.
    :param scheme: ``"argon2"`` (argon2id, argon2-cffi's defaults) or ``"scrypt"``.
    """
    if scheme == "argon2":
        return _DEFAULT_ARGON2.hash(password)
    if scheme == "scrypt":
        salt = os.urandom(_SCRYPT_SALT_BYTES)
        key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, _SCRYPT_KEY_BYTES)
        return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"
    raise ValueError(f"unknown password scheme {scheme!r} (use 'argon2' or 'scrypt')")


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; a malformed hash never matches."""
    if password_hash.startswith("$argon2"):
        try:
            return _DEFAULT_ARGON2.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
    if password_hash.startswith("scrypt$"):
        try:
            n, r, p, salt, expected = _parse_scrypt(password_hash)
        except ValueError:
            return False
        return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(expected)), expected)
    return False


def check_password_hash(password_hash: str) -> str | None:
    """Why ``password_hash`` cannot be used, or None when it is well formed (used when the config loads)."""
    if password_hash.startswith("$argon2"):
        try:
            extract_parameters(password_hash)
        except InvalidHashError:
            return "not a valid argon2 hash"
        return None
    if password_hash.startswith("scrypt$"):
        try:
            _parse_scrypt(password_hash)
        except ValueError as exc:
            return str(exc)
        return None
    return "unknown hash form: expected '$argon2id$…' or 'scrypt$n$r$p$salt$hash'"


def _dummy_hash_like(password_hash: str) -> str:
    """A hash of a random password with the same cost as ``password_hash``, for unknown user names."""
    password = secrets.token_urlsafe(16)
    if password_hash.startswith("scrypt$"):
        n, r, p, salt, expected = _parse_scrypt(password_hash)
        key = _scrypt(password, salt, n, r, p, len(expected))
        return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"
    if password_hash.startswith("$argon2"):
        params = extract_parameters(password_hash)
        return PasswordHasher.from_parameters(params).hash(password)
    return _DEFAULT_ARGON2.hash(password)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_scrypt_memory(n, r, p)
    )


def _scrypt_memory(n: int, r: int, p: int) -> int:
    # OpenSSL needs 128·n·r bytes for V plus 128·r·p for B; leave headroom for its own bookkeeping.
    return 128 * n * r + 128 * r * p + 1024 * 1024


def _parse_scrypt(password_hash: str) -> tuple[int, int, int, bytes, bytes]:
    parts = password_hash.split("$")
    if len(parts) != 6:
        raise ValueError("scrypt hash must be 'scrypt$n$r$p$salt$hash'")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = _unb64(parts[4])
        key = _unb64(parts[5])
    except (ValueError, binascii.Error) as exc:
        raise ValueError("scrypt hash has a non-numeric cost or bad base64") from exc
    if n < 2 or n & (n - 1):
        raise ValueError("scrypt n must be a power of two")
    if r < 1 or p < 1 or _scrypt_memory(n, r, p) > _SCRYPT_MAX_MEMORY_BYTES:
        raise ValueError("scrypt r and p must be positive and need under 1 GiB")
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("scrypt salt must be ≥ 8 bytes and hash ≥ 16 bytes")
    return n, r, p, salt, key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def tokens_from_env(environ: Mapping[str, str] | None = None, name: str = TOKENS_ENV) -> tuple[str, ...]:
    """Admin API tokens from the environment variable ``name`` (comma-separated, blanks ignored)."""
    raw = (os.environ if environ is None else environ).get(name, "")
    tokens = tuple(token.strip() for token in raw.split(",") if token.strip())
    for token in tokens:
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                name, f"every admin token must be at least {MIN_TOKEN_LENGTH} characters", file="environment"
            )
    return tokens


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: a configured user, or an API token (named by a short digest, never by its value)."""

    name: str
    via_token: bool = False
    role: Role = "viewer"


class Authenticator:
    """Checks user names with passwords, and bearer tokens, in constant time with respect to the secret.

    :param roles: each user's role (a user not named here is a ``viewer``).
    :param token_role: the role of every API token.
    """

    def __init__(
        self,
        users: Mapping[str, str],
        tokens: Iterable[str] = (),
        *,
        roles: Mapping[str, Role] | None = None,
        token_role: Role = "analyst",  # noqa: S107  # a role name, not a secret
    ) -> None:
        for name, password_hash in users.items():
            problem = check_password_hash(password_hash)
            if problem is not None:
                raise ConfigError(f"admin.users.{name}.password_hash", problem)
        self._users = dict(users)
        self._roles = dict(roles or {})
        self._token_role: Role = token_role
        # Compare digests, not tokens: equal lengths, and the tokens themselves are not kept around.
        self._token_digests = tuple((hashlib.sha256(token.encode()).digest(), _token_name(token)) for token in tokens)
        first = next(iter(self._users.values()), None)
        self._dummy_hash: str | None = _dummy_hash_like(first) if first is not None else None

    def has_credentials(self, stored: Directory = EMPTY_DIRECTORY) -> bool:
        return bool(self._users or self._token_digests or stored.users or stored.tokens)

    def is_configured(self, name: str) -> bool:
        """True for a user of ``[[admin.users]]`` (read-only in the dashboard)."""
        return name in self._users

    def configured_users(self) -> list[tuple[str, Role]]:
        return [(name, self._roles.get(name, "viewer")) for name in sorted(self._users)]

    def configured_tokens(self) -> list[tuple[str, Role]]:
        return [(name, self._token_role) for _, name in self._token_digests]

    def check_password(self, name: str, password: str, stored: Directory = EMPTY_DIRECTORY) -> Principal | None:
        """The user when name and password match (a disabled user never does). Blocking (tens of ms): run
        it in a thread."""
        password_hash = self._users.get(name)
        if password_hash is None:
            user = stored.user(name)
            if user is not None and not user.disabled:
                password_hash = user.password_hash
        if password_hash is None:
            verify_password(self._dummy_hash_for(stored), password)
            return None
        return self.principal(name, stored) if verify_password(password_hash, password) else None

    def _dummy_hash_for(self, stored: Directory) -> str:
        if self._dummy_hash is None and stored.users:  # no config user: dashboard users have argon2's default cost
            self._dummy_hash = _DEFAULT_ARGON2.hash(secrets.token_urlsafe(16))
        return self._dummy_hash or ""

    def principal(self, name: str, stored: Directory = EMPTY_DIRECTORY) -> Principal | None:
        """User ``name`` with their role now, or None when neither the config nor the dashboard's directory
        has them any more (or has them disabled)."""
        if name.startswith("token:"):  # a session opened with a token typed as the password
            if any(token_name == name for _, token_name in self._token_digests):
                return Principal(name, via_token=True, role=self._token_role)
            token = stored.tokens.get(name.removeprefix("token:"))
            return Principal(name, via_token=True, role=token.role) if token is not None else None
        if name in self._users:
            return Principal(name, role=self._roles.get(name, "viewer"))
        user = stored.user(name)
        if user is None or user.disabled:
            return None
        return Principal(name, role=user.role)

    def check_token(self, token: str, stored: Directory = EMPTY_DIRECTORY) -> Principal | None:
        digest = hashlib.sha256(token.encode()).digest()
        found: Principal | None = None
        for expected, name in self._token_digests:  # no early exit: same time whichever token matches
            if hmac.compare_digest(digest, expected):
                found = Principal(name, via_token=True, role=self._token_role)
        if found is None:
            # a lookup by the token's SHA-256: its timing says nothing about a token nobody holds
            made = stored.token_by_digest(digest.hex())
            if made is not None:
                found = Principal(made.principal_name, via_token=True, role=made.role)
        return found


def _token_name(token: str) -> str:
    return "token:" + token_id(token)


def token_id(token: str) -> str:
    """A token's public name without ``token:`` (the first 8 hex digits of its SHA-256), for the audit log."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


__all__ = [
    "MIN_TOKEN_LENGTH",
    "TOKENS_ENV",
    "Authenticator",
    "Principal",
    "check_password_hash",
    "hash_password",
    "token_id",
    "tokens_from_env",
    "verify_password",
]
