"""The dashboard's users and API tokens made from the dashboard (role ``admin``), kept in the consent log's store.

They are layered on the config: the ``[[admin.users]]`` and the tokens of ``CONSENT_GATEWAY_ADMIN_TOKENS``
still work as they are, and the dashboard shows them without changing them (a name the config holds cannot
be made again here). What the dashboard makes lives in one stored document (``admin-directory``), changed by
compare-and-set, so every instance reads the same: each dashboard request reads the document's version (one
small read) and loads it again when it changed, so a user disabled or removed, a role changed or a token
revoked on one instance holds on every instance at its next request, and across restarts.

Secrets are kept only as hashes: a password as argon2 (``admin/auth.py``), a token as its SHA-256 (a token is
32 random bytes, so a fast hash loses nothing). Each is shown once, when made, and never again.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from consent_gateway.admin.roles import ROLES, Role
from consent_gateway.errors import StoreUnavailable
from consent_gateway.store.base import ConsentLog

logger = logging.getLogger("consent_gateway.admin")

DIRECTORY_DOCUMENT: Final = "admin-directory"
#: what a user name made here may be: short, printable, no spaces (it appears in the audit log and URLs)
USER_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MAX_LABEL_CHARS: Final = 64
_MAX_ATTEMPTS: Final = 5


class DirectoryError(ValueError):
    """A change the directory refuses (the message says why, for the admin who asked); nothing changed.

    ``reason`` and ``values`` say the same for another language (``users.error.<reason>`` in admin/i18n.py)."""

    def __init__(self, message: str, reason: str = "", **values: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.values = values


@dataclass(frozen=True, slots=True)
class StoredUser:
    name: str
    password_hash: str
    role: Role
    disabled: bool = False
    created_at_ms: int = 0
    created_by: str = ""


@dataclass(frozen=True, slots=True)
class StoredToken:
    #: the first 8 hex digits of the token's SHA-256: its public name is ``token:<id>``
    id: str
    #: the token's SHA-256, hex (the token itself is never kept)
    digest: str
    label: str
    role: Role
    created_at_ms: int = 0
    created_by: str = ""

    @property
    def principal_name(self) -> str:
        return f"token:{self.id}"


@dataclass(frozen=True, slots=True)
class Directory:
    """Users and tokens as stored, at one version (0: nothing was ever stored)."""

    users: dict[str, StoredUser] = field(default_factory=dict)
    tokens: dict[str, StoredToken] = field(default_factory=dict)
    version: int = 0

    def user(self, name: str) -> StoredUser | None:
        return self.users.get(name)

    def token_by_digest(self, digest: str) -> StoredToken | None:
        return next((t for t in self.tokens.values() if t.digest == digest), None)

    def to_json(self) -> str:
        def user(u: StoredUser) -> dict[str, Any]:
            return {
                "password_hash": u.password_hash,
                "role": u.role,
                "disabled": u.disabled,
                "created_at_ms": u.created_at_ms,
                "created_by": u.created_by,
            }

        def token(t: StoredToken) -> dict[str, Any]:
            return {
                "digest": t.digest,
                "label": t.label,
                "role": t.role,
                "created_at_ms": t.created_at_ms,
                "created_by": t.created_by,
            }

        body = {
            "users": {name: user(u) for name, u in sorted(self.users.items())},
            "tokens": {tid: token(t) for tid, t in sorted(self.tokens.items())},
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, version: int) -> Directory:
        data = json.loads(text)
        users = {
            name: StoredUser(
                name,
                str(u["password_hash"]),
                _role(u["role"]),
                bool(u.get("disabled", False)),
                int(u.get("created_at_ms", 0)),
                str(u.get("created_by", "")),
            )
            for name, u in data.get("users", {}).items()
        }
        tokens = {
            tid: StoredToken(
                tid,
                str(t["digest"]),
                str(t.get("label", "")),
                _role(t["role"]),
                int(t.get("created_at_ms", 0)),
                str(t.get("created_by", "")),
            )
            for tid, t in data.get("tokens", {}).items()
        }
        return cls(users, tokens, version)

    # -- changes (pure: each returns a new directory, or raises DirectoryError) ---------------------------

    def with_user(self, user: StoredUser) -> Directory:
        if user.name in self.users:
            raise DirectoryError(f"a user named {user.name!r} exists already", "user_exists", name=user.name)
        return replace(self, users={**self.users, user.name: user})

    def with_role(self, name: str, role: Role) -> Directory:
        return replace(self, users={**self.users, name: replace(self._existing(name), role=role)})

    def with_disabled(self, name: str, disabled: bool) -> Directory:
        return replace(self, users={**self.users, name: replace(self._existing(name), disabled=disabled)})

    def with_password(self, name: str, password_hash: str) -> Directory:
        return replace(self, users={**self.users, name: replace(self._existing(name), password_hash=password_hash)})

    def without_user(self, name: str) -> Directory:
        self._existing(name)
        return replace(self, users={k: v for k, v in self.users.items() if k != name})

    def with_token(self, token: StoredToken) -> Directory:
        if token.id in self.tokens:
            raise DirectoryError("a token with this id exists already; make another", "token_exists")
        return replace(self, tokens={**self.tokens, token.id: token})

    def without_token(self, token_id: str) -> Directory:
        if token_id not in self.tokens:
            raise DirectoryError(
                f"there is no token {token_id!r} made from the dashboard (revoked already?)", "no_token", id=token_id
            )
        return replace(self, tokens={k: v for k, v in self.tokens.items() if k != token_id})

    def _existing(self, name: str) -> StoredUser:
        user = self.users.get(name)
        if user is None:
            raise DirectoryError(
                f"there is no user {name!r} made from the dashboard (removed already?)", "no_user", name=name
            )
        return user


EMPTY_DIRECTORY: Final = Directory()


def _role(value: object) -> Role:
    for role in ROLES:
        if value == role:
            return role
    return "viewer"  # a role this version does not know: the least


class DirectoryStore:
    """The directory in the consent log's store: read at each request's version, changed by compare-and-set."""

    def __init__(self, log: ConsentLog) -> None:
        self.log = log
        self._cached = EMPTY_DIRECTORY
        self._loaded = False

    async def current(self) -> Directory:
        """The directory now. While the store does not answer, the last one read (a change made elsewhere
        meanwhile could not have been written either); before any was read, `StoreUnavailable`."""
        try:
            version = await self.log.document_version(DIRECTORY_DOCUMENT)
            if not self._loaded or version != self._cached.version:
                self._cached = await self._load()
                self._loaded = True
        except StoreUnavailable:
            if not self._loaded:
                raise
            logger.warning("the store is unreachable: dashboard users and tokens as last read")
        return self._cached

    async def _load(self) -> Directory:
        found = await self.log.document_get(DIRECTORY_DOCUMENT)
        return Directory.from_json(found.body, found.version) if found is not None else EMPTY_DIRECTORY

    async def change(self, change: Callable[[Directory], Directory]) -> Directory:
        """Apply ``change`` to the stored directory and write it back; when another writer got there first,
        read again and re-apply (``change`` raises `DirectoryError` to refuse: nothing is written)."""
        for _ in range(_MAX_ATTEMPTS):
            current = await self._load()
            changed = change(current)
            if await self.log.document_put(DIRECTORY_DOCUMENT, changed.to_json(), expected_version=current.version):
                self._cached = replace(changed, version=current.version + 1)
                self._loaded = True
                return self._cached
        raise StoreUnavailable("the dashboard's users kept changing under this write; try again")
