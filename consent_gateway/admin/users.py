"""The dashboard's users and API tokens page (role ``admin``): list, make, change, disable, remove, revoke.

* ``GET /users``: every user and token with its role, the config's marked read-only;
* ``POST /users/create``: a new user with a generated password, shown once on the answer and never again
  (only its argon2 hash is stored);
* ``POST /users/update``: ``action`` = ``role`` | ``disable`` | ``enable`` | ``remove`` | ``reset`` (a new
  password, shown once). An admin cannot disable, remove or lower themselves: the dashboard would lose its
  last way in;
* ``POST /tokens/create`` and ``/tokens/revoke``: an API token shown once (stored as its SHA-256), and its end.

Each change is written to the admin audit log *before* it is stored, and refused when the audit log cannot
be written; a change the store then refuses gets a second line, ``outcome: failed``. A disabled or removed
user's sessions, and a revoked token, end on every instance at their next request (``admin/guard.py`` reads
the directory each time).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from consent_gateway.admin import i18n
from consent_gateway.admin.auth import hash_password, token_id
from consent_gateway.admin.directory import (
    MAX_LABEL_CHARS,
    USER_NAME,
    Directory,
    DirectoryError,
    StoredToken,
    StoredUser,
)
from consent_gateway.admin.roles import ROLES, Role, allows
from consent_gateway.admin.site import DashboardSite
from consent_gateway.errors import StoreUnavailable

#: a generated password: 144 random bits, typed once into a password manager
_PASSWORD_BYTES: Final = 18
#: a generated API token: 256 random bits
_TOKEN_BYTES: Final = 32
_UPDATE_ACTIONS: Final = ("role", "disable", "enable", "remove", "reset")


class UserPages:
    def __init__(self, site: DashboardSite) -> None:
        self.site = site

    async def users(self, request: Request) -> Response:
        return await self._page(request)

    async def _page(
        self,
        request: Request,
        status: int = 200,
        *,
        error: str | None = None,
        done: str | None = None,
        secret: dict[str, str] | None = None,
    ) -> Response:
        directory = await self.site.directory.current()
        auth = self.site.authenticator
        return self.site.render(
            request,
            "users.html",
            status,
            nav="users",
            roles=ROLES,
            config_users=auth.configured_users(),
            config_tokens=auth.configured_tokens(),
            users=sorted(directory.users.values(), key=lambda u: u.name),
            tokens=sorted(directory.tokens.values(), key=lambda t: (t.created_at_ms, t.id)),
            me=self.site.access(request).principal.name,
            error=error,
            done=done,
            secret=secret,
        )

    # -- users ------------------------------------------------------------------------------------------

    async def create_user(self, request: Request) -> Response:
        form = self.site.form(request)
        name = form.get("name", "").strip()
        role = _role(form.get("role"))
        if not USER_NAME.match(name) or name.startswith("token"):
            return await self._page(request, 400, error=self.site.t(request, "users.error.name"))
        if role is None:
            return await self._page(request, 400, error=self._choose_role(request))
        if self.site.authenticator.is_configured(name):
            return await self._page(request, 409, error=self.site.t(request, "users.error.in_config", name=name))
        password = secrets.token_urlsafe(_PASSWORD_BYTES)
        password_hash = await run_in_threadpool(hash_password, password)
        user = StoredUser(name, password_hash, role, created_at_ms=_now_ms(self.site), created_by=self._me(request))
        failed = await self._apply(request, "user-create", f"user:{name}", lambda d: d.with_user(user), role=role)
        if failed is not None:
            return failed
        done = self.site.t(request, "users.done.made", name=name, role=role)
        return await self._page(request, done=done, secret={"kind": "password", "name": name, "value": password})

    async def update_user(self, request: Request) -> Response:
        form = self.site.form(request)
        name = form.get("name", "").strip()
        action = form.get("action", "")
        if action not in _UPDATE_ACTIONS:
            error = self.site.t(request, "users.error.action", actions=", ".join(_UPDATE_ACTIONS))
            return await self._page(request, 400, error=error)
        if self.site.authenticator.is_configured(name):
            return await self._page(request, 409, error=self.site.t(request, "users.error.config_user", name=name))
        target = f"user:{name}"
        if action == "role":
            role = _role(form.get("role"))
            if role is None:
                return await self._page(request, 400, error=self._choose_role(request))
            if name == self._me(request) and not allows(role, "admin"):
                return await self._page(request, 409, error=self.site.t(request, "users.error.lower_self"))
            failed = await self._apply(request, "user-role", target, lambda d: d.with_role(name, role), role=role)
            done = self.site.t(request, "users.done.role", name=name, role=role)
            return failed or await self._page(request, done=done)
        if action in ("disable", "remove") and name == self._me(request):
            return await self._page(request, 409, error=self.site.t(request, f"users.error.{action}_self"))
        if action == "disable":
            failed = await self._apply(request, "user-disable", target, lambda d: d.with_disabled(name, True))
            return failed or await self._page(request, done=self.site.t(request, "users.done.disabled", name=name))
        if action == "enable":
            failed = await self._apply(request, "user-enable", target, lambda d: d.with_disabled(name, False))
            return failed or await self._page(request, done=self.site.t(request, "users.done.enabled", name=name))
        if action == "remove":
            failed = await self._apply(request, "user-remove", target, lambda d: d.without_user(name))
            return failed or await self._page(request, done=self.site.t(request, "users.done.removed", name=name))
        password = secrets.token_urlsafe(_PASSWORD_BYTES)
        password_hash = await run_in_threadpool(hash_password, password)
        failed = await self._apply(
            request, "user-password-reset", target, lambda d: d.with_password(name, password_hash)
        )
        return failed or await self._page(
            request,
            done=self.site.t(request, "users.done.password", name=name),
            secret={"kind": "password", "name": name, "value": password},
        )

    # -- tokens -----------------------------------------------------------------------------------------

    async def create_token(self, request: Request) -> Response:
        form = self.site.form(request)
        label = " ".join(form.get("label", "").split())
        role = _role(form.get("role"))
        if not label or len(label) > MAX_LABEL_CHARS:
            error = self.site.t(request, "users.error.label", max=MAX_LABEL_CHARS)
            return await self._page(request, 400, error=error)
        if role is None:
            return await self._page(request, 400, error=self._choose_role(request))
        value = secrets.token_urlsafe(_TOKEN_BYTES)
        token = StoredToken(
            token_id(value),
            hashlib.sha256(value.encode()).hexdigest(),
            label,
            role,
            created_at_ms=_now_ms(self.site),
            created_by=self._me(request),
        )
        failed = await self._apply(
            request, "token-create", token.principal_name, lambda d: d.with_token(token), role=role, label=label
        )
        return failed or await self._page(
            request,
            done=self.site.t(request, "users.done.token", name=token.principal_name, role=role),
            secret={"kind": "token", "name": f"{token.principal_name} ({label})", "value": value},
        )

    async def revoke_token(self, request: Request) -> Response:
        token = self.site.form(request).get("token", "").strip().removeprefix("token:")
        failed = await self._apply(request, "token-revoke", f"token:{token}", lambda d: d.without_token(token))
        done = self.site.t(request, "users.done.revoked", name=f"token:{token}")
        return failed or await self._page(request, done=done)

    # -- shared -----------------------------------------------------------------------------------------

    def _refusal(self, request: Request, exc: DirectoryError) -> str:
        return i18n.directory_message(self.site.language(request), str(exc), exc.reason, exc.values)

    def _choose_role(self, request: Request) -> str:
        return self.site.t(request, "users.error.role", roles=", ".join(ROLES))

    def _me(self, request: Request) -> str:
        return self.site.access(request).principal.name

    async def _apply(
        self, request: Request, action: str, target: str, change: Callable[[Directory], Directory], **extra: Any
    ) -> Response | None:
        """Audit, then store ``change``; None when done, else the page that says why nothing changed."""
        try:
            change(await self.site.directory.current())  # refuse at once what cannot apply (nothing written)
        except DirectoryError as exc:
            return await self._page(request, 409, error=self._refusal(request, exc))
        if not await self.site.record(request, action, target, **extra):
            return await self._page(request, 503, error=self.site.t(request, "users.error.audit"))
        try:
            await self.site.directory.change(change)
        except DirectoryError as exc:  # another admin changed the same thing meanwhile
            await self.site.record(request, action, target, outcome="failed", reason=str(exc))
            return await self._page(request, 409, error=self._refusal(request, exc))
        except StoreUnavailable:
            await self.site.record(request, action, target, outcome="failed", reason="the store did not answer")
            raise
        return None


def _role(value: str | None) -> Role | None:
    return next((role for role in ROLES if role == value), None)


def _now_ms(site: DashboardSite) -> int:
    return int(site.clock() * 1000)
